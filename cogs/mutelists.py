"""/mutelist: a server's shared mute lists — moderators curate them, members apply them or subscribe to them."""

from __future__ import annotations

import io
from typing import cast

import discord
from discord import app_commands
from discord.ext import commands

from bot.capture_view import (
    HANDLERS,
    CaptureButton,
    added_embed,
    cancelled_embed,
    capture_view,
    evidence_line,
    preview_embed,
)
from bot.errors import GuildOnly, MutebotError, NotModerator
from bot.mutelists import MAX_IMPORT_BYTES, ImportReport, ImportTooLarge
from bot.options import ServerTextChannelOption, UsernameOption
from bot.paginator import RenderedPage, register_source, show_page
from bot.progress import DiscordProgress
from bot.replies import (
    COLOUR_ERROR,
    COLOUR_INFO,
    COLOUR_OK,
    code_span,
    counted,
    job_title,
    published_embed,
    send_ephemeral,
)
from bot.runtime import MuteBot
from bot.store.lists import MuteList

NameOption = app_commands.Range[str, 1, 50]


def _guild(interaction: discord.Interaction) -> int:
    if interaction.guild_id is None:
        raise GuildOnly()
    return interaction.guild_id


def _moderator(interaction: discord.Interaction) -> int:
    """Discord ignores default permissions on subcommands, so the bot checks Manage Server itself."""
    guild_id = _guild(interaction)
    if not interaction.permissions.manage_guild:
        raise NotModerator()
    return guild_id


