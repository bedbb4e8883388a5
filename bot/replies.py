"""How the bot answers: embeds for X accounts, and ephemeral messages whatever the interaction's state."""

from __future__ import annotations

import logging
import secrets

import discord
from discord import app_commands

from bot.errors import GuildOnly, MutebotError, NotModerator, describe
from bot.usernames import InvalidUsername
from bot.x_client import XError, XUser

log = logging.getLogger(__name__)

COLOUR_OK = discord.Colour(0x1D9BF0)
COLOUR_ERROR = discord.Colour(0xE0245E)
COLOUR_INFO = discord.Colour(0x71767B)


def code_span(text: str) -> str:
    """`text` in a Discord code span, shown exactly as it is.

    Discord shows everything between backticks literally, escapes included (`escape_markdown` there would show
    its backslashes), so nothing is escaped; only a backtick, which would end the span, becomes ˋ (U+02CB), which
    looks the same, and a line break, which a name never means, a space.
    """
    shown = text.replace("`", "\u02cb").replace("\r", " ").replace("\n", " ")
    return f"`{shown or ' '}`"


def counted(count: int, singular: str, plural: str | None = None, *, bold: bool = False) -> str:
    """`1 account`, `2 accounts` (`**2** accounts` with `bold`): a count with the word that fits it."""
    number = f"**{count}**" if bold else str(count)
    return f"{number} {singular if count == 1 else plural or singular + 's'}"


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
                   f"(incident `{incident}`)")
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
