"""MuteLists: a server's shared mute lists, their entries, subscriptions and audit trail, applied through the queue."""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.accounts import AccountService, LinkedAccount
from bot.directory import UserDirectory
from bot.errors import (
    DuplicateList,
    ImportNotText,
    ImportTooLarge,
    ImportTooManyRows,
    InvalidListName,
    ListGone,
    ListNotFound,
    ModeratorNotLinked,
    MutebotError,
    NotOnList,
    NotProtected,
    ProtectedAccount,
    UnreadableCsv,
)
from bot.modlog import ListChange, ModLog
from bot.mutes import MuteService
from bot.queue import ActionQueue
from bot.replies import evidence_line, job_title
from bot.store import Stores
from bot.store.database import Batch
from bot.store.lists import DuplicateListName, ListEntry, ListSummary, MuteList
from bot.store.queue import QueuedTarget
from bot.text import counted
from bot.usernames import InvalidUsername, Username, normalize_username
from bot.x_client import LookupResult, UserAuth, XRateLimited, XUnavailable, XUsageCapped, XUser

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,49}$")
MAX_REASON = 200
MAX_DESCRIPTION = 200
MAX_IMPORT_ROWS = 10_000
MAX_IMPORT_BYTES = 2_000_000


PAGE_SIZE = 15
_X_ID = re.compile(r"^[0-9]{1,19}$")


@dataclass(frozen=True)
class EntriesPage:
    mute_list: MuteList
    entries: list[ListEntry]
    page: int
    pages: int
    total: int
    per_page: int = PAGE_SIZE

    @property
    def first_number(self) -> int:
        """The list number of this page's first entry (1-based)."""
        return self.page * self.per_page + 1


@dataclass(frozen=True)
class RowProblem:
    """A row an import could not use: `kind` says why (bot/replies.py says it in words); `ref` is the line it
    duplicates or, for an invalid username, what is wrong with it."""

    line: int
    text: str
    kind: str  # missing, not_an_id, duplicate, invalid_username, unknown or protected
    ref: int | str | None = None


@dataclass
class ImportReport:
    rows: int = 0
    added: int = 0
    already: int = 0
    queued_for: int = 0
    problems: list[RowProblem] = field(default_factory=list)


@dataclass(frozen=True)
class Applied:
    job_id: int
    to_send: int
    already_muted: int
    kept_unmuted: int


@dataclass(frozen=True)
class Published:
    mute_list: MuteList
    added: int
    already: int
    queued_for: int
    left_out: int  # the moderator's mutes the server protects: no list of it may hold them


@dataclass(frozen=True)
class Unsubscribed:
    was_subscribed: bool
    cancelled: int
    job_id: int | None
    to_unmute: int


def check_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not NAME_PATTERN.match(cleaned):
        raise InvalidListName()
    return cleaned


Target = QueuedTarget


class GuildMembership(Protocol):
    """Who has left a server (Discord's side lives in bot/membership.py)."""

    async def departed(self, guild_id: int, member_ids: Sequence[int]) -> set[int]: ...


