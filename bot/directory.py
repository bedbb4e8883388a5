"""UserDirectory: username → X user, through a SQLite cache with a freshness limit (X bills lookups per user)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from bot.storage import Database
from bot.x_client import LookupResult, UserAuth, XClient, XUser, XUserNotFound

FOUND_TTL = 7 * 24 * 3600.0
MISS_TTL = 6 * 3600.0


class UserDirectory:
    def __init__(
        self, db: Database, client: XClient, *, found_ttl: float = FOUND_TTL, miss_ttl: float = MISS_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.client = client
        self.found_ttl = found_ttl
        self.miss_ttl = miss_ttl
        self.clock = clock

    async def remember(self, users: Sequence[XUser]) -> None:
        now = self.clock()
        async with self.db.transaction():
            for user in users:
                # A username may have moved to another account: the newest answer owns it.
                await self.db.execute(
                    "DELETE FROM x_users WHERE username_lower = ? AND x_user_id != ?", (user.username.lower(), user.id)
                )
                await self.db.execute(
                    "INSERT INTO x_users (x_user_id, username, username_lower, name, profile_image_url, fetched_at)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (x_user_id) DO UPDATE SET username = excluded.username,"
                    " username_lower = excluded.username_lower, name = excluded.name,"
                    " profile_image_url = excluded.profile_image_url, fetched_at = excluded.fetched_at",
                    (user.id, user.username, user.username.lower(), user.name, user.profile_image_url, now),
                )
                await self.db.execute("DELETE FROM x_user_misses WHERE username_lower = ?", (user.username.lower(),))

    async def remember_missing(self, usernames: Sequence[str]) -> None:
        """Names X does not know, so they are not asked for again while the answer is fresh."""
        now = self.clock()
        await self.db.executemany(
            "INSERT INTO x_user_misses (username_lower, fetched_at) VALUES (?, ?)"
            " ON CONFLICT (username_lower) DO UPDATE SET fetched_at = excluded.fetched_at",
            [(name.lower(), now) for name in usernames],
        )

    async def cached(self, usernames: Sequence[str]) -> tuple[dict[str, XUser], set[str]]:
        """Fresh cache entries: (found by lower-case name, names known not to exist)."""
        lowered = list(dict.fromkeys(name.lower() for name in usernames))
        found: dict[str, XUser] = {}
        missing: set[str] = set()
        now = self.clock()
        for start in range(0, len(lowered), 500):
            chunk = lowered[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in await self.db.fetchall(
                f"SELECT x_user_id, username, name, profile_image_url FROM x_users"  # noqa: S608
                f" WHERE username_lower IN ({marks}) AND fetched_at > ?",
                (*chunk, now - self.found_ttl),
            ):
                found[row["username"].lower()] = XUser(
                    row["x_user_id"], row["username"], row["name"], row["profile_image_url"]
                )
            for row in await self.db.fetchall(
                f"SELECT username_lower FROM x_user_misses WHERE username_lower IN ({marks})"  # noqa: S608
                " AND fetched_at > ?",
                (*chunk, now - self.miss_ttl),
            ):
                missing.add(row["username_lower"])
        return found, missing

    async def resolve_many(self, auth: UserAuth, usernames: Sequence[str]) -> LookupResult:
        """Resolve names, asking X (100 per call) only for those not freshly cached."""
        found, missing = await self.cached(usernames)
        unique = {name.lower(): name for name in reversed(usernames)}  # one lookup per name, whatever its case
        ask = [name for lower, name in reversed(unique.items()) if lower not in found and lower not in missing]
        if ask:
            answer = await self.client.users_by_usernames(auth, ask)
            await self.remember(answer.found)
            await self.remember_missing(answer.not_found)
            found.update({user.username.lower(): user for user in answer.found})
            missing.update(name.lower() for name in answer.not_found)
        result_found: list[XUser] = []
        not_found: list[str] = []
        for name in dict.fromkeys(usernames):
            user = found.get(name.lower())
            if user is None:
                not_found.append(name)
            elif user not in result_found:
                result_found.append(user)
        return LookupResult(result_found, not_found)

    async def resolve(self, auth: UserAuth, username: str) -> XUser:
        found, missing = await self.cached([username])
        if username.lower() in found:
            return found[username.lower()]
        if username.lower() in missing:
            raise XUserNotFound(username)
        try:
            user = await self.client.user_by_username(auth, username)
        except XUserNotFound:
            await self.remember_missing([username])
            raise
        await self.remember([user])
        return user

    async def by_id(self, x_user_id: str) -> XUser | None:
        row = await self.db.fetchone(
            "SELECT x_user_id, username, name, profile_image_url FROM x_users WHERE x_user_id = ?", (x_user_id,)
        )
        return None if row is None else XUser(row["x_user_id"], row["username"], row["name"], row["profile_image_url"])
