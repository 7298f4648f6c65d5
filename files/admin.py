"""Uploaded files and data frames arrive with the v2 API; nothing to administer yet."""
