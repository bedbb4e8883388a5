"""Posts for the X emulator: the post object, who replied, quoted, reposted and liked, and recent search's query.

Shapes and limits are X's (openapi.json 2.167: getPostsById, searchPostsRecent, getPostsQuotedPosts,
getPostsRepostedBy, getPostsLikingUsers); the field names are the ones X's responses carry (`edit_history_tweet_ids`,
`referenced_tweets`, `retweet_count`), which the spec's newer names rename.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

FIRST_POST_ID = 1_800_000_000_000_000_001
# X's recent search covers the last 7 days (searchPostsRecent: "from the last 7 days").
RECENT_SEARCH_SECONDS = 7 * 24 * 3600.0
# liking_users and retweeted_by list at most the 100 most recent accounts (X's reference pages for both).
RECENT_ACCOUNTS_CAP = 100

# The expansions a post lookup, search or quote page accepts (the spec's list with X's older names beside the
# newer ones, as clients send either).
POST_EXPANSIONS = frozenset(
    {
        "article.cover_media",
        "article.media_entities",
        "attachments.media_keys",
        "attachments.media_source_tweet",
        "attachments.poll_ids",
        "author_id",
        "edit_history_post_ids",
        "edit_history_tweet_ids",
        "entities.mentions.username",
        "geo.place_id",
        "in_reply_to_user_id",
        "referenced_posts",
        "referenced_tweets.id",
        "referenced_tweets.id.author_id",
        "username",
    }
)
QUOTE_EXCLUDES = frozenset({"replies", "retweets"})
SORT_ORDERS = frozenset({"recency", "relevancy"})
# The operators recent search knows that the emulator answers; another known one is refused rather than
# silently ignored, so a query never matches more than X would.
_OPERATOR = re.compile(r"^(-?)(conversation_id|from|is|in_reply_to_tweet_id|quotes_of_tweet_id):(\S+)$")
_KNOWN_IS = frozenset({"reply", "quote", "retweet"})


def iso(ts: float) -> str:
    """X's timestamps: UTC, milliseconds, `Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def parse_iso(text: str) -> float | None:
    """An RFC 3339 time as X accepts it (`YYYY-MM-DDTHH:mm:ssZ`, fractions allowed), or None."""
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?Z", text)
    if m is None:
        return None
    try:
        whole = calendar.timegm((int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6]), 0, 0, 0))
    except ValueError:
        return None
    return whole + (float(m[7]) if m[7] else 0.0)


@dataclass
class EmulatedPost:
    """One post: who wrote it, when, what it replies to or quotes, and who reposted and liked it (in order)."""

    id: str
    author_id: str
    text: str
    created_at: float
    conversation_id: str
    in_reply_to_post_id: str | None = None
    in_reply_to_user_id: str | None = None
    quoted_post_id: str | None = None
    deleted: bool = False
    reposted_by: list[str] = field(default_factory=list)  # user ids, oldest first
    liked_by: list[str] = field(default_factory=list)

    def v2(self, fields: frozenset[str], replies: int = 0, quotes: int = 0) -> dict[str, Any]:
        """The v2 post object: X's defaults (id, text, edit history) plus the requested fields."""
        out: dict[str, Any] = {"id": self.id, "text": self.text, "edit_history_tweet_ids": [self.id]}
        if "author_id" in fields:
            out["author_id"] = self.author_id
        if "created_at" in fields:
            out["created_at"] = iso(self.created_at)
        if "conversation_id" in fields:
            out["conversation_id"] = self.conversation_id
        if "in_reply_to_user_id" in fields and self.in_reply_to_user_id:
            out["in_reply_to_user_id"] = self.in_reply_to_user_id
        if "referenced_tweets" in fields or "referenced_posts" in fields:
            refs = []
            if self.in_reply_to_post_id:
                refs.append({"type": "replied_to", "id": self.in_reply_to_post_id})
            if self.quoted_post_id:
                refs.append({"type": "quoted", "id": self.quoted_post_id})
            if refs:
                out["referenced_tweets"] = refs
        if "lang" in fields:
            out["lang"] = "en"
        if "possibly_sensitive" in fields:
            out["possibly_sensitive"] = False
        if "reply_settings" in fields:
            out["reply_settings"] = "everyone"
        if "public_metrics" in fields:
            out["public_metrics"] = {
                "retweet_count": len(self.reposted_by),
                "reply_count": replies,
                "like_count": len(self.liked_by),
                "quote_count": quotes,
                "bookmark_count": 0,
                "impression_count": 10 * (len(self.liked_by) + replies + quotes) + 1,
            }
        return out


