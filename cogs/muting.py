"""/mute, /unmute, /mutes and /why: the everyday commands, acting on the member's own X account."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.durations import describe_duration
from bot.mutelists import evidence_line
from bot.mutes import MuteReasons
from bot.options import DurationOption, UsernameOption
from bot.paginator import RenderedPage, register_source, show_page
from bot.replies import COLOUR_INFO, COLOUR_OK, account_embed, code_span, counted, send_ephemeral, user_line
from bot.runtime import MuteBot

# Discord refuses a message whose embeds hold more than 6,000 characters in all; the rest is the footer's.
EMBED_BUDGET = 6000 - 100


class Muting(commands.Cog):
    def __init__(self, bot: MuteBot) -> None:
        self.bot = bot
        register_source("mutes", self.render_mutes)

    @app_commands.command(name="mute", description="Mute an X account for your own X account")
    @app_commands.describe(username="@name, name or a profile link such as https://x.com/name",
                           duration="For how long, like 30m, 12h, 7d, 2w or 1d12h (leave empty to keep it muted)")
    async def mute(self, interaction: discord.Interaction, username: UsernameOption,
                   duration: DurationOption | None = None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        outcome = await self.bot.services.mutes.mute(interaction.user.id, username, duration)
        notes: list[str] = []
        if outcome.ends_at is not None and duration is not None:
            end = int(outcome.ends_at)
            notes.append(f"For {describe_duration(duration)}: mutebot unmutes it <t:{end}:R> (<t:{end}:f>), "
                         "unless a list you subscribe to holds it then.")
        elif outcome.was_timed:
            notes.append("It was a timed mute; now it stays muted until you unmute it.")
        if not outcome.changed:
            notes.append("It was already muted.")
        await send_ephemeral(interaction, embed=account_embed("Muted on X", outcome.user,
                                                              note=" ".join(notes) or None))

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

    @app_commands.command(name="why", description="Why mutebot mutes an X account for you")
    @app_commands.describe(username="@name, name or a profile link such as https://x.com/name")
    async def why(self, interaction: discord.Interaction, username: UsernameOption) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        reasons = await self.bot.services.mutes.reasons(interaction.user.id, username)
        await send_ephemeral(interaction, embed=self.reasons_embed(reasons))

    def reasons_embed(self, why: MuteReasons) -> discord.Embed:
        user = why.user
        if not why.known:
            embed = discord.Embed(title=f"mutebot did not mute @{user.username}", colour=COLOUR_INFO)
            seen = ("Your X account does mute it (as of mutebot's last look at your mutes), so it was muted on X "
                    "directly, or by another app." if why.cached_muted else
                    "If your X account mutes it, it was muted on X directly, or by another app.")
            embed.description = (f"{user_line(user)}: you did not mute it through mutebot, and no list you "
                                 f"subscribe to holds it. {seen}")
            return embed
        embed = discord.Embed(title=f"Why @{user.username} is muted for you", colour=COLOUR_OK)
        lines = [user_line(user)]
        if why.choice == "muted" and why.chosen_at is not None:
            line = f"You muted it yourself with `/mute` <t:{int(why.chosen_at)}:f>."
            if why.ends_at is not None:
                end = int(why.ends_at)
                line += f" It is a timed mute: mutebot unmutes it <t:{end}:R> (<t:{end}:f>)"
                line += (", but a list you subscribe to holds it, so it will stay muted." if why.lists else ".")
            lines.append(line)
        elif why.choice == "unmuted" and why.chosen_at is not None:
            lines.append(f"You unmuted it yourself with `/unmute` <t:{int(why.chosen_at)}:f>, so lists you "
                         "subscribe to leave it unmuted for you.")
        if why.lists:
            lines.append(f"{counted(len(why.lists), 'list holds', 'lists hold')} it:")
        embed.description = "\n".join(lines)[:4096]
        shown = 0
        for reason in why.lists[:20]:
            guild = self.bot.get_guild(reason.guild_id)
            server = guild.name if guild is not None else "a server mutebot is no longer in"
            value = [f"Added by <@{reason.added_by}> <t:{int(reason.added_at)}:f>"]
            if reason.reason:
                value.append(f"Reason: {reason.reason}")
            if reason.evidence_url:
                value.append(f"Evidence: {evidence_line(reason.evidence_url, reason.evidence_sources)}")
            if reason.muted_it:
                value.append("This list muted it for you." if reason.following else
                             "This list muted it for you (you are no longer subscribed).")
            else:
                value.append("You subscribe to this list.")
            name, text = f"{code_span(reason.list_name)} in {server}"[:256], "\n".join(value)[:1024]
            if len(embed) + len(name) + len(text) > EMBED_BUDGET:
                break
            embed.add_field(name=name, value=text, inline=False)
            shown += 1
        if len(why.lists) > shown:
            embed.set_footer(text=f"… and {counted(len(why.lists) - shown, 'more list')}")
        return embed

    async def render_mutes(
        self, interaction: discord.Interaction, owner: int, ref: int, page: int, refresh: bool
    ) -> RenderedPage:
        result = await self.bot.services.mutes.page(owner, page, refresh=refresh)
        lines = [f"{result.first_number + i}. {user_line(user)}" + (
            f" · until <t:{int(result.ends[user.id])}:R>" if user.id in result.ends else "")
            for i, user in enumerate(result.entries)]
        description = "\n".join(lines) if lines else "Your X account mutes nobody."
        if result.refresh_note:
            description += f"\n\n{result.refresh_note}"
        embed = discord.Embed(title="Your muted accounts on X", colour=COLOUR_OK, description=description[:4096])
        embed.set_footer(text=f"Page {result.page + 1} of {result.pages} · {counted(result.total, 'muted account')}")
        embed.add_field(name="As of", value=f"<t:{int(result.fetched_at)}:R>")
        return RenderedPage(embed, result.page, result.pages)


async def setup(bot: MuteBot) -> None:
    await bot.add_cog(Muting(bot))
