"""TimerStore: the only SQL on `mute_timers`, the ends of timed mutes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.store.database import Batch, Database, Pending

PEEK_KEYS = 15  # up to a page of /mutes: read by key on the loop (Database.peek)


@dataclass(frozen=True)
class MuteTimer:
    member_id: int
    x_user_id: str
    username: str
    ends_at: float


def _timer(row: object) -> MuteTimer:
    return MuteTimer(int(row["discord_user_id"]), str(row["x_user_id"]), str(row["username"]),  # type: ignore[index]
                     float(row["ends_at"]))  # type: ignore[index]


class TimerStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def set(self, batch: Batch, member_id: int, x_user_id: str, username: str, ends_at: float, now: float) -> None:
        batch.execute(
            "INSERT INTO mute_timers (discord_user_id, x_user_id, username, ends_at, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (discord_user_id, x_user_id) DO UPDATE SET"
            " username = excluded.username, ends_at = excluded.ends_at, created_at = excluded.created_at",
            (member_id, x_user_id, username, ends_at, now),
        )

    def cancel(self, batch: Batch, member_id: int, x_user_id: str) -> Pending[bool]:
        """Remove the end of this mute; the answer says whether it had one."""
        return batch.exists(
            "DELETE FROM mute_timers WHERE discord_user_id = ? AND x_user_id = ? RETURNING 1", (member_id, x_user_id)
        )

    def forget_member(self, batch: Batch, member_id: int) -> None:
        """The member's timers were about an X account they no longer link."""
        batch.execute("DELETE FROM mute_timers WHERE discord_user_id = ?", (member_id,))

    async def next_due(self) -> float | None:
        value = await self.db.fetchval("SELECT min(ends_at) FROM mute_timers")
        return None if value is None else float(value)

    async def due_members(self, now: float, limit: int) -> list[int]:
        rows = await self.db.fetchall(
            "SELECT discord_user_id FROM mute_timers WHERE ends_at <= ? GROUP BY discord_user_id"
            " ORDER BY min(ends_at) LIMIT ?", (now, limit),
        )
        return [int(row[0]) for row in rows]

    async def take_due(self, member_id: int, now: float) -> list[MuteTimer]:
        """Inside the caller's transaction: remove the member's due timers and return them, so whoever takes
        one is the only one to act on it."""
        rows = await self.db.returning(
            "DELETE FROM mute_timers WHERE discord_user_id = ? AND ends_at <= ?"
            " RETURNING discord_user_id, x_user_id, username, ends_at", (member_id, now),
        )
        return sorted((_timer(row) for row in rows), key=lambda t: (t.ends_at, t.x_user_id))

    async def ends(self, member_id: int, x_user_ids: Sequence[str]) -> dict[str, float]:
        """When each of these timed mutes ends (accounts without a timer are left out)."""
        if not x_user_ids:
            return {}
        marks = ",".join("?" * len(x_user_ids))
        read = self.db.peek if len(x_user_ids) <= PEEK_KEYS else self.db.fetchall
        rows = await read(
            f"SELECT x_user_id, ends_at FROM mute_timers WHERE discord_user_id = ? AND x_user_id IN ({marks})",  # noqa: S608
            (member_id, *x_user_ids),
        )
        return {str(row["x_user_id"]): float(row["ends_at"]) for row in rows}

    async def count(self) -> int:
        return int(await self.db.fetchval("SELECT count(*) FROM mute_timers"))
