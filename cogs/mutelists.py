"""/mutelist: a server's shared mute lists — moderators curate them, members apply them or subscribe to them."""

from __future__ import annotations

import io
from typing import cast

import discord
from discord import app_commands
from discord.ext import commands

from bot.capture_view import HANDLERS, CaptureButton, capture_view
from bot.errors import GuildOnly, ImportTooLarge, NotModerator, ProgressUnavailable
from bot.mutelists import MAX_IMPORT_BYTES
from bot.options import ServerTextChannelOption, UsernameOption
from bot.paginator import RenderedPage, register_source, show_page
from bot.progress import DiscordProgress
from bot.replies import (
    COLOUR_INFO,
    all_lists_embed,
    applied_text,
    capture_added_embed,
    capture_cancelled_embed,
    entry_added_embed,
    entry_removed_embed,
    export_caption,
    import_report,
    job_started_embed,
    job_title,
    list_created_embed,
    list_deleted_dm,
    list_deleted_embed,
    list_page_embed,
    modlog_set_embed,
    modlog_stopped_embed,
    preview_embed,
    progress_placeholder,
    protected_embed,
    published_embed,
    send_ephemeral,
    subscribed_text,
    unprotected_embed,
    unsubscribed_text,
)
from bot.runtime import MuteBot

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


class MuteListCommands(commands.Cog):
    mutelist = app_commands.Group(name="mutelist", description="This server's shared mute lists", guild_only=True)

    def __init__(self, bot: MuteBot) -> None:
        self.bot = bot
        register_source(bot, "list", self.render_list)
        HANDLERS.register(bot, "capture", self.capture_button)

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
            raise ProgressUnavailable()
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
        await send_ephemeral(interaction, embed=list_created_embed(mute_list))

    @mutelist.command(name="delete", description="Delete a mute list (moderators)")
    @app_commands.autocomplete(name=list_names)
    @app_commands.default_permissions(manage_guild=True)
    async def delete(self, interaction: discord.Interaction, name: NameOption) -> None:
        guild_id = _moderator(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        mute_list, subscribers, cancelled = await self.bot.services.lists.delete(guild_id, interaction.user.id, name)
        for member_id in subscribers:
            await self.bot.dm(member_id, content=list_deleted_dm(mute_list))
        await send_ephemeral(interaction, embed=list_deleted_embed(mute_list, cancelled, len(subscribers)))

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
        await send_ephemeral(interaction, embed=entry_added_embed(mute_list, user, added=added, queued=queued,
                                                                  reason_given=bool(reason)))

    @mutelist.command(name="remove", description="Remove an X account from a mute list (moderators)")
    @app_commands.describe(username="The username as listed (or the X user id)")
    @app_commands.autocomplete(name=list_names)
    @app_commands.default_permissions(manage_guild=True)
    async def remove(self, interaction: discord.Interaction, name: NameOption,
                     username: app_commands.Range[str, 1, 200]) -> None:
        guild_id = _moderator(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        mute_list, entry, queued = await self.bot.services.lists.remove(guild_id, interaction.user.id, name, username)
        await send_ephemeral(interaction, embed=entry_removed_embed(mute_list, entry, queued))

    @mutelist.command(name="import", description="Add many accounts from a CSV or a one-username-per-line file "
                      "(moderators)")
    @app_commands.describe(file="CSV with a `username` or `id` column, or one username per line (≤ 10,000 rows)")
    @app_commands.autocomplete(name=list_names)
    @app_commands.default_permissions(manage_guild=True)
    async def import_(self, interaction: discord.Interaction, name: NameOption, file: discord.Attachment) -> None:
        guild_id = _moderator(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        if file.size > MAX_IMPORT_BYTES:  # Discord tells the size: refuse before downloading it
            raise ImportTooLarge(MAX_IMPORT_BYTES)
        data = await file.read()
        mute_list, report = await self.bot.services.lists.import_file(guild_id, interaction.user.id, name, data)
        embed, attachment = import_report(mute_list, report)
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
        await send_ephemeral(interaction, embed=protected_embed(user, removed))

    @mutelist.command(name="unprotect", description="Lift an account's protection (moderators)")
    @app_commands.describe(username="The username as protected (or the X user id)")
    @app_commands.default_permissions(manage_guild=True)
    async def unprotect(self, interaction: discord.Interaction, username: app_commands.Range[str, 1, 200]) -> None:
        guild_id = _moderator(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        name = await self.bot.services.lists.unprotect(guild_id, interaction.user.id, username)
        await send_ephemeral(interaction, embed=unprotected_embed(name))

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
            await send_ephemeral(interaction, embed=modlog_stopped_embed(stopped))
            return
        result = await modlog.set_channel(guild_id, interaction.user.id, channel)
        await send_ephemeral(interaction, embed=modlog_set_embed(result))

    async def capture_button(self, interaction: discord.Interaction, capture_id: int, action: str) -> discord.Embed:
        captures = self.bot.services.captures
        if action == "add":
            return capture_added_embed(await captures.add(capture_id, interaction.user.id))
        await captures.cancel(capture_id, interaction.user.id)
        return capture_cancelled_embed()

    # -- everyone ----------------------------------------------------------------------------------------

    @mutelist.command(name="export", description="Download a mute list as CSV")
    @app_commands.autocomplete(name=list_names)
    async def export(self, interaction: discord.Interaction, name: NameOption) -> None:
        guild_id = _guild(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        mute_list, data = await self.bot.services.lists.export_csv(guild_id, name)
        filename = "".join(c if c.isalnum() or c in "-_" else "_" for c in mute_list.name) + ".csv"
        await interaction.followup.send(
            export_caption(mute_list),
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
        return RenderedPage(list_page_embed(result), result.page, result.pages)

    @mutelist.command(name="all", description="This server's mute lists, with sizes and subscriber counts")
    async def all_lists(self, interaction: discord.Interaction) -> None:
        guild_id = _guild(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        summaries = await self.bot.services.lists.summaries(guild_id)
        await send_ephemeral(interaction, embed=all_lists_embed(summaries))

    async def _progress_target(self, interaction: discord.Interaction, title: str) -> tuple[int | None, int]:
        """Where the job reports: a DM, or this command's own reply when the member's DMs are closed."""
        message = await self.bot.dm(interaction.user.id, content=progress_placeholder(title))
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
        await self._answer(interaction, channel_id, applied_text(mute_list, applied))

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
        await self._answer(interaction, channel_id, subscribed_text(mute_list, applied, new))

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
        text = unsubscribed_text(mute_list, result, undo)
        if undo:
            await self._answer(interaction, channel_id, text)
        else:
            await send_ephemeral(interaction, embed=discord.Embed(description=text, colour=COLOUR_INFO))

    async def _answer(self, interaction: discord.Interaction, channel_id: int | None, text: str) -> None:
        if channel_id is not None:
            await send_ephemeral(interaction, embed=job_started_embed(text, in_dms=True))
        else:  # the reply itself shows the progress; the counts follow it
            await interaction.followup.send(embed=job_started_embed(text, in_dms=False), ephemeral=True)


async def setup(bot: MuteBot) -> None:
    await bot.add_cog(MuteListCommands(bot))
