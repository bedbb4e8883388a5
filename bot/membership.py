"""DiscordMembership: whether members are still in a server, asked of Discord (no privileged members intent)."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import discord

log = logging.getLogger(__name__)

UNKNOWN_MEMBER = 10007  # Discord's JSON error code: the user is not a member of this guild
CONFIRMED_TTL = 3600.0  # a member seen in a server is not asked about again for this long
CONFIRMED_SIZE = 50_000


class DiscordMembership:
    """Without the GUILD_MEMBERS intent no event says that a member left, so the bot asks
    (GET /guilds/{guild.id}/members/{user.id}) before a list change queues work for them. A member seen
    there is remembered for CONFIRMED_TTL, so a busy list does not ask about every subscriber each time."""

    def __init__(
        self, client: discord.Client, *, clock: Callable[[], float] = time.time, confirmed_ttl: float = CONFIRMED_TTL,
    ) -> None:
        self.client = client
        self.clock = clock
        self.confirmed_ttl = confirmed_ttl
        self._confirmed: OrderedDict[tuple[int, int], float] = OrderedDict()

    async def departed(self, guild_id: int, member_ids: Sequence[int]) -> set[int]:
        """Those of `member_ids` whom Discord no longer knows as members of the server. Any other answer
        (Discord down, the bot itself gone) is not a departure: nothing is ended on a guess."""
        gone: set[int] = set()
        for member_id in member_ids:
            key = (guild_id, member_id)
            seen = self._confirmed.get(key)
            if seen is not None and seen + self.confirmed_ttl > self.clock():
                continue
            try:
                await self.client.http.get_member(guild_id, member_id)
            except discord.NotFound as exc:
                if exc.code == UNKNOWN_MEMBER:
                    gone.add(member_id)
                    self._confirmed.pop(key, None)
                continue
            except discord.HTTPException as exc:
                log.warning("could not tell whether member %s is still in guild %s (%s)", member_id, guild_id,
                            exc.status)
                continue
            self._confirmed[key] = self.clock()
            self._confirmed.move_to_end(key)
            while len(self._confirmed) > CONFIRMED_SIZE:
                self._confirmed.popitem(last=False)
        return gone
