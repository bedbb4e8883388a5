"""XClient: the one async client for X API v2 (and v1.1 mutes), with typed errors and rate-limit tracking."""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import aiohttp
import httpx
from authlib.oauth1 import ClientAuth
from httpx_aiohttp import AiohttpTransport

from bot.secrets import Secret

log = logging.getLogger(__name__)

DEFAULT_USER_FIELDS = ("profile_image_url",)
POST_FIELDS = ("created_at", "conversation_id")
POST_PAGE = 100  # the most recent search, quote_tweets, retweeted_by and liking_users give per page
LOOKUP_BATCH = 100
# One pool per process for every call to X (the X client's and authlib's token calls share it): enough
# connections for the queue's concurrency plus a burst of commands, and keep-alive for all of them.
POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=30.0)
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# Calls X treats as "make it so": repeating one after a 5xx or a timeout cannot double anything (a second POST
# muting of a muted account answers `muting: true`), so they are retried like GETs and DELETEs.
REPEATABLE_ENDPOINTS = frozenset({"muting.post", "muting.delete"})


USER_AGENT = "mutebot/0.1"


# -- errors, caught by meaning ----------------------------------------------------------------


class XError(Exception):
    """Anything X answered that was not what we asked for."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class XUserNotFound(XError):
    def __init__(self, username: str) -> None:
        super().__init__(f"no X account @{username}", status=200)
        self.username = username


class XPostNotFound(XError):
    """X has no such post: it never existed, or it was deleted (X does not tell the two apart)."""

    def __init__(self, post_id: str, *, hidden: bool = False) -> None:
        super().__init__(f"no X post {post_id}" + (" visible to this account" if hidden else ""), status=200)
        self.post_id = post_id
        self.hidden = hidden  # it exists, but its account is protected


class XInvalidRequest(XError):
    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(message, status=400)
        self.parameter = parameter


class XUnauthorized(XError):
    """The token is missing, expired or revoked."""


class XForbidden(XError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason, status=403)
        self.reason = reason


class XRateLimited(XError):
    def __init__(self, reset_at: float, endpoint: str) -> None:
        super().__init__(f"rate limited on {endpoint} until {reset_at:.0f}", status=429)
        self.reset_at = reset_at
        self.endpoint = endpoint


class XUsageCapped(XError):
    """A spend cap: waiting for the rate window does not help."""


class XUnavailable(XError):
    """5xx or no answer in time."""


# -- typed results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class XUser:
    id: str
    username: str
    name: str
    profile_image_url: str | None = None

    @property
    def url(self) -> str:
        return f"https://x.com/{self.username}"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> XUser:
        return cls(
            id=str(data["id"]),
            username=str(data.get("username") or data.get("screen_name") or ""),
            name=str(data.get("name", "")),
            profile_image_url=data.get("profile_image_url") or data.get("profile_image_url_https"),
        )


@dataclass(frozen=True)
class MutingPage:
    users: list[XUser]
    includes: dict[str, Any]
    result_count: int
    next_token: str | None
    previous_token: str | None


@dataclass(frozen=True)
class XPost:
    id: str
    author_id: str
    text: str
    conversation_id: str
    created_at: float | None
    author: XUser | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any], users: Mapping[str, XUser]) -> XPost:
        created = data.get("created_at")
        author_id = str(data.get("author_id", ""))
        return cls(
            id=str(data["id"]),
            author_id=author_id,
            text=str(data.get("text", "")),
            conversation_id=str(data.get("conversation_id") or data["id"]),
            created_at=_parse_time(created) if isinstance(created, str) else None,
            author=users.get(author_id),
        )


@dataclass(frozen=True)
class PostsPage:
    """A page of posts (recent search, quotes), each with its author when X included it."""

    posts: list[XPost]
    next_token: str | None


@dataclass(frozen=True)
class UsersPage:
    """A page of accounts (reposters, likers)."""

    users: list[XUser]
    next_token: str | None


def _parse_time(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class LookupResult:
    found: list[XUser]
    not_found: list[str]


# -- credentials ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserAuth:
    """How to act as one X user: an OAuth 2.0 bearer token, or OAuth 1.0a token + secret."""

    x_user_id: str
    access_token: Secret
    token_secret: Secret | None = None
    consumer_key: str | None = None
    consumer_secret: Secret | None = None
    mute_api: str = "v2"  # "v1.1": OAuth 1.0a accounts may use the v1.1 mutes/users/* endpoints

    @property
    def uses_v11(self) -> bool:
        return self.token_secret is not None and self.mute_api == "v1.1"

    def sign(self, method: str, url: str, headers: dict[str, str], body: bytes) -> str:
        """Add this user's authorization to a request about to be sent; returns the URL to send it to."""
        if self.token_secret is None:
            headers["Authorization"] = f"Bearer {self.access_token.reveal()}"
            return url
        signer = ClientAuth(
            client_id=self.consumer_key,
            client_secret=self.consumer_secret.reveal() if self.consumer_secret else None,
            token=self.access_token.reveal(),
            token_secret=self.token_secret.reveal(),
            # Without it authlib leaves JSON bodies (POST muting's target_user_id) out of the signature base.
            force_include_body=True,
        )
        signed_url, signed_headers, _ = signer.prepare(method, url, headers, body)
        headers.update(signed_headers)
        return str(signed_url)

    @property
    def is_oauth1(self) -> bool:
        return self.token_secret is not None


