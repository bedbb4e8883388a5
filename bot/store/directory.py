"""DirectoryStore: the only SQL on `x_users` and `x_user_misses`, the looked-up X accounts (X bills lookups)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.store.database import Batch, Database

CHUNK = 500  # names per IN (...) list, well under SQLite's variable limit
PEEK_NAMES = 5  # up to this many names are looked up by key on the loop (Database.peek), more go to a reader


@dataclass(frozen=True)
class KnownUser:
    x_user_id: str
    username: str
    name: str
    profile_image_url: str | None


class DirectoryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def lookup(self, lowered: Sequence[str], found_since: float, missed_since: float) -> tuple[
        dict[str, KnownUser], set[str]
    ]:
        """Fresh answers for these lower-case names: (found by lower-case name, names known not to exist).
        One query per chunk, found and missing together."""
        found: dict[str, KnownUser] = {}
        missing: set[str] = set()
        for start in range(0, len(lowered), CHUNK):
            chunk = list(lowered[start : start + CHUNK])
            marks = ",".join("?" * len(chunk))
            read = self.db.peek if len(chunk) <= PEEK_NAMES else self.db.fetchall
            rows = await read(
                "SELECT x_user_id, username, name, profile_image_url FROM x_users"  # noqa: S608
                f" WHERE username_lower IN ({marks}) AND fetched_at > ?"
                " UNION ALL SELECT NULL, username_lower, '', NULL FROM x_user_misses"
                f" WHERE username_lower IN ({marks}) AND fetched_at > ?",
                (*chunk, found_since, *chunk, missed_since),
            )
            for row in rows:
                if row["x_user_id"] is None:
                    missing.add(str(row["username"]))
                else:
                    user = KnownUser(str(row["x_user_id"]), str(row["username"]), str(row["name"]),
                                     row["profile_image_url"])
                    found[user.username.lower()] = user
        return found, missing

    async def by_ids(self, x_user_ids: Sequence[str]) -> dict[str, KnownUser]:
        found: dict[str, KnownUser] = {}
        for start in range(0, len(x_user_ids), CHUNK):
            chunk = list(x_user_ids[start : start + CHUNK])
            marks = ",".join("?" * len(chunk))
            for row in await self.db.fetchall(
                f"SELECT x_user_id, username, name, profile_image_url FROM x_users WHERE x_user_id IN ({marks})",  # noqa: S608
                chunk,
            ):
                found[str(row["x_user_id"])] = KnownUser(str(row["x_user_id"]), str(row["username"]),
                                                         str(row["name"]), row["profile_image_url"])
        return found

    def remember(self, batch: Batch, users: Sequence[KnownUser], now: float) -> None:
        if not users:
            return
        # A username may have moved to another account: the newest answer owns it.
        batch.executemany(
            "DELETE FROM x_users WHERE username_lower = ? AND x_user_id != ?",
            [(u.username.lower(), u.x_user_id) for u in users],
        )
        batch.executemany(
            "INSERT INTO x_users (x_user_id, username, username_lower, name, profile_image_url, fetched_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (x_user_id) DO UPDATE SET username = excluded.username,"
            " username_lower = excluded.username_lower, name = excluded.name,"
            " profile_image_url = excluded.profile_image_url, fetched_at = excluded.fetched_at",
            [(u.x_user_id, u.username, u.username.lower(), u.name, u.profile_image_url, now) for u in users],
        )
        batch.executemany(
            "DELETE FROM x_user_misses WHERE username_lower = ?", [(u.username.lower(),) for u in users]
        )

    def remember_missing(self, batch: Batch, usernames: Sequence[str], now: float) -> None:
        if not usernames:
            return
        batch.executemany(
            "INSERT INTO x_user_misses (username_lower, fetched_at) VALUES (?, ?)"
            " ON CONFLICT (username_lower) DO UPDATE SET fetched_at = excluded.fetched_at",
            [(name.lower(), now) for name in usernames],
        )

    async def purge(self, found_before: float, missed_before: float) -> int:
        """Retention: answers older than their freshness limit are of no use; forget them."""
        async with self.db.batch() as batch:
            found = batch.execute("DELETE FROM x_users WHERE fetched_at < ?", (found_before,))
            missed = batch.execute("DELETE FROM x_user_misses WHERE fetched_at < ?", (missed_before,))
        return found.value + missed.value
