"""Handlers that a bot's cogs register for the persistent buttons of module-level views, kept per bot.

A button's callback finds its handler through `interaction.client`: two bots in one process (the tests' and the
benchmarks' sandboxes run several) must never answer one bot's button with another bot's services.
"""

from __future__ import annotations

import weakref
from typing import Generic, TypeVar

import discord

H = TypeVar("H")


class PerClient(Generic[H]):
    def __init__(self) -> None:
        self._handlers: weakref.WeakKeyDictionary[discord.Client, dict[str, H]] = weakref.WeakKeyDictionary()

    def register(self, client: discord.Client, kind: str, handler: H) -> None:
        self._handlers.setdefault(client, {})[kind] = handler

    def get(self, client: discord.Client, kind: str) -> H:
        """Raises KeyError when this bot registered no such handler (its cog is not loaded)."""
        return self._handlers[client][kind]