class MuteLists:
    def __init__(
        self, stores: Stores, accounts: AccountService, directory: UserDirectory, mutes: MuteService,
        queue: ActionQueue, *, members: GuildMembership, modlog: ModLog, clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = stores.db
        self.store = stores.lists
        self.mute_store = stores.mutes
        self.queue_store = stores.queue
        self.moderation = stores.moderation
        self.accounts = accounts
        self.directory = directory
        self.mutes = mutes
        self.queue = queue
        self.members = members
        self.modlog = modlog  # told of every change once it committed
        self.clock = clock

    # -- reading --------------------------------------------------------------------------------------

    async def get(self, guild_id: int, name: str) -> MuteList:
        found = await self.store.by_name(guild_id, " ".join(name.split()))
        if found is None:
            raise ListNotFound(name)
        return found

    async def by_id(self, guild_id: int, list_id: int) -> MuteList:
        found = await self.store.by_id(guild_id, list_id)
        if found is None:
            raise ListGone()
        return found

    async def names(self, guild_id: int, typed: str, limit: int = 25) -> list[str]:
        return await self.store.names(guild_id, typed, limit)

    async def summaries(self, guild_id: int) -> list[ListSummary]:
        return await self.store.summaries(guild_id)

    async def page(self, guild_id: int, list_id: int, page: int, per_page: int = PAGE_SIZE) -> EntriesPage:
        mute_list = await self.by_id(guild_id, list_id)
        total = await self.store.entry_count(list_id)
        pages = max(1, math.ceil(total / per_page))
        page = min(max(page, 0), pages - 1)
        entries = await self.store.entries_page(list_id, page * per_page, per_page)
        return EntriesPage(mute_list, entries, page, pages, total, per_page)

    async def entries(self, list_id: int) -> list[ListEntry]:
        return await self.store.entries(list_id)

    async def export_csv(self, guild_id: int, name: str) -> tuple[MuteList, bytes]:
        mute_list = await self.get(guild_id, name)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["username", "id", "reason", "added_by", "added_at", "evidence"])
        for entry in await self.entries(mute_list.id):
            added_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.added_at))
            evidence = evidence_line(entry.evidence_url, entry.evidence_sources)
            writer.writerow([spreadsheet_safe(entry.username), entry.x_user_id, spreadsheet_safe(entry.reason or ""),
                             entry.added_by, added_at, spreadsheet_safe(evidence)])
        return mute_list, out.getvalue().encode()

    async def is_subscribed(self, list_id: int, member_id: int) -> bool:
        return await self.store.is_subscribed(list_id, member_id)

    # -- moderators' changes ---------------------------------------------------------------------------

    async def create(self, guild_id: int, actor: int, name: str, description: str | None) -> MuteList:
        name = check_name(name)
        description = (description or "").strip()[:MAX_DESCRIPTION]
        try:
            list_id = await self.store.create(guild_id, name, description, actor, self.clock())
        except DuplicateListName as exc:
            raise DuplicateList(exc.existing) from None
        created = await self.by_id(guild_id, list_id)
        self.modlog.announce(ListChange("create", guild_id, actor, created.name))
        return created

    async def delete(self, guild_id: int, actor: int, name: str) -> tuple[MuteList, list[int], int]:
        """Delete a list, cancelling its pending actions; returns (list, subscribers to tell, cancelled)."""
        mute_list = await self.get(guild_id, name)
        async with self.db.transaction() as batch:
            subscribers = await self.store.subscribers(mute_list.id)
            entries = await self.store.entry_count(mute_list.id)
            cancelled, jobs = await self.queue.cancel_for_list(mute_list.id, outcome="the list was deleted")
            self.store.delete(batch, mute_list.id)
            self.store.audit(batch, guild_id, actor, "delete", mute_list.id, self.clock(), name=mute_list.name,
                             cancelled=cancelled, subscribers=len(subscribers))
        await self.queue.settle_jobs(jobs, cancelled=True)
        self.modlog.announce(ListChange("delete", guild_id, actor, mute_list.name, entries))
        return mute_list, subscribers, cancelled

    async def linked_moderator(self, actor: int) -> LinkedAccount:
        """The moderator's own linked X account, through which a change looks accounts up (add, import,
        publish, protect, capture); NotLinked and the like say so in words about lists."""
        try:
            return await self.mutes.linked(actor)
        except MutebotError as exc:
            raise ModeratorNotLinked(exc) from None

    async def add(
        self, guild_id: int, actor: int, name: str, username: Username, reason: str | None
    ) -> tuple[MuteList, XUser, bool, int]:
        """Add one account; returns (list, account, newly added?, subscribers it was queued for)."""
        mute_list = await self.get(guild_id, name)
        await self.linked_moderator(actor)
        async with self.db.batch() as lookup:
            user = await self.accounts.call(actor, lambda auth: self.directory.resolve(auth, username, lookup))
        await self._refuse_protected(guild_id, user)
        reason = (reason or "").strip()[:MAX_REASON] or None
        if await self.store.entry(mute_list.id, x_user_id=user.id) is None:
            await self.end_departed(guild_id, mute_list.id)
        now = self.clock()
        async with self.db.transaction() as batch:  # the entry and its subscribers' mutes commit together
            added = await self.store.entry(mute_list.id, x_user_id=user.id) is None
            if added:
                self.store.add_entries(batch, mute_list.id, [(user.id, user.username)], reason, actor, now)
            elif reason:
                self.store.set_reason(batch, mute_list.id, user.id, reason)
            self.store.audit(batch, guild_id, actor, "add" if added else "update", mute_list.id, now,
                             x_user_id=user.id, username=user.username, reason=reason)
            queued, jobs = 0, list[int]()
            if added:
                queued, jobs = await self.follow_additions(batch, mute_list.id, [Target(user.id, user.username)])
        await self.queue.settle_jobs(jobs)
        if added or reason:
            self.modlog.announce(ListChange("add" if added else "update", guild_id, actor, mute_list.name, 1,
                                            user.username))
        return mute_list, user, added, queued

    async def remove(self, guild_id: int, actor: int, name: str, username: str) -> tuple[MuteList, ListEntry, int]:
        """Remove an entry (by username as listed, or by id); subscribers for whom this list was the only
        reason get an unmute. Returns (list, entry, unmutes queued)."""
        mute_list, entry, queued = await self._remove(guild_id, actor, name, username)
        self.modlog.announce(ListChange("remove", guild_id, actor, mute_list.name, 1,
                                        entry.username or entry.x_user_id))
        return mute_list, entry, queued

    async def _remove(self, guild_id: int, actor: int, name: str, username: str) -> tuple[MuteList, ListEntry, int]:
        mute_list = await self.get(guild_id, name)
        text = username.strip()
        if _X_ID.match(text):
            entry = await self.store.entry(mute_list.id, x_user_id=text)
        else:
            entry = await self.store.entry(mute_list.id, username=normalize_username(text))
        if entry is None:
            raise NotOnList(text, mute_list.name)
        await self.end_departed(guild_id, mute_list.id)
        now = self.clock()
        async with self.db.transaction() as batch:
            self.store.remove_entry(batch, mute_list.id, entry.x_user_id)
            _, jobs = await self.queue.cancel_for_list(mute_list.id, target=entry.x_user_id, kind="mute",
                                                       outcome="removed from the list")
            self.store.audit(batch, guild_id, actor, "remove", mute_list.id, now, x_user_id=entry.x_user_id,
                             username=entry.username)
            queued = 0
            for member_id in await self.store.subscribers(mute_list.id):
                if await self._only_reason(member_id, entry.x_user_id, mute_list.id):
                    queued += self.queue.enqueue(batch, member_id, "unmute",
                                                 [Target(entry.x_user_id, entry.username)], cause="list",
                                                 list_id=mute_list.id)
                else:  # it stays muted: another followed list that holds it takes this list's place
                    self.store.hand_over(batch, member_id, entry.x_user_id, mute_list.id)
        await self.queue.settle_jobs(jobs)
        return mute_list, entry, queued

    async def import_file(self, guild_id: int, actor: int, name: str, data: bytes) -> tuple[MuteList, ImportReport]:
        mute_list = await self.get(guild_id, name)
        if len(data) > MAX_IMPORT_BYTES:
            raise ImportTooLarge(MAX_IMPORT_BYTES)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ImportNotText() from None
        rows = parse_rows(text)
        if len(rows) > MAX_IMPORT_ROWS:
            raise ImportTooManyRows(len(rows), MAX_IMPORT_ROWS)
        report = ImportReport(rows=len(rows))
        await self.linked_moderator(actor)
        by_name: dict[str, int] = {}  # lower-case username -> first line
        by_id: dict[str, int] = {}
        names: list[tuple[int, str, str]] = []
        ids: list[tuple[int, str, str]] = []
        for line, column, value in rows:
            if column == "missing":
                report.problems.append(RowProblem(line, value, "missing"))
                continue
            if column == "id":
                if not _X_ID.match(value):
                    report.problems.append(RowProblem(line, value, "not_an_id"))
                elif value in by_id:
                    report.problems.append(RowProblem(line, value, "duplicate", by_id[value]))
                else:
                    by_id[value] = line
                    ids.append((line, value, value))
                continue
            try:
                username = normalize_username(value)
            except InvalidUsername as exc:
                report.problems.append(RowProblem(line, value, "invalid_username", exc.reason))
                continue
            if username.lower() in by_name:
                report.problems.append(RowProblem(line, value, "duplicate", by_name[username.lower()]))
                continue
            by_name[username.lower()] = line
            names.append((line, value, username))
        found: dict[str, XUser] = {}
        if names:
            wanted = [n for _, _, n in names]

            async def lookup(auth: UserAuth) -> LookupResult:
                return await self.directory.resolve_many(auth, wanted)

            result = await self.accounts.call(actor, lookup)
            found = {u.username.lower(): u for u in result.found}
        targets: list[tuple[int, XUser]] = []
        seen: dict[str, int] = {}
        for line, value, typed in names:
            user = found.get(typed.lower())
            if user is None:
                report.problems.append(RowProblem(line, value, "unknown"))
            elif user.id in seen:
                report.problems.append(RowProblem(line, value, "duplicate", seen[user.id]))
            else:
                seen[user.id] = line
                targets.append((line, user))
        for line, value, x_id in ids:
            if x_id in seen:
                report.problems.append(RowProblem(line, value, "duplicate", seen[x_id]))
                continue
            seen[x_id] = line
            targets.append((line, XUser(x_id, "", "")))
        known = await self.directory.by_ids([x_id for _, _, x_id in ids])
        targets = [(line, known.get(u.id, u) if not u.username else u) for line, u in targets]
        protected = await self.moderation.protected_among(guild_id, [u.id for _, u in targets])
        report.problems += [RowProblem(line, u.username or u.id, "protected")
                            for line, u in targets if u.id in protected]
        targets = [(line, u) for line, u in targets if u.id not in protected]
        targets.sort(key=lambda t: t[0])
        report.problems.sort(key=lambda p: p.line)
        if targets:
            await self.end_departed(guild_id, mute_list.id)
        now = self.clock()
        async with self.db.transaction() as batch:  # the entries and their subscribers' mutes commit together
            existing = await self.store.entry_ids(mute_list.id)
            new = [u for _, u in targets if u.id not in existing]
            report.already = len(targets) - len(new)
            self.store.add_entries(batch, mute_list.id, [(u.id, u.username) for u in new], None, actor, now)
            report.added = len(new)
            self.store.audit(batch, guild_id, actor, "import", mute_list.id, now, rows=report.rows,
                             added=report.added, already=report.already, problems=len(report.problems))
            report.queued_for, jobs = await self.follow_additions(batch, mute_list.id,
                                                                  [Target(u.id, u.username) for u in new])
        await self.queue.settle_jobs(jobs)
        self.modlog.announce(ListChange("import", guild_id, actor, mute_list.name, report.added,
                                        already=report.already, problems=len(report.problems)))
        return mute_list, report

    async def publish(self, guild_id: int, actor: int, name: str) -> Published:
        """Add the moderator's own current X mutes (every page) but the server's protected accounts, which the
        result (and the moderation log) counts as left out."""
        mute_list = await self.get(guild_id, name)
        await self.linked_moderator(actor)
        await self.mutes.refetch(actor)
        mine = await self.mute_store.oldest_first(actor)
        protected = await self.moderation.protected_among(guild_id, [m.x_user_id for m in mine])
        mine = [m for m in mine if m.x_user_id not in protected]  # no list of this server may hold them
        if mine:
            await self.end_departed(guild_id, mute_list.id)
        now = self.clock()
        async with self.db.transaction() as batch:  # the entries and their subscribers' mutes commit together
            existing = await self.store.entry_ids(mute_list.id)
            new = [Target(m.x_user_id, m.username) for m in mine if m.x_user_id not in existing]
            self.store.add_entries(batch, mute_list.id, [(t.x_user_id, t.username) for t in new], None, actor, now)
            self.store.audit(batch, guild_id, actor, "publish", mute_list.id, now, added=len(new),
                             already=len(mine) - len(new), protected=len(protected))
            queued, jobs = await self.follow_additions(batch, mute_list.id, new)
        await self.queue.settle_jobs(jobs)
        self.modlog.announce(ListChange("publish", guild_id, actor, mute_list.name, len(new),
                                        already=len(mine) - len(new), problems=len(protected)))
        return Published(mute_list, len(new), len(mine) - len(new), queued, len(protected))

    # -- protected accounts ------------------------------------------------------------------------------

    async def protect(self, guild_id: int, actor: int, username: Username) -> tuple[XUser, list[tuple[str, int]]]:
        """No list of the server may hold it: it is taken off every list that does (subscribers for whom that
        list was the only reason get it unmuted, as with a removal). Returns (account, [(list, unmutes)])."""
        await self.linked_moderator(actor)
        async with self.db.batch() as lookup:
            user = await self.accounts.call(actor, lambda auth: self.directory.resolve(auth, username, lookup))
        async with self.db.transaction() as batch:
            self.moderation.protect(batch, guild_id, user.id, user.username, actor, self.clock())
            self.store.audit(batch, guild_id, actor, "protect", None, self.clock(), x_user_id=user.id,
                             username=user.username)
        removed: list[tuple[str, int]] = []
        for _, list_name in await self.store.guild_entries(guild_id, user.id):
            mute_list, _, queued = await self._remove(guild_id, actor, list_name, user.id)
            removed.append((mute_list.name, queued))
        self.modlog.announce(ListChange("protect", guild_id, actor, None, len(removed), user.username))
        return user, removed

    async def unprotect(self, guild_id: int, actor: int, username: str) -> str:
        """Lift a protection (by username as protected, or the X user id); returns the name."""
        text = username.strip()
        found = (await self.moderation.protected(guild_id, text) if _X_ID.match(text)
                 else await self.moderation.protected_by_name(guild_id, normalize_username(text)))
        if found is None or not await self.moderation.unprotect(guild_id, found.x_user_id):
            raise NotProtected(text)
        async with self.db.batch() as batch:
            self.store.audit(batch, guild_id, actor, "unprotect", None, self.clock(), x_user_id=found.x_user_id,
                             username=found.username)
        self.modlog.announce(ListChange("unprotect", guild_id, actor, None, 1, found.username))
        return found.username

    async def _refuse_protected(self, guild_id: int, user: XUser) -> None:
        if await self.moderation.protected(guild_id, user.id) is not None:
            raise ProtectedAccount(user.username)

    # -- who follows a server's lists --------------------------------------------------------------------

    async def end_departed(self, guild_id: int, list_id: int) -> None:
        """Call before a change queues work for the list's subscribers (outside its transaction: it asks
        Discord): those who left the server stop following its lists (mutebot has no members intent, so no
        event said they left)."""
        subscribers = await self.store.subscribers(list_id)
        linked = await self.accounts.store.linked_members(subscribers)
        for member_id in sorted(await self.members.departed(guild_id, [m for m in subscribers if m in linked])):
            await self._end_subscriptions(guild_id, member_id, outcome="you left the server")

    async def server_left(self, guild_id: int) -> None:
        """mutebot was removed from the server: every subscription to its lists ends."""
        await self._end_subscriptions(guild_id, None, outcome="mutebot was removed from the server")

    async def servers_gone(self, present: Collection[int], served_here: Callable[[int], bool]) -> None:
        """On connecting: a server mutebot was removed from while it was offline sent no event, so its
        subscriptions end now. `present` is every server Discord's READY named for the shards this process
        runs (unavailable ones included: an outage ends nothing); `served_here` says whether a server belongs
        to one of them (another process answers for the rest)."""
        for guild_id in sorted(await self.store.servers_followed()):
            if guild_id not in present and served_here(guild_id):
                await self.server_left(guild_id)

    async def _end_subscriptions(self, guild_id: int, member_id: int | None, *, outcome: str) -> None:
        """End subscriptions to the server's lists and cancel their queued mutes; what they already muted
        stays muted on X (nothing is undone: the member did not ask for that)."""
        async with self.db.transaction() as batch:
            self.store.end_subscriptions(batch, guild_id, member_id)
            cancelled, jobs = await self.queue_store.cancel_mutes_for_guild(
                guild_id, outcome=outcome, now=self.clock(), member=member_id)
        log.info("subscriptions to guild %s's lists ended (%s; member %s); %s cancelled",
                 guild_id, outcome, member_id if member_id is not None else "all", counted(cancelled, "queued mute"))
        await self.queue.settle_jobs(jobs, cancelled=True)

    # -- members ------------------------------------------------------------------------------------------

    async def _excluded(self, member_id: int) -> tuple[set[str], set[str]]:
        """(muted or already queued to be muted, unmuted by the member's own hand)."""
        muted = await self.mute_store.muted_ids(member_id) | await self.queue_store.queued_mutes(member_id)
        return muted, await self.mute_store.unmuted_by_hand(member_id)

    async def follow_additions(
        self, batch: Batch, list_id: int, targets: Sequence[Target]
    ) -> tuple[int, list[int]]:
        """Queue the new entries, in the caller's transaction (the one that adds them), for every subscriber
        (from the mutes cache: no X read per addition); returns how many subscribers got work, and the jobs
        whose unmutes were cancelled, which the caller settles once committed (`queue.settle_jobs`)."""
        if not targets:
            return 0, []
        subscribers = await self.store.subscribers(list_id)
        linked = await self.accounts.store.linked_members(subscribers)
        count = 0
        jobs: set[int] = set()
        for member_id in subscribers:
            own_x_id = linked.get(member_id)
            if own_x_id is None:
                continue
            # An unmute still queued for an account the list holds again (removed, then re-added) would
            # win over the cache, which says muted: it is cancelled, and the account stays muted with a
            # list as its reason. One already being sent cannot be stopped: a mute follows it.
            for cancelled in await self.queue_store.cancel_unmutes_of_list(
                member_id, list_id, outcome="a list you follow holds it again", now=self.clock()
            ):
                if cancelled.list_id is None:
                    self.store.record_list_mute(batch, member_id, cancelled.x_user_id, list_id, self.clock())
                elif cancelled.list_id != list_id:
                    self.store.hand_over(batch, member_id, cancelled.x_user_id, cancelled.list_id)
                if cancelled.job_id is not None:
                    jobs.add(cancelled.job_id)
            cached = await self.mute_store.muted_ids(member_id)
            queued = await self.queue_store.queued_mutes(member_id)
            unmuting = await self.queue_store.unmutes_in_flight(member_id)
            unmuted = await self.mute_store.unmuted_by_hand(member_id)
            wanted = [t for t in targets if t.x_user_id not in queued and t.x_user_id not in unmuted
                      and t.x_user_id != own_x_id and (t.x_user_id not in cached or t.x_user_id in unmuting)]
            if wanted:
                self.queue.enqueue(batch, member_id, "mute", wanted, cause="list", list_id=list_id)
                count += 1
        return count, sorted(jobs)

    async def _only_reason(self, member_id: int, x_user_id: str, list_id: int) -> bool:
        """True when this list muted it for the member, nothing else keeps it, and it was not their own doing."""
        if not await self.store.list_muted(member_id, x_user_id, list_id):
            return False
        if await self.mute_store.choice(member_id, x_user_id) is not None:
            return False
        return not await self.store.held_elsewhere(member_id, x_user_id, list_id)

    async def _refresh_cache(self, member_id: int) -> None:
        """Know what the member already mutes: refetch when stale and X's budget allows, else trust the cache."""
        fetched = await self.mutes.fetched_at(member_id)
        if fetched is not None and fetched + self.mutes.cache_ttl > self.clock():
            return
        try:
            await self.mutes.refetch(member_id)
        except (XRateLimited, XUsageCapped, XUnavailable):
            # Not knowing only costs calls: a mute X already has is answered as a success.
            return

    async def apply(
        self, guild_id: int, member_id: int, name: str, *, progress_channel_id: int | None = None,
        progress_message_id: int | None = None, purpose: str = "apply",
    ) -> tuple[MuteList, Applied]:
        """Queue a mute for every entry the member does not already mute (nor unmuted by hand), as one job (`purpose`
        "subscribe" when a subscription starts with it)."""
        mute_list = await self.get(guild_id, name)
        account = await self.mutes.linked(member_id)
        await self._refresh_cache(member_id)
        # What is already muted or queued is read in the transaction that queues the rest: two applies at
        # once (a double click, two lists sharing entries) queue each account once.
        async with self.db.transaction() as batch:
            muted, unmuted = await self._excluded(member_id)
            entries = await self.entries(mute_list.id)
            wanted = [Target(e.x_user_id, e.username) for e in entries if e.x_user_id not in muted
                      and e.x_user_id not in unmuted and e.x_user_id != account.x_user_id]
            already = sum(1 for e in entries if e.x_user_id in muted)
            kept = sum(1 for e in entries if e.x_user_id in unmuted and e.x_user_id not in muted)
            job_id = await self.queue.create_job(
                member_id, guild_id=guild_id, list_id=mute_list.id, title=job_title(purpose, mute_list.name),
                total=len(wanted), already_muted=already, kept_unmuted=kept,
                progress_channel_id=progress_channel_id, progress_message_id=progress_message_id,
            )
            self.queue.enqueue(batch, member_id, "mute", wanted, cause="list", list_id=mute_list.id, job_id=job_id)
        await self.queue.report_now(job_id)
        return mute_list, Applied(job_id, len(wanted), already, kept)

    async def subscribe(
        self, guild_id: int, member_id: int, name: str, *, progress_channel_id: int | None = None,
        progress_message_id: int | None = None,
    ) -> tuple[MuteList, Applied, bool]:
        """Follow a list: apply it now, and every later addition. Returns (list, job, newly subscribed?)."""
        mute_list = await self.get(guild_id, name)
        await self.mutes.linked(member_id)
        added = await self.store.subscribe(mute_list.id, member_id, self.clock())
        _, applied = await self.apply(guild_id, member_id, name, progress_channel_id=progress_channel_id,
                                      progress_message_id=progress_message_id, purpose="subscribe")
        return mute_list, applied, added

    async def unsubscribe(
        self, guild_id: int, member_id: int, name: str, *, undo: bool, progress_channel_id: int | None = None,
        progress_message_id: int | None = None,
    ) -> tuple[MuteList, Unsubscribed]:
        mute_list = await self.get(guild_id, name)
        job_id: int | None = None
        to_unmute: list[Target] = []
        async with self.db.transaction() as batch:
            was_subscribed = await self.store.is_subscribed(mute_list.id, member_id)
            self.store.unsubscribe(batch, mute_list.id, member_id)
            cancelled, jobs = await self.queue.cancel_for_list(mute_list.id, member=member_id, kind="mute",
                                                               outcome="you unsubscribed")
            if undo:
                for muted in await self.store.muted_by(member_id, mute_list.id):
                    if await self._only_reason(member_id, muted.x_user_id, mute_list.id):
                        to_unmute.append(Target(muted.x_user_id, muted.username))
                job_id = await self.queue.create_job(
                    member_id, guild_id=guild_id, list_id=mute_list.id,
                    title=job_title("undo", mute_list.name), total=len(to_unmute),
                    progress_channel_id=progress_channel_id, progress_message_id=progress_message_id,
                )
                self.queue.enqueue(batch, member_id, "unmute", to_unmute, cause="list", list_id=mute_list.id,
                                   job_id=job_id)
        await self.queue.settle_jobs(jobs, cancelled=True)
        if job_id is not None:
            await self.queue.report_now(job_id)
        return mute_list, Unsubscribed(was_subscribed, cancelled, job_id, len(to_unmute))


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection; OWASP's advice is
# to prefix such a cell with a single quote, which the spreadsheet shows as text).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: str) -> str:
    """A CSV cell that a spreadsheet shows as text instead of running it as a formula."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def parse_rows(text: str) -> list[tuple[int, str, str]]:
    """(line number, 'username' | 'id', value) for every non-empty data row of a CSV or a plain list;
    UnreadableCsv names the line where a CSV stops making sense."""
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return []
    try:
        header = [h.strip().lower() for h in next(csv.reader([lines[first]], strict=True))]
    except csv.Error as exc:
        raise UnreadableCsv(first + 1, exc) from None
    rows: list[tuple[int, str, str]] = []
    if "username" in header or "id" in header:
        name_col = header.index("username") if "username" in header else None
        id_col = header.index("id") if "id" in header else None
        # strict: a quote that is never closed (or text after a closing quote) is an error, not a cell
        # that silently swallows the rest of the file.
        reader = csv.reader(io.StringIO("\n".join(lines[first + 1:])), strict=True)
        while True:
            line = first + 2 + reader.line_num  # the line the next record begins on
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise UnreadableCsv(line, exc) from None
            if not any(cell.strip() for cell in record):
                continue
            name = record[name_col].strip() if name_col is not None and name_col < len(record) else ""
            x_id = record[id_col].strip() if id_col is not None and id_col < len(record) else ""
            if name:
                rows.append((line, "username", name))
            elif x_id:
                rows.append((line, "id", x_id))
            else:
                rows.append((line, "missing", ",".join(record)))
        return rows
    for number, line_text in enumerate(lines, start=1):
        value = line_text.strip()
        if value:
            rows.append((number, "username", value.split(",")[0].strip()))
    return rows
