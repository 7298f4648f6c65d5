"""Files and data frames are shown on their conversation's admin page (conversations/admin.py)."""
