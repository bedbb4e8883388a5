"""One function that turns what a member types into an X username, or says why it cannot be one."""

from __future__ import annotations

import re
from typing import NewType
from urllib.parse import urlsplit

from bot.errors import InvalidUsername as InvalidUsername

# A username that passed `normalize_username`: services take this type, so input is parsed once, at the
# command boundary (cogs use the `UsernameOption` transformer in bot/options.py).
Username = NewType("Username", str)

_VALID = re.compile(r"^[A-Za-z0-9_]{1,15}$")
_HOSTS = {"x.com", "twitter.com", "mobile.twitter.com", "mobile.x.com", "www.x.com", "www.twitter.com"}
_HOST_PREFIXES = tuple(host + "/" for host in _HOSTS)
# First path segments that are X's own pages, never profiles.
_RESERVED = {"home", "i", "intent", "search", "settings", "explore", "messages", "notifications", "login",
             "logout", "signup", "tos", "privacy", "hashtag", "share", "compose"}


def normalize_username(text: str) -> Username:
    """`name`, `@name`, `https://x.com/name`, twitter.com / mobile.twitter.com links, any case,
    trailing slash or query: returns `name` as typed (case kept; X matches case-insensitively)."""
    raw = text.strip()
    if not raw:
        raise InvalidUsername(text, "empty")
    candidate = raw
    lowered = raw.lower()
    looks_like_url = "://" in raw or lowered.startswith(_HOST_PREFIXES) or lowered in _HOSTS
    if looks_like_url:
        parts = urlsplit(raw if "://" in raw else "https://" + raw)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or host not in _HOSTS:
            raise InvalidUsername(text, "not_x_link")
        segments = [s for s in parts.path.split("/") if s]
        if not segments:
            raise InvalidUsername(text, "no_username")
        candidate = segments[0]
        if candidate.lower() in _RESERVED:
            raise InvalidUsername(text, "x_page", candidate)
    candidate = candidate.removeprefix("@")
    if not candidate:
        raise InvalidUsername(text, "only_at")
    if len(candidate) > 15:
        raise InvalidUsername(text, "too_long")
    if not _VALID.match(candidate):
        raise InvalidUsername(text, "characters")
    return Username(candidate)