# -- rate limits ----------------------------------------------------------------------------------


@dataclass
class RateState:
    limit: int
    remaining: int
    reset_at: float


@dataclass
class RateLimits:
    """The last `x-rate-limit-*` headers per (X user, endpoint)."""

    clock: Callable[[], float] = time.time
    states: dict[tuple[str, str], RateState] = field(default_factory=dict)

    def record(self, x_user_id: str, endpoint: str, headers: Mapping[str, str]) -> None:
        try:
            state = RateState(
                limit=int(headers["x-rate-limit-limit"]),
                remaining=int(headers["x-rate-limit-remaining"]),
                reset_at=float(headers["x-rate-limit-reset"]),
            )
        except (KeyError, ValueError):
            return
        self.states[(x_user_id, endpoint)] = state

    def get(self, x_user_id: str, endpoint: str) -> RateState | None:
        return self.states.get((x_user_id, endpoint))

    def next_allowed_at(self, x_user_id: str, endpoint: str) -> float:
        """When a call may go out without being refused: now (0.0) unless the window is used up."""
        state = self.states.get((x_user_id, endpoint))
        if state is None or state.remaining > 0 or state.reset_at <= self.clock():
            return 0.0
        return state.reset_at


# -- the client ------------------------------------------------------------------------------------


def _problem_suffix(body: Any) -> str:
    if isinstance(body, dict):
        kind = body.get("type")
        if isinstance(kind, str):
            return kind.rstrip("/").rsplit("/", 1)[-1]
    return ""


def _v11_code(body: Any) -> int | None:
    """The numeric code of a v1.1 error body ({"errors": [{"code": N, "message": ...}]})."""
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        code = body["errors"][0].get("code") if isinstance(body["errors"][0], dict) else None
        return code if isinstance(code, int) else None
    return None


@dataclass(frozen=True)
class XCall:
    """One call to X as it went, for whoever observes the client (metrics, tests)."""

    method: str
    url: str
    endpoint: str
    status: int | None  # None when X never answered
    seconds: float
    query: tuple[tuple[str, str], ...] = ()


