"""UserDirectory: username → X user, through the store's cache with a freshness limit (X bills lookups per user)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from bot.store.database import Batch, Database
from bot.store.directory import DirectoryStore, KnownUser
from bot.x_client import LookupResult, UserAuth, XClient, XUser, XUserNotFound

FOUND_TTL = 7 * 24 * 3600.0
MISS_TTL = 6 * 3600.0
# Names looked up lately, in memory as well: a /mute of a known account then reads no database at all.
RECENT_SIZE = 10_000
RECENT_TTL = 300.0


def _user(known: KnownUser) -> XUser:
    return XUser(known.x_user_id, known.username, known.name, known.profile_image_url)


def _known(user: XUser) -> KnownUser:
    return KnownUser(user.id, user.username, user.name, user.profile_image_url)


class UserDirectory:
    def __init__(
        self, store: DirectoryStore, x: XClient, *, found_ttl: float = FOUND_TTL, miss_ttl: float = MISS_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.db: Database = store.db
        self.x = x
        self.found_ttl = found_ttl
        self.miss_ttl = miss_ttl
        self.clock = clock
        self._recent: OrderedDict[str, tuple[XUser, float]] = OrderedDict()

    def remember(self, batch: Batch, users: Sequence[XUser]) -> None:
        self.store.remember(batch, [_known(u) for u in users], self.clock())
        batch.on_commit(lambda: self._keep(users))

    def _keep(self, users: Sequence[XUser]) -> None:
        until = time.monotonic() + RECENT_TTL
        for user in users:
            self._recent[user.username.lower()] = (user, until)
            self._recent.move_to_end(user.username.lower())
        while len(self._recent) > RECENT_SIZE:
            self._recent.popitem(last=False)

    def _recently(self, username: str) -> XUser | None:
        held = self._recent.get(username.lower())
        if held is None or held[1] <= time.monotonic():
            return None
        return held[0]

    async def cached(self, usernames: Sequence[str]) -> tuple[dict[str, XUser], set[str]]:
        """Fresh cache entries: (found by lower-case name, names known not to exist)."""
        now = self.clock()
        lowered = list(dict.fromkeys(name.lower() for name in usernames))
        found, missing = await self.store.lookup(lowered, now - self.found_ttl, now - self.miss_ttl)
        return {name: _user(k) for name, k in found.items()}, missing

    async def resolve_many(self, auth: UserAuth, usernames: Sequence[str]) -> LookupResult:
        """Resolve names, asking X (100 per call) only for those not freshly cached."""
        found, missing = await self.cached(usernames)
        unique = {name.lower(): name for name in reversed(usernames)}  # one lookup per name, whatever its case
        ask = [name for lower, name in reversed(unique.items()) if lower not in found and lower not in missing]
        if ask:
            answer = await self.x.users_by_usernames(auth, ask)
            async with self.db.batch() as batch:
                self.remember(batch, answer.found)
                self.store.remember_missing(batch, answer.not_found, self.clock())
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

    async def resolve(self, auth: UserAuth, username: str, batch: Batch | None = None) -> XUser:
        """One name: from the cache, else from X; what X says is remembered in the caller's `batch`
        (or at once without one; a miss is always remembered at once, since the command ends there)."""
        recent = self._recently(username)
        if recent is not None:
            return recent
        found, missing = await self.cached([username])
        if username.lower() in found:
            self._keep([found[username.lower()]])
            return found[username.lower()]
        if username.lower() in missing:
            raise XUserNotFound(username)
        try:
            user = await self.x.user_by_username(auth, username)
        except XUserNotFound:
            async with self.db.batch() as own:
                self.store.remember_missing(own, [username], self.clock())
            raise
        if batch is None:
            async with self.db.batch() as own:
                self.remember(own, [user])
        else:
            self.remember(batch, [user])
        return user

    async def by_ids(self, x_user_ids: Sequence[str]) -> dict[str, XUser]:
        return {x_id: _user(k) for x_id, k in (await self.store.by_ids(x_user_ids)).items()}

    async def purge(self) -> int:
        now = self.clock()
        return await self.store.purge(now - self.found_ttl, now - self.miss_ttl)
