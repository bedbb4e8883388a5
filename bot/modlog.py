"""ModLog: each committed change to a server's lists, announced in its moderation log channel, never in the way."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import discord

from bot.errors import ChannelElsewhere
from bot.replies import modlog_line, modlog_refused
from bot.store import Stores

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000  # announcements waiting to be posted; beyond that they are dropped (and logged)
# What the bot needs in the channel: plain text lines, so no Embed Links (bot/replies.py names them as Discord does).
NEEDED = ("view_channel", "send_messages")


@dataclass(frozen=True)
class ListChange:
    """One change to a server's lists (or to its moderation log), as it is announced.

    `kind` is create, delete, add, update, remove, import, capture, publish, protect, unprotect, modlog or
    modlog_stop; `count` is how many accounts it put on or took off a list (entries of a deleted list, lists
    a protected account was taken off)."""

    kind: str
    guild_id: int
    actor: int
    list_name: str | None = None
    count: int = 0
    username: str | None = None
    already: int = 0
    problems: int = 0
    post_url: str | None = None
    channel_id: int | None = None  # where to announce, when not the server's modlog channel (the one stopped)
    at: float = 0.0  # when it was made (stamped by ModLog.announce)


@dataclass(frozen=True)
class ModlogSet:
    channel_id: int
    missing: list[str]  # the permissions mutebot lacks there, as discord.Permissions flags (NEEDED)


class ModLog:
    """Announcements go through one queue and one worker (`run`), in the order the changes committed: a change
    calls `announce()` after its commit, which never waits and never fails. When Discord refuses a post (403:
    mutebot may not see or write in the channel, or the channel is gone), the moderator who made the change is
    told by DM, once, until a post succeeds again; the change itself stands."""

    def __init__(
        self, stores: Stores, client: discord.Client, dm: Callable[..., Awaitable[discord.Message | None]],
        *, clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = stores.moderation
        self.client = client
        self.dm = dm
        self.clock = clock
        self._pending: asyncio.Queue[ListChange] = asyncio.Queue(QUEUE_SIZE)

    async def set_channel(self, guild_id: int, actor: int, channel: discord.abc.GuildChannel) -> ModlogSet:
        """Announce this server's list changes in `channel` from now on; says which permissions mutebot lacks
        there (the moderator is told now, so a failing post later does not tell them again)."""
        if channel.guild.id != guild_id or not isinstance(channel, discord.TextChannel):
            raise ChannelElsewhere()
        me = channel.guild.me
        permissions = channel.permissions_for(me) if me is not None else None
        missing = [flag for flag in NEEDED if permissions is not None and not getattr(permissions, flag)]
        await self.store.set_modlog(guild_id, channel.id, actor, self.clock())
        if missing:
            await self.store.set_failing(guild_id, True)
        self.announce(ListChange("modlog", guild_id, actor))
        return ModlogSet(channel.id, missing)

    async def stop(self, guild_id: int, actor: int) -> int | None:
        """Stop announcing; returns the channel it announced in, None when there was none."""
        current = await self.store.modlog(guild_id)
        if current is None or not await self.store.clear_modlog(guild_id):
            return None
        self.announce(ListChange("modlog_stop", guild_id, actor, channel_id=current.channel_id))
        return current.channel_id

    def announce(self, change: ListChange) -> None:
        """Queue the announcement of a committed change; returns at once whatever happens to it later."""
        try:
            self._pending.put_nowait(dataclasses.replace(change, at=self.clock()))
        except asyncio.QueueFull:
            log.warning("modlog: %d announcements waiting; dropped the %s in guild %s", QUEUE_SIZE, change.kind,
                        change.guild_id)

    async def run(self) -> None:
        """The worker: post each announcement in turn (a failure is logged, and the next one goes)."""
        while True:
            change = await self._pending.get()
            try:
                await self.post(change)
            except Exception:  # a bug here must not stop the announcements after it
                log.exception("modlog: announcing a %s in guild %s failed", change.kind, change.guild_id)

    async def post(self, change: ListChange) -> None:
        current = await self.store.modlog(change.guild_id)
        if change.channel_id is None and (current is None or change.at < current.set_at):
            # No moderation log when the change was made (the one there now was set after it, while this
            # waited its turn): it is not announced, as none was when the change was made.
            return
        channel_id = change.channel_id or (current.channel_id if current else None)
        if channel_id is None:
            return
        try:
            await self.client.get_partial_messageable(channel_id, guild_id=change.guild_id).send(
                modlog_line(change), allowed_mentions=discord.AllowedMentions.none())
        except (discord.Forbidden, discord.NotFound) as exc:
            if change.channel_id is None and await self.store.set_failing(change.guild_id, True):
                await self.dm(change.actor, content=modlog_refused(channel_id, isinstance(exc, discord.NotFound)))
            log.info("modlog: guild %s's channel %s refused the bot (%s %s)", change.guild_id, channel_id,
                     exc.status, exc.code)
            return
        except discord.HTTPException as exc:
            log.warning("modlog: posting in channel %s failed (%s)", channel_id, exc.status)
            return
        if current is not None and current.failing and change.channel_id is None:
            await self.store.set_failing(change.guild_id, False)  # it works again: a later refusal is told
