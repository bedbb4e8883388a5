"""RateLimitStore: the only SQL on `rate_limits`, X's rate window per (X account, endpoint) shared by every process.

On a database several processes share, each mute or unmute (queued, or a member's own command) first takes one
call of the account's window here (`reserve`), and what X's headers then say is written back (`record`), so that
two processes together never spend more of a window than X allows (bot/windows.py decides when). A lone process
keeps the windows in memory only (bot/x_client.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.store.database import Database


@dataclass(frozen=True)
class BlockedWindow:
    x_user_id: str
    endpoint: str
    reset_at: float


class RateLimitStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def reserve(self, x_user_id: str, endpoint: str, now: float, *, provisional_until: float) -> float:
        """Take one call of the window: 0.0 when taken (or when nothing is known of it yet), else when the
        window resets. A window that has ended starts again with its last known limit, until
        `provisional_until` or until the first answer of the new window says when it ends."""
        for _ in range(2):
            taken = await self.db.returning(
                "UPDATE rate_limits SET"
                " remaining = CASE WHEN reset_at <= ? THEN limit_total - 1 ELSE remaining - 1 END,"
                " reset_at = CASE WHEN reset_at <= ? THEN ? ELSE reset_at END"
                " WHERE x_user_id = ? AND endpoint = ? AND (reset_at <= ? OR remaining > 0) RETURNING remaining",
                (now, now, provisional_until, x_user_id, endpoint, now),
            )
            if taken:
                return 0.0
            row = await self.db.fetchone(
                "SELECT remaining, reset_at FROM rate_limits WHERE x_user_id = ? AND endpoint = ?",
                (x_user_id, endpoint),
            )
            if row is None:
                return 0.0  # nothing known of this window yet
            if int(row["remaining"]) <= 0 and float(row["reset_at"]) > now:
                return float(row["reset_at"])
            # The first answer of the window was written between the two statements: take from it now.
        return 0.0

    async def record(self, x_user_id: str, endpoint: str, *, limit: int, remaining: int, reset_at: float,
                     now: float) -> None:
        """What X's headers said after a call. Within a window still running, the lower count wins: the
        reservations of calls other processes have in flight are not in X's count yet."""
        if reset_at <= now:
            return  # an answer from a window that has already ended tells nothing about the next one
        await self.db.execute(
            "INSERT INTO rate_limits (x_user_id, endpoint, limit_total, remaining, reset_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (x_user_id, endpoint) DO UPDATE SET limit_total = excluded.limit_total,"
            " remaining = CASE WHEN rate_limits.reset_at > ? AND rate_limits.remaining < excluded.remaining"
            " THEN rate_limits.remaining ELSE excluded.remaining END,"
            " reset_at = excluded.reset_at",
            (x_user_id, endpoint, limit, remaining, reset_at, now),
        )

    async def blocked(self, now: float) -> list[BlockedWindow]:
        """The windows used up until a later time, whichever process used them."""
        rows = await self.db.fetchall(
            "SELECT x_user_id, endpoint, reset_at FROM rate_limits WHERE remaining <= 0 AND reset_at > ?", (now,)
        )
        return [BlockedWindow(str(r["x_user_id"]), str(r["endpoint"]), float(r["reset_at"])) for r in rows]

    async def purge(self, before: float) -> int:
        """Windows that ended before `before`: nothing left to share."""
        return await self.db.execute("DELETE FROM rate_limits WHERE reset_at < ?", (before,))
