"""Domain errors of the engine, and the one place that turns any of them into words for people."""

from __future__ import annotations

import csv
from dataclasses import dataclass

from bot.text import code_span
from bot.x_client import (
    XError,
    XForbidden,
    XInvalidRequest,
    XPostNotFound,
    XRateLimited,
    XUnauthorized,
    XUnavailable,
    XUsageCapped,
    XUserNotFound,
)


class MutebotError(Exception):
    """An expected failure whose message is already fit for the member."""


# -- what members type ------------------------------------------------------------------------------------

# Why a text cannot be an X username (bot/usernames.py says which); {page} is the X page a link pointed at.
USERNAME_REASONS = {
    "empty": "Type an X username, like `@jack` or `https://x.com/jack`.",
    "not_x_link": "That link is not an x.com or twitter.com profile link.",
    "no_username": "That link has no username in it; use a profile link like `https://x.com/jack`.",
    "x_page": "{page} is a page on X, not a profile.",
    "only_at": "Type the username after the `@`.",
    "too_long": "X usernames are at most 15 characters long.",
    "characters": "X usernames contain only letters, digits and underscores.",
}


class InvalidUsername(ValueError):
    """The text cannot be an X username: `kind` (a key of USERNAME_REASONS) says why, `reason` in a sentence
    for the member (bot/usernames.py raises it; it is no MutebotError, as describe() quotes the text first)."""

    def __init__(self, text: str, kind: str, page: str = "") -> None:
        reason = USERNAME_REASONS[kind].format(page=code_span(page))
        super().__init__(reason)
        self.text = text
        self.kind = kind
        self.reason = reason


DURATION_HOW = ("Write a number and a unit: m (minutes), h (hours), d (days) or w (weeks), for example `30m`, "
                "`12h`, `7d`, `2w`, or combined as `1d12h`; from 1 minute to 365 days.")
# What is wrong with a typed duration (bot/durations.py says which); {typed} is what was typed.
DURATION_PROBLEMS = {
    "empty": "The duration is empty.",
    "unknown": "{typed} is not a duration mutebot understands.",
    "repeated_unit": "Each unit may appear once.",
    "too_short": "A timed mute lasts at least 1 minute.",
    "too_long": "A timed mute lasts at most 365 days.",
}


class InvalidDuration(MutebotError):
    """A duration mutebot cannot use: `kind` is a key of DURATION_PROBLEMS."""

    def __init__(self, kind: str, typed: str = "") -> None:
        problem = DURATION_PROBLEMS[kind].format(typed=code_span(typed))
        super().__init__(f"{problem} {DURATION_HOW} Nothing was changed.")
        self.kind = kind


class NotLinked(MutebotError):
    def __init__(self) -> None:
        super().__init__("You have not linked an X account yet. Use `/link` to connect yours (it takes a minute).")


class RelinkRequired(MutebotError):
    def __init__(self) -> None:
        super().__init__(
            "X no longer accepts mutebot's access to your account (it was revoked or expired). "
            "Use `/link` again to reconnect; your queued work waits until then."
        )


class LinkUnreadable(RelinkRequired):
    """A stored token that no configured TOKEN_ENCRYPTION_KEY decrypts: only a new link helps."""

    def __init__(self) -> None:
        MutebotError.__init__(
            self,
            "mutebot can no longer read the access it stored for your X account (its encryption key was changed), "
            "so your link needs relinking: use `/link` again to reconnect; your queued work waits until then.",
        )


class LinkNotStarted(MutebotError):
    """X did not give an OAuth 1.0a request token, so /link has no link to offer."""

    def __init__(self) -> None:
        super().__init__("X did not start the authorization; please try `/link` again in a minute.")


# -- the link pages (bot/web.py shows them in the browser) --------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    title: str
    page: str


