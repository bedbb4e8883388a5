"""MuteService: /mute, /unmute and the member's mute list, kept in the store so page flips cost X nothing."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.accounts import AccountService, Credentials, LinkedAccount
from bot.directory import UserDirectory
from bot.errors import LinkUnreadable, NotLinked, RelinkRequired, SelfMute
from bot.store import Stores
from bot.store.database import Batch
from bot.store.lists import ListReason
from bot.store.mutes import CachedMute
from bot.timers import TimerSchedule
from bot.usernames import Username
from bot.windows import XWindows
from bot.x_client import UserAuth, XClient, XRateLimited, XUser

CACHE_TTL = 15 * 60.0
PAGE_SIZE = 15


@dataclass(frozen=True)
class MuteOutcome:
    user: XUser
    changed: bool  # False when X already had it that way (as far as we know)
    ends_at: float | None = None  # a timed mute: when mutebot unmutes it
    was_timed: bool = False  # it had an end, which this command removed (a plain /mute made it permanent)


@dataclass(frozen=True)
class MutesPage:
    entries: list[XUser]
    ends: dict[str, float]  # the page's timed mutes: X user id -> when mutebot unmutes it
    page: int  # 0-based, clamped
    pages: int
    total: int
    fetched_at: float
    refresh_at: float | None = None  # X refused a refresh: the page is as of `fetched_at`, a refresh works then
    per_page: int = PAGE_SIZE

    @property
    def first_number(self) -> int:
        """The list number of this page's first entry (1-based)."""
        return self.page * self.per_page + 1


@dataclass(frozen=True)
class MuteReasons:
    """Everything mutebot knows about why an account is muted for a member (/why)."""

    user: XUser
    choice: str | None  # the member's own last choice through mutebot: "muted", "unmuted" or None
    chosen_at: float | None
    ends_at: float | None  # a timed mute's end
    lists: list[ListReason]
    cached_muted: bool  # the member's X mutes, as mutebot last saw them, include it

    @property
    def known(self) -> bool:
        return self.choice is not None or bool(self.lists) or self.ends_at is not None


def _user(row: CachedMute) -> XUser:
    return XUser(row.x_user_id, row.username, row.name)


