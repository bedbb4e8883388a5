"""Linked X accounts: the OAuth flows that create them, and credentials that stay fresh (one refresh per account)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import httpx
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth1Client, AsyncOAuth2Client

from bot.config import Settings
from bot.errors import MutebotError, NotLinked, RelinkRequired
from bot.secrets import Secret
from bot.store import Stores
from bot.store.accounts import LinkRow
from bot.vault import TokenVault, VaultError
from bot.x_client import DEFAULT_TIMEOUT, UserAuth, XClient, XUnauthorized, XUnavailable, XUser

log = logging.getLogger(__name__)
T = TypeVar("T")

SCOPES = "tweet.read users.read mute.read mute.write offline.access"
STATE_TTL = 600.0
REFRESH_MARGIN = 120.0
UNSEALED_SIZE = 4096  # members whose decrypted credentials stay in memory between commands


class LinkFailed(Exception):
    """The callback cannot link: `page` says why, in words for a person."""

    def __init__(self, page: str) -> None:
        super().__init__(page)
        self.page = page


@dataclass(frozen=True)
class LinkStart:
    url: str
    expires_at: float


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
    sealed_access: bytes  # the stored ciphertext of `auth`'s access token, to tell a refresh has happened

    @property
    def member_id(self) -> int:
        return self.account.discord_user_id


def _hash_state(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


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
        base = settings.x_api_base
        self._token_url = f"{base}/2/oauth2/token"
        self._revoke_url = f"{base}/2/oauth2/revoke"
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

    async def start_link(self, discord_user_id: int, guild_id: int | None) -> LinkStart:
        """A fresh single-use state bound to the member; the verifier stays in our database."""
        now = self.clock()
        expires_at = now + STATE_TTL
        if self.settings.x_auth == "oauth1":
            return await self._start_oauth1(discord_user_id, guild_id, now, expires_at)
        state = secrets.token_urlsafe(32)
        verifier = generate_token(64)
        url, _ = self._oauth2.create_authorization_url(
            self.settings.x_authorize_url, state=state, code_verifier=verifier
        )
        await self.store.add_state(_hash_state(state), discord_user_id, guild_id, "oauth2",
                                   self.vault.encrypt(verifier), now, expires_at)
        return LinkStart(url, expires_at)

    async def _start_oauth1(
        self, discord_user_id: int, guild_id: int | None, now: float, expires_at: float
    ) -> LinkStart:
        async with self._oauth1_client() as client:
            try:
                token = await client.fetch_request_token(f"{self.settings.x_api_base}/oauth/request_token")
            except (OAuthError, httpx.HTTPError, ValueError) as exc:
                log.warning("OAuth 1.0a request token failed: %s", type(exc).__name__)
                raise MutebotError("X did not start the authorization; please try `/link` again in a minute.") from exc
            url = client.create_authorization_url(f"{self.settings.x_api_base}/oauth/authorize")
        request_token = str(token["oauth_token"])
        await self.store.add_state(_hash_state(request_token), discord_user_id, guild_id, "oauth1",
                                   self.vault.encrypt(str(token["oauth_token_secret"])), now, expires_at)
        return LinkStart(str(url), expires_at)

    def _oauth1_client(self, token: str | None = None, token_secret: str | None = None,
                       verifier: str | None = None) -> AsyncOAuth1Client:
        secret = self.settings.x_consumer_secret
        return AsyncOAuth1Client(
            client_id=self.settings.x_consumer_key,
            client_secret=secret.reveal() if secret else None,
            token=token,
            token_secret=token_secret,
            redirect_uri=self.settings.redirect_uri,
            verifier=verifier,
            timeout=DEFAULT_TIMEOUT,
        )

    # -- completing a link (the web callback) ---------------------------------------------------

    async def _claim_state(self, state: str, kind: str) -> tuple[int, Secret]:
        """Consume the state once; explain precisely why when it cannot be used."""
        now = self.clock()
        state_hash = _hash_state(state)
        row = await self.store.state(state_hash)
        if row is None or row.auth_kind != kind:
            raise LinkFailed("This link is unknown. Start again with /link in Discord.")
        if row.used_at is not None:
            raise LinkFailed("This link was already used. If your account is not linked yet, run /link again.")
        if row.expires_at <= now:
            raise LinkFailed("This link has expired (links last 10 minutes). Run /link again in Discord.")
        if not await self.store.claim_state(state_hash, now):
            raise LinkFailed("This link was already used. If your account is not linked yet, run /link again.")
        return row.member_id, self.vault.decrypt(row.verifier)

    async def consume_state(self, state: str) -> None:
        """Spend a state without linking (the member cancelled on X)."""
        await self._claim_state(state, "oauth2")

    async def complete_oauth2(self, state: str, code: str) -> XUser:
        discord_user_id, verifier = await self._claim_state(state, "oauth2")
        try:
            token: dict[str, Any] = dict(
                await self._oauth2.fetch_token(self._token_url, code=code, code_verifier=verifier.reveal())
            )
        except (OAuthError, httpx.HTTPError, ValueError, KeyError) as exc:
            log.warning("code exchange failed for a link: %s", type(exc).__name__)
            raise LinkFailed("X did not accept this authorization (it may have expired). Run /link again.") from exc
        access = Secret(str(token["access_token"]))
        try:
            user = await self.x.me(UserAuth("me", access))
        except Exception as exc:
            log.warning("users/me failed after a code exchange: %s", type(exc).__name__)
            raise LinkFailed("X did not tell us which account you approved. Run /link again.") from exc
        expires_in = token.get("expires_in")
        await self._store_link(
            discord_user_id, user, "oauth2", access,
            refresh=Secret(str(token["refresh_token"])) if token.get("refresh_token") else None,
            secret=None, scopes=str(token.get("scope", "")),
            expires_at=self.clock() + float(expires_in) if expires_in else None,
        )
        return user

    async def complete_oauth1(self, oauth_token: str, oauth_verifier: str) -> XUser:
        discord_user_id, request_secret = await self._claim_state(oauth_token, "oauth1")
        async with self._oauth1_client(oauth_token, request_secret.reveal(), oauth_verifier) as client:
            try:
                token = await client.fetch_access_token(f"{self.settings.x_api_base}/oauth/access_token")
            except (OAuthError, httpx.HTTPError, ValueError) as exc:
                log.warning("OAuth 1.0a access token failed: %s", type(exc).__name__)
                raise LinkFailed("X did not accept this authorization. Run /link again.") from exc
        access, secret = Secret(str(token["oauth_token"])), Secret(str(token["oauth_token_secret"]))
        user = XUser(str(token["user_id"]), str(token["screen_name"]), str(token["screen_name"]))
        try:
            user = await self.x.me(self._auth1(str(token["user_id"]), access, secret))
        except Exception as exc:  # the profile is a nicety; the ids from access_token suffice
            log.info("users/me after OAuth 1.0a failed: %s", type(exc).__name__)
        await self._store_link(discord_user_id, user, "oauth1", access, refresh=None, secret=secret,
                               scopes="", expires_at=None)
        return user

    def _auth1(self, x_user_id: str, access: Secret, secret: Secret) -> UserAuth:
        return UserAuth(x_user_id, access, secret, self.settings.x_consumer_key, self.settings.x_consumer_secret,
                        mute_api=self.settings.x_mute_api)

    async def _store_link(
        self, discord_user_id: int, user: XUser, kind: str, access: Secret, *, refresh: Secret | None,
        secret: Secret | None, scopes: str, expires_at: float | None,
    ) -> None:
        async with self._locks[discord_user_id]:  # never interleaved with a refresh of the same member
            previous = await self.store.link(discord_user_id, fresh=True)
            async with self.db.batch() as batch:
                self.store.save(
                    batch, discord_user_id, x_user_id=user.id, x_username=user.username, x_name=user.name,
                    x_avatar_url=user.profile_image_url, auth_kind=kind, access_token=self.vault.encrypt(access),
                    refresh_token=self.vault.encrypt(refresh) if refresh else None,
                    token_secret=self.vault.encrypt(secret) if secret else None, scopes=scopes,
                    expires_at=expires_at, now=self.clock(),
                )
                if previous is not None and previous.x_user_id != user.id:
                    # Another X account: what we knew about the old one's mutes no longer applies.
                    self.stores.mutes.forget_cache(batch, discord_user_id)
        if previous is not None:
            await self._revoke_row(previous, keep=access)
        log.info("member %s linked X account %s", discord_user_id, user.id)
        if self.on_linked is not None:
            try:
                await self.on_linked(discord_user_id, user)
            except Exception:
                log.exception("could not confirm a link to member %s", discord_user_id)

    async def _revoke_row(self, row: LinkRow, *, keep: Secret | None = None) -> None:
        try:
            token = self.vault.decrypt(row.access_token)
        except VaultError:
            return  # nothing we could still send to X
        if token != keep:
            await self._revoke(token, row.auth_kind)

    async def _revoke(self, token: Secret, kind: str) -> None:
        if kind != "oauth2":
            return  # OAuth 1.0a tokens are revoked by the member in X's settings; X offers apps no call.
        try:
            await self._oauth2.revoke_token(self._revoke_url, token=token.reveal(), token_type_hint="access_token")
        except Exception as exc:
            log.warning("revoking a token at X failed (%s); it will expire on its own", type(exc).__name__)

    # -- reading and refreshing credentials ------------------------------------------------------

    async def account(self, discord_user_id: int) -> LinkedAccount | None:
        row = await self.store.link(discord_user_id)
        return None if row is None else _account(row)

    async def credentials(self, discord_user_id: int) -> Credentials:
        """The member's usable link, read once (from the store's cache when it is there); refreshed first
        when the token expires within REFRESH_MARGIN."""
        row = await self._usable_row(discord_user_id)
        if row.expires_at is not None and row.expires_at - REFRESH_MARGIN <= self.clock():
            return await self._refresh(discord_user_id, stale=row.access_token)
        return self._credentials(row)

    async def _usable_row(self, discord_user_id: int, *, fresh: bool = False) -> LinkRow:
        row = await self.store.link(discord_user_id, fresh=fresh)
        if row is None:
            raise NotLinked()
        if row.needs_relink:
            raise RelinkRequired()
        return row

    def _credentials(self, row: LinkRow, access: Secret | None = None) -> Credentials:
        """Decrypted once per stored token, not once per command: kept while the row holds the same one."""
        account = _account(row)
        held = self._unsealed.get(row.member_id)
        if held is not None and held.sealed_access == row.access_token and held.account == account:
            self._unsealed.move_to_end(row.member_id)
            return held
        access = access or self.vault.decrypt(row.access_token)
        if row.auth_kind == "oauth1" and row.token_secret is not None:
            auth = self._auth1(row.x_user_id, access, self.vault.decrypt(row.token_secret))
        else:
            auth = UserAuth(row.x_user_id, access)
        creds = Credentials(account, auth, row.access_token)
        self._unsealed[row.member_id] = creds
        while len(self._unsealed) > UNSEALED_SIZE:
            self._unsealed.popitem(last=False)
        return creds

    async def _refresh(self, discord_user_id: int, *, stale: bytes) -> Credentials:
        """One refresh per account at a time; whoever waited behind it reuses the new token."""
        async with self._locks[discord_user_id]:
            row = await self._usable_row(discord_user_id, fresh=True)
            if row.access_token != stale:
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
                    await self.mark_relink(discord_user_id)
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
            sealed = self.vault.encrypt(access)
            # Store the new pair before anyone uses it: the old refresh token is already spent. It lands
            # only if the row still holds the token that was refreshed.
            if not await self.store.replace_tokens(
                discord_user_id, expected_access=stale, access_token=sealed,
                refresh_token=self.vault.encrypt(new_refresh),
                expires_at=now + float(expires_in) if expires_in else None, now=now,
            ):
                return self._credentials(await self._usable_row(discord_user_id, fresh=True))
            return self._credentials(replace(row, access_token=sealed), access)

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
            if row.access_token == creds.sealed_access:
                creds = await self._refresh(member_id, stale=row.access_token)
            else:
                creds = self._credentials(row)  # refreshed elsewhere meanwhile
        try:
            return await operation(creds.auth)
        except XUnauthorized:
            await self.mark_relink(member_id)
            raise RelinkRequired() from None

    async def mark_relink(self, discord_user_id: int) -> None:
        if await self.store.mark_relink(discord_user_id, self.clock()) and self.on_relink_needed is not None:
            try:
                await self.on_relink_needed(discord_user_id)
            except Exception:
                log.exception("could not tell member %s to relink", discord_user_id)

    async def unlink(self, discord_user_id: int) -> LinkedAccount | None:
        """Forget the link, and ask each store to forget what it held for it; then revoke at X."""
        async with self._locks[discord_user_id]:
            row = await self.store.link(discord_user_id, fresh=True)
            if row is None:
                return None
            now = self.clock()
            async with self.db.batch() as batch:
                self.store.delete(batch, discord_user_id)
                self.stores.mutes.forget_cache(batch, discord_user_id)
                self.stores.queue.cancel_for_member(batch, discord_user_id, outcome="unlinked", now=now)
            self._unsealed.pop(discord_user_id, None)
        await self._revoke_row(row)
        return _account(row)

    async def purge_states(self) -> int:
        """Forget authorisations that expired (or were used) more than a little while ago."""
        return await self.store.purge_states(self.clock() - 60)
