"""/mute, /unmute and /mutes: the everyday commands, acting on the member's own X account."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.options import UsernameOption
from bot.paginator import RenderedPage, register_source, show_page
from bot.replies import COLOUR_INFO, COLOUR_OK, account_embed, counted, send_ephemeral, user_line
from bot.runtime import MuteBot


class Muting(commands.Cog):
    def __init__(self, bot: MuteBot) -> None:
        self.bot = bot
        register_source("mutes", self.render_mutes)

    @app_commands.command(name="mute", description="Mute an X account for your own X account")
    @app_commands.describe(username="@name, name or a profile link such as https://x.com/name")
    async def mute(self, interaction: discord.Interaction, username: UsernameOption) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        outcome = await self.bot.services.mutes.mute(interaction.user.id, username)
        note = None if outcome.changed else "It was already muted."
        await send_ephemeral(interaction, embed=account_embed("Muted on X", outcome.user, note=note))

    @app_commands.command(name="unmute", description="Unmute an X account for your own X account")
    @app_commands.describe(username="@name, name or a profile link such as https://x.com/name")
    async def unmute(self, interaction: discord.Interaction, username: UsernameOption) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        outcome = await self.bot.services.mutes.unmute(interaction.user.id, username)
        title, note = ("Unmuted on X", None) if outcome.changed else (
            "Not muted on X", "mutebot had not seen it muted; either way, your X account does not mute it now.")
        await send_ephemeral(interaction, embed=account_embed(title, outcome.user, colour=COLOUR_INFO, note=note))

    @unmute.autocomplete("username")
    async def unmute_autocomplete(self, interaction: discord.Interaction, current: str) -> list[
        app_commands.Choice[str]
    ]:
        users = await self.bot.services.mutes.suggestions(interaction.user.id, current)
        return [app_commands.Choice(name=f"@{u.username} {u.name}"[:100], value=u.username) for u in users]

    @app_commands.command(name="mutes", description="The accounts your X account mutes, page by page")
    async def mutes(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await show_page(interaction, "mutes", 0, 0, interaction.user.id, refresh=False, new_message=True)

    async def render_mutes(
        self, interaction: discord.Interaction, owner: int, ref: int, page: int, refresh: bool
    ) -> RenderedPage:
        result = await self.bot.services.mutes.page(owner, page, refresh=refresh)
        lines = [f"{result.first_number + i}. {user_line(user)}" for i, user in enumerate(result.entries)]
        description = "\n".join(lines) if lines else "Your X account mutes nobody."
        if result.refresh_note:
            description += f"\n\n{result.refresh_note}"
        embed = discord.Embed(title="Your muted accounts on X", colour=COLOUR_OK, description=description[:4096])
        embed.set_footer(text=f"Page {result.page + 1} of {result.pages} · {counted(result.total, 'muted account')}")
        embed.add_field(name="As of", value=f"<t:{int(result.fetched_at)}:R>")
        return RenderedPage(embed, result.page, result.pages)


async def setup(bot: MuteBot) -> None:
    await bot.add_cog(Muting(bot))
