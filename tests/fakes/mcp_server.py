"""A fake MCP server (being written)."""
