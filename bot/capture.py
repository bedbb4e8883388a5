"""Captures: a post's author, repliers, quoters, reposters and likers read from X, previewed, then put on a list."""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from bot.accounts import LIKES_SCOPE, AccountService, Credentials
from bot.errors import CaptureGone, InvalidPost, InvalidWho, NotCaptureOwner, PostNotFound
from bot.modlog import ListChange, ModLog
from bot.mutelists import MAX_REASON, GuildMembership, MuteLists, Target
from bot.store import Stores
from bot.store.captures import CapturedAccount, PendingCapture
from bot.store.lists import MuteList
from bot.x_client import POST_PAGE, UserAuth, XClient, XForbidden, XPost, XPostNotFound, XRateLimited, XUser

log = logging.getLogger(__name__)
T = TypeVar("T")
PageOfUsers = tuple[list[XUser], str | None]

SOURCES = ("author", "replied", "quoted", "reposted", "liked")
# `who` as the command offers it -> the sources it reads.
WHO: dict[str, tuple[str, ...]] = {
    "everyone": SOURCES, "author": ("author",), "repliers": ("replied",), "quoters": ("quoted",),
    "reposters": ("reposted",), "likers": ("liked",),
}
MAX_ACCOUNTS = 1000
PREVIEW_SECONDS = 15 * 60.0
RECENT_SEARCH_SECONDS = 7 * 24 * 3600.0  # X's recent search covers the last 7 days
# The endpoint key the X client records each source's rate-limit window under.
ENDPOINTS = {
    "author": "tweets/:id", "replied": "tweets/search/recent", "quoted": "tweets/:id/quote_tweets",
    "reposted": "tweets/:id/retweeted_by", "liked": "tweets/:id/liking_users",
}
# Read the capped, one-call sources first: a capture that reaches 1,000 accounts stops in the long ones.
READ_ORDER = ("author", "reposted", "liked", "quoted", "replied")

_POST_URL = re.compile(
    r"^(?:https?://)?(?:www\.|mobile\.)?(?:x|twitter)\.com/(?P<user>[A-Za-z0-9_]{1,15}|i/web|i)/status(?:es)?/"
    r"(?P<id>[0-9]{1,19})(?:[/?#].*)?$",
    re.IGNORECASE,
)
_POST_ID = re.compile(r"^[0-9]{1,19}$")


def parse_post(text: str) -> str:
    """A post's id from its link (x.com, twitter.com, mobile.twitter.com, with a query string) or its id."""
    cleaned = text.strip().strip("<>")
    if _POST_ID.match(cleaned):
        return cleaned
    m = _POST_URL.match(cleaned)
    if m is None:
        raise InvalidPost(text)
    return m["id"]


@dataclass
class Found:
    user: XUser
    sources: list[str] = field(default_factory=list)


@dataclass
class CapturePreview:
    capture_id: int
    mute_list: MuteList
    post_url: str
    author: XUser | None
    who: str
    per_source: dict[str, int]  # accounts seen in each source read
    total: int  # different accounts, each counted once
    already: int
    excluded: dict[str, int]  # why (own, members, protected) -> how many
    to_add: list[CapturedAccount]
    x_reads: int
    stopped_in: str | None  # the source being read when 1,000 accounts were reached
    old_post: bool  # older than recent search reaches
    likes_need_link: bool  # linked before like.read was asked for
    limited: dict[str, float]  # source -> when X's window for it reopens
    expires_at: float


@dataclass(frozen=True)
class CaptureAdded:
    mute_list: MuteList
    post_url: str
    added: int
    already: int
    excluded: int  # protected since the preview
    queued_for: int


