"""/link, /unlink and /status: connecting a member's own X account."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.replies import (
    LINK_HERE,
    link_embed,
    link_sent_text,
    link_view,
    not_linked_status_embed,
    nothing_to_unlink_embed,
    send_ephemeral,
    status_embed,
    unlinked_embed,
)
from bot.runtime import MuteBot
from bot.x_client import XUser


class Linking(commands.Cog):
    def __init__(self, bot: MuteBot) -> None:
        self.bot = bot

    @app_commands.command(name="link", description="Link your X account so mutebot can mute accounts for you")
    async def link(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        linked = await self.bot.services.accounts.account(interaction.user.id)
        start = await self.bot.services.accounts.start_link(interaction.user.id, interaction.guild_id,
                                                            member_name=interaction.user.name)
        linked_as = linked.x_username if linked is not None else None
        view = link_view(start.url)
        if await self.bot.dm(interaction.user.id, embed=link_embed(start.expires_at, linked_as),
                             view=view) is not None:
            await send_ephemeral(interaction, link_sent_text(start.expires_at))
        else:
            await send_ephemeral(interaction, LINK_HERE, embed=link_embed(start.expires_at, linked_as, here=True),
                                 view=view)

    @app_commands.command(name="unlink", description="Disconnect your X account and forget its tokens")
    async def unlink(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        unlinked = await self.bot.services.accounts.unlink(interaction.user.id)
        if unlinked is None:
            await send_ephemeral(interaction, embed=nothing_to_unlink_embed())
            return
        account = unlinked.account
        user = XUser(account.x_user_id, account.x_username, account.x_name, account.x_avatar_url)
        await send_ephemeral(interaction, embed=unlinked_embed(user, unlinked.revocation))

    @app_commands.command(name="status", description="Your linked X account and your pending queued actions")
    async def status(self, interaction: discord.Interaction) -> None:
        services = self.bot.services
        account = await services.accounts.account(interaction.user.id)
        if account is None:
            await send_ephemeral(interaction, embed=not_linked_status_embed())
            return
        user = XUser(account.x_user_id, account.x_username, account.x_name, account.x_avatar_url)
        pending = await services.mutes.pending_actions(interaction.user.id)
        paused_until = await services.queue.paused_until() if pending else 0.0
        await send_ephemeral(interaction, embed=status_embed(user, account, pending, paused_until))


async def setup(bot: MuteBot) -> None:
    await bot.add_cog(Linking(bot))
