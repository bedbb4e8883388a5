"""One function that turns what a member types into an X username, or says why it cannot be one."""

from __future__ import annotations

import re
from typing import NewType
from urllib.parse import urlsplit

from bot.text import code_span

# A username that passed `normalize_username`: services take this type, so input is parsed once, at the
# command boundary (cogs use the `UsernameOption` transformer in bot/options.py).
Username = NewType("Username", str)

_VALID = re.compile(r"^[A-Za-z0-9_]{1,15}$")
_HOSTS = {"x.com", "twitter.com", "mobile.twitter.com", "mobile.x.com", "www.x.com", "www.twitter.com"}
# First path segments that are X's own pages, never profiles.
_RESERVED = {"home", "i", "intent", "search", "settings", "explore", "messages", "notifications", "login",
             "logout", "signup", "tos", "privacy", "hashtag", "share", "compose"}


class InvalidUsername(ValueError):
    """The text cannot be an X username; `reason` is a sentence for the member."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(reason)
        self.text = text
        self.reason = reason


def normalize_username(text: str) -> Username:
    """`name`, `@name`, `https://x.com/name`, twitter.com / mobile.twitter.com links, any case,
    trailing slash or query: returns `name` as typed (case kept; X matches case-insensitively)."""
    raw = text.strip()
    if not raw:
        raise InvalidUsername(text, "Type an X username, like `@jack` or `https://x.com/jack`.")
    candidate = raw
    lowered = raw.lower()
    looks_like_url = "://" in raw or any(lowered.startswith(host + "/") or lowered == host for host in _HOSTS)
    if looks_like_url:
        parts = urlsplit(raw if "://" in raw else "https://" + raw)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or host not in _HOSTS:
            raise InvalidUsername(text, "That link is not an x.com or twitter.com profile link.")
        segments = [s for s in parts.path.split("/") if s]
        if not segments:
            raise InvalidUsername(text, "That link has no username in it; use a profile link like `https://x.com/jack`.")
        candidate = segments[0]
        if candidate.lower() in _RESERVED:
            raise InvalidUsername(text, f"{code_span(candidate)} is a page on X, not a profile.")
    candidate = candidate.removeprefix("@")
    if not candidate:
        raise InvalidUsername(text, "Type the username after the `@`.")
    if len(candidate) > 15:
        raise InvalidUsername(text, "X usernames are at most 15 characters long.")
    if not _VALID.match(candidate):
        raise InvalidUsername(text, "X usernames contain only letters, digits and underscores.")
    return Username(candidate)