class CaptureService:
    def __init__(
        self, stores: Stores, accounts: AccountService, lists: MuteLists, x: XClient, *, members: GuildMembership,
        modlog: ModLog, clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = stores.db
        self.store = stores.captures
        self.list_store = stores.lists
        self.moderation = stores.moderation
        self.account_store = stores.accounts
        self.accounts = accounts
        self.lists = lists
        self.x = x
        self.members = members
        self.modlog = modlog
        self.clock = clock

    # -- reading a post ---------------------------------------------------------------------------

    async def preview(
        self, guild_id: int, actor: int, name: str, post: str, who: str = "everyone", reason: str | None = None,
    ) -> CapturePreview:
        """Read who took part in the post, through the moderator's account; nothing changes until Add."""
        mute_list = await self.lists.get(guild_id, name)
        post_id = parse_post(post)
        if who not in WHO:
            raise InvalidWho()
        account = await self.lists.linked_moderator(actor)
        creds = await self.accounts.credentials(actor)
        reads = 0

        async def call(operation: Callable[[UserAuth], Awaitable[T]]) -> T:
            nonlocal reads
            reads += 1
            return await self.accounts.call(creds, operation)

        try:
            x_post = await call(lambda auth: self.x.post(auth, post_id))
        except XPostNotFound as exc:
            raise PostNotFound(post_id, exc.hidden) from None
        author = x_post.author
        url = f"https://x.com/{author.username}/status/{post_id}" if author else f"https://x.com/i/status/{post_id}"
        wanted = WHO[who]
        likes_need_link = ("liked" in wanted and account.auth_kind == "oauth2"
                           and LIKES_SCOPE not in account.scopes.split())
        found: dict[str, Found] = {}
        per_source = {s: 0 for s in wanted if not (s == "liked" and likes_need_link)}
        limited: dict[str, float] = {}
        stopped_in: str | None = None

        def take(source: str, users: Sequence[XUser]) -> bool:
            """Count the accounts of one page; False once 1,000 different accounts are reached."""
            nonlocal stopped_in
            for user in users:
                entry = found.get(user.id)
                if entry is None:
                    if len(found) >= MAX_ACCOUNTS:
                        stopped_in = source
                        return False
                    entry = found[user.id] = Found(user)
                if source not in entry.sources:
                    entry.sources.append(source)
                    per_source[source] += 1
            return True

        for source in READ_ORDER:
            if source not in per_source or stopped_in is not None:
                continue
            if source == "author":
                if author is not None:
                    take("author", [author])
                continue
            try:
                await self._read(source, x_post, creds, call, take)
            except XRateLimited as exc:
                limited[source] = exc.reset_at
                if not per_source[source]:  # nothing read: no count to show ("0 likers"), the note says why
                    del per_source[source]
            except XForbidden:
                if source != "liked":
                    raise
                likes_need_link = True  # X refused like.read: an old link, or one made without it
                per_source.pop("liked", None)
        old_post = (x_post.created_at is not None and "replied" in wanted
                    and x_post.created_at < self.clock() - RECENT_SEARCH_SECONDS)
        excluded, kept = await self._exclude(guild_id, account.x_user_id, list(found.values()))
        on_list = await self.list_store.entry_ids(mute_list.id)
        to_add = [CapturedAccount(f.user.id, f.user.username, tuple(s for s in SOURCES if s in f.sources))
                  for f in kept if f.user.id not in on_list]
        now = self.clock()
        reason = (reason or "").strip()[:MAX_REASON] or None
        capture_id = await self.store.create(guild_id, mute_list.id, actor, post_id, url, reason, to_add, now,
                                             now + PREVIEW_SECONDS)
        return CapturePreview(capture_id, mute_list, url, author, who, per_source, len(found),
                              len(kept) - len(to_add), excluded, to_add, reads, stopped_in, old_post,
                              likes_need_link, limited, now + PREVIEW_SECONDS)

    async def _read(
        self, source: str, post: XPost, creds: Credentials,
        call: Callable[[Callable[[UserAuth], Awaitable[PageOfUsers]]], Awaitable[PageOfUsers]],
        take: Callable[[str, Sequence[XUser]], bool],
    ) -> None:
        """Every page of one source, while X's window allows and the 1,000 are not reached."""
        token: str | None = None
        while True:
            reset_at = self.x.rate_limits.next_allowed_at(creds.auth.x_user_id, ENDPOINTS[source])
            if reset_at:  # never send what X would refuse
                raise XRateLimited(reset_at, ENDPOINTS[source])
            users, token = await call(functools.partial(self._page, source, post, token))
            if not take(source, users) or not token:
                return

    async def _page(self, source: str, post: XPost, token: str | None, auth: UserAuth) -> PageOfUsers:
        """One page of a source: its accounts and the next page's token."""
        if source == "replied":
            posts = await self.x.search_recent(auth, f"conversation_id:{post.conversation_id}",
                                               max_results=POST_PAGE, next_token=token)
        elif source == "quoted":
            posts = await self.x.quote_posts(auth, post.id, max_results=POST_PAGE, pagination_token=token)
        else:
            fetch = self.x.reposted_by if source == "reposted" else self.x.liking_users
            page = await fetch(auth, post.id, max_results=POST_PAGE, pagination_token=token)
            return list(page.users), page.next_token
        # The post itself is in its own conversation; its author is a source of its own.
        return [p.author for p in posts.posts if p.author is not None and p.id != post.id], posts.next_token

    async def _exclude(self, guild_id: int, own_x_id: str, found: list[Found]) -> tuple[dict[str, int], list[Found]]:
        """Never captured: the moderator's own account, accounts linked by members of this server, and the
        server's protected accounts. Returns (reason -> count, the rest)."""
        ids = [f.user.id for f in found]
        linked = await self.account_store.members_linked_to([i for i in ids if i != own_x_id])
        member_ids = sorted({m for members in linked.values() for m in members})
        gone = await self.members.departed(guild_id, member_ids) if member_ids else set()
        members_x = {x_id for x_id, members in linked.items() if any(m not in gone for m in members)}
        protected = await self.moderation.protected_among(guild_id, ids)
        excluded = {"own": 0, "members": 0, "protected": 0}  # in the order the preview names them
        kept: list[Found] = []
        for f in found:
            if f.user.id == own_x_id:
                excluded["own"] += 1
            elif f.user.id in members_x:
                excluded["members"] += 1
            elif f.user.id in protected:
                excluded["protected"] += 1
            else:
                kept.append(f)
        return {k: v for k, v in excluded.items() if v}, kept

    # -- the buttons ------------------------------------------------------------------------------

    async def _pending(self, capture_id: int, actor: int) -> PendingCapture:
        capture = await self.store.get(capture_id)
        if capture is None:
            raise CaptureGone("purged")
        if capture.moderator_id != actor:  # not CaptureGone: the preview stays usable by its moderator
            raise NotCaptureOwner()
        if capture.status == "added":
            raise CaptureGone("added")
        if capture.status == "cancelled":
            raise CaptureGone("cancelled")
        if capture.expires_at <= self.clock():
            raise CaptureGone("expired")
        return capture

    async def add(self, capture_id: int, actor: int) -> CaptureAdded:
        """Put the previewed accounts on the list, with the post as their evidence; subscribers get them
        through the queue, in the same transaction."""
        capture = await self._pending(capture_id, actor)
        mute_list = await self.list_store.by_id(capture.guild_id, capture.list_id)
        if mute_list is None:
            raise CaptureGone("list_deleted")
        accounts = await self.store.accounts(capture_id)
        protected = await self.moderation.protected_among(capture.guild_id, [a.x_user_id for a in accounts])
        if accounts:
            await self.lists.end_departed(capture.guild_id, mute_list.id)
        now = self.clock()
        async with self.db.transaction() as batch:  # the entries and their subscribers' mutes commit together
            if not await self.store.claim(capture_id, "added"):
                raise CaptureGone("taken")
            existing = await self.list_store.entry_ids(mute_list.id)
            new = [a for a in accounts if a.x_user_id not in existing and a.x_user_id not in protected]
            self.list_store.add_captured(batch, mute_list.id, [(a.x_user_id, a.username, a.sources) for a in new],
                                         capture.reason, actor, now, capture.post_url)
            self.list_store.audit(batch, capture.guild_id, actor, "capture", mute_list.id, now,
                                  post=capture.post_url, added=len(new))
            queued, jobs = await self.lists.follow_additions(batch, mute_list.id,
                                                           [Target(a.x_user_id, a.username) for a in new])
        await self.lists.queue.settle_jobs(jobs)
        self.modlog.announce(ListChange("capture", capture.guild_id, actor, mute_list.name, len(new),
                                        post_url=capture.post_url))
        already = sum(1 for a in accounts if a.x_user_id in existing)
        return CaptureAdded(mute_list, capture.post_url, len(new), already,
                            sum(1 for a in accounts if a.x_user_id in protected and a.x_user_id not in existing),
                            queued)

    async def cancel(self, capture_id: int, actor: int) -> PendingCapture:
        capture = await self._pending(capture_id, actor)
        if not await self.store.claim(capture_id, "cancelled"):
            raise CaptureGone("taken")
        return capture

    async def purge(self) -> int:
        """Retention: previews an hour past their expiry go."""
        return await self.store.purge(self.clock() - 3600)
