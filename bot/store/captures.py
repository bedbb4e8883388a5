"""CaptureStore: the only SQL on `captures` and `capture_accounts`, the previews waiting for Add or Cancel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.store.database import Database, Row


@dataclass(frozen=True)
class PendingCapture:
    id: int
    guild_id: int
    list_id: int
    moderator_id: int
    post_id: str
    post_url: str
    reason: str | None
    status: str  # pending, added, cancelled
    created_at: float
    expires_at: float


@dataclass(frozen=True)
class CapturedAccount:
    x_user_id: str
    username: str
    sources: tuple[str, ...]


_COLUMNS = "id, guild_id, list_id, moderator_id, post_id, post_url, reason, status, created_at, expires_at"


def _capture(row: Row) -> PendingCapture:
    return PendingCapture(int(row["id"]), int(row["guild_id"]), int(row["list_id"]), int(row["moderator_id"]),
                          str(row["post_id"]), str(row["post_url"]), row["reason"], str(row["status"]),
                          float(row["created_at"]), float(row["expires_at"]))


class CaptureStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self, guild_id: int, list_id: int, moderator_id: int, post_id: str, post_url: str, reason: str | None,
        accounts: Sequence[CapturedAccount], now: float, expires_at: float,
    ) -> int:
        """The pending capture and its accounts, in one transaction; returns its id."""
        async with self.db.transaction() as batch:
            rows = await self.db.returning(
                "INSERT INTO captures (guild_id, list_id, moderator_id, post_id, post_url, reason, created_at,"
                " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (guild_id, list_id, moderator_id, post_id, post_url, reason, now, expires_at),
            )
            capture_id = int(rows[0]["id"])
            batch.executemany(
                "INSERT INTO capture_accounts (capture_id, x_user_id, username, sources, position)"
                " VALUES (?, ?, ?, ?, ?)",
                [(capture_id, a.x_user_id, a.username, ",".join(a.sources), i) for i, a in enumerate(accounts)],
            )
        return capture_id

    async def get(self, capture_id: int) -> PendingCapture | None:
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM captures WHERE id = ?", (capture_id,))  # noqa: S608
        return None if row is None else _capture(row)

    async def accounts(self, capture_id: int) -> list[CapturedAccount]:
        rows = await self.db.fetchall(
            "SELECT x_user_id, username, sources FROM capture_accounts WHERE capture_id = ? ORDER BY position",
            (capture_id,),
        )
        return [CapturedAccount(str(r["x_user_id"]), str(r["username"]), tuple(str(r["sources"]).split(",")))
                for r in rows]

    async def claim(self, capture_id: int, status: str) -> bool:
        """Mark it finished now, outside a batch; True when this call did (a double click loses)."""
        return await self.db.execute(
            "UPDATE captures SET status = ? WHERE id = ? AND status = 'pending'", (status, capture_id)
        ) == 1

    async def purge(self, before: float) -> int:
        """Retention: captures that expired before `before` go, with their accounts (ON DELETE CASCADE)."""
        return await self.db.execute("DELETE FROM captures WHERE expires_at < ?", (before,))
