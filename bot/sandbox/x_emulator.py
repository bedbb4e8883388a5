"""A stateful local imitation of the X API (OAuth, users, mutes) for tests, the demo and benchmarks."""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import hashlib
import hmac
import html
import json
import math
import random
import re
import secrets
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiohttp import web

from bot.sandbox import x_emulator_oauth1 as oauth1
from bot.sandbox import x_emulator_posts as posts
from bot.sandbox.ports import LISTEN_BACKLOG
from bot.sandbox.x_emulator_posts import EmulatedPost

__all__ = ["EmulatedPost", "EmulatedUser", "XEmulator", "run_sandbox"]

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
PROBLEMS = "https://api.x.com/2/problems/"
USERNAME_PATTERN = "^[A-Za-z0-9_]{1,15}$"
USER_ID_PATTERN = "^[0-9]{1,19}$"
_USERNAME_RE = re.compile(USERNAME_PATTERN)
_USER_ID_RE = re.compile(USER_ID_PATTERN)
FIRST_USER_ID = 1_000_000_001
AUTH_CODE_TTL = 30.0
DEFAULT_SCOPES = "tweet.read users.read like.read mute.read mute.write offline.access"

# X's per-user limits for a 15-minute window; the window length is a knob, the counts are not.
RATE_LIMITS: Mapping[str, int] = {
    "POST /2/users/:id/muting": 50,
    "DELETE /2/users/:source_user_id/muting/:target_user_id": 50,
    "GET /2/users/:id/muting": 15,
    "GET /2/users/me": 75,
    "GET /2/users/by": 900,
    "GET /2/users/by/username/:username": 900,
    # Posts (X's rate-limit table, per user): lookup 900, recent search 300, quotes, reposters and likers 75.
    "GET /2/tweets/:id": 900,
    "GET /2/tweets/search/recent": 300,
    "GET /2/tweets/:id/quote_tweets": 75,
    "GET /2/tweets/:id/retweeted_by": 75,
    "GET /2/tweets/:id/liking_users": 75,
    # v1.1 (OAuth 1.0a): X documents 15 for the GETs; the writes share v2's 50.
    "POST /1.1/mutes/users/create.json": 50,
    "POST /1.1/mutes/users/destroy.json": 50,
    "GET /1.1/mutes/users/ids.json": 15,
    "GET /1.1/mutes/users/list.json": 15,
}
V11_CONTENT_TYPE = "application/json;charset=utf-8"
REQUEST_TOKEN_TTL = 900.0
OAUTH1_TIMESTAMP_SKEW = 900.0
# v1.1 cursors are big opaque integers at X; ours: mute sequence + this, negated for "previous".
V11_CURSOR_BASE = 1_000_000_000_000

# Every scope X's authorization server knows (openapi.json securitySchemes.OAuth2UserToken).
KNOWN_SCOPES = frozenset(
    {
        "block.read",
        "bookmark.read",
        "bookmark.write",
        "broadcast.read",
        "broadcast.write",
        "dm.read",
        "dm.write",
        "follows.read",
        "follows.write",
        "like.read",
        "like.write",
        "list.read",
        "list.write",
        "media.write",
        "mute.read",
        "mute.write",
        "offline.access",
        "space.read",
        "timeline.read",
        "tweet.moderate.write",
        "tweet.read",
        "tweet.write",
        "users.read",
    }
)

# The union of the documented (docs/002) and the spec's (openapi.json 2.167) names, since clients send either.
USER_FIELDS = frozenset(
    {
        "affiliation",
        "confirmed_email",
        "connection_status",
        "created_at",
        "description",
        "entities",
        "id",
        "is_identity_verified",
        "location",
        "most_recent_tweet_id",
        "name",
        "parody",
        "pinned_tweet_id",
        "profile_banner_url",
        "profile_image_url",
        "protected",
        "public_metrics",
        "receives_your_dm",
        "subscribes_to_you",
        "subscription",
        "subscription_type",
        "url",
        "username",
        "verified",
        "verified_followers_count",
        "verified_type",
        "withheld",
    }
)
TWEET_FIELDS = frozenset(
    {
        "article",
        "article_title",
        "attachments",
        "author_id",
        "card_uri",
        "community_id",
        "context_annotations",
        "conversation_id",
        "created_at",
        "display_text_range",
        "edit_controls",
        "edit_history_tweet_ids",
        "entities",
        "geo",
        "id",
        "in_reply_to_user_id",
        "lang",
        "matched_media_notes",
        "media_metadata",
        "non_public_metrics",
        "note_post",
        "note_tweet",
        "note_request_suggestions",
        "organic_metrics",
        "paid_partnership",
        "possibly_sensitive",
        "promoted_metrics",
        "public_metrics",
        "referenced_tweets",
        "reply_settings",
        "scopes",
        "source",
        "suggested_source_links",
        "suggested_source_links_with_counts",
        "text",
        "withheld",
    }
)
USER_EXPANSIONS = frozenset(
    {"pinned_tweet_id", "pinned_post_id", "most_recent_tweet_id", "most_recent_post_id", "affiliation"}
)

UNAUTHORIZED_BODY: Mapping[str, Any] = {
    "title": "Unauthorized",
    "type": "about:blank",
    "status": 401,
    "detail": "Unauthorized",
}
TOO_MANY_REQUESTS_BODY: Mapping[str, Any] = {
    "title": "Too Many Requests",
    "detail": "Too Many Requests",
    "type": "about:blank",
    "status": 429,
}
SERVICE_UNAVAILABLE_BODY: Mapping[str, Any] = {
    "title": "Service Unavailable",
    "detail": "Service Unavailable",
    "type": "about:blank",
    "status": 503,
}
USAGE_CAPPED_BODY: Mapping[str, Any] = {
    "account_id": "1700000000000000000",
    "product_name": "standard-basic",
    "title": "UsageCapExceeded",
    "period": "Monthly",
    "scope": "Product",
    "detail": "Usage cap exceeded: Monthly product cap",
    "type": PROBLEMS + "usage-capped",
}
FORBIDDEN_BODY: Mapping[str, Any] = {
    "title": "Forbidden",
    "type": "about:blank",
    "status": 403,
    "detail": "Forbidden",
}
NOT_PERMITTED_BODY: Mapping[str, Any] = {
    "title": "Forbidden",
    "type": "about:blank",
    "status": 403,
    "detail": "You are not permitted to perform this action.",
}
NOT_FOUND_ROUTE_BODY: Mapping[str, Any] = {"errors": [{"code": 34, "message": "Sorry, that page does not exist."}]}


@dataclass
class EmulatedUser:
    """One X account held by the emulator; field names follow the v2 user object."""

    id: str
    username: str
    name: str
    created_at: str = "2015-01-01T00:00:00.000Z"
    description: str = ""
    location: str | None = None
    url: str = ""
    profile_image_url: str = "https://abs.twimg.com/sticky/default_profile_images/default_profile_normal.png"
    protected: bool = False
    verified: bool = False
    verified_type: str = "none"
    public_metrics: dict[str, int] = field(default_factory=dict)
    pinned_tweet_id: str | None = None
    pinned_tweet_text: str = ""
    pinned_tweet_created_at: str = "2021-08-26T20:03:51.000Z"

    def v2(self, fields: frozenset[str], pinned_key: str = "pinned_tweet_id") -> dict[str, Any]:
        """The v2 user object: X's defaults (id, name, username) plus the requested fields it has data for."""
        out: dict[str, Any] = {"id": self.id, "name": self.name, "username": self.username}
        if "created_at" in fields:
            out["created_at"] = self.created_at
        if "description" in fields:
            out["description"] = self.description
        if "entities" in fields and self.url:
            out["entities"] = {
                "url": {
                    "urls": [
                        {
                            "start": 0,
                            "end": len(self.url),
                            "url": self.url,
                            "expanded_url": self.url,
                            "display_url": self.url[8:],
                        }
                    ]
                }
            }
        if "location" in fields and self.location:
            out["location"] = self.location
        if "profile_image_url" in fields:
            out["profile_image_url"] = self.profile_image_url
        if "protected" in fields:
            out["protected"] = self.protected
        if "public_metrics" in fields:
            out["public_metrics"] = dict(self.public_metrics)
        if "url" in fields:
            out["url"] = self.url
        if "verified" in fields:
            out["verified"] = self.verified
        if "verified_type" in fields:
            out["verified_type"] = self.verified_type
        if self.pinned_tweet_id and ("pinned_tweet_id" in fields or pinned_key in fields):
            out[pinned_key] = self.pinned_tweet_id
        return out

    def pinned_tweet(self, fields: frozenset[str]) -> dict[str, Any]:
        """The pinned post as X expands it into includes: id, text and edit history by default."""
        assert self.pinned_tweet_id is not None
        tid = self.pinned_tweet_id
        out: dict[str, Any] = {"id": tid, "text": self.pinned_tweet_text, "edit_history_tweet_ids": [tid]}
        if "created_at" in fields:
            out["created_at"] = self.pinned_tweet_created_at
        if "author_id" in fields:
            out["author_id"] = self.id
        if "conversation_id" in fields:
            out["conversation_id"] = tid
        if "lang" in fields:
            out["lang"] = "en"
        if "possibly_sensitive" in fields:
            out["possibly_sensitive"] = False
        if "reply_settings" in fields:
            out["reply_settings"] = "everyone"
        if "public_metrics" in fields:
            out["public_metrics"] = {
                "retweet_count": 0,
                "reply_count": 0,
                "like_count": 0,
                "quote_count": 0,
                "bookmark_count": 0,
                "impression_count": 0,
            }
        return out


