"""Linked X accounts: the OAuth flows that create them, and credentials that stay fresh (one refresh per account)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar
from urllib.parse import urlencode

import httpx
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth1Client, AsyncOAuth2Client

from bot.config import Settings
from bot.errors import ACTION_OUTCOMES, LinkNotStarted, LinkUnreadable, NotLinked, RelinkRequired
from bot.errors import LinkFailed as LinkFailed
from bot.secrets import Secret
from bot.store import Stores
from bot.store.accounts import LinkRow, StateRow
from bot.store.database import Batch
from bot.store.mutes import CachedMute
from bot.store.queue import QueuedTarget
from bot.vault import TokenVault, VaultError
from bot.x_client import DEFAULT_TIMEOUT, UserAuth, XClient, XError, XUnauthorized, XUnavailable, XUser

log = logging.getLogger(__name__)
T = TypeVar("T")

# What became of the tokens a link replaced or an unlink forgot: X confirmed ending them all (or there were none),
# X was asked but did not confirm it all, or X could not be asked (no configured key decrypts them).
Revocation = Literal["confirmed", "unconfirmed", "not_asked"]

# like.read since issue 16: capture reads a post's likers (openapi.json getPostsLikingUsers); links made before
# lack it, and capture says that a fresh /link adds likers.
SCOPES = "tweet.read users.read like.read mute.read mute.write offline.access"
LIKES_SCOPE = "like.read"
STATE_TTL = 600.0
REFRESH_MARGIN = 120.0
UNSEALED_SIZE = 4096  # members whose decrypted credentials stay in memory between commands
LINK_COOKIE_PREFIX = "mutebot_link_"


@dataclass(frozen=True)
class LinkStart:
    url: str  # our start page: it binds the link to the browser that opens it, then sends it on to X
    expires_at: float


@dataclass(frozen=True)
class LinkOpened:
    """Where the start page sends the browser, and the cookie that binds the link to it (None: it has it)."""

    url: str
    cookie_name: str
    cookie_value: str | None


@dataclass(frozen=True)
class Linked:
    """A finished link, for the callback's page: which X account, for which Discord account."""

    user: XUser
    member_id: int
    member_name: str
    replaced: XUser | None  # the X account this link replaced, when it was another one
    revocation: Revocation  # of what this link replaced ("confirmed" when nothing was replaced)


@dataclass(frozen=True)
class Unlinked:
    account: LinkedAccount
    revocation: Revocation  # of mutebot's tokens at X


@dataclass(frozen=True)
class LinkedAccount:
    discord_user_id: int
    x_user_id: str
    x_username: str
    x_name: str
    x_avatar_url: str | None
    auth_kind: str
    scopes: str
    linked_at: float
    needs_relink: bool
    unreadable: bool = False  # flagged because no configured key decrypts its token (not because X refused)

    @property
    def url(self) -> str:
        return f"https://x.com/{self.x_username}"

    @property
    def user(self) -> XUser:
        return XUser(self.x_user_id, self.x_username, self.x_name, self.x_avatar_url)


@dataclass(frozen=True)
class Credentials:
    """A usable link, read once per command: the account and how to act as it on X."""

    account: LinkedAccount
    auth: UserAuth
    version: int  # the stored tokens' version (bot.store.accounts), to tell a refresh or relink has happened

    @property
    def member_id(self) -> int:
        return self.account.discord_user_id


