"""System checks of the knowledge base (filled in below)."""