class MuteService:
    def __init__(
        self, stores: Stores, accounts: AccountService, directory: UserDirectory, x: XClient,
        timers: TimerSchedule, *, clock: Callable[[], float] = time.time, cache_ttl: float = CACHE_TTL,
    ) -> None:
        self.db = stores.db
        self.store = stores.mutes
        self.timer_store = stores.timers
        self.lists_store = stores.lists
        self.timers = timers
        self.queue_store = stores.queue
        self.accounts = accounts
        self.directory = directory
        self.x = x
        self.clock = clock
        self.cache_ttl = cache_ttl
        self.windows = XWindows(x, stores.rate_limits, stores.db, clock=clock)

    async def linked(self, member_id: int) -> LinkedAccount:
        account = await self.accounts.account(member_id)
        if account is None:
            raise NotLinked()
        if account.needs_relink:
            raise LinkUnreadable() if account.unreadable else RelinkRequired()
        return account

    def _check_budget(self, x_user_id: str, endpoint: str) -> None:
        """Never send what X would refuse: the last headers tell when the window reopens (reads such as
        GET muting count against the window of this process's own calls only)."""
        reset_at = self.x.rate_limits.next_allowed_at(x_user_id, endpoint)
        if reset_at:
            raise XRateLimited(reset_at, endpoint)

    async def _take_budget(self, x_user_id: str, endpoint: str) -> None:
        """Never send what X would refuse: the last headers (and, on a shared database, what every process has
        spent of the window) tell when it reopens."""
        reset_at = await self.windows.take(x_user_id, endpoint)
        if reset_at:
            raise XRateLimited(reset_at, endpoint)

    def _v11(self, account: LinkedAccount) -> bool:
        return account.auth_kind == "oauth1" and self.accounts.settings.x_mute_api == "v1.1"

    async def mute(self, member_id: int, username: Username, duration: int | None = None) -> MuteOutcome:
        """Mute it; with `duration` (seconds), mutebot unmutes it when the time is up."""
        return await self._set(member_id, username, mute=True, duration=duration)

    async def unmute(self, member_id: int, username: Username) -> MuteOutcome:
        return await self._set(member_id, username, mute=False)

    async def _set(self, member_id: int, username: Username, *, mute: bool, duration: int | None = None
                   ) -> MuteOutcome:
        """A manual mute or unmute: credentials read once, resolved, budget-checked, sent, then remembered
        with the lookup in one write."""
        creds = await self.accounts.credentials(member_id)
        account = creds.account
        if username.lower() == account.x_username.lower():
            raise SelfMute()
        endpoint = "muting.post" if mute else "muting.delete"
        batch = Batch()
        try:
            if self._v11(account):
                target = await self._v11_by_name(creds, username, mute=mute, batch=batch)
            else:
                target = await self.accounts.call(creds, lambda auth: self.directory.resolve(auth, username, batch))
                if target.id == account.x_user_id:
                    raise SelfMute()
                await self._take_budget(account.x_user_id, endpoint)

                async def send(auth: UserAuth) -> bool:
                    return await (self.x.mute(auth, target.id) if mute else self.x.unmute(auth, target.id))

                try:
                    await self.accounts.call(creds, send)
                finally:
                    await self.windows.share(account.x_user_id, endpoint)
            now = self.clock()
            was_muted = self.store.record(batch, member_id, target.id, target.username, target.name, muted=mute,
                                          manual=True, now=now)
            if mute:  # the member's own mute wins over an unmute still queued (a timed mute's end, say)
                self.queue_store.cancel_pending_for(batch, member_id, target.id, "unmute",
                                                    outcome="you muted it again", now=now)
            ends_at = None if duration is None else now + duration
            if ends_at is not None:
                self.timers.schedule(batch, member_id, target.id, target.username, ends_at)
                had_end = None
            else:  # in the same write: no read first, the delete itself says whether there was an end
                had_end = self.timers.cancel(batch, member_id, target.id)
        finally:
            await self.db.write(batch)  # what X told us is kept even when the command failed after the lookup
        return MuteOutcome(target, changed=was_muted.value != mute, ends_at=ends_at,
                           was_timed=had_end is not None and had_end.value)

    async def _v11_by_name(self, creds: Credentials, username: Username, *, mute: bool, batch: Batch) -> XUser:
        """v1.1 mutes by screen name in one call, so no lookup is spent first."""
        endpoint = "muting.post" if mute else "muting.delete"
        await self._take_budget(creds.account.x_user_id, endpoint)
        try:
            if mute:
                user: XUser | None = await self.accounts.call(creds, lambda a: self.x.mute_by_username(a, username))
            else:
                user = await self.accounts.call(creds, lambda a: self.x.unmute_by_username(a, username))
        finally:
            await self.windows.share(creds.account.x_user_id, endpoint)
        if user is None:  # X says it was not muted: look the account up only to name it
            return await self.accounts.call(creds, lambda auth: self.directory.resolve(auth, username, batch))
        self.directory.remember(batch, [user])
        return user

    async def reasons(self, member_id: int, username: Username) -> MuteReasons:
        """Why mutebot mutes this account for the member: their own choice (and its end), and each list."""
        creds = await self.accounts.credentials(member_id)
        target = await self.accounts.call(creds, lambda auth: self.directory.resolve(auth, username))
        made = await self.store.choice_made(member_id, target.id)
        ends = await self.timer_store.ends(member_id, [target.id])
        return MuteReasons(
            target, made[0] if made else None, made[1] if made else None, ends.get(target.id),
            await self.lists_store.reasons(member_id, target.id), await self.store.holds(member_id, target.id),
        )

    async def pending_actions(self, member_id: int) -> int:
        return await self.queue_store.pending_count(member_id)

    def record(self, batch: Batch, member_id: int, target: XUser, *, muted: bool, manual: bool) -> None:
        """Keep the cache (and, for manual actions, the member's own choice) in step with X."""
        self.store.record(batch, member_id, target.id, target.username, target.name, muted=muted, manual=manual,
                          now=self.clock())

    # -- the member's mutes, paged from the cache ---------------------------------------------------

    async def fetched_at(self, member_id: int) -> float | None:
        return await self.store.fetched_at(member_id)

    async def refetch(self, member_id: int) -> float:
        """Fetch every page (1,000 a call) and replace the cache; refuses when X's budget is spent."""
        creds = await self.accounts.credentials(member_id)
        self._check_budget(creds.account.x_user_id, "muting.get")
        users: list[XUser] = []

        async def fetch_all(auth: UserAuth) -> None:
            users.clear()
            async for page in self.x.iter_muting(auth):
                users.extend(page.users)
                if page.next_token:
                    self._check_budget(auth.x_user_id, "muting.get")

        await self.accounts.call(creds, fetch_all)
        now = self.clock()
        async with self.db.batch() as batch:
            self.store.replace_all(batch, member_id, [CachedMute(u.id, u.username, u.name) for u in users], now)
            self.directory.remember(batch, users)
        return now

    async def page(self, member_id: int, page: int, *, refresh: bool = False, per_page: int = PAGE_SIZE) -> MutesPage:
        await self.linked(member_id)
        fetched = await self.fetched_at(member_id)
        refresh_at: float | None = None
        if refresh or fetched is None or fetched + self.cache_ttl <= self.clock():
            try:
                fetched = await self.refetch(member_id)
            except XRateLimited as exc:
                if fetched is None:
                    raise
                refresh_at = exc.reset_at
        total = await self.store.count(member_id)
        pages = max(1, math.ceil(total / per_page))
        page = min(max(page, 0), pages - 1)
        entries = [_user(r) for r in await self.store.page(member_id, page * per_page, per_page)]
        ends = await self.timer_store.ends(member_id, [user.id for user in entries])
        return MutesPage(entries, ends, page, pages, total, fetched, refresh_at, per_page)

    async def suggestions(self, member_id: int, prefix: str, limit: int = 25) -> list[XUser]:
        """Known mutes whose username starts with (or contains) what was typed, for autocomplete."""
        return [_user(r) for r in await self.store.matching(member_id, prefix, limit)]