class XClient:
    """One shared connection pool; the user's credentials per call.

    Calls go out through aiohttp (the client discord.py already uses); httpx's request machinery costs about
    0.3 ms a call on top of it, more than the rest of a /mute's own work (`python -m bench transport`). authlib's
    OAuth clients are httpx clients: they get `transport`, an httpx transport over the same aiohttp session,
    so the whole process keeps one pool to X.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        retries: int = 2,
        clock: Callable[[], float] = time.time,
        consumer_key: str | None = None,
        consumer_secret: Secret | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 5.0))
        self._session: aiohttp.ClientSession | None = None
        self.transport: httpx.AsyncBaseTransport = AiohttpTransport(client=self._pool, limits=POOL_LIMITS)
        self.retries = retries
        self.rate_limits = RateLimits(clock=clock)
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.observers: list[Callable[[XCall], None]] = []

    def _pool(self) -> aiohttp.ClientSession:
        """The process's one session to X, opened on first use (aiohttp wants a running loop for it)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=POOL_LIMITS.max_connections or 0,
                                             keepalive_timeout=POOL_LIMITS.keepalive_expiry or 30.0)
            # No cookie jar: nothing X sets on an API response should ride along on another user's call.
            self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                                  headers={"User-Agent": USER_AGENT})
        return self._session

    async def __aenter__(self) -> XClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    def __repr__(self) -> str:
        return f"XClient({self.base_url})"

    async def request(
        self,
        method: str,
        path: str,
        auth: UserAuth,
        endpoint: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        data: dict[str, str] | None = None,
        retries: int | None = None,
    ) -> Any:
        """Send one call, record its rate-limit headers, and map failures onto typed errors.

        `retries` overrides the client's for callers that retry on their own schedule (the action queue)."""
        retries = self.retries if retries is None else retries
        repeatable = method in ("GET", "DELETE") or endpoint in REPEATABLE_ENDPOINTS
        url = self.base_url + path + ("?" + urlencode(params) if params else "")
        headers: dict[str, str] = {}
        body = b""
        if json is not None:
            body, headers["Content-Type"] = jsonlib.dumps(json).encode(), "application/json"
        elif data is not None:
            body, headers["Content-Type"] = urlencode(data).encode(), "application/x-www-form-urlencoded"
        attempt = 0
        while True:
            send_headers = dict(headers)  # OAuth 1.0a signs each attempt afresh (nonce, timestamp)
            send_url = auth.sign(method, url, send_headers, body)
            started = time.perf_counter()
            status: int | None = None
            try:
                async with self._pool().request(method, send_url, data=body or None, headers=send_headers,
                                                timeout=self._timeout, allow_redirects=False) as response:
                    raw = await response.read()
                    status = response.status
                    answer_headers = response.headers
            except TimeoutError as exc:
                error: XError = XUnavailable(f"X did not answer {endpoint} in time")
                cause: BaseException = exc
            except aiohttp.ClientError as exc:
                error, cause = XUnavailable(f"could not reach X for {endpoint}: {type(exc).__name__}"), exc
            else:
                self.rate_limits.record(auth.x_user_id, endpoint, answer_headers)
                if status < 500:
                    self._observe(method, url, endpoint, status, started, params)
                    return self._decode(status, answer_headers, raw, endpoint)
                error, cause = XUnavailable(f"X answered {status} to {endpoint}", status=status), XError(
                    raw[:200].decode("utf-8", "replace"))
            self._observe(method, url, endpoint, status, started, params)
            if not repeatable or attempt >= retries:
                raise error from cause
            attempt += 1
            # Jittered exponential back-off: spread retries out so a struggling X is not hammered in step.
            await asyncio.sleep(random.uniform(0, 0.25 * 2**attempt))

    def _observe(self, method: str, url: str, endpoint: str, status: int | None, started: float,
                 params: dict[str, str] | None) -> None:
        if not self.observers:
            return
        call = XCall(method, url, endpoint, status, time.perf_counter() - started, tuple((params or {}).items()))
        for observer in self.observers:
            observer(call)

    def _decode(self, status: int, headers: Mapping[str, str], raw: bytes, endpoint: str) -> Any:
        try:
            body: Any = jsonlib.loads(raw) if raw else None
        except ValueError:
            body = None
        if status < 300:
            return body
        detail = ""
        if isinstance(body, dict):
            detail = str(body.get("detail") or body.get("title") or body.get("error_description") or "")
            if not detail and isinstance(body.get("errors"), list) and body["errors"]:
                first = body["errors"][0]
                detail = str(first.get("message") or first.get("detail") or "")
        v11_code = _v11_code(body)
        if v11_code in (17, 50):
            raise XUserNotFound("")
        if status == 429:
            if _problem_suffix(body) == "usage-capped":
                raise XUsageCapped(detail or "usage cap exceeded", status=429)
            reset = headers.get("x-rate-limit-reset")
            reset_at = float(reset) if reset and reset.isdigit() else time.time() + 60
            raise XRateLimited(reset_at, endpoint)
        if status == 401:
            raise XUnauthorized(detail or "unauthorized", status=401)
        if status == 403:
            raise XForbidden(detail or "forbidden")
        if status == 404:
            raise XInvalidRequest(detail or "not found", None)
        parameter = None
        if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
            params = body["errors"][0].get("parameters")
            if isinstance(params, dict) and params:
                parameter = next(iter(params))
        raise XInvalidRequest(detail or f"X refused the request ({status})", parameter)

    # -- operations -------------------------------------------------------------------------------

    async def me(self, auth: UserAuth) -> XUser:
        body = await self.request(
            "GET", "/2/users/me", auth, "users/me", params={"user.fields": ",".join(DEFAULT_USER_FIELDS)}
        )
        return XUser.from_json(body["data"])

    async def user_by_username(self, auth: UserAuth, username: str) -> XUser:
        body = await self.request(
            "GET",
            f"/2/users/by/username/{username}",
            auth,
            "users/by/username",
            params={"user.fields": ",".join(DEFAULT_USER_FIELDS)},
        )
        if not isinstance(body, dict) or "data" not in body:
            raise XUserNotFound(username)
        return XUser.from_json(body["data"])

    async def users_by_usernames(self, auth: UserAuth, usernames: Sequence[str]) -> LookupResult:
        """Batched lookup, 100 names per call; names X does not know come back in `not_found`."""
        found: list[XUser] = []
        not_found: list[str] = []
        unique = list(dict.fromkeys(usernames))
        for start in range(0, len(unique), LOOKUP_BATCH):
            chunk = unique[start : start + LOOKUP_BATCH]
            body = await self.request(
                "GET",
                "/2/users/by",
                auth,
                "users/by",
                params={"usernames": ",".join(chunk), "user.fields": ",".join(DEFAULT_USER_FIELDS)},
            )
            data = body.get("data", []) if isinstance(body, dict) else []
            found += [XUser.from_json(item) for item in data]
            seen = {user.username.lower() for user in found}
            not_found += [name for name in chunk if name.lower() not in seen]
        return LookupResult(found, not_found)

    async def mute(self, auth: UserAuth, target_user_id: str, *, retries: int | None = None) -> bool:
        if auth.uses_v11:
            await self.request("POST", "/1.1/mutes/users/create.json", auth, "muting.post",
                               data={"user_id": target_user_id}, retries=retries)
            return True
        body = await self.request(
            "POST", f"/2/users/{auth.x_user_id}/muting", auth, "muting.post", json={"target_user_id": target_user_id},
            retries=retries,
        )
        return bool(body["data"]["muting"])

    async def unmute(self, auth: UserAuth, target_user_id: str, *, retries: int | None = None) -> bool:
        if auth.uses_v11:
            await self._v11_destroy(auth, {"user_id": target_user_id}, retries=retries)
            return False
        body = await self.request(
            "DELETE", f"/2/users/{auth.x_user_id}/muting/{target_user_id}", auth, "muting.delete", retries=retries
        )
        return bool(body["data"]["muting"])

    async def _v11_destroy(self, auth: UserAuth, data: dict[str, str], *, retries: int | None = None
                           ) -> dict[str, Any]:
        try:
            body: dict[str, Any] = await self.request(
                "POST", "/1.1/mutes/users/destroy.json", auth, "muting.delete", data=data, retries=retries
            )
            return body
        except XForbidden as exc:
            if "not muting" in exc.reason:  # v1.1 code 272: already the state we want
                return {}
            raise

    async def mute_by_username(self, auth: UserAuth, username: str) -> XUser:
        """v1.1 only: mute by screen name in one call; X answers with the whole user object."""
        try:
            body = await self.request("POST", "/1.1/mutes/users/create.json", auth, "muting.post",
                                      data={"screen_name": username})
        except XUserNotFound:
            raise XUserNotFound(username) from None
        return XUser.from_json({**body, "id": body.get("id_str", body.get("id"))})

    async def unmute_by_username(self, auth: UserAuth, username: str) -> XUser | None:
        try:
            body = await self._v11_destroy(auth, {"screen_name": username})
        except XUserNotFound:
            raise XUserNotFound(username) from None
        return XUser.from_json({**body, "id": body.get("id_str", body.get("id"))}) if body else None

    async def muting_page(
        self,
        auth: UserAuth,
        *,
        max_results: int = 1000,
        pagination_token: str | None = None,
        user_fields: Sequence[str] = DEFAULT_USER_FIELDS,
        expansions: Sequence[str] = (),
        tweet_fields: Sequence[str] = (),
    ) -> MutingPage:
        if not 1 <= max_results <= 1000:
            raise XInvalidRequest("max_results must be between 1 and 1000", "max_results")
        if auth.uses_v11:
            return await self._v11_muting_page(auth, pagination_token or "-1", min(max_results, 200))
        params = {"max_results": str(max_results)}
        if pagination_token:
            params["pagination_token"] = pagination_token
        if user_fields:
            params["user.fields"] = ",".join(user_fields)
        if expansions:
            params["expansions"] = ",".join(expansions)
        if tweet_fields:
            params["tweet.fields"] = ",".join(tweet_fields)
        body = await self.request("GET", f"/2/users/{auth.x_user_id}/muting", auth, "muting.get", params=params)
        meta = body.get("meta", {})
        return MutingPage(
            users=[XUser.from_json(item) for item in body.get("data", [])],
            includes=body.get("includes", {}),
            result_count=int(meta.get("result_count", 0)),
            next_token=meta.get("next_token"),
            previous_token=meta.get("previous_token"),
        )

    async def _v11_muting_page(self, auth: UserAuth, cursor: str, count: int) -> MutingPage:
        body = await self.request(
            "GET", "/1.1/mutes/users/list.json", auth, "muting.get",
            params={"cursor": cursor, "count": str(count), "skip_status": "true", "include_entities": "false"},
        )
        users = [XUser.from_json({**u, "id": u.get("id_str", u.get("id"))}) for u in body.get("users", [])]
        next_cursor = str(body.get("next_cursor_str", body.get("next_cursor", "0")))
        previous = str(body.get("previous_cursor_str", body.get("previous_cursor", "0")))
        return MutingPage(users, {}, len(users), None if next_cursor == "0" else next_cursor,
                          None if previous == "0" else previous)

    async def iter_muting(self, auth: UserAuth, *, max_results: int = 1000) -> AsyncIterator[MutingPage]:
        token: str | None = None
        while True:
            page = await self.muting_page(auth, max_results=max_results, pagination_token=token)
            yield page
            token = page.next_token
            if not token:
                return

    # -- posts ------------------------------------------------------------------------------------

    async def post(self, auth: UserAuth, post_id: str) -> XPost:
        """One post with its author; XPostNotFound when X has none (deleted or never there) or hides it."""
        body = await self.request(
            "GET", f"/2/tweets/{post_id}", auth, "tweets/:id",
            params={"expansions": "author_id", "post.fields": ",".join(POST_FIELDS),
                    "user.fields": ",".join(DEFAULT_USER_FIELDS)},
        )
        if not isinstance(body, dict) or "data" not in body:
            errors = body.get("errors", []) if isinstance(body, dict) else []
            hidden = any(_problem_suffix(e) == "not-authorized-for-resource" for e in errors)
            raise XPostNotFound(post_id, hidden=hidden)
        return XPost.from_json(body["data"], _included_users(body))

    async def search_recent(
        self, auth: UserAuth, query: str, *, max_results: int = POST_PAGE, next_token: str | None = None
    ) -> PostsPage:
        """One page of X's recent search (the last 7 days), newest first, with each post's author."""
        params = {"query": query, "max_results": str(max_results), "expansions": "author_id",
                  "post.fields": ",".join(POST_FIELDS), "user.fields": ",".join(DEFAULT_USER_FIELDS)}
        if next_token:
            params["next_token"] = next_token
        body = await self.request("GET", "/2/tweets/search/recent", auth, "tweets/search/recent", params=params)
        return _posts_page(body)

    async def quote_posts(
        self, auth: UserAuth, post_id: str, *, max_results: int = POST_PAGE, pagination_token: str | None = None
    ) -> PostsPage:
        """One page of the posts that quote this one, newest first, with each quote's author."""
        params = {"max_results": str(max_results), "expansions": "author_id",
                  "post.fields": ",".join(POST_FIELDS), "user.fields": ",".join(DEFAULT_USER_FIELDS)}
        if pagination_token:
            params["pagination_token"] = pagination_token
        body = await self.request("GET", f"/2/tweets/{post_id}/quote_tweets", auth, "tweets/:id/quote_tweets",
                                  params=params)
        _raise_missing_post(body, post_id)
        return _posts_page(body)

    async def reposted_by(
        self, auth: UserAuth, post_id: str, *, max_results: int = POST_PAGE, pagination_token: str | None = None
    ) -> UsersPage:
        """One page of who reposted it (X keeps the 100 most recent)."""
        return await self._post_users(auth, post_id, "retweeted_by", max_results, pagination_token)

    async def liking_users(
        self, auth: UserAuth, post_id: str, *, max_results: int = POST_PAGE, pagination_token: str | None = None
    ) -> UsersPage:
        """One page of who liked it (X keeps the 100 most recent; needs the like.read scope)."""
        return await self._post_users(auth, post_id, "liking_users", max_results, pagination_token)

    async def _post_users(
        self, auth: UserAuth, post_id: str, relation: str, max_results: int, pagination_token: str | None
    ) -> UsersPage:
        params = {"max_results": str(max_results), "user.fields": ",".join(DEFAULT_USER_FIELDS)}
        if pagination_token:
            params["pagination_token"] = pagination_token
        body = await self.request("GET", f"/2/tweets/{post_id}/{relation}", auth, f"tweets/:id/{relation}",
                                  params=params)
        _raise_missing_post(body, post_id)
        meta = body.get("meta", {}) if isinstance(body, dict) else {}
        data = body.get("data", []) if isinstance(body, dict) else []
        return UsersPage([XUser.from_json(item) for item in data], meta.get("next_token"))


def _included_users(body: dict[str, Any]) -> dict[str, XUser]:
    includes = body.get("includes", {})
    users = includes.get("users", []) if isinstance(includes, dict) else []
    return {str(u["id"]): XUser.from_json(u) for u in users if isinstance(u, dict) and "id" in u}


def _raise_missing_post(body: Any, post_id: str) -> None:
    """X answers 200 with a problem in `errors`, and no `meta`, for a post it cannot find or show."""
    if isinstance(body, dict) and "meta" not in body and body.get("errors"):
        hidden = any(_problem_suffix(e) == "not-authorized-for-resource" for e in body["errors"])
        raise XPostNotFound(post_id, hidden=hidden)


def _posts_page(body: Any) -> PostsPage:
    if not isinstance(body, dict):
        return PostsPage([], None)
    users = _included_users(body)
    meta = body.get("meta", {})
    return PostsPage([XPost.from_json(item, users) for item in body.get("data", [])], meta.get("next_token"))
