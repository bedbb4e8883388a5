"""MuteStore: the only SQL on `cached_mutes`, `mute_cache_state` and `manual_choices`.

The cache holds each member's mutes as last read from X (kept in step by /mute, /unmute and the queue);
`position` orders them newest first, as X lists them. A manual choice is what the member did by hand:
'muted' is never undone by a list, 'unmuted' is never re-applied by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.store.database import Batch, Database, Pending


@dataclass(frozen=True)
class CachedMute:
    x_user_id: str
    username: str
    name: str


class MuteStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writes -------------------------------------------------------------------------------------------

    def record(
        self, batch: Batch, member_id: int, x_user_id: str, username: str, name: str, *, muted: bool,
        manual: bool, now: float,
    ) -> Pending[bool]:
        """Keep the cache (and, for manual actions, the member's choice) in step with X; the answer says
        whether the cache held it as muted before."""
        before = batch.exists(
            "SELECT count(*) FROM cached_mutes WHERE discord_user_id = ? AND x_user_id = ?", (member_id, x_user_id)
        )
        if muted:
            batch.execute(
                "INSERT INTO cached_mutes (discord_user_id, x_user_id, username, name, position) VALUES"
                " (?, ?, ?, ?, (SELECT coalesce(min(position), 0) - 1 FROM cached_mutes WHERE discord_user_id = ?))"
                " ON CONFLICT (discord_user_id, x_user_id) DO UPDATE SET username = excluded.username,"
                " name = CASE WHEN excluded.name = '' THEN cached_mutes.name ELSE excluded.name END",
                (member_id, x_user_id, username, name, member_id),
            )
        else:
            batch.execute(
                "DELETE FROM cached_mutes WHERE discord_user_id = ? AND x_user_id = ?", (member_id, x_user_id)
            )
        if manual:
            batch.execute(
                "INSERT INTO manual_choices (discord_user_id, x_user_id, choice, at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (discord_user_id, x_user_id) DO UPDATE SET choice = excluded.choice, at = excluded.at",
                (member_id, x_user_id, "muted" if muted else "unmuted", now),
            )
        return before

    async def holds(self, member_id: int, x_user_id: str) -> bool:
        """Whether the cache holds this account as muted for the member: one row by its key."""
        rows = await self.db.peek(
            "SELECT 1 FROM cached_mutes WHERE discord_user_id = ? AND x_user_id = ?", (member_id, x_user_id)
        )
        return bool(rows)

    def replace_all(self, batch: Batch, member_id: int, users: Sequence[CachedMute], now: float) -> None:
        """The whole list as X just gave it, newest first."""
        batch.execute("DELETE FROM cached_mutes WHERE discord_user_id = ?", (member_id,))
        batch.executemany(
            "INSERT INTO cached_mutes (discord_user_id, x_user_id, username, name, position)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(member_id, u.x_user_id, u.username, u.name, index) for index, u in enumerate(users)],
        )
        batch.execute(
            "INSERT INTO mute_cache_state (discord_user_id, fetched_at, total) VALUES"
            " (?, ?, (SELECT count(*) FROM cached_mutes WHERE discord_user_id = ?))"
            " ON CONFLICT (discord_user_id) DO UPDATE SET fetched_at = excluded.fetched_at, total = excluded.total",
            (member_id, now, member_id),
        )

    def forget_cache(self, batch: Batch, member_id: int) -> None:
        """What we knew of the member's X mutes no longer applies (unlinked, or another X account)."""
        batch.execute("DELETE FROM cached_mutes WHERE discord_user_id = ?", (member_id,))
        batch.execute("DELETE FROM mute_cache_state WHERE discord_user_id = ?", (member_id,))

    def forget_choices(self, batch: Batch, member_id: int) -> None:
        """The member's manual choices were about an X account they no longer link (another one, or none)."""
        batch.execute("DELETE FROM manual_choices WHERE discord_user_id = ?", (member_id,))

    # -- reads --------------------------------------------------------------------------------------------

    async def fetched_at(self, member_id: int) -> float | None:
        value = await self.db.fetchval(
            "SELECT fetched_at FROM mute_cache_state WHERE discord_user_id = ?", (member_id,)
        )
        return None if value is None else float(value)

    async def count(self, member_id: int) -> int:
        """From the total the triggers of migration 0004 keep; counted only for a cache never fetched."""
        total = await self.db.fetchval("SELECT total FROM mute_cache_state WHERE discord_user_id = ?", (member_id,))
        if total is not None:
            return int(total)
        return int(await self.db.fetchval("SELECT count(*) FROM cached_mutes WHERE discord_user_id = ?",
                                          (member_id,)))

    async def page(self, member_id: int, offset: int, limit: int) -> list[CachedMute]:
        rows = await self.db.fetchall(
            "SELECT x_user_id, username, name FROM cached_mutes WHERE discord_user_id = ?"
            " ORDER BY position LIMIT ? OFFSET ?",
            (member_id, limit, offset),
        )
        return [CachedMute(r["x_user_id"], r["username"], r["name"]) for r in rows]

    async def oldest_first(self, member_id: int) -> list[CachedMute]:
        rows = await self.db.fetchall(
            "SELECT x_user_id, username, name FROM cached_mutes WHERE discord_user_id = ? ORDER BY position DESC",
            (member_id,),
        )
        return [CachedMute(r["x_user_id"], r["username"], r["name"]) for r in rows]

    async def muted_ids(self, member_id: int) -> set[str]:
        return {str(r["x_user_id"]) for r in await self.db.fetchall(
            "SELECT x_user_id FROM cached_mutes WHERE discord_user_id = ?", (member_id,)
        )}

    async def matching(self, member_id: int, typed: str, limit: int) -> list[CachedMute]:
        """Known mutes whose username starts with (or else contains) what was typed."""
        needle = typed.strip().lstrip("@").lower().replace("%", "").replace("_", r"\_")
        rows = await self.db.fetchall(
            "SELECT x_user_id, username, name FROM cached_mutes WHERE discord_user_id = ?"
            " AND lower(username) LIKE ? ESCAPE '\\' ORDER BY lower(username) NOT LIKE ? ESCAPE '\\', position LIMIT ?",
            (member_id, f"%{needle}%", f"{needle}%", limit),
        )
        return [CachedMute(r["x_user_id"], r["username"], r["name"]) for r in rows]

    async def choice(self, member_id: int, x_user_id: str) -> str | None:
        value = await self.db.fetchval(
            "SELECT choice FROM manual_choices WHERE discord_user_id = ? AND x_user_id = ?", (member_id, x_user_id)
        )
        return None if value is None else str(value)

    async def choice_made(self, member_id: int, x_user_id: str) -> tuple[str, float] | None:
        """The member's own last choice on this account and when it was made."""
        row = await self.db.fetchone(
            "SELECT choice, at FROM manual_choices WHERE discord_user_id = ? AND x_user_id = ?", (member_id, x_user_id)
        )
        return None if row is None else (str(row["choice"]), float(row["at"]))

    def forget_choice(self, batch: Batch, member_id: int, x_user_id: str) -> None:
        """The member's choice on this account is over (a timed mute ended)."""
        batch.execute("DELETE FROM manual_choices WHERE discord_user_id = ? AND x_user_id = ?", (member_id, x_user_id))

    async def unmuted_by_hand(self, member_id: int) -> set[str]:
        return {str(r["x_user_id"]) for r in await self.db.fetchall(
            "SELECT x_user_id FROM manual_choices WHERE discord_user_id = ? AND choice = 'unmuted'", (member_id,)
        )}
