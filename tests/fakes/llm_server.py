"""A fake OpenAI-compatible chat-completions server (being written)."""
