"""Numbered SQL migrations, shipped inside the wheel."""
