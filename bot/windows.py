"""X's rate windows of a member's X account, as every sender of this bot spends them.

X counts each account's calls per endpoint and window (50 mutes per 15 minutes). The X client keeps the last
headers in memory (`XClient.rate_limits`); on a database several processes share, each call also takes one
call of the window there first and writes X's answer back (bot/store/rate_limits.py), so that the processes,
the queue's sends and members' own /mute and /unmute together never spend more than X allows.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.store.database import Database
from bot.store.rate_limits import RateLimitStore
from bot.x_client import XClient

# On a shared database, how long a window that has just ended is taken to last anew, until the first answer of the
# next one says when it ends (seconds; an answer comes within X's timeouts).
PROVISIONAL_WINDOW = 60.0


class XWindows:
    def __init__(self, x: XClient, store: RateLimitStore, db: Database, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.x = x
        self.store = store
        self.db = db
        self.clock = clock

    @property
    def shared(self) -> bool:
        return self.db.dialect.shared

    async def take(self, x_user_id: str, endpoint: str) -> float:
        """0.0 when one call may go now (on a shared database: taken from the window every process spends);
        else when the window reopens."""
        reset_at = self.x.rate_limits.next_allowed_at(x_user_id, endpoint)
        if reset_at or not self.shared:
            return reset_at
        now = self.clock()
        return await self.store.reserve(x_user_id, endpoint, now, provisional_until=now + PROVISIONAL_WINDOW)

    async def used_up(self) -> dict[tuple[str, str], float]:
        """(X account, endpoint) -> when it reopens, for the windows used up by any process (on a shared
        database; a lone process knows its own from the headers)."""
        if not self.shared:
            return {}
        return {(w.x_user_id, w.endpoint): w.reset_at for w in await self.store.blocked(self.clock())}

    async def share(self, x_user_id: str, endpoint: str) -> None:
        """After a call: what X's headers said, written through to the database the other processes read."""
        if not self.shared:
            return
        state = self.x.rate_limits.get(x_user_id, endpoint)
        if state is not None:
            await self.store.record(x_user_id, endpoint, limit=state.limit, remaining=state.remaining,
                                    reset_at=state.reset_at, now=self.clock())
