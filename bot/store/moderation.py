"""ModerationStore: the only SQL on `protected_accounts` and `modlog_channels`, a server's moderation settings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.store.database import Batch, Database


@dataclass(frozen=True)
class ProtectedAccount:
    x_user_id: str
    username: str
    added_by: int
    added_at: float


@dataclass(frozen=True)
class ModlogChannel:
    channel_id: int
    set_by: int
    failing: bool
    set_at: float = 0.0


class ModerationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- protected accounts -------------------------------------------------------------------------

    def protect(self, batch: Batch, guild_id: int, x_user_id: str, username: str, actor: int, now: float) -> None:
        batch.execute(
            "INSERT INTO protected_accounts (guild_id, x_user_id, username, added_by, added_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (guild_id, x_user_id) DO UPDATE SET username = excluded.username",
            (guild_id, x_user_id, username, actor, now),
        )

    async def unprotect(self, guild_id: int, x_user_id: str) -> bool:
        return await self.db.execute(
            "DELETE FROM protected_accounts WHERE guild_id = ? AND x_user_id = ?", (guild_id, x_user_id)
        ) == 1

    async def protected(self, guild_id: int, x_user_id: str) -> ProtectedAccount | None:
        row = await self.db.fetchone(
            "SELECT x_user_id, username, added_by, added_at FROM protected_accounts WHERE guild_id = ?"
            " AND x_user_id = ?", (guild_id, x_user_id))
        return None if row is None else ProtectedAccount(str(row["x_user_id"]), str(row["username"]),
                                                         int(row["added_by"]), float(row["added_at"]))

    async def protected_by_name(self, guild_id: int, username: str) -> ProtectedAccount | None:
        row = await self.db.fetchone(
            "SELECT x_user_id, username, added_by, added_at FROM protected_accounts WHERE guild_id = ?"
            " AND lower(username) = lower(?)", (guild_id, username))
        return None if row is None else ProtectedAccount(str(row["x_user_id"]), str(row["username"]),
                                                         int(row["added_by"]), float(row["added_at"]))

    async def protected_among(self, guild_id: int, x_user_ids: Iterable[str]) -> set[str]:
        """Those of the ids the server protects."""
        wanted = list(dict.fromkeys(x_user_ids))
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = await self.db.fetchall(
                f"SELECT x_user_id FROM protected_accounts WHERE guild_id = ? AND x_user_id IN ({marks})",  # noqa: S608
                (guild_id, *chunk),
            )
            found |= {str(r["x_user_id"]) for r in rows}
        return found

    # -- the moderation log -------------------------------------------------------------------------

    async def modlog(self, guild_id: int) -> ModlogChannel | None:
        row = await self.db.fetchone(
            "SELECT channel_id, set_by, failing, set_at FROM modlog_channels WHERE guild_id = ?", (guild_id,))
        return None if row is None else ModlogChannel(int(row["channel_id"]), int(row["set_by"]),
                                                      bool(row["failing"]), float(row["set_at"]))

    async def set_modlog(self, guild_id: int, channel_id: int, actor: int, now: float) -> None:
        await self.db.execute(
            "INSERT INTO modlog_channels (guild_id, channel_id, set_by, set_at, failing) VALUES (?, ?, ?, ?, 0)"
            " ON CONFLICT (guild_id) DO UPDATE SET channel_id = excluded.channel_id, set_by = excluded.set_by,"
            " set_at = excluded.set_at, failing = 0",
            (guild_id, channel_id, actor, now),
        )

    async def clear_modlog(self, guild_id: int) -> bool:
        return await self.db.execute("DELETE FROM modlog_channels WHERE guild_id = ?", (guild_id,)) == 1

    async def set_failing(self, guild_id: int, failing: bool) -> bool:
        """True when this call changed it (so the moderator is told once, not on every change)."""
        return await self.db.execute(
            "UPDATE modlog_channels SET failing = ? WHERE guild_id = ? AND failing = ?",
            (int(failing), guild_id, int(not failing)),
        ) == 1