@dataclass(frozen=True)
class SearchQuery:
    """A recent-search query as the emulator understands it: operators that must hold, and words."""

    conversation_ids: frozenset[str] = frozenset()
    from_names: frozenset[str] = frozenset()
    is_flags: frozenset[str] = frozenset()
    not_flags: frozenset[str] = frozenset()
    reply_to: frozenset[str] = frozenset()
    quotes_of: frozenset[str] = frozenset()
    words: tuple[str, ...] = ()

    def matches(self, post: EmulatedPost, author_name: str) -> bool:
        flags = {"reply": post.in_reply_to_post_id is not None, "quote": post.quoted_post_id is not None,
                 "retweet": False}
        return (
            all(post.conversation_id == c for c in self.conversation_ids)
            and all(author_name.lower() == n.lower() for n in self.from_names)
            and all(flags[f] for f in self.is_flags)
            and not any(flags[f] for f in self.not_flags)
            and all(post.in_reply_to_post_id == r for r in self.reply_to)
            and all(post.quoted_post_id == q for q in self.quotes_of)
            and all(w.lower() in post.text.lower() for w in self.words)
        )


def parse_query(text: str) -> SearchQuery | str:
    """The query, or why X would refuse it."""
    conv: set[str] = set()
    names: set[str] = set()
    is_flags: set[str] = set()
    not_flags: set[str] = set()
    reply_to: set[str] = set()
    quotes: set[str] = set()
    words: list[str] = []
    for token in text.split():
        m = _OPERATOR.match(token)
        if m is None:
            if ":" in token and not token.startswith(("http:", "https:")):
                return f"Reference to invalid operator '{token.split(':', 1)[0].lstrip('-')}'."
            if token.startswith("-"):
                return f"The query term '{token}' cannot be negated here."
            words.append(token.strip('"'))
            continue
        negated, operator, value = m[1] == "-", m[2], m[3]
        if operator == "is":
            if value not in _KNOWN_IS:
                return f"Reference to invalid field 'is:{value}'."
            (not_flags if negated else is_flags).add(value)
            continue
        if negated:
            return f"The operator '{operator}' cannot be negated here."
        if operator in ("conversation_id", "in_reply_to_tweet_id", "quotes_of_tweet_id") and not value.isdigit():
            return f"Invalid value '{value}' for the operator '{operator}'."
        {"conversation_id": conv, "from": names, "in_reply_to_tweet_id": reply_to,
         "quotes_of_tweet_id": quotes}[operator].add(value)
    if not (conv or names or reply_to or quotes or words or is_flags):
        return "There were errors processing your request: the query has no term that can be searched."
    return SearchQuery(frozenset(conv), frozenset(names), frozenset(is_flags), frozenset(not_flags),
                       frozenset(reply_to), frozenset(quotes), tuple(words))


def newest_first(posts: Iterable[EmulatedPost]) -> list[EmulatedPost]:
    """X lists search results and quotes newest first; ids grow with time, so the id breaks ties."""
    return sorted(posts, key=lambda p: (p.created_at, int(p.id)), reverse=True)


def recent_accounts(user_ids: Sequence[str]) -> list[str]:
    """The accounts a liking_users or retweeted_by page may show: the 100 most recent, newest first."""
    return list(reversed(user_ids))[:RECENT_ACCOUNTS_CAP]


def post_not_found(post_id: str, parameter: str = "id") -> dict[str, Any]:
    """X's problem for a post that does not exist or was deleted (X does not tell the two apart)."""
    return {
        "value": post_id,
        "detail": f"Could not find tweet with {parameter}: [{post_id}].",
        "title": "Not Found Error",
        "resource_type": "tweet",
        "parameter": parameter,
        "resource_id": post_id,
        "type": "https://api.x.com/2/problems/resource-not-found",
    }


def post_not_authorized(post_id: str, parameter: str = "id") -> dict[str, Any]:
    """X's problem for a protected account's post that the caller may not see."""
    return {
        "value": post_id,
        "detail": f"Sorry, you are not authorized to see the Tweet with {parameter}: [{post_id}].",
        "title": "Authorization Error",
        "resource_type": "tweet",
        "parameter": parameter,
        "resource_id": post_id,
        "type": "https://api.x.com/2/problems/not-authorized-for-resource",
    }