def _hash_state(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def link_cookie_name(state: str) -> str:
    """One cookie per link, so two links started in one browser do not undo each other."""
    return LINK_COOKIE_PREFIX + hashlib.sha256(b"cookie:" + state.encode()).hexdigest()[:16]


def _account(row: LinkRow) -> LinkedAccount:
    return LinkedAccount(row.member_id, row.x_user_id, row.x_username, row.x_name, row.x_avatar_url, row.auth_kind,
                         row.scopes, row.linked_at, row.needs_relink)


class AccountService:
    """Linking and credentials; every X call on a member's behalf goes through `call`."""

    def __init__(
        self, settings: Settings, stores: Stores, vault: TokenVault, x: XClient,
        *, clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.stores = stores
        self.store = stores.accounts
        self.db = stores.db
        self.vault = vault
        self.x = x
        self.clock = clock
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._unsealed: OrderedDict[int, Credentials] = OrderedDict()
        self.refreshes = 0
        self.on_linked: Callable[[int, XUser], Awaitable[None]] | None = None
        self.on_relink_needed: Callable[[int], Awaitable[None]] | None = None
        # Given the jobs an unlink or a relink left with nothing to send, closes them with their summaries (the
        # action queue's settle_jobs; it sets this).
        self.on_work_cancelled: Callable[[Sequence[int]], Awaitable[None]] | None = None
        self._cookie_keys = vault.signing_keys("link cookie")
        base = settings.x_api_base
        self._token_url = f"{base}/2/oauth2/token"
        self._revoke_url = f"{base}/2/oauth2/revoke"
        self._invalidate_url = f"{base}/1.1/oauth/invalidate_token"
        self._oauth2 = AsyncOAuth2Client(
            client_id=settings.x_client_id,
            client_secret=settings.x_client_secret.reveal() if settings.x_client_secret else None,
            token_endpoint_auth_method="client_secret_basic" if settings.x_client_secret else "none",
            scope=SCOPES,
            redirect_uri=settings.redirect_uri,
            code_challenge_method="S256",
            timeout=DEFAULT_TIMEOUT,
            transport=x.transport,  # the process's one pool to X
        )

    def __repr__(self) -> str:
        return "AccountService()"

    async def aclose(self) -> None:
        await self._oauth2.aclose()

    # -- starting a link -------------------------------------------------------------------------

    async def start_link(self, discord_user_id: int, guild_id: int | None, member_name: str = "") -> LinkStart:
        """A fresh single-use state bound to the member; the verifier stays in our database. The URL is our
        start page, which binds the state to the browser that opens it."""
        now = self.clock()
        expires_at = now + STATE_TTL
        if self.settings.x_auth == "oauth1":
            state = await self._start_oauth1(discord_user_id, guild_id, member_name, now, expires_at)
        else:
            state = secrets.token_urlsafe(32)
            await self.store.add_state(_hash_state(state), discord_user_id, guild_id, "oauth2",
                                       self.vault.encrypt(generate_token(64)), now, expires_at,
                                       member_name=member_name)
        start = f"{self.settings.public_base_url or ''}/oauth/start?{urlencode({'state': state})}"
        return LinkStart(start, expires_at)

    async def _start_oauth1(
        self, discord_user_id: int, guild_id: int | None, member_name: str, now: float, expires_at: float
    ) -> str:
        """X's request token is the state of an OAuth 1.0a link."""
        async with self._oauth1_client() as client:
            try:
                token = await client.fetch_request_token(f"{self.settings.x_api_base}/oauth/request_token")
            except (OAuthError, httpx.HTTPError, ValueError) as exc:
                log.warning("OAuth 1.0a request token failed: %s", type(exc).__name__)
                raise LinkNotStarted() from exc
        request_token = str(token["oauth_token"])
        await self.store.add_state(_hash_state(request_token), discord_user_id, guild_id, "oauth1",
                                   self.vault.encrypt(str(token["oauth_token_secret"])), now, expires_at,
                                   member_name=member_name)
        return request_token

    # -- the start page: one browser per link ------------------------------------------------------

    async def open_link(self, state: str, cookies: Mapping[str, str]) -> LinkOpened:
        """Bind the state to the first browser that opens it (a signed cookie), and say where X's page is.
        The same browser may open it again; any other is refused, so only one browser can ever finish it."""
        row = await self._live_state(state)
        value: str | None = None
        if row.browser_hash is None:
            nonce = secrets.token_urlsafe(24)
            if await self.store.bind_browser(_hash_state(state), _hash_state(nonce)):
                value = self._cookie_value(self._cookie_keys[0], state, nonce)
            else:
                row = await self._live_state(state)  # another browser bound it a moment ago
        if value is None and not self._same_browser(state, row, cookies):
            raise LinkFailed("opened_elsewhere")
        return LinkOpened(self._authorization_url(state, row), link_cookie_name(state), value)

    def _authorization_url(self, state: str, row: StateRow) -> str:
        if row.auth_kind == "oauth1":
            return f"{self.settings.x_api_base}/oauth/authorize?{urlencode({'oauth_token': state})}"
        try:
            verifier = self.vault.decrypt(row.verifier)
        except VaultError as exc:
            raise LinkFailed("unreadable") from exc
        url, _ = self._oauth2.create_authorization_url(
            self.settings.x_authorize_url, state=state, code_verifier=verifier.reveal()
        )
        return str(url)

    @staticmethod
    def _cookie_value(key: bytes, state: str, nonce: str) -> str:
        signature = hmac.new(key, f"{state}\n{nonce}".encode(), hashlib.sha256).hexdigest()
        return f"{nonce}.{signature}"

    def _same_browser(self, state: str, row: StateRow, cookies: Mapping[str, str]) -> bool:
        """The browser shows the cookie the start page set for this state: signed by us, and its nonce the one
        the state was bound to."""
        nonce, _, _ = cookies.get(link_cookie_name(state), "").partition(".")
        if not nonce or row.browser_hash is None:
            return False
        presented = cookies[link_cookie_name(state)]
        signed = any(hmac.compare_digest(presented, self._cookie_value(key, state, nonce))
                     for key in self._cookie_keys)
        return signed and hmac.compare_digest(_hash_state(nonce), row.browser_hash)

    def _oauth1_client(self, token: str | None = None, token_secret: str | None = None,
                       verifier: str | None = None, *, callback: bool = True) -> AsyncOAuth1Client:
        secret = self.settings.x_consumer_secret
        return AsyncOAuth1Client(
            client_id=self.settings.x_consumer_key,
            client_secret=secret.reveal() if secret else None,
            token=token,
            token_secret=token_secret,
            redirect_uri=self.settings.redirect_uri if callback else None,
            verifier=verifier,
            timeout=DEFAULT_TIMEOUT,
        )

    # -- completing a link (the web callback) ---------------------------------------------------

    async def _live_state(self, state: str, kind: str | None = None) -> StateRow:
        """The state's row; precisely why not when it cannot be used any more."""
        row = await self.store.state(_hash_state(state))
        if row is None or (kind is not None and row.auth_kind != kind):
            raise LinkFailed("unknown")
        if row.used_at is not None:
            raise LinkFailed("used")
        if row.expires_at <= self.clock():
            raise LinkFailed("expired")
        return row

    async def _claim_state(self, state: str, kind: str, cookies: Mapping[str, str]) -> tuple[StateRow, Secret]:
        """Consume the state once, in the browser that opened the link."""
        row = await self._live_state(state, kind)
        state_hash = _hash_state(state)
        if not self._same_browser(state, row, cookies):
            # Spent all the same: the code it came with must not be tried again from anywhere.
            await self.store.claim_state(state_hash, self.clock())
            log.warning("a link of member %s was finished in a browser that did not open it; refused", row.member_id)
            raise LinkFailed("other_browser")
        if not await self.store.claim_state(state_hash, self.clock()):
            raise LinkFailed("used")
        try:
            return row, self.vault.decrypt(row.verifier)
        except VaultError as exc:
            raise LinkFailed("unreadable") from exc

    async def consume_state(self, state: str) -> None:
        """Spend a state without linking (the member cancelled on X)."""
        await self._live_state(state, "oauth2")
        if not await self.store.claim_state(_hash_state(state), self.clock()):
            raise LinkFailed("used")

    async def complete_oauth2(self, state: str, code: str, cookies: Mapping[str, str]) -> Linked:
        row, verifier = await self._claim_state(state, "oauth2", cookies)
        try:
            token: dict[str, Any] = dict(
                await self._oauth2.fetch_token(self._token_url, code=code, code_verifier=verifier.reveal())
            )
        except (OAuthError, httpx.HTTPError, ValueError, KeyError) as exc:
            log.warning("code exchange failed for a link: %s", type(exc).__name__)
            raise LinkFailed("code_refused") from exc
        access = Secret(str(token["access_token"]))
        try:
            user = await self.x.me(UserAuth("me", access))
        except Exception as exc:
            log.warning("users/me failed after a code exchange: %s", type(exc).__name__)
            raise LinkFailed("no_account") from exc
        expires_in = token.get("expires_in")
        return await self._store_link(
            row, user, "oauth2", access,
            refresh=Secret(str(token["refresh_token"])) if token.get("refresh_token") else None,
            secret=None, scopes=str(token.get("scope", "")),
            expires_at=self.clock() + float(expires_in) if expires_in else None,
        )

    async def complete_oauth1(self, oauth_token: str, oauth_verifier: str, cookies: Mapping[str, str]) -> Linked:
        row, request_secret = await self._claim_state(oauth_token, "oauth1", cookies)
        async with self._oauth1_client(oauth_token, request_secret.reveal(), oauth_verifier) as client:
            try:
                token = await client.fetch_access_token(f"{self.settings.x_api_base}/oauth/access_token")
            except (OAuthError, httpx.HTTPError, ValueError) as exc:
                log.warning("OAuth 1.0a access token failed: %s", type(exc).__name__)
                raise LinkFailed("token_refused") from exc
        access, secret = Secret(str(token["oauth_token"])), Secret(str(token["oauth_token_secret"]))
        user = XUser(str(token["user_id"]), str(token["screen_name"]), str(token["screen_name"]))
        try:
            user = await self.x.me(self._auth1(str(token["user_id"]), access, secret))
        except Exception as exc:  # the profile is a nicety; the ids from access_token suffice
            log.info("users/me after OAuth 1.0a failed: %s", type(exc).__name__)
        return await self._store_link(row, user, "oauth1", access, refresh=None, secret=secret, scopes="",
                                      expires_at=None)

    def _auth1(self, x_user_id: str, access: Secret, secret: Secret) -> UserAuth:
        return UserAuth(x_user_id, access, secret, self.settings.x_consumer_key, self.settings.x_consumer_secret,
                        mute_api=self.settings.x_mute_api)

    async def _store_link(
        self, state: StateRow, user: XUser, kind: str, access: Secret, *, refresh: Secret | None,
        secret: Secret | None, scopes: str, expires_at: float | None,
    ) -> Linked:
        member_id = state.member_id
        async with self._locks[member_id]:  # never interleaved with a refresh of the same member
            previous = await self.store.link(member_id, fresh=True)
            another = previous is None or previous.x_user_id != user.id
            async with self.db.batch() as batch:
                self.store.save(
                    batch, member_id, x_user_id=user.id, x_username=user.username, x_name=user.name,
                    x_avatar_url=user.profile_image_url, auth_kind=kind, access_token=self.vault.encrypt(access),
                    refresh_token=self.vault.encrypt(refresh) if refresh else None,
                    token_secret=self.vault.encrypt(secret) if secret else None, scopes=scopes,
                    expires_at=expires_at, now=self.clock(),
                )
                if previous is not None and another:
                    self._forget_x_account(batch, member_id, ACTION_OUTCOMES["relinked"])
            self._unsealed.pop(member_id, None)
        if previous is not None and another:
            await self._settle_cancelled(member_id)
        revocation: Revocation = "confirmed" if previous is None else await self._revoke_row(previous, keep=access)
        log.info("member %s linked X account %s", member_id, user.id)
        if another:
            auth = UserAuth(user.id, access) if secret is None else self._auth1(user.id, access, secret)
            await self._apply_subscriptions(member_id, auth)
        if self.on_linked is not None:
            try:
                await self.on_linked(member_id, user)
            except Exception:
                log.exception("could not confirm a link to member %s", member_id)
        replaced = None if previous is None or not another else _account(previous).user
        return Linked(user, member_id, state.member_name, replaced, revocation)

    def _forget_x_account(self, batch: Batch, member_id: int, outcome: str) -> None:
        """Everything mutebot knew about the member's X account: its mutes, the member's choices about them, what
        lists muted there, and the work queued for it. Subscriptions are the member's own and stay."""
        self.stores.mutes.forget_cache(batch, member_id)
        self.stores.mutes.forget_choices(batch, member_id)
        self.stores.lists.forget_member_list_mutes(batch, member_id)
        self.stores.timers.forget_member(batch, member_id)  # the old account's timed mutes end with it
        self.stores.queue.cancel_for_member(batch, member_id, outcome=outcome, now=self.clock())

    async def _settle_cancelled(self, member_id: int) -> None:
        """The member's jobs whose every action that forgetting cancelled end now, with their summaries, not at
        the next start (a paused job has nothing in flight whose end would close it)."""
        if self.on_work_cancelled is None:
            return
        try:
            await self.on_work_cancelled(await self.stores.queue.open_jobs_with_nothing_left(member_id))
        except Exception:
            log.exception("could not close the cancelled jobs of member %s", member_id)

    async def _apply_subscriptions(self, member_id: int, auth: UserAuth) -> int:
        """A newly linked X account gets the member's subscribed lists, through the queue, except what it
        already mutes by itself (read from X first, so no list is ever blamed for those); returns how many."""
        subscribed = await self.stores.lists.subscribed_entries(member_id)
        if not subscribed:
            return 0
        muted: list[XUser] = []
        try:
            async for page in self.x.iter_muting(auth):
                muted.extend(page.users)
        except XError as exc:
            # Without knowing what it mutes, queuing would record list mutes that are really its own.
            log.warning("could not read the new X account's mutes of member %s (%s); its subscribed lists are "
                        "applied with the next addition or /mutelist apply", member_id, type(exc).__name__)
            return 0
        skip = {u.id for u in muted} | {auth.x_user_id}
        wanted: dict[int, list[QueuedTarget]] = {}
        for list_id, entry in subscribed:
            if entry.x_user_id not in skip:
                skip.add(entry.x_user_id)
                wanted.setdefault(list_id, []).append(QueuedTarget(entry.x_user_id, entry.username))
        now = self.clock()
        async with self.db.batch() as batch:
            self.stores.mutes.replace_all(batch, member_id, [CachedMute(u.id, u.username, u.name) for u in muted],
                                          now)
            for list_id, targets in wanted.items():
                self.stores.queue.enqueue(batch, member_id, "mute", targets, cause="list", list_id=list_id,
                                          job_id=None, now=now)
        return sum(len(t) for t in wanted.values())

    async def _revoke_row(self, row: LinkRow, *, keep: Secret | None = None) -> Revocation:
        """Ask X to end every token of a link we are forgetting, and say what came of it."""
        try:
            access = self.vault.decrypt(row.access_token)
            refresh = None if row.refresh_token is None else self.vault.decrypt(row.refresh_token)
            secret = None if row.token_secret is None else self.vault.decrypt(row.token_secret)
        except VaultError:
            log.warning("the tokens of member %s cannot be decrypted, so X was not asked to revoke them",
                        row.member_id)
            return "not_asked"
        if access == keep:
            return "confirmed"  # X handed the same token again (OAuth 1.0a does): it is the new link's
        if row.auth_kind == "oauth1":
            ended = secret is not None and await self._invalidate_oauth1(access, secret)
        else:
            confirmed = await self._revoke(refresh, "refresh_token") if refresh is not None else True
            ended = await self._revoke(access, "access_token") and confirmed
        return "confirmed" if ended else "unconfirmed"

    async def _revoke(self, token: Secret, hint: str) -> bool:
        """POST /2/oauth2/revoke (RFC 7009); True when X answered 200."""
        try:
            response = await self._oauth2.revoke_token(self._revoke_url, token=token.reveal(), token_type_hint=hint)
        except Exception as exc:
            log.warning("revoking a %s at X failed (%s)", hint, type(exc).__name__)
            return False
        if response.status_code != 200:
            log.warning("X answered %s to revoking a %s", response.status_code, hint)
            return False
        return True

    async def _invalidate_oauth1(self, token: Secret, secret: Secret) -> bool:
        """POST /1.1/oauth/invalidate_token, signed with the token it ends (X's documented call)."""
        async with self._oauth1_client(token.reveal(), secret.reveal(), callback=False) as client:
            try:
                response = await client.post(self._invalidate_url)
            except Exception as exc:
                log.warning("invalidating an OAuth 1.0a token at X failed (%s)", type(exc).__name__)
                return False
        if response.status_code != 200:
            log.warning("X answered %s to invalidating an OAuth 1.0a token", response.status_code)
            return False
        return True

    # -- reading and refreshing credentials ------------------------------------------------------

    async def account(self, discord_user_id: int) -> LinkedAccount | None:
        row = await self.store.link(discord_user_id)
        if row is None:
            return None
        account = _account(row)
        return replace(account, unreadable=True) if row.needs_relink and not self._readable(row) else account

    def _readable(self, row: LinkRow) -> bool:
        try:
            self.vault.decrypt(row.access_token)
        except VaultError:
            return False
        return True

    async def credentials(self, discord_user_id: int) -> Credentials:
        """The member's usable link, read once (from the store's cache when it is there); refreshed first
        when the token expires within REFRESH_MARGIN. A token no configured key decrypts is a relink, not an
        error: the link is flagged (which pauses the member's queued work) and the member is asked to link."""
        try:
            row = await self._usable_row(discord_user_id)
            if row.expires_at is not None and row.expires_at - REFRESH_MARGIN <= self.clock():
                return await self._refresh(discord_user_id, stale=row.token_version)
            return self._credentials(row)
        except VaultError:
            await self._unreadable(discord_user_id)
            raise LinkUnreadable() from None

    async def _unreadable(self, discord_user_id: int) -> None:
        log.warning("the stored token of member %s cannot be decrypted with any configured key; asking for a "
                    "relink", discord_user_id)
        await self.mark_relink(discord_user_id)

    async def _usable_row(self, discord_user_id: int, *, fresh: bool = False) -> LinkRow:
        row = await self.store.link(discord_user_id, fresh=fresh)
        if row is None:
            raise NotLinked()
        if row.needs_relink:
            raise RelinkRequired() if self._readable(row) else LinkUnreadable()
        return row

    def _credentials(self, row: LinkRow, access: Secret | None = None) -> Credentials:
        """Decrypted once per stored token, not once per command: kept while the row holds the same one."""
        account = _account(row)
        held = self._unsealed.get(row.member_id)
        if held is not None and held.version == row.token_version and held.account == account:
            self._unsealed.move_to_end(row.member_id)
            return held
        access = access or self.vault.decrypt(row.access_token)
        if row.auth_kind == "oauth1" and row.token_secret is not None:
            auth = self._auth1(row.x_user_id, access, self.vault.decrypt(row.token_secret))
        else:
            auth = UserAuth(row.x_user_id, access)
        creds = Credentials(account, auth, row.token_version)
        self._unsealed[row.member_id] = creds
        while len(self._unsealed) > UNSEALED_SIZE:
            self._unsealed.popitem(last=False)
        return creds

    async def _refresh(self, discord_user_id: int, *, stale: int) -> Credentials:
        """One refresh per account at a time (`stale`: the version of the tokens found expired); whoever waited
        behind it reuses the new token."""
        async with self._locks[discord_user_id]:
            row = await self._usable_row(discord_user_id, fresh=True)
            if row.token_version != stale:
                return self._credentials(row)  # someone refreshed (or relinked) while we waited
            if row.auth_kind != "oauth2" or row.refresh_token is None:
                await self.mark_relink(discord_user_id)
                raise RelinkRequired()
            refresh = self.vault.decrypt(row.refresh_token)
            try:
                token: dict[str, Any] = dict(
                    await self._oauth2.refresh_token(self._token_url, refresh_token=refresh.reveal())
                )
            except OAuthError as exc:
                if exc.error == "invalid_grant":
                    # Flag only the link whose refresh token failed: one made meanwhile (elsewhere) is fine.
                    if not await self.mark_relink(discord_user_id, expected=stale):
                        current = await self.store.link(discord_user_id, fresh=True)
                        if current is not None and current.token_version != stale and not current.needs_relink:
                            return self._credentials(current)
                    raise RelinkRequired() from exc
                raise XUnavailable(f"X refused to refresh the token ({exc.error})") from exc
            except (httpx.HTTPError, ValueError) as exc:
                # The refresh token may or may not have been spent; the next call finds out (invalid_grant).
                raise XUnavailable("X's token endpoint did not answer") from exc
            self.refreshes += 1
            now = self.clock()
            access = Secret(str(token["access_token"]))
            new_refresh = Secret(str(token["refresh_token"])) if token.get("refresh_token") else refresh
            expires_in = token.get("expires_in")
            sealed, sealed_refresh = self.vault.encrypt(access), self.vault.encrypt(new_refresh)
            expires_at = now + float(expires_in) if expires_in else None
            # Store the new pair before anyone uses it: the old refresh token is already spent. It lands
            # only if the row still holds the pair that was refreshed (key rotation meanwhile does not count).
            version = await self.store.replace_tokens(
                discord_user_id, expected_version=stale, access_token=sealed, refresh_token=sealed_refresh,
                expires_at=expires_at, now=now,
            )
            if version is None:
                # Relinked (or unlinked) elsewhere meanwhile: the pair just issued belongs to no link; end it.
                await self._revoke(new_refresh, "refresh_token")
                await self._revoke(access, "access_token")
                return self._credentials(await self._usable_row(discord_user_id, fresh=True))
            return self._credentials(replace(row, access_token=sealed, refresh_token=sealed_refresh,
                                             expires_at=expires_at, token_version=version), access)

    async def call(self, who: int | Credentials, operation: Callable[[UserAuth], Awaitable[T]]) -> T:
        """Run an X operation as the member; on a 401 refresh once and retry, then ask for a relink."""
        creds = who if isinstance(who, Credentials) else await self.credentials(who)
        member_id = creds.member_id
        try:
            return await operation(creds.auth)
        except XUnauthorized:
            row = await self._usable_row(member_id, fresh=True)
            if row.auth_kind == "oauth1":
                await self.mark_relink(member_id)
                raise RelinkRequired() from None
            try:
                if row.token_version == creds.version:
                    creds = await self._refresh(member_id, stale=row.token_version)
                else:
                    creds = self._credentials(row)  # refreshed (or relinked) elsewhere meanwhile
            except VaultError:
                await self._unreadable(member_id)
                raise LinkUnreadable() from None
        try:
            return await operation(creds.auth)
        except XUnauthorized:
            await self.mark_relink(member_id, expected=creds.version)
            raise RelinkRequired() from None

    async def mark_relink(self, discord_user_id: int, *, expected: int | None = None) -> bool:
        """Flag the link (while it still holds the tokens of version `expected`, when given) and tell the member
        once; True when this call flagged it."""
        flagged = await self.store.mark_relink(discord_user_id, self.clock(), expected_version=expected)
        if flagged and self.on_relink_needed is not None:
            try:
                await self.on_relink_needed(discord_user_id)
            except Exception:
                log.exception("could not tell member %s to relink", discord_user_id)
        return flagged

    async def unlink(self, discord_user_id: int) -> Unlinked | None:
        """Forget the link and everything known about its X account (subscriptions stay: they are the member's),
        then ask X to revoke its tokens."""
        async with self._locks[discord_user_id]:
            row = await self.store.link(discord_user_id, fresh=True)
            if row is None:
                return None
            async with self.db.batch() as batch:
                self.store.delete(batch, discord_user_id)
                self._forget_x_account(batch, discord_user_id, "unlinked")
            self._unsealed.pop(discord_user_id, None)
        await self._settle_cancelled(discord_user_id)
        return Unlinked(_account(row), await self._revoke_row(row))

    async def purge_states(self) -> int:
        """Forget authorisations that expired (or were used) more than a little while ago."""
        return await self.store.purge_states(self.clock() - 60)