async def list_names(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    if interaction.guild_id is None:
        return []
    bot = cast(MuteBot, interaction.client)
    names = await bot.services.lists.names(interaction.guild_id, current)
    return [app_commands.Choice(name=n, value=n) for n in names]


def _list_title(mute_list: MuteList) -> str:
    return code_span(mute_list.name)


class MuteListCommands(commands.Cog):
    mutelist = app_commands.Group(name="mutelist", description="This server's shared mute lists", guild_only=True)

    def __init__(self, bot: MuteBot) -> None:
        self.bot = bot
        register_source("list", self.render_list)
        HANDLERS["capture"] = self.capture_button

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(CaptureButton)

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """mutebot was removed from a server: its lists' subscriptions end (what they muted stays muted)."""
        await self.bot.services.lists.server_left(guild.id)

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """Removals while mutebot was offline sent no on_guild_remove: READY names every server of this
        process's shards, so a followed server missing from it is one mutebot was removed from."""
        await self.bot.services.lists.servers_gone({g.id for g in self.bot.guilds}, self.bot.serves_guild)

    @property
    def progress(self) -> DiscordProgress:
        reporter = self.bot.services.queue.reporter
        if not isinstance(reporter, DiscordProgress):
            raise MutebotError("Progress reporting is not available right now.")
        return reporter

    # -- moderators ----------------------------------------------------------------------------------

    @mutelist.command(name="create", description="Create a shared mute list (moderators)")
    @app_commands.describe(name="The list's name (1–50 characters)", description="What the list is for")
    @app_commands.default_permissions(manage_guild=True)
    async def create(self, interaction: discord.Interaction, name: NameOption,
                     description: app_commands.Range[str, 0, 200] | None = None) -> None:
        guild_id = _moderator(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        mute_list = await self.bot.services.lists.create(guild_id, interaction.user.id, name, description)
        await send_ephemeral(interaction, embed=discord.Embed(
            title="Mute list created", colour=COLOUR_OK,
            description=f"{_list_title(mute_list)} is ready. Add accounts with `/mutelist add` or `/mutelist import`.",
        ))

    @mutelist.command(name="delete", description="Delete a mute list (moderators)")
    @app_commands.autocomplete(name=list_names)
    @app_commands.default_permissions(manage_guild=True)
    async def delete(self, interaction: discord.Interaction, name: NameOption) -> None:
        guild_id = _moderator(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        mute_list, subscribers, cancelled = await self.bot.services.lists.delete(guild_id, interaction.user.id, name)
        for member_id in subscribers:
            await self.bot.dm(member_id, content=(
                f"The mute list {_list_title(mute_list)} you subscribed to was deleted by the server's moderators. "
                "Its queued mutes were cancelled; accounts already muted stay muted (use `/unmute` to change that)."
            ))
        await send_ephemeral(interaction, embed=discord.Embed(
            title="Mute list deleted", colour=COLOUR_INFO,
            description=(f"{_list_title(mute_list)} is gone. {counted(cancelled, 'queued action')} cancelled; "
                         f"{counted(len(subscribers), 'subscriber')} told by DM."),
        ))

    @mutelist.command(name="add", description="Add an X account to a mute list (moderators)")
    @app_commands.describe(username="@name, name or profile link", reason="Why (shown with the entry)")
    @app_commands.autocomplete(name=list_names)
    @app_commands.default_permissions(manage_guild=True)
    async def add(self, interaction: discord.Interaction, name: NameOption, username: UsernameOption,
                  reason: app_commands.Range[str, 0, 200] | None = None) -> None:
        guild_id = _moderator(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        mute_list, user, added, queued = await self.bot.services.lists.add(
            guild_id, interaction.user.id, name, username, reason
        )
        if added:
            note = f"Added to {_list_title(mute_list)}."
            if queued:
                note += f" Queued for {counted(queued, 'subscriber')}."
        else:
            note = f"Already on {_list_title(mute_list)}" + ("; reason updated." if reason else ".")
        await send_ephemeral(interaction, embed=discord.Embed(
            title="Mute list entry", colour=COLOUR_OK,
            description=f"[@{user.username}]({user.url})\n{note}",
        ))

    @mutelist.command(name="remove", description="Remove an X account from a mute list (moderators)")
    @app_commands.describe(username="The username as listed (or the X user id)")
    @app_commands.autocomplete(name=list_names)
    @app_commands.default_permissions(manage_guild=True)
    async def remove(self, interaction: discord.Interaction, name: NameOption,
                     username: app_commands.Range[str, 1, 200]) -> None:
        guild_id = _moderator(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        mute_list, entry, queued = await self.bot.services.lists.remove(guild_id, interaction.user.id, name, username)
        note = (f" Unmuting it for {counted(queued, 'subscriber')} for whom this list was the only reason."
                if queued else "")
        await send_ephemeral(interaction, embed=discord.Embed(
            title="Mute list entry removed", colour=COLOUR_INFO,
            description=f"@{entry.username or entry.x_user_id} is no longer on {_list_title(mute_list)}.{note}",
        ))

    @mutelist.command(name="import", description="Add many accounts from a CSV or a one-username-per-line file "
                      "(moderators)")
    @app_commands.describe(file="CSV with a `username` or `id` column, or one username per line (≤ 10,000 rows)")
    @app_commands.autocomplete(name=list_names)
    @app_commands.default_permissions(manage_guild=True)
    async def import_(self, interaction: discord.Interaction, name: NameOption, file: discord.Attachment) -> None:
        guild_id = _moderator(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        if file.size > MAX_IMPORT_BYTES:  # Discord tells the size: refuse before downloading it
            raise ImportTooLarge()
        data = await file.read()
        mute_list, report = await self.bot.services.lists.import_file(guild_id, interaction.user.id, name, data)
        embed, attachment = _import_report(mute_list, report)
        if attachment is not None:
            await interaction.followup.send(embed=embed, file=attachment, ephemeral=True)
        else:
            await send_ephemeral(interaction, embed=embed)

    @mutelist.command(name="publish", description="Add your own current X mutes to a mute list (moderators)")
    @app_commands.autocomplete(name=list_names)
    @app_commands.default_permissions(manage_guild=True)
    async def publish(self, interaction: discord.Interaction, name: NameOption) -> None:
        guild_id = _moderator(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        published = await self.bot.services.lists.publish(guild_id, interaction.user.id, name)
        await send_ephemeral(interaction, embed=published_embed(published))

    @mutelist.command(name="capture", description="Add the accounts that piled on a post: repliers, quoters, "
                      "reposters, likers (moderators)")
    @app_commands.describe(post="The post's link (https://x.com/someone/status/123) or its id",
                           who="Whom to capture (default: everyone who took part)",
                           reason="Why (shown with each entry)")
    @app_commands.choices(who=[app_commands.Choice(name=w, value=w) for w in
                               ("everyone", "author", "repliers", "quoters", "reposters", "likers")])
    @app_commands.autocomplete(name=list_names)
    @app_commands.default_permissions(manage_guild=True)
    async def capture(self, interaction: discord.Interaction, name: NameOption,
                      post: app_commands.Range[str, 1, 300], who: str = "everyone",
                      reason: app_commands.Range[str, 0, 200] | None = None) -> None:
        guild_id = _moderator(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        preview = await self.bot.services.captures.preview(guild_id, interaction.user.id, name, post, who, reason)
        await interaction.edit_original_response(embed=preview_embed(preview),
                                                 view=capture_view(preview.capture_id, interaction.user.id))

    @mutelist.command(name="protect", description="An account no list of this server may hold (moderators)")
    @app_commands.describe(username="@name, name or profile link")
    @app_commands.default_permissions(manage_guild=True)
    async def protect(self, interaction: discord.Interaction, username: UsernameOption) -> None:
        guild_id = _moderator(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        user, removed = await self.bot.services.lists.protect(guild_id, interaction.user.id, username)
        text = (f"[@{user.username}]({user.url}) is protected: no list of this server may hold it, and captures "
                "leave it out.")
        for list_name, queued in removed:
            text += f"\nTaken off {code_span(list_name)}" + (
                f"; unmuting it for {counted(queued, 'subscriber')}." if queued else ".")
        await send_ephemeral(interaction, embed=discord.Embed(title="Account protected", colour=COLOUR_OK,
                                                              description=text[:4096]))

    @mutelist.command(name="unprotect", description="Lift an account's protection (moderators)")
    @app_commands.describe(username="The username as protected (or the X user id)")
    @app_commands.default_permissions(manage_guild=True)
    async def unprotect(self, interaction: discord.Interaction, username: app_commands.Range[str, 1, 200]) -> None:
        guild_id = _moderator(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        name = await self.bot.services.lists.unprotect(guild_id, interaction.user.id, username)
        await send_ephemeral(interaction, embed=discord.Embed(
            title="Protection lifted", colour=COLOUR_INFO,
            description=f"@{name} is no longer protected; lists of this server may hold it again."))

    @mutelist.command(name="modlog", description="Announce every change to this server's lists in a channel; "
                      "without one, stop (moderators)")
    @app_commands.describe(channel="The text channel to announce in; leave it out to stop announcing")
    @app_commands.default_permissions(manage_guild=True)
    async def modlog(self, interaction: discord.Interaction, channel: ServerTextChannelOption | None = None) -> None:
        guild_id = _moderator(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        modlog = self.bot.services.modlog
        if channel is None:
            stopped = await modlog.stop(guild_id, interaction.user.id)
            text = (f"Changes to this server's lists are no longer announced in <#{stopped}>." if stopped else
                    "Changes to this server's lists were not being announced anywhere; nothing changed.")
            await send_ephemeral(interaction, embed=discord.Embed(title="Moderation log stopped", colour=COLOUR_INFO,
                                                                  description=text))
            return
        result = await modlog.set_channel(guild_id, interaction.user.id, channel)
        text = (f"Every change to this server's lists (create, delete, add, remove, import, capture, publish, "
                f"protect, unprotect) is announced in <#{result.channel_id}> from now on, naming who made it.")
        if result.missing:
            text += (f"\n**mutebot cannot post there yet**: it lacks {' and '.join(result.missing)} in that channel. "
                     "Give mutebot those permissions there (the channel's settings → Permissions); announcements "
                     "start as soon as it can. You will not be told again.")
        await send_ephemeral(interaction, embed=discord.Embed(
            title="Moderation log set", colour=COLOUR_ERROR if result.missing else COLOUR_OK, description=text))

    async def capture_button(self, interaction: discord.Interaction, capture_id: int, action: str) -> discord.Embed:
        captures = self.bot.services.captures
        if action == "add":
            return added_embed(await captures.add(capture_id, interaction.user.id))
        await captures.cancel(capture_id, interaction.user.id)
        return cancelled_embed()

    # -- everyone ----------------------------------------------------------------------------------------

    @mutelist.command(name="export", description="Download a mute list as CSV")
    @app_commands.autocomplete(name=list_names)
    async def export(self, interaction: discord.Interaction, name: NameOption) -> None:
        guild_id = _guild(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        mute_list, data = await self.bot.services.lists.export_csv(guild_id, name)
        filename = "".join(c if c.isalnum() or c in "-_" else "_" for c in mute_list.name) + ".csv"
        await interaction.followup.send(
            f"{_list_title(mute_list)} as CSV (username, id, reason, added_by, added_at, evidence).",
            file=discord.File(io.BytesIO(data), filename=filename), ephemeral=True,
        )

    @mutelist.command(name="show", description="The accounts on a mute list, page by page")
    @app_commands.autocomplete(name=list_names)
    async def show(self, interaction: discord.Interaction, name: NameOption) -> None:
        guild_id = _guild(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        mute_list = await self.bot.services.lists.get(guild_id, name)
        await show_page(interaction, "list", mute_list.id, 0, interaction.user.id, refresh=False, new_message=True)

    async def render_list(
        self, interaction: discord.Interaction, owner: int, ref: int, page: int, refresh: bool
    ) -> RenderedPage:
        result = await self.bot.services.lists.page(_guild(interaction), ref, page)
        lines = []
        for i, entry in enumerate(result.entries):
            who = f"[@{entry.username}](https://x.com/{entry.username})" if entry.username else f"id {entry.x_user_id}"
            reason = f" — {discord.utils.escape_markdown(entry.reason)}" if entry.reason else ""
            evidence = evidence_line(entry.evidence_url, entry.evidence_sources)
            lines.append(f"{result.first_number + i}. {who}{reason}" + (f" · {evidence}" if evidence else ""))
        description = "\n".join(lines) if lines else "This list is empty."
        if result.mute_list.description:
            description = f"*{discord.utils.escape_markdown(result.mute_list.description)}*\n\n{description}"
        embed = discord.Embed(title=f"Mute list: {result.mute_list.name}"[:256], colour=COLOUR_OK,
                              description=description[:4096])
        embed.set_footer(text=f"Page {result.page + 1} of {result.pages} · {counted(result.total, 'account')}")
        return RenderedPage(embed, result.page, result.pages)

    @mutelist.command(name="all", description="This server's mute lists, with sizes and subscriber counts")
    async def all_lists(self, interaction: discord.Interaction) -> None:
        guild_id = _guild(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        summaries = await self.bot.services.lists.summaries(guild_id)
        lines = []
        for s in summaries:
            line = (f"{_list_title(s.mute_list)} — {counted(s.entries, 'account')}, "
                    f"{counted(s.subscribers, 'subscriber')}")
            if s.mute_list.description:
                line += f"\n  {discord.utils.escape_markdown(s.mute_list.description)}"
            lines.append(line)
        await send_ephemeral(interaction, embed=discord.Embed(
            title="Mute lists in this server", colour=COLOUR_OK,
            description=("\n".join(lines) or "No lists yet. Moderators create them with `/mutelist create`.")[:4096],
        ))

    async def _progress_target(self, interaction: discord.Interaction, title: str) -> tuple[int | None, int]:
        """Where the job reports: a DM, or this command's own reply when the member's DMs are closed."""
        message = await self.bot.dm(interaction.user.id, content=f"**{title}**\nGetting ready…")
        if message is not None:
            return message.channel.id, message.id
        return None, self.progress.use_interaction(interaction)

    @mutelist.command(name="apply", description="Mute every account on a list, through the queue, with progress")
    @app_commands.autocomplete(name=list_names)
    async def apply(self, interaction: discord.Interaction, name: NameOption) -> None:
        guild_id = _guild(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        lists = self.bot.services.lists
        mute_list = await lists.get(guild_id, name)
        await self.bot.services.mutes.linked(interaction.user.id)
        channel_id, message_id = await self._progress_target(interaction, job_title("apply", mute_list.name))
        _, applied = await lists.apply(guild_id, interaction.user.id, name, progress_channel_id=channel_id,
                                       progress_message_id=message_id)
        text = (f"Applying {_list_title(mute_list)}: **{applied.to_send}** to mute, {applied.already_muted} "
                f"already muted.")
        await self._answer(interaction, channel_id, text)

    @mutelist.command(name="subscribe", description="Apply a list now and every account added to it later")
    @app_commands.autocomplete(name=list_names)
    async def subscribe(self, interaction: discord.Interaction, name: NameOption) -> None:
        guild_id = _guild(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        lists = self.bot.services.lists
        mute_list = await lists.get(guild_id, name)
        await self.bot.services.mutes.linked(interaction.user.id)
        channel_id, message_id = await self._progress_target(interaction, job_title("subscribe", mute_list.name))
        _, applied, new = await lists.subscribe(guild_id, interaction.user.id, name, progress_channel_id=channel_id,
                                                progress_message_id=message_id)
        text = ("Subscribed to " if new else "You were already subscribed to ") + (
            f"{_list_title(mute_list)}: **{applied.to_send}** to mute now, {applied.already_muted} already muted. "
            "Accounts added later are muted for you too; removals unmute where this list was the only reason."
        )
        await self._answer(interaction, channel_id, text)

    @mutelist.command(name="unsubscribe", description="Unsubscribe from a list; with undo, unmute what it alone muted")
    @app_commands.describe(undo="Also unmute the accounts this list alone muted for you")
    @app_commands.autocomplete(name=list_names)
    async def unsubscribe(self, interaction: discord.Interaction, name: NameOption, undo: bool = False) -> None:
        guild_id = _guild(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        lists = self.bot.services.lists
        mute_list = await lists.get(guild_id, name)
        channel_id: int | None = None
        message_id: int | None = None
        if undo:
            await self.bot.services.mutes.linked(interaction.user.id)
            channel_id, message_id = await self._progress_target(interaction, job_title("undo", mute_list.name))
        _, result = await lists.unsubscribe(guild_id, interaction.user.id, name, undo=undo,
                                            progress_channel_id=channel_id, progress_message_id=message_id)
        text = ("Unsubscribed from " if result.was_subscribed else "You were not subscribed to ") + (
            f"{_list_title(mute_list)}.")
        if result.cancelled:
            text += f" {counted(result.cancelled, 'queued mute')} cancelled."
        if undo:
            text += f" Unmuting {counted(result.to_unmute, 'account', bold=True)} this list alone had muted."
            await self._answer(interaction, channel_id, text)
        else:
            await send_ephemeral(interaction, embed=discord.Embed(description=text, colour=COLOUR_INFO))

    async def _answer(self, interaction: discord.Interaction, channel_id: int | None, text: str) -> None:
        if channel_id is not None:
            await send_ephemeral(interaction, embed=discord.Embed(
                description=f"{text}\nProgress is in your DMs.", colour=COLOUR_OK
            ))
        else:  # the reply itself shows the progress; the counts follow it
            await interaction.followup.send(embed=discord.Embed(
                description=f"{text}\nYour DMs are closed, so progress shows here.", colour=COLOUR_OK,
            ), ephemeral=True)


def _import_report(mute_list: MuteList, report: ImportReport) -> tuple[discord.Embed, discord.File | None]:
    problems = report.problems
    summary = (f"{counted(report.rows, 'row')} read: **{report.added}** added to {_list_title(mute_list)}, "
               f"{report.already} already on it, {len(problems)} not usable.")
    if report.queued_for:
        summary += f" Queued for {counted(report.queued_for, 'subscriber')}."
    lines = [f"line {p.line}: {code_span(p.text[:40])} — {p.reason}" for p in problems]
    shown = "\n".join(lines[:15])
    attachment: discord.File | None = None
    if len(lines) > 15:
        shown += f"\n… {len(lines) - 15} more in the attached file."
        text = "\n".join(f"line {p.line}\t{p.text}\t{p.reason}" for p in problems) + "\n"
        attachment = discord.File(io.BytesIO(text.encode()), filename="import-problems.txt")
    embed = discord.Embed(title="Import finished", colour=COLOUR_ERROR if problems and not report.added else COLOUR_OK,
                          description=summary)
    if shown:
        embed.add_field(name="Rows not used", value=shown[:1024], inline=False)
    return embed, attachment


async def setup(bot: MuteBot) -> None:
    await bot.add_cog(MuteListCommands(bot))
