"""MuteService: /mute, /unmute and the member's mute list, kept in SQLite so page flips cost X nothing."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.accounts import AccountService, LinkedAccount
from bot.directory import UserDirectory
from bot.errors import NotLinked, RelinkRequired, SelfMute
from bot.storage import Database
from bot.usernames import normalize_username
from bot.x_client import UserAuth, XClient, XRateLimited, XUser

CACHE_TTL = 15 * 60.0
PAGE_SIZE = 15


@dataclass(frozen=True)
class MuteOutcome:
    user: XUser
    changed: bool  # False when X already had it that way (as far as we know)


@dataclass(frozen=True)
class MutesPage:
    entries: list[XUser]
    page: int  # 0-based, clamped
    pages: int
    total: int
    fetched_at: float
    refresh_note: str | None = None


class MuteService:
    def __init__(
        self, db: Database, accounts: AccountService, directory: UserDirectory, x: XClient,
        *, clock: Callable[[], float] = time.time, cache_ttl: float = CACHE_TTL,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.directory = directory
        self.x = x
        self.clock = clock
        self.cache_ttl = cache_ttl

    async def linked(self, member_id: int) -> LinkedAccount:
        account = await self.accounts.account(member_id)
        if account is None:
            raise NotLinked()
        if account.needs_relink:
            raise RelinkRequired()
        return account

    def _check_budget(self, x_user_id: str, endpoint: str) -> None:
        """Never send what X would refuse: the last headers tell when the window reopens."""
        reset_at = self.x.rate_limits.next_allowed_at(x_user_id, endpoint)
        if reset_at:
            raise XRateLimited(reset_at, endpoint)

    async def resolve_target(self, member_id: int, text: str) -> tuple[LinkedAccount, XUser]:
        username = normalize_username(text)  # bad input stops here, before any X call
        account = await self.linked(member_id)
        if username.lower() == account.x_username.lower():
            raise SelfMute()
        target = await self.accounts.call(member_id, lambda auth: self.directory.resolve(auth, username))
        if target.id == account.x_user_id:
            raise SelfMute()
        return account, target

    def _v11(self, account: LinkedAccount) -> bool:
        return account.auth_kind == "oauth1" and self.accounts.settings.x_mute_api == "v1.1"

    async def _v11_by_name(self, member_id: int, text: str, *, mute: bool) -> MuteOutcome | None:
        """v1.1 mutes by screen name in one call, so no lookup is spent first."""
        username = normalize_username(text)
        account = await self.linked(member_id)
        if not self._v11(account):
            return None
        if username.lower() == account.x_username.lower():
            raise SelfMute()
        self._check_budget(account.x_user_id, "muting.post" if mute else "muting.delete")
        if mute:
            user: XUser | None = await self.accounts.call(member_id, lambda a: self.x.mute_by_username(a, username))
        else:
            user = await self.accounts.call(member_id, lambda a: self.x.unmute_by_username(a, username))
        if user is None:  # X says it was not muted: look the account up only to name it
            user = await self.accounts.call(member_id, lambda auth: self.directory.resolve(auth, username))
        await self.directory.remember([user])
        known = await self._cached(member_id, user.id)
        await self.record(member_id, user, muted=mute, manual=True)
        return MuteOutcome(user, changed=known != mute)

    async def mute(self, member_id: int, text: str) -> MuteOutcome:
        return await self._set(member_id, text, mute=True)

    async def unmute(self, member_id: int, text: str) -> MuteOutcome:
        return await self._set(member_id, text, mute=False)

    async def _set(self, member_id: int, text: str, *, mute: bool) -> MuteOutcome:
        """A manual mute or unmute: validated, resolved, budget-checked, sent, then remembered."""
        by_name = await self._v11_by_name(member_id, text, mute=mute)
        if by_name is not None:
            return by_name
        account, target = await self.resolve_target(member_id, text)
        self._check_budget(account.x_user_id, "muting.post" if mute else "muting.delete")
        was_muted = await self._cached(member_id, target.id)

        async def send(auth: UserAuth) -> bool:
            return await (self.x.mute(auth, target.id) if mute else self.x.unmute(auth, target.id))

        await self.accounts.call(member_id, send)
        await self.record(member_id, target, muted=mute, manual=True)
        return MuteOutcome(target, changed=was_muted != mute)

    async def pending_actions(self, member_id: int) -> int:
        return int(await self.db.fetchval(
            "SELECT count(*) FROM actions WHERE discord_user_id = ? AND status IN ('pending', 'in_flight')",
            (member_id,),
        ) or 0)

    async def _cached(self, member_id: int, x_user_id: str) -> bool:
        return bool(await self.db.fetchval(
            "SELECT 1 FROM cached_mutes WHERE discord_user_id = ? AND x_user_id = ?", (member_id, x_user_id)
        ))

    async def record(self, member_id: int, target: XUser, *, muted: bool, manual: bool) -> None:
        """Keep the cache (and, for manual actions, the member's own choice) in step with X."""
        now = self.clock()
        async with self.db.transaction():
            if muted:
                await self.db.execute(
                    "INSERT INTO cached_mutes (discord_user_id, x_user_id, username, name, position) VALUES"
                    " (?, ?, ?, ?, (SELECT coalesce(min(position), 0) - 1 FROM cached_mutes WHERE discord_user_id = ?))"
                    " ON CONFLICT (discord_user_id, x_user_id) DO UPDATE SET username = excluded.username,"
                    " name = excluded.name",
                    (member_id, target.id, target.username, target.name, member_id),
                )
            else:
                await self.db.execute(
                    "DELETE FROM cached_mutes WHERE discord_user_id = ? AND x_user_id = ?", (member_id, target.id)
                )
            if manual:
                await self.db.execute(
                    "INSERT INTO manual_choices (discord_user_id, x_user_id, choice, at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (discord_user_id, x_user_id)"
                    " DO UPDATE SET choice = excluded.choice, at = excluded.at",
                    (member_id, target.id, "muted" if muted else "unmuted", now),
                )

    # -- the member's mutes, paged from the cache ---------------------------------------------------

    async def fetched_at(self, member_id: int) -> float | None:
        value = await self.db.fetchval(
            "SELECT fetched_at FROM mute_cache_state WHERE discord_user_id = ?", (member_id,)
        )
        return None if value is None else float(value)

    async def refetch(self, member_id: int) -> float:
        """Fetch every page (1,000 a call) and replace the cache; refuses when X's budget is spent."""
        account = await self.linked(member_id)
        self._check_budget(account.x_user_id, "muting.get")
        users: list[XUser] = []

        async def fetch_all(auth: UserAuth) -> None:
            users.clear()
            async for page in self.x.iter_muting(auth):
                users.extend(page.users)
                if page.next_token:
                    self._check_budget(auth.x_user_id, "muting.get")

        await self.accounts.call(member_id, fetch_all)
        now = self.clock()
        async with self.db.transaction():
            await self.db.execute("DELETE FROM cached_mutes WHERE discord_user_id = ?", (member_id,))
            await self.db.executemany(
                "INSERT OR IGNORE INTO cached_mutes (discord_user_id, x_user_id, username, name, position)"
                " VALUES (?, ?, ?, ?, ?)",
                [(member_id, u.id, u.username, u.name, index) for index, u in enumerate(users)],
            )
            await self.db.execute(
                "INSERT INTO mute_cache_state (discord_user_id, fetched_at) VALUES (?, ?)"
                " ON CONFLICT (discord_user_id) DO UPDATE SET fetched_at = excluded.fetched_at",
                (member_id, now),
            )
        await self.directory.remember(users)
        return now

    async def page(self, member_id: int, page: int, *, refresh: bool = False, per_page: int = PAGE_SIZE) -> MutesPage:
        fetched = await self.fetched_at(member_id)
        note: str | None = None
        if refresh or fetched is None or fetched + self.cache_ttl <= self.clock():
            try:
                fetched = await self.refetch(member_id)
            except XRateLimited as exc:
                if fetched is None:
                    raise
                note = (f"X allows 15 list reads per 15 minutes; showing the list as of <t:{int(fetched)}:R>. "
                        f"A refresh is possible <t:{int(exc.reset_at) + 1}:R>.")
        else:
            await self.linked(member_id)
        total = int(await self.db.fetchval(
            "SELECT count(*) FROM cached_mutes WHERE discord_user_id = ?", (member_id,)
        ))
        pages = max(1, math.ceil(total / per_page))
        page = min(max(page, 0), pages - 1)
        rows = await self.db.fetchall(
            "SELECT x_user_id, username, name FROM cached_mutes WHERE discord_user_id = ?"
            " ORDER BY position LIMIT ? OFFSET ?",
            (member_id, per_page, page * per_page),
        )
        entries = [XUser(r["x_user_id"], r["username"], r["name"]) for r in rows]
        return MutesPage(entries, page, pages, total, fetched, note)

    async def suggestions(self, member_id: int, prefix: str, limit: int = 25) -> list[XUser]:
        """Known mutes whose username starts with (or contains) what was typed, for autocomplete."""
        needle = prefix.strip().lstrip("@").lower().replace("%", "").replace("_", r"\_")
        rows = await self.db.fetchall(
            "SELECT x_user_id, username, name FROM cached_mutes WHERE discord_user_id = ?"
            " AND lower(username) LIKE ? ESCAPE '\\' ORDER BY lower(username) NOT LIKE ? ESCAPE '\\', position LIMIT ?",
            (member_id, f"%{needle}%", f"{needle}%", limit),
        )
        return [XUser(r["x_user_id"], r["username"], r["name"]) for r in rows]
