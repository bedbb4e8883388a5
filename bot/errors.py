"""Domain errors of the engine, and the one place that turns any of them into words for people."""

from __future__ import annotations

from bot.text import code_span
from bot.usernames import InvalidUsername
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