@dataclass
class _AuthCode:
    user_id: str
    client_id: str
    redirect_uri: str
    challenge: str
    method: str
    scopes: tuple[str, ...]
    issued_at: float
    used: bool = False


@dataclass
class _AccessToken:
    user_id: str
    scopes: frozenset[str]
    expires_at: float
    revoked: bool = False


@dataclass
class _RefreshToken:
    user_id: str
    scopes: tuple[str, ...]
    used: bool = False
    revoked: bool = False


@dataclass
class _Window:
    reset_at: float
    used: int = 0


@dataclass(frozen=True)
class Principal:
    """Who an API request acts for; scopes is None for OAuth 1.0a tokens, which carry full app access."""

    user_id: str
    scopes: frozenset[str] | None


PRINCIPAL_KEY = web.RequestKey("principal", Principal)
RATE_HEADERS_KEY = web.RequestKey("rate_headers", dict[str, str])


class _Reject(Exception):
    """Carries a finished error response out of the checks an endpoint runs first."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def json_response(
    body: Any,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    content_type: str = JSON_CONTENT_TYPE,
) -> web.Response:
    """A response encoded the way X encodes it: compact JSON, `application/json; charset=utf-8`."""
    resp = web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
        headers=dict(headers or {}),
    )
    resp.headers["Content-Type"] = content_type
    return resp


def invalid_request(parameter: str, value: str, message: str) -> web.Response:
    """X's 400 for a parameter that fails validation."""
    return json_response(
        {
            "errors": [{"parameters": {parameter: [value]}, "message": message}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": PROBLEMS + "invalid-request",
        },
        400,
    )


def v11_error(error: tuple[int, str], status: int, headers: Mapping[str, str] | None = None) -> web.Response:
    """A v1.1 error: {"errors": [{"code": ..., "message": ...}]}."""
    return json_response(oauth1.v11_errors(error), status, headers, V11_CONTENT_TYPE)


def _form_text(body: Mapping[str, str], status: int = 200) -> web.Response:
    # X answers the OAuth 1.0a token endpoints with a form-encoded body labelled text/html.
    return web.Response(status=status, text=urlencode(body), content_type="text/html", charset="utf-8")


def _oauth_error(error: str, description: str, status: int = 400) -> web.Response:
    return json_response({"error": error, "error_description": description}, status)


def _html(body: str, status: int = 200, title: str = "X sandbox") -> web.Response:
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title>"
        "<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}li{margin:.3em 0}</style>"
        "</head><body>" + body + "</body></html>"
    )
    return web.Response(status=status, text=page, content_type="text/html", charset="utf-8")


def _with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _csv(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v]


