"""How the bot answers: embeds for X accounts, and ephemeral messages whatever the interaction's state."""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bot.errors import GuildOnly, MutebotError, NotModerator, describe
from bot.text import code_span as code_span
from bot.text import counted as counted
from bot.usernames import InvalidUsername
from bot.x_client import XError, XUser

if TYPE_CHECKING:
    from bot.modlog import ListChange
    from bot.mutelists import Published

log = logging.getLogger(__name__)

COLOUR_OK = discord.Colour(0x1D9BF0)
COLOUR_ERROR = discord.Colour(0xE0245E)
COLOUR_INFO = discord.Colour(0x71767B)


def user_line(user: XUser) -> str:
    name = discord.utils.escape_markdown(user.name) if user.name else user.username
    return f"{name} ([@{user.username}]({user.url}))"


def account_embed(
    title: str, user: XUser, *, colour: discord.Colour = COLOUR_OK, note: str | None = None
) -> discord.Embed:
    embed = discord.Embed(title=title, colour=colour, description=user_line(user))
    if note:
        embed.description = f"{embed.description}\n{note}"
    if user.profile_image_url:
        embed.set_thumbnail(url=user.profile_image_url)
    return embed


JOB_VERBS = {"apply": "Applying", "subscribe": "Subscribing to", "undo": "Undoing"}


def job_title(kind: str, list_name: str) -> str:
    """A list job's title, which heads its progress message and its summary: `Applying the list `spam``."""
    return f"{JOB_VERBS[kind]} the list {code_span(list_name)}"


def published_embed(result: Published) -> discord.Embed:
    """/mutelist publish's answer: what was added, what was there, what the server's protection left out."""
    text = (f"Added {counted(result.added, 'account', bold=True)} to {code_span(result.mute_list.name)}; "
            f"{result.already} {'was' if result.already == 1 else 'were'} already on it.")
    if result.left_out:
        one = result.left_out == 1
        text += (f" {counted(result.left_out, 'protected account')} {'was' if one else 'were'} left out: no list "
                 f"of this server may hold {'it' if one else 'them'}.")
    if result.queued_for:
        text += f" Queued for {counted(result.queued_for, 'subscriber')}."
    return discord.Embed(title="Your mutes published", colour=COLOUR_OK, description=text)


def modlog_line(change: ListChange) -> str:
    """The moderation log's line for a change: who, what, how many, and on which list."""
    who = f"<@{change.actor}>"
    shown = code_span(change.list_name or "")
    account = code_span(f"@{change.username}") if change.username else "an account"
    kind = change.kind
    if kind == "create":
        return f"{who} created the list {shown} ({counted(0, 'account')})."
    if kind == "delete":
        return f"{who} deleted the list {shown}, which held {counted(change.count, 'account')}."
    if kind == "add":
        return f"{who} added {counted(change.count, 'account')} to {shown}: {account}."
    if kind == "update":
        return f"{who} changed the reason of {account} on {shown}."
    if kind == "remove":
        return f"{who} removed {counted(change.count, 'account')} from {shown}: {account}."
    if kind == "import":
        return (f"{who} imported {counted(change.count, 'account')} into {shown} ({change.already} already on it, "
                f"{counted(change.problems, 'row')} not usable).")
    if kind == "capture":
        return (f"{who} captured {counted(change.count, 'account')} into {shown} from the post "
                f"<{change.post_url}>.")
    if kind == "publish":  # `problems`: the mutes left out because the server protects them
        left_out = f", {counted(change.problems, 'protected account')} left out" if change.problems else ""
        return (f"{who} published {counted(change.count, 'account')} of their own X mutes to {shown} "
                f"({change.already} already on it{left_out}).")
    if kind == "protect":
        return (f"{who} protected {account}: no list of this server may hold it; taken off "
                f"{counted(change.count, 'list')}.")
    if kind == "unprotect":
        return f"{who} lifted the protection of {account}; lists of this server may hold it again."
    if kind == "modlog":
        return f"{who} made this channel the moderation log: every change to this server's mute lists shows here."
    return f"{who} stopped the moderation log: changes to this server's mute lists no longer show here."