# Why a link cannot go on, in words for the person in front of the browser: one reason always has the same
# heading, whichever step of the flow found it.
LINK_REFUSALS = {
    "unknown": Refusal("Link not recognised", "This link is unknown. Start again with /link in Discord."),
    "used": Refusal("Link already used",
                    "This link was already used. If your account is not linked yet, run /link again."),
    "expired": Refusal("Link expired",
                       "This link has expired (links last 10 minutes). Run /link again in Discord."),
    "unreadable": Refusal("Link no longer usable",
                          "This link can no longer be used (mutebot's keys changed since it was made). Run /link "
                          "again."),
    "opened_elsewhere": Refusal("Link opened in another browser", (
        "This link was already opened in another browser, so it cannot be used here. If you started it yourself, "
        "run /link again in Discord and finish in the browser that opens. If someone sent it to you, do not use it."
    )),
    "other_browser": Refusal("Finished in another browser", (
        "This authorization was finished in a different browser from the one that opened the link, so nothing was "
        "linked. If you started it yourself, run /link again in Discord and finish in the same browser. If someone "
        "sent you this link, it would have connected your X account to their Discord account: ignore it."
    )),
    "incomplete": Refusal("Link incomplete", (
        "This address is incomplete, so nothing was linked. Open the button mutebot sent you in Discord, or run "
        "/link for a new one."
    )),
    "cancelled": Refusal("Linking cancelled", "You cancelled the authorization on X, so nothing was linked. Run "
                         "/link again whenever you like."),
    # Failures of the flow itself at X: "Linking failed".
    "code_refused": Refusal("Linking failed",
                            "X did not accept this authorization (it may have expired). Run /link again."),
    "no_account": Refusal("Linking failed", "X did not tell us which account you approved. Run /link again."),
    "token_refused": Refusal("Linking failed", "X did not accept this authorization. Run /link again."),
    "x_error": Refusal("Linking failed", "X reported an error; nothing was linked. Run /link again."),
}


class LinkFailed(Exception):
    """The callback cannot link: `kind` is a key of LINK_REFUSALS; `title` heads the page and `page` says why, in
    words for a person."""

    def __init__(self, kind: str) -> None:
        refusal = LINK_REFUSALS[kind]
        super().__init__(refusal.page)
        self.kind = kind
        self.title, self.page = refusal.title, refusal.page


# -- queued actions -----------------------------------------------------------------------------------------

# Why a queued action was skipped or cancelled, stored as its outcome and shown in its job's summary.
ACTION_OUTCOMES = {
    "unmuted_by_you": "you unmuted it yourself",
    "muted_by_you": "you muted it yourself",
    "already_unmuted": "already unmuted by you",
    "held_elsewhere": "another list you follow mutes it",
    "unlinked": "your X account was unlinked",
    "relinked": "you linked another X account",
}


def gave_up(reason: str, attempts: int) -> str:
    """The outcome of an action the queue stopped retrying: why the last attempt failed, and how many it made."""
    return f"{reason} (gave up after {attempts} attempts)"


class SelfMute(MutebotError):
    def __init__(self) -> None:
        super().__init__("That is your own X account; X does not let you mute yourself.")


class NotModerator(MutebotError):
    def __init__(self) -> None:
        super().__init__("Only moderators (members with the Manage Server permission) can change mute lists.")


class ChannelElsewhere(MutebotError):
    def __init__(self) -> None:
        super().__init__("That channel is not one of this server's text channels; pick one of this server's.")


class GuildOnly(MutebotError):
    def __init__(self) -> None:
        super().__init__("This command works inside a server, not in DMs.")


class ProgressUnavailable(MutebotError):
    def __init__(self) -> None:
        super().__init__("Progress reporting is not available right now.")


# -- mute lists ---------------------------------------------------------------------------------------------


class ListNotFound(MutebotError):
    def __init__(self, name: str) -> None:
        super().__init__(f"This server has no mute list called {code_span(name[:50])}. `/mutelist all` shows them.")


class ListGone(MutebotError):
    """A list that was there a moment ago (a page flip, a button) and has been deleted since."""

    def __init__(self) -> None:
        super().__init__("This mute list no longer exists.")


class InvalidListName(MutebotError):
    def __init__(self) -> None:
        super().__init__("A list name is 1–50 characters: letters, digits, spaces, `-`, `_` and `.`, "
                         "starting with a letter or digit.")


class DuplicateList(MutebotError):
    def __init__(self, existing: str) -> None:
        super().__init__(f"This server already has a list called {code_span(existing)} (names ignore case).")


class NotOnList(MutebotError):
    def __init__(self, typed: str, list_name: str) -> None:
        super().__init__(f"@{typed.lstrip('@')[:50]} is not on the list {code_span(list_name)}.")


class ModeratorNotLinked(MutebotError):
    """A moderator's change looks accounts up through their own link, which is missing or broken (`cause`)."""

    def __init__(self, cause: MutebotError) -> None:
        super().__init__("Entries are looked up on X with your own linked X account. " + str(cause))


class ProtectedAccount(MutebotError):
    def __init__(self, username: str) -> None:
        super().__init__(f"@{username} is protected in this server, so no list here may hold it "
                         "(`/mutelist unprotect` lifts that).")


