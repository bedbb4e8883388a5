"""/link, /unlink and /status: connecting a member's own X account."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.replies import COLOUR_INFO, COLOUR_OK, account_embed, send_ephemeral, unlinked_note
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
        expires = f"<t:{int(start.expires_at)}:R>"
        view = discord.ui.View(timeout=None)
        view.add_item(discord.ui.Button(label="Authorize mutebot on X", url=start.url, emoji="🔗"))
        embed = discord.Embed(
            title="Link your X account",
            colour=COLOUR_OK,
            description=(
                "Open X's authorization page and approve mutebot; it can then mute and unmute accounts for "
                f"your X account only. Finish in the browser the button opens. The link works once and expires "
                f"{expires}. Keep it to yourself: whoever opens it first links their X account to your Discord "
                "account."
            ),
        )
        if linked is not None:
            embed.description = (f"{embed.description}\nYou are linked as **@{linked.x_username}** now; approving "
                                 "replaces that link with the account you approve.")
        if await self.bot.dm(interaction.user.id, embed=embed, view=view) is not None:
            await send_ephemeral(interaction, f"I sent you a DM with your link to X. It expires {expires}.")
        else:
            embed.set_footer(text="Your DMs are closed, so the link is here; only you can see it.")
            await send_ephemeral(interaction, "Your DMs are closed, so here is your link:", embed=embed, view=view)

    @app_commands.command(name="unlink", description="Disconnect your X account and forget its tokens")
    async def unlink(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        unlinked = await self.bot.services.accounts.unlink(interaction.user.id)
        if unlinked is None:
            await send_ephemeral(interaction, embed=discord.Embed(
                title="No X account linked", colour=COLOUR_INFO,
                description="You have no linked X account, so there is nothing to unlink.",
            ))
            return
        account = unlinked.account
        user = XUser(account.x_user_id, account.x_username, account.x_name, account.x_avatar_url)
        await send_ephemeral(interaction, embed=account_embed(
            "X account unlinked", user, colour=COLOUR_INFO, note=unlinked_note(unlinked.revocation),
        ))

    @app_commands.command(name="status", description="Your linked X account and your pending queued actions")
    async def status(self, interaction: discord.Interaction) -> None:
        services = self.bot.services
        account = await services.accounts.account(interaction.user.id)
        if account is None:
            await send_ephemeral(interaction, embed=discord.Embed(
                title="No X account linked",
                colour=COLOUR_INFO,
                description="You are not linked yet. Run `/link` and approve mutebot on X to connect your account.",
            ))
            return
        user = XUser(account.x_user_id, account.x_username, account.x_name, account.x_avatar_url)
        pending = await services.mutes.pending_actions(interaction.user.id)
        note = f"Linked <t:{int(account.linked_at)}:R>."
        if account.unreadable:
            note += ("\n⚠️ mutebot can no longer read this link (its encryption key changed), so it needs "
                     "relinking: run `/link` again to reconnect.")
        elif account.needs_relink:
            note += "\n⚠️ X no longer accepts this link: run `/link` again to reconnect."
        note += f"\nPending queued actions: **{pending}**" if pending else "\nNo queued actions."
        paused_until = await services.queue.paused_until() if pending else 0.0
        if paused_until:
            note += ("\n⏸️ mutebot has reached its monthly usage cap at X; queued work resumes "
                     f"<t:{int(paused_until)}:R>.")
        await send_ephemeral(interaction, embed=account_embed("Your linked X account", user, note=note))


async def setup(bot: MuteBot) -> None:
    await bot.add_cog(Linking(bot))