def modlog_refused(channel_id: int, gone: bool) -> str:
    """The DM to the moderator whose change could not be announced (sent once, until a post works again)."""
    why = ("that channel no longer exists. Pick another channel" if gone else
           "mutebot is not allowed to post there (it needs View Channel and Send Messages in that channel). Give "
           "mutebot those permissions there, or pick another channel")
    return (f"Your change to the server's mute lists was made, but it could not be announced in the moderation "
            f"log <#{channel_id}>: {why} with `/mutelist modlog channel:`; `/mutelist modlog` without a channel "
            "stops announcing. You will not be told again until announcing works.")


def unlinked_note(revocation: str) -> str:
    """What /unlink did at X, as it happened (`revocation` as bot.accounts says it: "confirmed", "unconfirmed" or
    "not_asked")."""
    if revocation == "confirmed":
        note = "mutebot's access was revoked at X and its tokens deleted."
    elif revocation == "unconfirmed":
        note = ("mutebot forgot its tokens here, but X did not confirm the revoke; you can revoke mutebot "
                "yourself at x.com/settings/connected_apps.")
    else:  # X was never asked: nothing here can read the tokens any more
        note = ("mutebot forgot its tokens here, but could not ask X to revoke them: its encryption key changed, so "
                "it can no longer read them. You can revoke mutebot yourself at x.com/settings/connected_apps.")
    return f"{note} Your mutes on X stay as they are."


def error_embed(message: str) -> discord.Embed:
    return discord.Embed(description=message[:4096], colour=COLOUR_ERROR)


async def send_ephemeral(
    interaction: discord.Interaction, content: str | None = None, *, embed: discord.Embed | None = None,
    view: discord.ui.View | None = None,
) -> None:
    """Answer or follow up, whichever the interaction's state allows."""
    missing = discord.utils.MISSING
    if interaction.response.is_done():
        await interaction.followup.send(
            content or missing, embed=embed or missing, view=view or missing, ephemeral=True
        )
    else:
        await interaction.response.send_message(
            content, embed=embed or missing, view=view or missing, ephemeral=True
        )


def is_expected(error: BaseException) -> bool:
    return isinstance(error, MutebotError | InvalidUsername | XError)


OUTCOME_REFUSED = "refused"  # an expected failure: the member is told why
OUTCOME_ERROR = "error"  # a bug: the member gets an apology and an incident id


async def report_error(interaction: discord.Interaction, error: BaseException) -> str:
    """The one place that decides what a member sees when something fails; returns which kind of failure it
    was (OUTCOME_REFUSED or OUTCOME_ERROR)."""
    outcome = OUTCOME_REFUSED
    if isinstance(error, app_commands.CommandInvokeError | app_commands.TransformerError):
        error = error.__cause__ or error
    if isinstance(error, discord.app_commands.errors.CommandInvokeError):
        error = error.original
    if is_expected(error):
        message = describe(error)
    elif isinstance(error, app_commands.MissingPermissions | app_commands.CheckFailure) and not isinstance(
        error, app_commands.NoPrivateMessage
    ):
        message = describe(NotModerator()) if isinstance(error, app_commands.MissingPermissions) else (
            "You cannot use this command here."
        )
    elif isinstance(error, app_commands.NoPrivateMessage):
        message = describe(GuildOnly())
    elif isinstance(error, app_commands.CommandOnCooldown):
        message = f"Slow down a little: try again in {error.retry_after:.0f} s."
    else:
        outcome = OUTCOME_ERROR
        incident = secrets.token_hex(4)
        log.error("incident %s in %s", incident, _where(interaction), exc_info=error)
        message = (f"Sorry, something went wrong on our side. Nothing you did caused it. "
                   f"(incident {code_span(incident)})")
    try:
        await send_ephemeral(interaction, embed=error_embed(message))
    except discord.HTTPException as exc:
        log.warning("could not deliver an error message (%s)", exc.status)
    return outcome


def _where(interaction: discord.Interaction) -> str:
    if interaction.command is not None:
        return f"/{interaction.command.qualified_name}"
    data = interaction.data
    return str(data.get("custom_id", "interaction")) if data else "interaction"
