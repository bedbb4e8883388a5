"""Paginated embeds whose buttons keep working after a restart: the state lives in each button's custom_id."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import discord

from bot.per_client import PerClient
from bot.replies import JUMP_TITLE, NOT_YOUR_BUTTONS, not_a_page, report_error

log = logging.getLogger(__name__)

ACTIONS = ("first", "prev", "jump", "next", "last", "refresh")
VIEW_TIMEOUT = 600.0


@dataclass(frozen=True)
class RenderedPage:
    embed: discord.Embed
    page: int  # 0-based
    pages: int


# (interaction, owner id, reference such as a list id, wanted page, refresh?) -> the page to show
PageSource = Callable[[discord.Interaction, int, int, int, bool], Awaitable[RenderedPage]]
_SOURCES: PerClient[PageSource] = PerClient()


def register_source(client: discord.Client, kind: str, source: PageSource) -> None:
    _SOURCES.register(client, kind, source)


def _target(action: str, page: int, pages: int) -> int:
    return {"first": 0, "prev": page - 1, "next": page + 1, "last": pages - 1}.get(action, page)


class PageButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"pg:(?P<kind>[a-z]+):(?P<ref>\d+):(?P<action>[a-z]+):(?P<page>\d+):(?P<pages>\d+):(?P<owner>\d+)",
):
    def __init__(self, kind: str, ref: int, action: str, page: int, pages: int, owner: int) -> None:
        label = {"first": "First", "prev": "Previous", "next": "Next", "last": "Last", "refresh": "Refresh",
                 "jump": f"Page {page + 1} of {pages}"}[action]
        disabled = (action in ("first", "prev") and page <= 0) or (action in ("next", "last") and page >= pages - 1)
        if action == "jump":
            disabled = pages <= 1
        style = discord.ButtonStyle.primary if action in ("prev", "next") else discord.ButtonStyle.secondary
        super().__init__(
            discord.ui.Button(
                label=label, style=style, disabled=disabled,
                custom_id=f"pg:{kind}:{ref}:{action}:{page}:{pages}:{owner}",
                row=1 if action == "refresh" else 0,
            )
        )
        self.kind, self.ref, self.action, self.page, self.pages, self.owner = kind, ref, action, page, pages, owner

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> PageButton:
        action = match["action"]
        if action not in ACTIONS:
            raise ValueError(action)
        return cls(match["kind"], int(match["ref"]), action, int(match["page"]), int(match["pages"]),
                   int(match["owner"]))

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        if interaction.user.id != self.owner:
            await interaction.response.send_message(NOT_YOUR_BUTTONS, ephemeral=True)
            return False
        return True

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            if self.action == "jump":
                await interaction.response.send_modal(JumpModal(self.kind, self.ref, self.pages, self.owner))
                return
            await show_page(interaction, self.kind, self.ref, _target(self.action, self.page, self.pages),
                            self.owner, refresh=self.action == "refresh")
        except Exception as exc:  # the member sees a sentence; the log gets the traceback
            await report_error(interaction, exc)


class JumpModal(discord.ui.Modal, title=JUMP_TITLE):
    def __init__(self, kind: str, ref: int, pages: int, owner: int) -> None:
        super().__init__(timeout=300)
        self.kind, self.ref, self.pages, self.owner = kind, ref, pages, owner
        self.number: discord.ui.TextInput[JumpModal] = discord.ui.TextInput(
            label=f"Page (1–{pages})", placeholder=str(pages), min_length=1, max_length=6
        )
        self.add_item(self.number)

    async def on_submit(self, interaction: discord.Interaction, /) -> None:
        text = self.number.value.strip()
        if not text.isdigit() or not 1 <= int(text) <= self.pages:
            await interaction.response.send_message(not_a_page(text, self.pages), ephemeral=True)
            return
        await show_page(interaction, self.kind, self.ref, int(text) - 1, self.owner, refresh=False)

    async def on_error(  # type: ignore[override]  # discord.py 2.7 Modal.on_error takes no item
        self, interaction: discord.Interaction, error: Exception, /
    ) -> None:
        await report_error(interaction, error)


class Paginator(discord.ui.View):
    """Holds the buttons of one message; disables them when it times out."""

    def __init__(self, kind: str, ref: int, page: int, pages: int, owner: int, *, timeout: float | None = None):
        super().__init__(timeout=VIEW_TIMEOUT if timeout is None else timeout)
        self.interaction: discord.Interaction | None = None
        for action in ACTIONS:
            self.add_item(PageButton(kind, ref, action, page, pages, owner))

    async def on_timeout(self) -> None:
        if self.interaction is None:
            return
        for item in self.children:
            if isinstance(item, PageButton):
                item.item.disabled = True
        try:
            await self.interaction.edit_original_response(view=self)
        except discord.HTTPException:
            log.debug("could not disable the buttons of a timed-out page")


async def show_page(
    interaction: discord.Interaction, kind: str, ref: int, page: int, owner: int, *, refresh: bool,
    new_message: bool = False,
) -> None:
    """Render a page into the interaction's message: a new command's deferred reply, or the flipped one."""
    source = _SOURCES.get(interaction.client, kind)
    if not new_message:
        await interaction.response.defer()  # a page flip edits the message it came from
    rendered = await source(interaction, owner, ref, page, refresh)
    view = Paginator(kind, ref, rendered.page, rendered.pages, owner)
    # Deferred either way, so the page is always the interaction's original response: that is the
    # message the view can still edit (to disable its buttons) when it times out.
    await interaction.edit_original_response(embed=rendered.embed, view=view)
    view.interaction = interaction
