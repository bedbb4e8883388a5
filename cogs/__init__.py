"""Slash-command cogs: thin layers that read options, call the engine and render."""
