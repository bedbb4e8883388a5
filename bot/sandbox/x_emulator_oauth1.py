"""OAuth 1.0a signature checking and v1.1 user objects for the X API emulator."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

if TYPE_CHECKING:
    from bot.sandbox.x_emulator import EmulatedUser

# v1.1 error bodies, as X sends them: {"errors": [{"code": N, "message": ...}]}
BAD_SIGNATURE = (32, "Could not authenticate you.")
BAD_TOKEN = (89, "Invalid or expired token.")
RATE_LIMITED = (88, "Rate limit exceeded")
NO_SUCH_USER = (50, "User not found.")
MISSING_USER = (38, "screen_name or user_id parameter is missing.")
MUTE_SELF = (271, "You can't mute yourself.")
NOT_MUTING = (272, "You are not muting the specified user.")
CALLBACK_NOT_APPROVED = (
    415,
    "Callback URL not approved for this client application. "
    "Approved callback URLs can be adjusted in your application settings",
)


def v11_errors(error: tuple[int, str]) -> dict[str, Any]:
    return {"errors": [{"code": error[0], "message": error[1]}]}


def percent_encode(value: str) -> str:
    """RFC 5849 section 3.6: everything but unreserved characters, UTF-8 first."""
    return quote(value, safe="~")


def parse_authorization(header: str) -> dict[str, str] | None:
    """The parameters of an `Authorization: OAuth ...` header, or None when it is not one."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "oauth":
        return None
    params: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        params[unquote(key.strip())] = unquote(value.strip().strip('"'))
    params.pop("realm", None)
    return params


def base_string_uri(scheme: str, host: str, raw_path: str) -> str:
    """RFC 5849 section 3.4.1.2: lower-case scheme and host, default ports dropped, no query."""
    scheme, host = scheme.lower(), host.lower()
    if (scheme, host.rpartition(":")[2]) in (("http", "80"), ("https", "443")):
        host = host.rpartition(":")[0]
    return f"{scheme}://{host}{raw_path}"


def signature(
    method: str,
    uri: str,
    params: Iterable[tuple[str, str]],
    consumer_secret: str,
    token_secret: str = "",
) -> str:
    """The HMAC-SHA1 signature of a request (RFC 5849 section 3.4.2); `params` exclude oauth_signature."""
    pairs = sorted((percent_encode(k), percent_encode(v)) for k, v in params)
    normalized = "&".join(f"{k}={v}" for k, v in pairs)
    base = "&".join((method.upper(), percent_encode(uri), percent_encode(normalized)))
    key = f"{percent_encode(consumer_secret)}&{percent_encode(token_secret)}"
    digest = hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@dataclass
class RequestToken:
    """A temporary credential between request_token and access_token."""

    token: str
    secret: str
    callback: str
    created_at: float
    user_id: str | None = None
    verifier: str | None = None
    used: bool = False


@dataclass
class AccessCredential:
    """A long-lived OAuth 1.0a user token; X's never expire, only revocation ends them."""

    secret: str
    user_id: str
    revoked: bool = False


def _twitter_date(iso: str) -> str:
    """X's v2 ISO timestamps in the v1.1 `created_at` format ("Wed Jul 08 15:40:42 +0000 2009")."""
    moment = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%a %b %d %H:%M:%S +0000 %Y")


def v11_user(user: EmulatedUser, *, muting: bool, following: bool = False) -> dict[str, Any]:
    """The full v1.1 user object, shaped like docs/000's example response."""
    metrics: Mapping[str, int] = user.public_metrics
    image = user.profile_image_url
    out: dict[str, Any] = {
        "id": int(user.id),
        "id_str": user.id,
        "name": user.name,
        "screen_name": user.username,
        "location": user.location or "",
        "description": user.description,
        "url": user.url or None,
        "entities": {"description": {"urls": []}},
        "protected": user.protected,
        "followers_count": metrics.get("followers_count", 0),
        "friends_count": metrics.get("following_count", 0),
        "listed_count": metrics.get("listed_count", 0),
        "created_at": _twitter_date(user.created_at),
        "favourites_count": metrics.get("like_count", 0),
        "utc_offset": None,
        "time_zone": None,
        "geo_enabled": False,
        "verified": user.verified,
        "statuses_count": metrics.get("tweet_count", 0),
        "lang": None,
        "contributors_enabled": False,
        "is_translator": False,
        "is_translation_enabled": False,
        "profile_background_color": "F5F8FA",
        "profile_background_image_url": None,
        "profile_background_image_url_https": None,
        "profile_background_tile": False,
        "profile_image_url": image.replace("https://", "http://", 1),
        "profile_image_url_https": image,
        "profile_link_color": "1DA1F2",
        "profile_sidebar_border_color": "C0DEED",
        "profile_sidebar_fill_color": "DDEEF6",
        "profile_text_color": "333333",
        "profile_use_background_image": True,
        "default_profile": True,
        "default_profile_image": "default_profile" in image,
        "following": following,
        "follow_request_sent": False,
        "notifications": False,
        "muting": muting,
    }
    if user.pinned_tweet_id:
        tid = user.pinned_tweet_id
        out["status"] = {
            "created_at": _twitter_date(user.pinned_tweet_created_at),
            "id": int(tid),
            "id_str": tid,
            "text": user.pinned_tweet_text,
            "source": '<a href="https://x.com" rel="nofollow">X Web App</a>',
            "truncated": False,
            "in_reply_to_status_id": None,
            "in_reply_to_status_id_str": None,
            "in_reply_to_user_id": None,
            "in_reply_to_user_id_str": None,
            "in_reply_to_screen_name": None,
            "geo": None,
            "coordinates": None,
            "place": None,
            "contributors": None,
            "retweet_count": 0,
            "favorite_count": 0,
            "entities": {"hashtags": [], "symbols": [], "urls": [], "user_mentions": []},
            "favorited": False,
            "retweeted": False,
            "possibly_sensitive": False,
            "lang": "en",
        }
    return out