class XEmulator:
    """The X API stand-in: holds users, mutes, tokens and rate-limit windows, and serves them over HTTP."""

    def __init__(
        self,
        *,
        users: int = 50,
        window_seconds: float = 900.0,
        client_id: str = "mutebot-sandbox",
        client_secret: str | None = None,
        redirect_uris: Sequence[str] = ("http://127.0.0.1:8080/oauth/callback",),
        access_token_ttl: int = 7200,
        clock: Callable[[], float] = time.time,
        consumer_key: str = "mutebot-sandbox-consumer",
        consumer_secret: str = "sandbox-consumer-secret",  # noqa: S107 -- a sandbox default, not a secret
    ) -> None:
        self.window_seconds = window_seconds
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = tuple(redirect_uris)
        self.access_token_ttl = access_token_ttl
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self._clock = clock
        self.error_rate = 0.0
        self.fail_next: dict[str, int] = {}  # endpoint key ("POST /2/users/:id/muting") -> 503s still to answer
        self.latency = 0.0
        self.endpoint_latency: dict[str, float] = {}  # endpoint key ("POST /2/oauth2/token") -> extra seconds
        self.usage_capped = False
        self.calls: collections.Counter[str] = collections.Counter()
        self.token_refreshes = 0
        self.base_url = ""
        self._rng = random.Random(0x5EED)
        self._users: dict[str, EmulatedUser] = {}
        self._by_name: dict[str, str] = {}
        self._next_id = FIRST_USER_ID
        # target id -> sequence number per muting user; higher is newer, which is the order X lists them.
        self._mutes: dict[str, dict[str, int]] = {}
        self._mute_seq = 0
        self._codes: dict[str, _AuthCode] = {}
        self._access: dict[str, _AccessToken] = {}
        self._refresh: dict[str, _RefreshToken] = {}
        self._windows: dict[tuple[str, str], _Window] = {}
        self._request_tokens: dict[str, oauth1.RequestToken] = {}
        self._oauth1: dict[str, oauth1.AccessCredential] = {}
        self._nonces: dict[tuple[str, str], float] = {}
        self._posts: dict[str, EmulatedPost] = {}
        self._next_post_id = posts.FIRST_POST_ID
        self._runner: web.AppRunner | None = None
        for i in range(1, users + 1):
            self._seed_user(i)
        self.app = web.Application(middlewares=[self._middleware])
        self._add_routes(self.app)

    # ------------------------------------------------------------------ knobs and state

    def _seed_user(self, i: int) -> EmulatedUser:
        user = self.add_user(f"user{i}", f"Sandbox User {i}")
        user.created_at = f"20{10 + i % 14:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}T12:00:00.000Z"
        user.description = f"Sandbox account number {i}."
        user.location = ("Lisbon", "Osaka", "Nairobi", None)[i % 4]
        user.protected = i % 10 == 0
        user.verified = i % 7 == 0
        user.verified_type = "blue" if user.verified else "none"
        user.public_metrics = {
            "followers_count": (i * 37) % 1000,
            "following_count": (i * 11) % 500,
            "tweet_count": i * 13,
            "listed_count": i % 5,
            "like_count": i * 3,
            "media_count": i % 9,
        }
        if i % 3 == 0:
            user.pinned_tweet_id = str(1_430_000_000_000_000_000 + i)
            user.pinned_tweet_text = f"Pinned post of user{i}."
        return user

    def add_user(self, username: str, name: str | None = None) -> EmulatedUser:
        """Create an account with the next numeric id; usernames follow X's pattern, unique ignoring case."""
        if not _USERNAME_RE.match(username):
            raise ValueError(f"username {username!r} does not match {USERNAME_PATTERN}")
        if username.lower() in self._by_name:
            raise ValueError(f"username {username!r} already exists")
        uid = str(self._next_id)
        self._next_id += 1
        metrics = {
            "followers_count": 0,
            "following_count": 0,
            "tweet_count": 0,
            "listed_count": 0,
            "like_count": 0,
            "media_count": 0,
        }
        user = EmulatedUser(id=uid, username=username, name=name or username, public_metrics=metrics)
        self._users[uid] = user
        self._by_name[username.lower()] = uid
        return user

    def user(self, username: str) -> EmulatedUser:
        """The account with this username, ignoring case; KeyError when there is none."""
        return self._users[self._by_name[username.lower()]]

    def user_by_id(self, user_id: str) -> EmulatedUser:
        """The account with this id; KeyError when there is none."""
        return self._users[user_id]

    @property
    def users(self) -> list[EmulatedUser]:
        """Every account, in creation order."""
        return list(self._users.values())

    def seed_mutes(self, username: str, targets: Sequence[str]) -> None:
        """Mute `targets` (usernames; missing ones are created) in order given: the last is the newest."""
        source = self.user(username)
        for target in targets:
            try:
                t = self.user(target)
            except KeyError:
                t = self.add_user(target)
            self._mute(source.id, t.id)

    def mutes_of(self, username: str) -> list[str]:
        """Ids muted by this account, newest first, as X lists them."""
        return self._muted_ids(self.user(username).id)

    def revoke_user(self, username: str) -> None:
        """Invalidate every access and refresh token the account has, as when a person revokes the app."""
        uid = self.user(username).id
        for a in self._access.values():
            if a.user_id == uid:
                a.revoked = True
        for r in self._refresh.values():
            if r.user_id == uid:
                r.revoked = True
        for c in self._oauth1.values():
            if c.user_id == uid:
                c.revoked = True

    def live_grants(self, username: str) -> dict[str, int]:
        """How many of the account's tokens still work: OAuth 2.0 access and refresh tokens, OAuth 1.0a tokens."""
        uid, now = self.user(username).id, self._clock()
        return {
            "access": sum(1 for a in self._access.values() if a.user_id == uid and not a.revoked
                          and now < a.expires_at),
            "refresh": sum(1 for r in self._refresh.values() if r.user_id == uid and not r.revoked and not r.used),
            "oauth1": sum(1 for c in self._oauth1.values() if c.user_id == uid and not c.revoked),
        }

    def expire_access_tokens(self) -> None:
        """Make every access token issued so far expired; refresh tokens keep working."""
        now = self._clock()
        for a in self._access.values():
            a.expires_at = min(a.expires_at, now)

    def issue_token(self, username: str, scopes: str = DEFAULT_SCOPES) -> dict[str, Any]:
        """A token response for this account as the token endpoint would give it, without the browser flow."""
        return self._grant(self.user(username).id, tuple(scopes.split()))

    def issue_oauth1_token(self, username: str) -> tuple[str, str]:
        """An OAuth 1.0a access token and secret for this account, without the three-legged flow."""
        return self._grant_oauth1(self.user(username).id)

    # ------------------------------------------------------------------ posts (knobs)

    def _account(self, username: str) -> EmulatedUser:
        try:
            return self.user(username)
        except KeyError:
            return self.add_user(username)

    def add_post(
        self, author: str, text: str = "", *, reply_to: str | None = None, quote_of: str | None = None,
        created_at: float | None = None,
    ) -> EmulatedPost:
        """A post by `author` (created when missing), optionally replying to or quoting another post."""
        user = self._account(author)
        pid = str(self._next_post_id)
        self._next_post_id += 1
        when = self._clock() if created_at is None else created_at
        conversation, reply_user = pid, None
        if reply_to is not None:
            parent = self._posts[reply_to]
            conversation, reply_user = parent.conversation_id, parent.author_id
        post = EmulatedPost(pid, user.id, text or f"Post {pid} by @{user.username}.", when, conversation,
                            in_reply_to_post_id=reply_to, in_reply_to_user_id=reply_user, quoted_post_id=quote_of)
        self._posts[pid] = post
        return post

    def repost(self, username: str, post_id: str) -> None:
        """`username` reposts the post (again: no change); the newest repost is listed first."""
        uid = self._account(username).id
        post = self._posts[post_id]
        if uid not in post.reposted_by:
            post.reposted_by.append(uid)

    def like(self, username: str, post_id: str) -> None:
        uid = self._account(username).id
        post = self._posts[post_id]
        if uid not in post.liked_by:
            post.liked_by.append(uid)

    def seed_post(
        self, author: str, *, repliers: Sequence[str] = (), quoters: Sequence[str] = (),
        reposters: Sequence[str] = (), likers: Sequence[str] = (), created_at: float | None = None,
        text: str = "",
    ) -> EmulatedPost:
        """A pile-on: a post, then one reply per replier and one quote per quoter (a minute apart, closer when
        that would pass now, in the order given), and the reposts and likes in order (the last is the newest).
        Missing accounts are created."""
        now = self._clock()
        start = now - 3600 if created_at is None else created_at
        # A minute apart, or closer when that would reach past now.
        step = min(60.0, max(now - start, 1.0) / (len(repliers) + len(quoters) + 1))
        post = self.add_post(author, text, created_at=start)
        for i, name in enumerate(repliers):
            self.add_post(name, f"@{self.user_by_id(post.author_id).username} reply {i + 1}", reply_to=post.id,
                          created_at=start + step * (i + 1))
        for i, name in enumerate(quoters):
            self.add_post(name, f"Quote {i + 1}", quote_of=post.id, created_at=start + step * (len(repliers) + i + 1))
        for name in reposters:
            self.repost(name, post.id)
        for name in likers:
            self.like(name, post.id)
        return post

    def post(self, post_id: str) -> EmulatedPost:
        """The post with this id (deleted ones too); KeyError when there is none."""
        return self._posts[post_id]

    @property
    def posts(self) -> list[EmulatedPost]:
        """Every post, in creation order."""
        return list(self._posts.values())

    def delete_post(self, post_id: str) -> None:
        """The author deletes it: X then answers as if it never existed."""
        self._posts[post_id].deleted = True

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 picks a free port); returns the base URL."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=LISTEN_BACKLOG)
        await site.start()
        bound = self._runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown}:{bound}"
        return self.base_url

    async def stop(self) -> None:
        """Stop serving; state stays, so a test can still inspect it."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> XEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ internals: state

    def _mute(self, source_id: str, target_id: str) -> None:
        mutes = self._mutes.setdefault(source_id, {})
        if target_id not in mutes:  # muting again keeps the original place in the list
            self._mute_seq += 1
            mutes[target_id] = self._mute_seq

    def _muted_ids(self, source_id: str) -> list[str]:
        mutes = self._mutes.get(source_id, {})
        return sorted(mutes, key=mutes.__getitem__, reverse=True)

    def _grant(self, user_id: str, scopes: tuple[str, ...]) -> dict[str, Any]:
        access = secrets.token_urlsafe(48)
        self._access[access] = _AccessToken(user_id, frozenset(scopes), self._clock() + self.access_token_ttl)
        body: dict[str, Any] = {
            "token_type": "bearer",
            "expires_in": self.access_token_ttl,
            "access_token": access,
            "scope": " ".join(scopes),
        }
        if "offline.access" in scopes:
            refresh = secrets.token_urlsafe(48)
            self._refresh[refresh] = _RefreshToken(user_id, scopes)
            body["refresh_token"] = refresh
        return body

    def _take(self, user_id: str, key: str) -> tuple[bool, dict[str, str]]:
        """Count one request in the (user, endpoint) window; False when the window is already used up."""
        now = self._clock()
        window = self._windows.get((user_id, key))
        if window is None or now >= window.reset_at:
            window = self._windows[(user_id, key)] = _Window(now + self.window_seconds)
        limit = RATE_LIMITS[key]
        allowed = window.used < limit
        if allowed:
            window.used += 1
        return allowed, self._rate_headers(limit, limit - window.used, window.reset_at)

    def _peek(self, user_id: str | None, key: str) -> dict[str, str]:
        limit = RATE_LIMITS[key]
        now = self._clock()
        window = self._windows.get((user_id, key)) if user_id else None
        if window is None or now >= window.reset_at:
            return self._rate_headers(limit, limit, now + self.window_seconds)
        return self._rate_headers(limit, limit - window.used, window.reset_at)

    @staticmethod
    def _rate_headers(limit: int, remaining: int, reset_at: float) -> dict[str, str]:
        return {
            "x-rate-limit-limit": str(limit),
            "x-rate-limit-remaining": str(max(remaining, 0)),
            "x-rate-limit-reset": str(math.ceil(reset_at)),
        }

    # ------------------------------------------------------------------ internals: HTTP plumbing

    def _add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/i/oauth2/authorize", self._authorize)
        r.add_post("/2/oauth2/token", self._token)
        r.add_post("/2/oauth2/revoke", self._revoke)
        r.add_get("/2/users/me", self._users_me)
        r.add_get("/2/users/by", self._users_by)
        r.add_get("/2/users/by/username/{username}", self._users_by_username)
        r.add_post("/2/users/{id}/muting", self._mute_user)
        r.add_get("/2/users/{id}/muting", self._list_mutes)
        r.add_delete("/2/users/{source_user_id}/muting/{target_user_id}", self._unmute_user)
        r.add_get("/2/tweets/search/recent", self._search_recent)
        r.add_get("/2/tweets/{id}", self._post_lookup)
        r.add_get("/2/tweets/{id}/quote_tweets", self._quote_posts)
        r.add_get("/2/tweets/{id}/retweeted_by", self._reposted_by)
        r.add_get("/2/tweets/{id}/liking_users", self._liking_users)
        r.add_post("/oauth/request_token", self._request_token)
        r.add_get("/oauth/authorize", self._oauth1_authorize)
        r.add_post("/oauth/access_token", self._access_token)
        r.add_post("/1.1/oauth/invalidate_token", self._invalidate_token)
        r.add_post("/1.1/oauth/invalidate_token.json", self._invalidate_token)  # the form X's example uses
        r.add_post("/1.1/mutes/users/create.json", self._v11_create)
        r.add_post("/1.1/mutes/users/destroy.json", self._v11_destroy)
        r.add_get("/1.1/mutes/users/ids.json", self._v11_ids)
        r.add_get("/1.1/mutes/users/list.json", self._v11_list)

    @staticmethod
    def _endpoint_key(request: web.Request) -> str | None:
        info = request.match_info
        if info.http_exception is not None:
            return None
        canonical = info.route.resource.canonical if info.route.resource is not None else request.path
        return f"{request.method} " + re.sub(r"\{(\w+)\}", r":\1", canonical)

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        key = self._endpoint_key(request)
        if key is not None:
            self.calls[key] += 1
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        if key is not None and self.endpoint_latency.get(key, 0.0) > 0:
            await asyncio.sleep(self.endpoint_latency[key])
        path = request.path
        is_api = path.startswith(("/2/", "/1.1/"))
        failing = key is not None and self.fail_next.get(key, 0) > 0
        if failing:
            self.fail_next[key] -= 1  # type: ignore[index]
        if is_api and (failing or (self.error_rate > 0 and self._rng.random() < self.error_rate)):
            resp: web.StreamResponse = (
                v11_error((130, "Over capacity"), 503)
                if path.startswith("/1.1/")
                else json_response(SERVICE_UNAVAILABLE_BODY, 503)
            )
        else:
            try:
                resp = await handler(request)
            except _Reject as rejected:
                resp = rejected.response
            except web.HTTPException as exc:
                if not is_api:
                    raise
                resp = (
                    json_response(NOT_FOUND_ROUTE_BODY, exc.status)
                    if exc.status == 404
                    else json_response(
                        {
                            "title": exc.reason,
                            "type": "about:blank",
                            "status": exc.status,
                            "detail": exc.reason,
                        },
                        exc.status,
                    )
                )
        if key in RATE_LIMITS and "x-rate-limit-limit" not in resp.headers:
            principal = request.get(PRINCIPAL_KEY)
            resp.headers.update(self._peek(principal.user_id if principal else None, str(key)))
        if resp.status == 429:
            self.calls["429"] += 1
        if is_api:
            resp.headers.setdefault("cache-control", "no-cache, no-store, max-age=0")
            resp.headers.setdefault("x-content-type-options", "nosniff")
        return resp

    async def _authenticate(self, request: web.Request) -> Principal | tuple[int, str]:
        """Who is calling, or the v1.1 error saying why nobody is."""
        auth = request.headers.get("Authorization", "")
        scheme, _, credentials = auth.partition(" ")
        if scheme.lower() == "bearer":
            token = self._access.get(credentials.strip())
            if token is None or token.revoked or self._clock() >= token.expires_at:
                return oauth1.BAD_TOKEN
            return Principal(token.user_id, token.scopes)
        params = oauth1.parse_authorization(auth)
        if params is None:
            return (215, "Bad Authentication data.")
        credential = self._oauth1.get(params.get("oauth_token", ""))
        if credential is None or credential.revoked:
            return oauth1.BAD_TOKEN
        if not await self._signed(request, params, credential.secret):
            return oauth1.BAD_SIGNATURE
        return Principal(credential.user_id, None)

    async def _signed(self, request: web.Request, params: Mapping[str, str], token_secret: str) -> bool:
        """Whether an OAuth 1.0a request carries a valid HMAC-SHA1 signature from our consumer, used once."""
        timestamp, nonce = params.get("oauth_timestamp", ""), params.get("oauth_nonce", "")
        if (
            params.get("oauth_consumer_key") != self.consumer_key
            or params.get("oauth_signature_method") != "HMAC-SHA1"
            or params.get("oauth_version", "1.0") != "1.0"
            or not timestamp.isdigit()
            or not nonce
            # Clients stamp requests with the wall clock, whatever clock the emulator runs on.
            or abs(time.time() - int(timestamp)) > OAUTH1_TIMESTAMP_SKEW
            or (nonce, timestamp) in self._nonces
        ):
            return False
        pairs = [(k, v) for k, v in params.items() if k != "oauth_signature"]
        pairs += [(k, v) for k, v in request.query.items()]
        if request.content_type == "application/x-www-form-urlencoded":
            pairs += [(k, v) for k, v in (await request.post()).items() if isinstance(v, str)]
        uri = oauth1.base_string_uri(request.scheme, request.host, request.url.raw_path)
        expected = oauth1.signature(request.method, uri, pairs, self.consumer_secret, token_secret)
        if not hmac.compare_digest(expected, params.get("oauth_signature", "")):
            return False
        self._remember_nonce(nonce, timestamp)
        return True

    def _remember_nonce(self, nonce: str, timestamp: str) -> None:
        now = time.time()
        if len(self._nonces) > 100_000:  # forget nonces whose timestamps are too old to be accepted anyway
            self._nonces = {k: t for k, t in self._nonces.items() if now - t <= OAUTH1_TIMESTAMP_SKEW}
        self._nonces[(nonce, timestamp)] = now

    async def _guard(self, request: web.Request, key: str, scopes: Iterable[str]) -> Principal:
        """The steps X takes before an endpoint runs: authentication, spend cap, rate limit, scopes."""
        v11 = request.path.startswith("/1.1/")
        principal = await self._authenticate(request)
        if not isinstance(principal, Principal):
            if v11:
                raise _Reject(v11_error(principal, 400 if principal[0] == 215 else 401))
            raise _Reject(json_response(UNAUTHORIZED_BODY, 401))
        request[PRINCIPAL_KEY] = principal
        if self.usage_capped:
            raise _Reject(json_response(USAGE_CAPPED_BODY, 429, self._peek(principal.user_id, key)))
        allowed, headers = self._take(principal.user_id, key)
        if not allowed:
            if v11:
                raise _Reject(v11_error(oauth1.RATE_LIMITED, 429, headers))
            raise _Reject(json_response(TOO_MANY_REQUESTS_BODY, 429, headers))
        request[RATE_HEADERS_KEY] = headers
        if v11 and principal.scopes is not None:
            # v1.1 is OAuth 1.0a only; an OAuth 2.0 user token does not open it.
            raise _Reject(v11_error((220, "Your credentials do not allow access to this resource."), 403, headers))
        if principal.scopes is not None and not set(scopes) <= principal.scopes:
            raise _Reject(self._api_json(request, FORBIDDEN_BODY, 403))
        return principal

    @staticmethod
    def _api_json(request: web.Request, body: Any, status: int = 200) -> web.Response:
        return json_response(body, status, request.get(RATE_HEADERS_KEY))

    def _fields(self, request: web.Request) -> tuple[frozenset[str], frozenset[str], str | None]:
        """user.fields, tweet.fields (or post.fields) and the pinned-post expansion, validated as X does."""
        q = request.query
        user_fields = _csv(q.get("user.fields"))
        for f in user_fields:
            if f not in USER_FIELDS and f != "pinned_post_id":
                raise _Reject(self._invalid_enum(request, "user.fields", f, USER_FIELDS))
        tweet_param = "post.fields" if "post.fields" in q else "tweet.fields"
        tweet_fields = _csv(q.get(tweet_param))
        for f in tweet_fields:
            if f not in TWEET_FIELDS:
                raise _Reject(self._invalid_enum(request, tweet_param, f, TWEET_FIELDS))
        pinned: str | None = None
        for e in _csv(q.get("expansions")):
            if e not in USER_EXPANSIONS:
                raise _Reject(self._invalid_enum(request, "expansions", e, USER_EXPANSIONS))
            if e in ("pinned_tweet_id", "pinned_post_id"):
                pinned = e
        return frozenset(user_fields), frozenset(tweet_fields), pinned

    def _invalid_enum(self, request: web.Request, param: str, value: str, allowed: Iterable[str]) -> web.Response:
        resp = invalid_request(
            param,
            value,
            f"The `{param}` query parameter value [{value}] is not one of [{','.join(sorted(allowed))}]",
        )
        resp.headers.update(request.get(RATE_HEADERS_KEY) or {})
        return resp

    def _invalid(self, request: web.Request, param: str, value: str, message: str) -> _Reject:
        resp = invalid_request(param, value, message)
        resp.headers.update(request.get(RATE_HEADERS_KEY) or {})
        return _Reject(resp)

    def _check_user_id(self, request: web.Request, param: str) -> str:
        value = request.match_info[param]
        if not _USER_ID_RE.match(value):
            raise self._invalid(
                request,
                param,
                value,
                f"The `{param}` query parameter value [{value}] does not match {USER_ID_PATTERN}",
            )
        return value

    def _render_users(self, request: web.Request, users: Sequence[EmulatedUser], single: bool) -> dict[str, Any]:
        user_fields, tweet_fields, pinned = self._fields(request)
        pinned_key = "pinned_post_id" if pinned == "pinned_post_id" else "pinned_tweet_id"
        if pinned:
            user_fields = user_fields | {pinned_key}
        data = [u.v2(user_fields, pinned_key) for u in users]
        body: dict[str, Any] = {}
        if data:
            body["data"] = data[0] if single else data
        if pinned:
            tweets = [u.pinned_tweet(tweet_fields) for u in users if u.pinned_tweet_id]
            if tweets:
                body["includes"] = {"posts" if pinned == "pinned_post_id" else "tweets": tweets}
        return body

    @staticmethod
    def _not_found(username: str, parameter: str) -> dict[str, Any]:
        return {
            "value": username,
            "detail": f"Could not find user with {parameter}: [{username}].",
            "title": "Not Found Error",
            "resource_type": "user",
            "parameter": parameter,
            "resource_id": username,
            "type": PROBLEMS + "resource-not-found",
        }

    # ------------------------------------------------------------------ OAuth 2.0

    async def _authorize(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("client_id") != self.client_id:
            return _html(
                "<h1>Something went wrong</h1><p>You weren't able to give access to the App. "
                "The client_id is not a registered app.</p>",
                400,
                "Authorization error",
            )
        redirect_uri = q.get("redirect_uri", "")
        if redirect_uri not in self.redirect_uris:
            return _html(
                "<h1>Something went wrong</h1><p>You weren't able to give access to the App. "
                "The redirect_uri does not match the app's callback URLs.</p>",
                400,
                "Authorization error",
            )
        state = q.get("state")

        def back(**params: str) -> web.Response:
            if state is not None:
                params["state"] = state
            return web.Response(status=302, headers={"Location": _with_query(redirect_uri, params)})

        if q.get("response_type") != "code":
            return back(error="unsupported_response_type")
        scopes = tuple(q.get("scope", "").split())
        if not scopes or not set(scopes) <= KNOWN_SCOPES:
            return back(error="invalid_scope")
        challenge, method = q.get("code_challenge", ""), q.get("code_challenge_method", "plain")
        if not challenge or method not in ("S256", "plain") or not state:
            return back(error="invalid_request")
        if q.get("deny"):
            return back(error="access_denied")
        login = q.get("login")
        if login is None:
            return self._authorize_page(request, scopes)
        try:
            user = self.user(login)
        except KeyError:
            return _html(
                f"<h1>No such account</h1><p>There is no sandbox account named <b>{html.escape(login)}</b>.</p>",
                400,
                "Authorization error",
            )
        code = secrets.token_urlsafe(48)
        self._codes[code] = _AuthCode(user.id, self.client_id, redirect_uri, challenge, method, scopes, self._clock())
        return back(code=code)

    def _authorize_page(self, request: web.Request, scopes: Sequence[str]) -> web.Response:
        base = dict(request.query)
        items = "".join(
            f"<li><a href='{html.escape(_with_query(request.path, {**base, 'login': u.username}))}'>"
            f"Authorize as @{html.escape(u.username)}</a> ({html.escape(u.name)})</li>"
            for u in self._users.values()
        )
        deny = html.escape(_with_query(request.path, {**base, "deny": "1"}))
        body = (
            f"<h1>{html.escape(self.client_id)} wants to access your X account</h1>"
            f"<p>Scopes: {html.escape(' '.join(scopes))}</p>"
            f"<p>Pick the sandbox account to approve as:</p><ul>{items}</ul>"
            f"<p><a href='{deny}'>Cancel (deny access)</a></p>"
        )
        return _html(body, 200, "Authorize app")

    def _client_auth(self, request: web.Request, form: Mapping[str, str]) -> web.Response | None:
        """None when the client authenticated the way its type requires, else X's refusal."""
        auth = request.headers.get("Authorization", "")
        basic: tuple[str, str] | None = None
        if auth.lower().startswith("basic "):
            try:
                raw = base64.b64decode(auth[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return _oauth_error("invalid_client", "Malformed authorization header", 401)
            cid, _, secret = raw.partition(":")
            basic = (
                dict(parse_qsl("a=" + cid)).get("a", cid),
                dict(parse_qsl("a=" + secret)).get("a", secret),
            )
        if self.client_secret is not None:
            if basic is None:
                return _oauth_error("unauthorized_client", "Missing valid authorization header", 401)
            if basic[0] != self.client_id or not hmac.compare_digest(basic[1], self.client_secret):
                return _oauth_error("invalid_client", "Client authentication failed", 401)
            return None
        client_id = basic[0] if basic is not None else form.get("client_id")
        if client_id is None:
            return _oauth_error("invalid_request", "Missing required parameter [client_id].")
        if client_id != self.client_id:
            return _oauth_error("invalid_client", "Client authentication failed", 401)
        return None

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        refused = self._client_auth(request, form)
        if refused is not None:
            return refused
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange_code(form)
        if grant_type == "refresh_token":
            return self._refresh_grant(form)
        if grant_type is None:
            return _oauth_error("invalid_request", "Missing required parameter [grant_type].")
        return _oauth_error("unsupported_grant_type", f"Grant type [{grant_type}] is not supported.")

    def _exchange_code(self, form: Mapping[str, str]) -> web.Response:
        for required in ("code", "redirect_uri", "code_verifier"):
            if not form.get(required):
                return _oauth_error("invalid_request", f"Missing required parameter [{required}].")
        code = self._codes.get(form["code"])
        invalid = _oauth_error("invalid_grant", "Value passed for the authorization code was invalid.")
        if code is None or code.used:
            return invalid
        code.used = True  # presented once, spent, whatever the outcome
        if self._clock() - code.issued_at > AUTH_CODE_TTL:
            return invalid
        if form["redirect_uri"] != code.redirect_uri:
            return _oauth_error("invalid_grant", "Value passed for the redirect uri did not match.")
        verifier = form["code_verifier"]
        expected = _s256(verifier) if code.method == "S256" else verifier
        if not hmac.compare_digest(expected, code.challenge):
            return _oauth_error("invalid_grant", "Value passed for the code verifier did not match the code challenge.")
        return json_response(self._grant(code.user_id, code.scopes))

    def _refresh_grant(self, form: Mapping[str, str]) -> web.Response:
        value = form.get("refresh_token")
        if not value:
            return _oauth_error("invalid_request", "Missing required parameter [refresh_token].")
        refresh = self._refresh.get(value)
        if refresh is None or refresh.used or refresh.revoked:
            return _oauth_error("invalid_grant", "Value passed for the token was invalid.")
        refresh.used = True  # X rotates refresh tokens: each one works exactly once
        self.token_refreshes += 1
        return json_response(self._grant(refresh.user_id, refresh.scopes))

    async def _revoke(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        refused = self._client_auth(request, form)
        if refused is not None:
            return refused
        token = form.get("token")
        if not token:
            return _oauth_error("invalid_request", "Missing required parameter [token].")
        if token in self._access:
            self._access[token].revoked = True
        if token in self._refresh:
            self._refresh[token].revoked = True
        return json_response({"revoked": True})

    # ------------------------------------------------------------------ users

    async def _users_me(self, request: web.Request) -> web.Response:
        principal = await self._guard(request, "GET /2/users/me", ("tweet.read", "users.read"))
        return self._api_json(request, self._render_users(request, [self._users[principal.user_id]], True))

    async def _users_by_username(self, request: web.Request) -> web.Response:
        await self._guard(request, "GET /2/users/by/username/:username", ("tweet.read", "users.read"))
        username = request.match_info["username"]
        if not _USERNAME_RE.match(username):
            raise self._invalid(
                request,
                "username",
                username,
                f"The `username` query parameter value [{username}] does not match {USERNAME_PATTERN}",
            )
        try:
            user = self.user(username)
        except KeyError:
            self._fields(request)
            return self._api_json(request, {"errors": [self._not_found(username, "username")]})
        return self._api_json(request, self._render_users(request, [user], True))

    async def _users_by(self, request: web.Request) -> web.Response:
        await self._guard(request, "GET /2/users/by", ("tweet.read", "users.read"))
        raw = request.query.get("usernames")
        if raw is None:
            raise self._invalid(request, "usernames", "", "The `usernames` query parameter can not be empty")
        names = raw.split(",")
        if not 1 <= len(names) <= 100:
            raise self._invalid(
                request,
                "usernames",
                raw,
                f"The number of values in the `usernames` query parameter list [{len(names)}] is not between 1 and 100",
            )
        for name in names:
            if not _USERNAME_RE.match(name):
                raise self._invalid(
                    request,
                    "usernames",
                    name,
                    f"The `usernames` query parameter value [{name}] does not match {USERNAME_PATTERN}",
                )
        found: list[EmulatedUser] = []
        errors: list[dict[str, Any]] = []
        seen: set[str] = set()
        for name in names:
            if name.lower() in seen:
                continue
            seen.add(name.lower())
            try:
                found.append(self.user(name))
            except KeyError:
                errors.append(self._not_found(name, "usernames"))
        body = self._render_users(request, found, False)
        if errors:
            body["errors"] = errors
        return self._api_json(request, body)

    # ------------------------------------------------------------------ mutes

    def _own_id(self, request: web.Request, principal: Principal, param: str) -> str:
        uid = self._check_user_id(request, param)
        if uid != principal.user_id:
            raise _Reject(self._api_json(request, NOT_PERMITTED_BODY, 403))
        return uid

    def _target(self, request: web.Request, source_id: str, target_id: str, where: str) -> str:
        if not _USER_ID_RE.match(target_id):
            raise self._invalid(
                request,
                "target_user_id",
                target_id,
                f"The `target_user_id` {where} value [{target_id}] does not match {USER_ID_PATTERN}",
            )
        if target_id not in self._users:
            raise self._invalid(
                request,
                "target_user_id",
                target_id,
                f"The `target_user_id` {where} value [{target_id}] does not refer to an existing user",
            )
        if target_id == source_id:
            raise self._invalid(request, "target_user_id", target_id, "You cannot mute yourself")
        return target_id

    async def _mute_user(self, request: web.Request) -> web.Response:
        principal = await self._guard(request, "POST /2/users/:id/muting", ("tweet.read", "users.read", "mute.write"))
        source = self._own_id(request, principal, "id")
        try:
            payload = json.loads(await request.read() or b"null")
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or not isinstance(payload.get("target_user_id"), str):
            shown = "" if not isinstance(payload, dict) else str(payload.get("target_user_id", ""))
            raise self._invalid(
                request,
                "target_user_id",
                shown,
                "The `target_user_id` body parameter is required and must be a string",
            )
        target = self._target(request, source, payload["target_user_id"], "body parameter")
        self._mute(source, target)
        return self._api_json(request, {"data": {"muting": True}})

    async def _unmute_user(self, request: web.Request) -> web.Response:
        key = "DELETE /2/users/:source_user_id/muting/:target_user_id"
        principal = await self._guard(request, key, ("tweet.read", "users.read", "mute.write"))
        source = self._own_id(request, principal, "source_user_id")
        target = self._target(request, source, request.match_info["target_user_id"], "path parameter")
        self._mutes.get(source, {}).pop(target, None)
        return self._api_json(request, {"data": {"muting": False}})

    async def _list_mutes(self, request: web.Request) -> web.Response:
        principal = await self._guard(request, "GET /2/users/:id/muting", ("tweet.read", "users.read", "mute.read"))
        source = self._own_id(request, principal, "id")
        raw_max = request.query.get("max_results", "100")
        try:
            max_results = int(raw_max)
        except ValueError:
            raise self._invalid(
                request,
                "max_results",
                raw_max,
                f"The `max_results` query parameter value [{raw_max}] is not a valid number",
            ) from None
        if not 1 <= max_results <= 1000:
            raise self._invalid(
                request,
                "max_results",
                raw_max,
                f"The `max_results` query parameter value [{raw_max}] is not between 1 and 1000",
            )
        mutes = self._mutes.get(source, {})
        ordered = sorted(mutes.items(), key=lambda kv: kv[1], reverse=True)  # newest (highest seq) first
        token = request.query.get("pagination_token")
        if token is None:
            page = ordered[:max_results]
        else:
            cursor = self._decode_cursor(token)
            if cursor is None:
                raise self._invalid(
                    request,
                    "pagination_token",
                    token,
                    f"The `pagination_token` query parameter value [{token}] is not valid",
                )
            direction, seq = cursor
            if direction == "n":
                page = [kv for kv in ordered if kv[1] < seq][:max_results]
            else:
                newer = [kv for kv in ordered if kv[1] > seq]
                page = newer[-max_results:]
        body = self._render_users(request, [self._users[t] for t, _ in page], False)
        meta: dict[str, Any] = {"result_count": len(page)}
        if page:
            if ordered[0][1] > page[0][1]:
                meta["previous_token"] = self._encode_cursor("p", page[0][1])
            if ordered and page[-1][1] > ordered[-1][1]:
                meta["next_token"] = self._encode_cursor("n", page[-1][1])
        body["meta"] = meta
        return self._api_json(request, body)

    # ------------------------------------------------------------------ posts

    def _post_fields(
        self, request: web.Request, expansions: frozenset[str]
    ) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
        """user.fields, post.fields (or tweet.fields) and expansions, validated as X does."""
        q = request.query
        user_fields = _csv(q.get("user.fields"))
        for f in user_fields:
            if f not in USER_FIELDS:
                raise _Reject(self._invalid_enum(request, "user.fields", f, USER_FIELDS))
        tweet_param = "post.fields" if "post.fields" in q else "tweet.fields"
        tweet_fields = _csv(q.get(tweet_param))
        for f in tweet_fields:
            if f not in TWEET_FIELDS and f != "referenced_posts":
                raise _Reject(self._invalid_enum(request, tweet_param, f, TWEET_FIELDS))
        wanted = _csv(q.get("expansions"))
        for e in wanted:
            if e not in expansions:
                raise _Reject(self._invalid_enum(request, "expansions", e, expansions))
        return frozenset(user_fields), frozenset(tweet_fields), frozenset(wanted)

    def _post_id(self, request: web.Request) -> str:
        value = request.match_info["id"]
        if not _USER_ID_RE.match(value):
            raise self._invalid(request, "id", value,
                                f"The `id` query parameter value [{value}] does not match {USER_ID_PATTERN}")
        return value

    def _visible(self, post: EmulatedPost, viewer: str) -> bool:
        """Deleted posts are gone; a protected account's posts show only to itself (the emulator has no
        followers to let in)."""
        return not post.deleted and (post.author_id == viewer or not self._users[post.author_id].protected)

    def _replies_and_quotes(self, post: EmulatedPost) -> tuple[int, int]:
        live = [p for p in self._posts.values() if not p.deleted]
        return (sum(1 for p in live if p.in_reply_to_post_id == post.id),
                sum(1 for p in live if p.quoted_post_id == post.id))

    def _render_posts(
        self, request: web.Request, found: Sequence[EmulatedPost], single: bool
    ) -> dict[str, Any]:
        user_fields, tweet_fields, expansions = self._post_fields(request, posts.POST_EXPANSIONS)
        fields = tweet_fields | ({"referenced_tweets"} if "referenced_tweets.id" in expansions else frozenset())
        if "author_id" in expansions:  # X puts the expanded id in the post object too
            fields |= {"author_id"}
        data = [p.v2(fields, *self._replies_and_quotes(p)) for p in found]
        body: dict[str, Any] = {}
        if data:
            body["data"] = data[0] if single else data
        if "author_id" in expansions and found:
            authors = list(dict.fromkeys(p.author_id for p in found))
            body["includes"] = {"users": [self._users[a].v2(user_fields) for a in authors]}
        return body

    def _max_results(self, request: web.Request, lo: int, hi: int, default: int) -> int:
        raw = request.query.get("max_results", str(default))
        try:
            value = int(raw)
        except ValueError:
            raise self._invalid(request, "max_results", raw,
                                f"The `max_results` query parameter value [{raw}] is not a valid number") from None
        if not lo <= value <= hi:
            raise self._invalid(request, "max_results", raw,
                                f"The `max_results` query parameter value [{raw}] is not between {lo} and {hi}")
        return value

    def _page_start(self, request: web.Request, param: str = "pagination_token") -> int:
        """Where a page starts: 0, or the position a previous page's next_token carries."""
        token = request.query.get(param)
        if token is None:
            return 0
        cursor = self._decode_cursor(token)
        if cursor is None or cursor[0] != "n":
            raise self._invalid(request, param, token,
                                f"The `{param}` query parameter value [{token}] is not valid")
        return cursor[1]

    def _lookup_error(self, post_id: str, viewer: str) -> dict[str, Any] | None:
        post = self._posts.get(post_id)
        if post is None or post.deleted:
            return posts.post_not_found(post_id)
        if not self._visible(post, viewer):
            return posts.post_not_authorized(post_id)
        return None

    async def _post_lookup(self, request: web.Request) -> web.Response:
        principal = await self._guard(request, "GET /2/tweets/:id", ("tweet.read", "users.read"))
        post_id = self._post_id(request)
        self._post_fields(request, posts.POST_EXPANSIONS)
        error = self._lookup_error(post_id, principal.user_id)
        if error is not None:  # X answers 200 with the problem in `errors`
            return self._api_json(request, {"errors": [error]})
        return self._api_json(request, self._render_posts(request, [self._posts[post_id]], True))

    async def _search_recent(self, request: web.Request) -> web.Response:
        principal = await self._guard(request, "GET /2/tweets/search/recent", ("tweet.read", "users.read"))
        q = request.query
        raw = q.get("query")
        if not raw:
            raise self._invalid(request, "query", "", "The `query` query parameter can not be empty")
        if len(raw) > 4096:
            raise self._invalid(request, "query", raw[:50], "The `query` query parameter is longer than 4096")
        parsed = posts.parse_query(raw)
        if isinstance(parsed, str):
            raise self._invalid(request, "query", raw, parsed)
        max_results = self._max_results(request, 10, 100, 10)
        if "next_token" in q and "pagination_token" in q:
            raise self._invalid(request, "pagination_token", q["pagination_token"],
                                "At most one of `pagination_token`, `next_token` may be provided.")
        start = self._page_start(request, "next_token" if "next_token" in q else "pagination_token")
        if q.get("sort_order") and q["sort_order"] not in posts.SORT_ORDERS:
            raise self._invalid_enum_reject(request, "sort_order", q["sort_order"], posts.SORT_ORDERS)
        now = self._clock()
        earliest = now - posts.RECENT_SEARCH_SECONDS
        latest = now
        for param in ("start_time", "end_time"):
            if param in q:
                at = posts.parse_iso(q[param])
                if at is None:
                    raise self._invalid(request, param, q[param],
                                        f"The `{param}` query parameter value [{q[param]}] is not a valid time")
                if at < earliest:
                    raise self._invalid(request, param, q[param],
                                        f"Invalid '{param}':'{q[param]}'. '{param}' must be on or after "
                                        f"{posts.iso(earliest)}")
                if param == "start_time":
                    earliest = at
                else:
                    latest = at
        for param in ("since_id", "until_id"):
            if param in q and not _USER_ID_RE.match(q[param]):
                raise self._invalid(request, param, q[param],
                                    f"The `{param}` query parameter value [{q[param]}] does not match "
                                    f"{USER_ID_PATTERN}")
        matches = posts.newest_first(
            p for p in self._posts.values()
            if self._visible(p, principal.user_id) and earliest <= p.created_at <= latest
            and ("since_id" not in q or int(p.id) > int(q["since_id"]))
            and ("until_id" not in q or int(p.id) < int(q["until_id"]))
            and parsed.matches(p, self._users[p.author_id].username)
        )
        page = matches[start:start + max_results]
        body = self._render_posts(request, page, False)
        meta: dict[str, Any] = {"result_count": len(page)}
        if page:
            meta["newest_id"], meta["oldest_id"] = page[0].id, page[-1].id
        if start + max_results < len(matches):
            meta["next_token"] = self._encode_cursor("n", start + max_results)
        body["meta"] = meta
        return self._api_json(request, body)

    def _invalid_enum_reject(self, request: web.Request, param: str, value: str, allowed: Iterable[str]) -> _Reject:
        return _Reject(self._invalid_enum(request, param, value, allowed))

    async def _quote_posts(self, request: web.Request) -> web.Response:
        principal = await self._guard(request, "GET /2/tweets/:id/quote_tweets", ("tweet.read", "users.read"))
        post_id = self._post_id(request)
        max_results = self._max_results(request, 10, 100, 10)
        start = self._page_start(request)
        for value in _csv(request.query.get("exclude")):
            if value not in posts.QUOTE_EXCLUDES:
                raise self._invalid_enum_reject(request, "exclude", value, posts.QUOTE_EXCLUDES)
        self._post_fields(request, posts.POST_EXPANSIONS)
        error = self._lookup_error(post_id, principal.user_id)
        if error is not None:
            return self._api_json(request, {"errors": [error]})
        excluded = set(_csv(request.query.get("exclude")))
        quotes = posts.newest_first(
            p for p in self._posts.values()
            if p.quoted_post_id == post_id and self._visible(p, principal.user_id)
            and not ("replies" in excluded and p.in_reply_to_post_id is not None)
        )
        page = quotes[start:start + max_results]
        body = self._render_posts(request, page, False)
        meta: dict[str, Any] = {"result_count": len(page)}
        if start + max_results < len(quotes):
            meta["next_token"] = self._encode_cursor("n", start + max_results)
        body["meta"] = meta
        return self._api_json(request, body)

    async def _post_accounts(self, request: web.Request, key: str, scopes: Sequence[str], likes: bool
                             ) -> web.Response:
        """liking_users and retweeted_by: the 100 most recent accounts, newest first, in pages."""
        principal = await self._guard(request, key, scopes)
        post_id = self._post_id(request)
        max_results = self._max_results(request, 1, 100, 100)
        start = self._page_start(request)
        error = self._lookup_error(post_id, principal.user_id)
        if error is not None:
            self._fields(request)
            return self._api_json(request, {"errors": [error]})
        post = self._posts[post_id]
        ids = posts.recent_accounts(post.liked_by if likes else post.reposted_by)
        page = ids[start:start + max_results]
        body = self._render_users(request, [self._users[u] for u in page], False)
        meta: dict[str, Any] = {"result_count": len(page)}
        if start > 0:
            meta["previous_token"] = self._encode_cursor("p", start)
        if start + max_results < len(ids):
            meta["next_token"] = self._encode_cursor("n", start + max_results)
        body["meta"] = meta
        return self._api_json(request, body)

    async def _reposted_by(self, request: web.Request) -> web.Response:
        return await self._post_accounts(request, "GET /2/tweets/:id/retweeted_by", ("tweet.read", "users.read"),
                                         likes=False)

    async def _liking_users(self, request: web.Request) -> web.Response:
        # The only one of these that needs like.read (openapi.json getPostsLikingUsers security).
        return await self._post_accounts(request, "GET /2/tweets/:id/liking_users",
                                         ("tweet.read", "like.read", "users.read"), likes=True)

    # ------------------------------------------------------------------ OAuth 1.0a

    def _grant_oauth1(self, user_id: str) -> tuple[str, str]:
        # X's access tokens start with the account's numeric id (docs/003 tells people to read it from there).
        token, secret = f"{user_id}-{secrets.token_urlsafe(30)}", secrets.token_urlsafe(32)
        self._oauth1[token] = oauth1.AccessCredential(secret, user_id)
        return token, secret

    async def _request_token(self, request: web.Request) -> web.Response:
        params = oauth1.parse_authorization(request.headers.get("Authorization", ""))
        if params is None:
            return v11_error((215, "Bad Authentication data."), 400)
        if not await self._signed(request, params, ""):
            return v11_error(oauth1.BAD_SIGNATURE, 401)
        callback = params.get("oauth_callback") or request.query.get("oauth_callback", "")
        if callback != "oob" and callback not in self.redirect_uris:
            return v11_error(oauth1.CALLBACK_NOT_APPROVED, 403)
        token = oauth1.RequestToken(secrets.token_urlsafe(24), secrets.token_urlsafe(32), callback, self._clock())
        self._request_tokens[token.token] = token
        return _form_text(
            {
                "oauth_token": token.token,
                "oauth_token_secret": token.secret,
                "oauth_callback_confirmed": "true",
            }
        )

    def _live_request_token(self, value: str) -> oauth1.RequestToken | None:
        token = self._request_tokens.get(value)
        if token is None or token.used or self._clock() - token.created_at > REQUEST_TOKEN_TTL:
            return None
        return token

    async def _oauth1_authorize(self, request: web.Request) -> web.Response:
        q = request.query
        token = self._live_request_token(q.get("oauth_token", ""))
        if token is None:
            return _html(
                "<h1>This page is no longer valid</h1><p>It looks like someone already used the token "
                "information you provided, or it has expired.</p>",
                400,
                "Authorization error",
            )
        if q.get("deny"):
            self._request_tokens.pop(token.token, None)
            if token.callback == "oob":
                return _html("<h1>You have not authorized the app</h1>", 200, "Authorization denied")
            return web.Response(status=302, headers={"Location": _with_query(token.callback, {"denied": token.token})})
        login = q.get("login")
        if login is None:
            base = dict(q)
            items = "".join(
                f"<li><a href='{html.escape(_with_query(request.path, {**base, 'login': u.username}))}'>"
                f"Authorize as @{html.escape(u.username)}</a> ({html.escape(u.name)})</li>"
                for u in self._users.values()
            )
            deny = html.escape(_with_query(request.path, {**base, "deny": "1"}))
            return _html(
                f"<h1>Authorize {html.escape(self.consumer_key)} to use your account?</h1>"
                f"<p>Pick the sandbox account to approve as:</p><ul>{items}</ul>"
                f"<p><a href='{deny}'>Cancel</a></p>",
                200,
                "Authorize app",
            )
        try:
            user = self.user(login)
        except KeyError:
            return _html(
                f"<h1>No such account</h1><p>There is no sandbox account named <b>{html.escape(login)}</b>.</p>",
                400,
                "Authorization error",
            )
        token.user_id = user.id
        if token.callback == "oob":
            token.verifier = f"{secrets.randbelow(10**7):07d}"
            return _html(f"<p>Enter this PIN to complete authorization: <code>{token.verifier}</code></p>")
        token.verifier = secrets.token_urlsafe(24)
        location = _with_query(token.callback, {"oauth_token": token.token, "oauth_verifier": token.verifier})
        return web.Response(status=302, headers={"Location": location})

    async def _access_token(self, request: web.Request) -> web.Response:
        params = oauth1.parse_authorization(request.headers.get("Authorization", ""))
        if params is None:
            return v11_error((215, "Bad Authentication data."), 400)
        token = self._live_request_token(params.get("oauth_token", ""))
        if token is None:
            return web.Response(status=401, text="Invalid request token.", content_type="text/plain")
        if not await self._signed(request, params, token.secret):
            return v11_error(oauth1.BAD_SIGNATURE, 401)
        form = await request.post() if request.content_type == "application/x-www-form-urlencoded" else {}
        verifier = params.get("oauth_verifier") or request.query.get("oauth_verifier") or form.get("oauth_verifier")
        if token.user_id is None or token.verifier is None or verifier != token.verifier:
            return web.Response(
                status=401,
                text="Error processing your OAuth request: Invalid oauth_verifier parameter",
                content_type="text/plain",
            )
        token.used = True
        access, secret = self._grant_oauth1(token.user_id)
        user = self._users[token.user_id]
        return _form_text(
            {
                "oauth_token": access,
                "oauth_token_secret": secret,
                "user_id": user.id,
                "screen_name": user.username,
            }
        )

    async def _invalidate_token(self, request: web.Request) -> web.Response:
        """POST /1.1/oauth/invalidate_token, as X documents it (developer.x.com, authentication API reference,
        "POST oauth/invalidate_token"): signed in user context with the very token to end; answers 200
        {"access_token": TOKEN}; once invalidated, the token answers 401 with code 89."""
        principal = await self._authenticate(request)
        if not isinstance(principal, Principal):
            return v11_error(principal, 400 if principal[0] == 215 else 401)
        if principal.scopes is not None:  # an OAuth 2.0 bearer token is not an OAuth 1.0a access token
            return v11_error((220, "Your credentials do not allow access to this resource."), 403)
        params = oauth1.parse_authorization(request.headers.get("Authorization", "")) or {}
        token = params.get("oauth_token", "")
        self._oauth1[token].revoked = True
        return json_response({"access_token": token})

    # ------------------------------------------------------------------ v1.1 mutes

    async def _v11_params(self, request: web.Request) -> dict[str, str]:
        params = dict(request.query)
        if request.content_type == "application/x-www-form-urlencoded":
            params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        return params

    def _v11_json(self, request: web.Request, body: Any) -> web.Response:
        return json_response(body, 200, request.get(RATE_HEADERS_KEY), V11_CONTENT_TYPE)

    def _v11_reject(self, request: web.Request, error: tuple[int, str], status: int) -> _Reject:
        return _Reject(v11_error(error, status, request.get(RATE_HEADERS_KEY)))

    async def _v11_target(self, request: web.Request, principal: Principal) -> EmulatedUser:
        params = await self._v11_params(request)
        if params.get("user_id"):  # user_id wins when both are given, as the reference page implies
            target = self._users.get(params["user_id"])
        elif params.get("screen_name"):
            try:
                target = self.user(params["screen_name"].lstrip("@"))
            except KeyError:
                target = None
        else:
            raise self._v11_reject(request, oauth1.MISSING_USER, 400)
        if target is None:
            raise self._v11_reject(request, oauth1.NO_SUCH_USER, 404)
        if target.id == principal.user_id:
            raise self._v11_reject(request, oauth1.MUTE_SELF, 403)
        return target

    async def _v11_create(self, request: web.Request) -> web.Response:
        principal = await self._guard(request, "POST /1.1/mutes/users/create.json", ())
        target = await self._v11_target(request, principal)
        self._mute(principal.user_id, target.id)
        return self._v11_json(request, oauth1.v11_user(target, muting=True))

    async def _v11_destroy(self, request: web.Request) -> web.Response:
        principal = await self._guard(request, "POST /1.1/mutes/users/destroy.json", ())
        target = await self._v11_target(request, principal)
        if self._mutes.get(principal.user_id, {}).pop(target.id, None) is None:
            raise self._v11_reject(request, oauth1.NOT_MUTING, 403)
        return self._v11_json(request, oauth1.v11_user(target, muting=False))

    def _v11_page(self, request: web.Request, source_id: str, count: int) -> tuple[list[str], dict[str, Any]]:
        """One cursor page of muted ids (newest first) and X's cursor fields for it."""
        raw = request.query.get("cursor", "-1")
        try:
            cursor = int(raw)
        except ValueError:
            raise self._v11_reject(request, (44, "cursor parameter is invalid"), 400) from None
        mutes = self._mutes.get(source_id, {})
        ordered = sorted(mutes.items(), key=lambda kv: kv[1], reverse=True)
        if cursor == -1 or cursor == 0:
            page = ordered[:count] if cursor == -1 else []
        elif cursor > 0:
            page = [kv for kv in ordered if kv[1] < cursor - V11_CURSOR_BASE][:count]
        else:
            page = [kv for kv in ordered if kv[1] > -cursor - V11_CURSOR_BASE][-count:]
        next_cursor = previous_cursor = 0
        if page and page[-1][1] > ordered[-1][1]:
            next_cursor = V11_CURSOR_BASE + page[-1][1]
        if page and page[0][1] < ordered[0][1]:
            previous_cursor = -(V11_CURSOR_BASE + page[0][1])
        cursors = {
            "next_cursor": next_cursor,
            "next_cursor_str": str(next_cursor),
            "previous_cursor": previous_cursor,
            "previous_cursor_str": str(previous_cursor),
        }
        return [t for t, _ in page], cursors

    @staticmethod
    def _count(request: web.Request, default: int, maximum: int) -> int:
        try:
            return max(1, min(int(request.query.get("count", default)), maximum))
        except ValueError:
            return default

    async def _v11_ids(self, request: web.Request) -> web.Response:
        principal = await self._guard(request, "GET /1.1/mutes/users/ids.json", ())
        ids, cursors = self._v11_page(request, principal.user_id, self._count(request, 5000, 5000))
        stringify = request.query.get("stringify_ids", "").lower() in ("true", "1", "t")
        return self._v11_json(request, {"ids": ids if stringify else [int(i) for i in ids], **cursors})

    async def _v11_list(self, request: web.Request) -> web.Response:
        principal = await self._guard(request, "GET /1.1/mutes/users/list.json", ())
        ids, cursors = self._v11_page(request, principal.user_id, self._count(request, 20, 200))
        skip_status = request.query.get("skip_status", "").lower() in ("true", "1", "t")
        users = []
        for uid in ids:
            obj = oauth1.v11_user(self._users[uid], muting=True)
            if skip_status:
                obj.pop("status", None)
            users.append(obj)
        return self._v11_json(request, {"users": users, **cursors})

    @staticmethod
    def _encode_cursor(direction: str, seq: int) -> str:
        # Opaque base32 like X's; they carry the page boundary, so paging survives edits between calls.
        return base64.b32encode(f"{direction}{seq:012d}".encode()).decode().rstrip("=")

    @staticmethod
    def _decode_cursor(token: str) -> tuple[str, int] | None:
        try:
            raw = base64.b32decode(token + "=" * (-len(token) % 8)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        if len(raw) != 13 or raw[0] not in "np" or not raw[1:].isdigit():
            return None
        return raw[0], int(raw[1:])


def seed_pile_on(emulator: XEmulator) -> EmulatedPost:
    """A pile-on to try `/mutelist capture` on: replies, quotes, reposts and likes from overlapping crowds."""
    crowd = [f"crowd{i}" for i in range(1, 81)]
    return emulator.seed_post("user2", text="A post that drew a pile-on.", repliers=crowd[:30],
                              quoters=crowd[25:35], reposters=crowd[30:50], likers=crowd[40:80])


def post_url(emulator: XEmulator, post: EmulatedPost) -> str:
    return f"https://x.com/{emulator.user_by_id(post.author_id).username}/status/{post.id}"


def _how_to(emulator: XEmulator) -> str:
    users = emulator.users
    names = ", ".join(u.username for u in users[:3]) + (f" … {users[-1].username}" if len(users) > 3 else "")
    kind = "a confidential client: HTTP Basic at the token endpoint" if emulator.client_secret else "a public client"
    return "\n".join(
        [
            f"X API emulator listening on {emulator.base_url}",
            "Point mutebot at it:",
            f"  X_API_BASE={emulator.base_url}",
            f"  X_AUTHORIZE_URL={emulator.base_url}/i/oauth2/authorize",
            f"  X_CLIENT_ID={emulator.client_id}   ({kind})",
            f"  redirect URIs accepted: {', '.join(emulator.redirect_uris)}",
            f"  or OAuth 1.0a: X_AUTH=oauth1 X_CONSUMER_KEY={emulator.consumer_key}"
            f" X_CONSUMER_SECRET={emulator.consumer_secret}",
            f"Seeded accounts ({len(users)}): {names or 'none'}",
            *(f"A pile-on post to try /mutelist capture on: {post_url(emulator, p)}"
              for p in emulator.posts if p.in_reply_to_post_id is None and p.quoted_post_id is None),
            "The authorization page lets you pick an account; scripts add login=<username> (or deny=1).",
            f"Rate-limit windows last {emulator.window_seconds:g} s. Press Ctrl+C to stop.",
        ]
    )


def run_sandbox(
    *,
    host: str,
    port: int,
    users: int,
    window_seconds: float,
    client_id: str,
    client_secret: str | None,
    redirect_uris: Sequence[str],
) -> int:
    """Serve the emulator until SIGINT/SIGTERM, after printing its base URL and how to point mutebot at it."""

    async def serve() -> None:
        emulator = XEmulator(
            users=users,
            window_seconds=window_seconds,
            client_id=client_id,
            client_secret=client_secret,
            redirect_uris=tuple(redirect_uris) or ("http://127.0.0.1:8080/oauth/callback",),
        )
        seed_pile_on(emulator)
        await emulator.start(host, port)
        print(_how_to(emulator), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Windows event loops have no signal handlers; Ctrl+C still ends asyncio.run there.
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await emulator.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0
