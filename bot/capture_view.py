"""The capture preview's Add and Cancel buttons, which keep working after a restart (state in custom_id)."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bot.errors import CaptureGone, NotCaptureOwner
from bot.per_client import PerClient
from bot.replies import report_error

log = logging.getLogger(__name__)

# (interaction, capture id, action) -> the embed that replaces the preview; set by the cog that owns the service.
CaptureHandler = Callable[[discord.Interaction, int, str], Awaitable[discord.Embed]]
HANDLERS: PerClient[CaptureHandler] = PerClient()


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
            await interaction.response.send_message(str(NotCaptureOwner()), ephemeral=True)
            return False
        return True

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            await interaction.response.defer()  # the result replaces the preview in its message
            embed = await HANDLERS.get(interaction.client, "capture")(interaction, self.capture_id, self.action)
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