class NotProtected(MutebotError):
    def __init__(self, typed: str) -> None:
        super().__init__(f"@{typed.lstrip('@')[:50]} is not protected in this server.")


class ImportTooLarge(MutebotError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"That file is larger than {max_bytes // 1_000_000} MB; split it up.")


class ImportNotText(MutebotError):
    def __init__(self) -> None:
        super().__init__("That file is not UTF-8 text; save it as CSV (UTF-8) or plain text.")


class ImportTooManyRows(MutebotError):
    def __init__(self, rows: int, max_rows: int) -> None:
        super().__init__(f"That file has {rows:,} rows; an import takes at most {max_rows:,}. Nothing was added.")


class UnreadableCsv(MutebotError):
    """The csv module gave up on the file: say where, and why in words, never as an incident."""

    def __init__(self, line: int, error: csv.Error) -> None:
        detail = str(error)  # the csv module's own message, matched to say it in the member's words
        if "field larger than field limit" in detail:
            why = f"a cell is longer than {csv.field_size_limit():,} characters"
        elif "quote" in detail or "unexpected end of data" in detail or "expected after" in detail:
            why = 'a quote (`"`) is not closed, or text follows a closing quote'
        else:
            why = "it is not valid CSV"
        super().__init__(f"That file cannot be read from line {line}: {why}. Nothing was added; "
                         "fix that line (or save the file again as CSV) and import it again.")
        self.line = line


# -- captures -------------------------------------------------------------------------------------------------


class InvalidPost(MutebotError):
    def __init__(self, text: str) -> None:
        super().__init__(f"{code_span(text[:100])} is not a post's link or id. Paste the link of the post "
                         "(such as `https://x.com/someone/status/123`) or its number.")


class PostNotFound(MutebotError):
    def __init__(self, post_id: str, hidden: bool) -> None:
        super().__init__(
            f"X shows your account no post {post_id}: its account is protected. Nothing was read or changed."
            if hidden else
            f"X has no post {post_id}: it was deleted, or the link is wrong. Nothing was read or changed."
        )


class InvalidWho(MutebotError):
    def __init__(self) -> None:
        super().__init__("`who` is one of everyone, author, repliers, quoters, reposters or likers.")


class NotCaptureOwner(MutebotError):
    def __init__(self) -> None:
        super().__init__("Only the moderator who ran this capture can add or cancel it.")


CAPTURE_GONE = {
    "purged": "This capture is no longer there (it expired); run `/mutelist capture` again.",
    "added": "This capture was already added.",
    "cancelled": "This capture was cancelled; nothing was added.",
    "expired": "This preview expired (they last 15 minutes) and nothing was added; run `/mutelist capture` again "
               "to read the post afresh.",
    "list_deleted": "The list this capture was for was deleted; nothing was added.",
    "taken": "This capture was already added or cancelled.",  # the other button won a race
}


class CaptureGone(MutebotError):
    """The preview cannot be acted on any more; `why` (a key of CAPTURE_GONE) says which way."""

    def __init__(self, why: str) -> None:
        super().__init__(CAPTURE_GONE[why])
        self.why = why


def describe(error: BaseException) -> str:
    """The sentence a member sees for an expected error; a generic one for anything else X said."""
    if isinstance(error, MutebotError):
        return str(error)
    if isinstance(error, InvalidUsername):
        return f"{code_span(error.text[:100])} is not a valid X username: {error.reason}"
    if isinstance(error, XUserNotFound):
        if not error.username:
            return "X has no such account. Check the spelling."
        return f"There is no X account called @{error.username}. Check the spelling."
    if isinstance(error, XPostNotFound):
        return f"X has no post {error.post_id} (it may have been deleted meanwhile). Nothing was changed."
    if isinstance(error, XRateLimited):
        return (
            "X allows only so many of these every 15 minutes, and that limit is reached. "
            f"Try again <t:{int(error.reset_at) + 1}:R>; nothing was changed."
        )
    if isinstance(error, XUsageCapped):
        return ("mutebot has reached its monthly usage cap at X, so X refuses more requests until the cap resets. "
                "Nothing was changed.")
    if isinstance(error, XUnavailable):
        return "X is not answering right now. Nothing was changed; please try again in a minute."
    if isinstance(error, XUnauthorized):
        return str(RelinkRequired())
    if isinstance(error, XForbidden):
        return f"X refused this: {error.reason}"
    if isinstance(error, XInvalidRequest):
        return f"X refused the request: {error}"
    if isinstance(error, XError):
        return "X answered with an error. Nothing was changed; please try again later."
    return "Something went wrong."
