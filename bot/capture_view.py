"""The capture preview and its Add and Cancel buttons, which keep working after a restart (state in custom_id)."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bot.capture import SAMPLE, CaptureAdded, CaptureGone, CapturePreview
from bot.mutelists import evidence_line as evidence_line  # re-exported for the cogs
from bot.replies import COLOUR_INFO, COLOUR_OK, code_span, counted, report_error

log = logging.getLogger(__name__)

SOURCE_WORDS = {
    "author": ("author", "author"), "replied": ("replier", "repliers"), "quoted": ("quoter", "quoters"),
    "reposted": ("reposter", "reposters"), "liked": ("liker", "likers"),
}
def preview_embed(preview: CapturePreview) -> discord.Embed:
    """How many from each source, how many already on the list or excluded and why, a sample, the X reads."""
    author = f" by @{preview.author.username}" if preview.author else ""
    lines = [f"Post{author}: {preview.post_url}",
             f"{counted(preview.total, 'different account')} took part"
             + (" (an account in several sources counted once):" if preview.per_source else ".")]
    for source, count in preview.per_source.items():
        singular, plural = SOURCE_WORDS[source]
        lines.append(f"- {counted(count, singular, plural)}")
    lines.append(f"Already on {code_span(preview.mute_list.name)}: {preview.already}.")
    if preview.excluded:
        lines.append("Left out: " + "; ".join(f"{n} {why}" for why, n in preview.excluded.items()) + ".")
    notes = []
    if preview.stopped_in is not None:
        notes.append(f"A capture reads at most 1,000 accounts: it stopped there while reading the "
                     f"{SOURCE_WORDS[preview.stopped_in][1]}, so some of them were not read.")
    if preview.likes_need_link:
        notes.append("Likers were not read: your X link predates mutebot asking X to see likes. A fresh `/link` "
                     "adds likers; the other sources were captured meanwhile.")
    for source, reset_at in preview.limited.items():
        notes.append(f"X's limit for reading {SOURCE_WORDS[source][1]} is used up until <t:{int(reset_at) + 1}:R>; "
                     + ("the rest of them were not read." if source in preview.per_source else "they were not read."))
    if preview.old_post:
        notes.append("The post is more than 7 days old: X's recent search only finds replies from the last 7 days.")
    notes.append(f"X reads: {preview.x_reads}.")
    embed = discord.Embed(title=f"Capture preview: {counted(len(preview.to_add), 'account')} to add",
                          colour=COLOUR_OK if preview.to_add else COLOUR_INFO, description="\n".join(lines)[:4096])
    if preview.to_add:
        sample = ", ".join(code_span("@" + a.username) for a in preview.to_add[:SAMPLE])
        more = len(preview.to_add) - SAMPLE
        embed.add_field(name="Sample", value=(sample + (f" and {more} more" if more > 0 else ""))[:1024],
                        inline=False)
    embed.add_field(name="Notes", value="\n".join(notes)[:1024], inline=False)
    embed.set_footer(text="Nothing changes until you press Add. This preview lasts 15 minutes.")
    return embed


def added_embed(result: CaptureAdded) -> discord.Embed:
    text = (f"Added {counted(result.added, 'account', bold=True)} to {code_span(result.mute_list.name)} from "
            f"{result.post_url}; {result.already} {'was' if result.already == 1 else 'were'} already on it.")
    if result.excluded:
        text += f" {counted(result.excluded, 'account')} protected since the preview left out."
    if result.queued_for:
        text += f" Queued for {counted(result.queued_for, 'subscriber')}."
    return discord.Embed(title="Capture added", colour=COLOUR_OK, description=text)


def cancelled_embed() -> discord.Embed:
    return discord.Embed(title="Capture cancelled", colour=COLOUR_INFO, description="Nothing was added.")


# (interaction, capture id, action) -> the embed that replaces the preview; set by the cog that owns the service.
CaptureHandler = Callable[[discord.Interaction, int, str], Awaitable[discord.Embed]]
HANDLERS: dict[str, CaptureHandler] = {}


class CaptureButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"cap:(?P<id>\d+):(?P<action>add|cancel):(?P<owner>\d+)",
):
    def __init__(self, capture_id: int, action: str, owner: int) -> None:
        super().__init__(discord.ui.Button(
            label="Add" if action == "add" else "Cancel",
            style=discord.ButtonStyle.success if action == "add" else discord.ButtonStyle.secondary,
            custom_id=f"cap:{capture_id}:{action}:{owner}",
        ))
        self.capture_id, self.action, self.owner = capture_id, action, owner

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CaptureButton:
        return cls(int(match["id"]), match["action"], int(match["owner"]))

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        if interaction.user.id != self.owner:
            await interaction.response.send_message(
                "Only the moderator who ran this capture can add or cancel it.", ephemeral=True)
            return False
        return True

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            await interaction.response.defer()  # the result replaces the preview in its message
            embed = await HANDLERS["capture"](interaction, self.capture_id, self.action)
            await interaction.edit_original_response(embed=embed, view=None)
        except CaptureGone as exc:  # the preview can no longer be acted on: say why, and its buttons go
            await report_error(interaction, exc)
            try:
                await interaction.edit_original_response(view=None)
            except discord.HTTPException as failed:
                log.warning("could not take the buttons off capture %s's preview (%s)", self.capture_id, failed.status)
        except Exception as exc:  # the moderator sees a sentence; the log gets the traceback
            await report_error(interaction, exc)


def capture_view(capture_id: int, owner: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CaptureButton(capture_id, "add", owner))
    view.add_item(CaptureButton(capture_id, "cancel", owner))
    return view
