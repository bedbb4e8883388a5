"""/mute, /unmute, /mutes and /why: the everyday commands, acting on the member's own X account."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.deadline import finish_in_time
from bot.options import DurationOption, UsernameOption
from bot.paginator import RenderedPage, register_source, show_page
from bot.replies import muted_embed, mutes_page_embed, reasons_embed, send_ephemeral, unmuted_embed
from bot.runtime import MuteBot


class Muting(commands.Cog):
    def __init__(self, bot: MuteBot) -> None:
        self.bot = bot
        register_source(bot, "mutes", self.render_mutes)

    @app_commands.command(name="mute", description="Mute an X account for your own X account")
    @app_commands.describe(username="@name, name or a profile link such as https://x.com/name",
                           duration="For how long, like 30m, 12h, 7d, 2w or 1d12h (leave empty to keep it muted)")
    async def mute(self, interaction: discord.Interaction, username: UsernameOption,
                   duration: DurationOption | None = None) -> None:
        mutes = self.bot.services.mutes
        outcome = await finish_in_time(interaction, mutes.mute(interaction.user.id, username, duration))
        await send_ephemeral(interaction, embed=muted_embed(outcome, duration))

    @app_commands.command(name="unmute", description="Unmute an X account for your own X account")
    @app_commands.describe(username="@name, name or a profile link such as https://x.com/name")
    async def unmute(self, interaction: discord.Interaction, username: UsernameOption) -> None:
        outcome = await finish_in_time(interaction, self.bot.services.mutes.unmute(interaction.user.id, username))
        await send_ephemeral(interaction, embed=unmuted_embed(outcome))

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

    @app_commands.command(name="why", description="Why mutebot mutes an X account for you")
    @app_commands.describe(username="@name, name or a profile link such as https://x.com/name")
    async def why(self, interaction: discord.Interaction, username: UsernameOption) -> None:
        reasons = await finish_in_time(interaction, self.bot.services.mutes.reasons(interaction.user.id, username))
        await send_ephemeral(interaction, embed=reasons_embed(reasons, self._server_name))

    def _server_name(self, guild_id: int) -> str | None:
        guild = self.bot.get_guild(guild_id)
        return guild.name if guild is not None else None

    async def render_mutes(
        self, interaction: discord.Interaction, owner: int, ref: int, page: int, refresh: bool
    ) -> RenderedPage:
        result = await self.bot.services.mutes.page(owner, page, refresh=refresh)
        return RenderedPage(mutes_page_embed(result), result.page, result.pages)


async def setup(bot: MuteBot) -> None:
    await bot.add_cog(Muting(bot))
