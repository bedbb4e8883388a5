"""MuteBot, the one `commands.Bot` subclass: start-up, isolated cog loading, command sync, errors, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import signal
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.accounts import AccountService
from bot.config import Settings
from bot.directory import UserDirectory
from bot.discord_endpoints import point_discord_py_at
from bot.mutelists import MuteLists
from bot.mutes import MuteService
from bot.paginator import PageButton
from bot.progress import DiscordProgress
from bot.queue import ActionQueue
from bot.replies import COLOUR_OK, account_embed, report_error
from bot.store import Database, Stores
from bot.vault import TokenVault
from bot.web import WebServer, build_app
from bot.x_client import XClient, XUser

log = logging.getLogger(__name__)

DEFAULT_EXTENSIONS: tuple[str, ...] = ("cogs.linking", "cogs.muting", "cogs.mutelists")
STATE_PURGE_INTERVAL = 300.0
RETENTION_INTERVAL = 3600.0
FINISHED_WORK_RETENTION = 30 * 24 * 3600.0  # finished queued actions and jobs
AUDIT_RETENTION = 365 * 24 * 3600.0  # moderators' changes to lists


@dataclass
class Services:
    """The engine the cogs call; built once in `setup_hook`."""

    settings: Settings
    stores: Stores
    db: Database
    vault: TokenVault
    x: XClient
    directory: UserDirectory
    accounts: AccountService
    mutes: MuteService
    queue: ActionQueue
    lists: MuteLists


class MuteBot(commands.Bot):
    def __init__(
        self,
        settings: Settings,
        *,
        extensions: Sequence[str] = DEFAULT_EXTENSIONS,
        clock: Callable[[], float] = time.time,
        guild_ready_timeout: float = 2.0,
        serving: bool = True,
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # no privileged intents: slash commands arrive as interactions
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            chunk_guilds_at_startup=False,
            member_cache_flags=discord.MemberCacheFlags.none(),
            max_messages=None,
            guild_ready_timeout=guild_ready_timeout,
        )
        self.settings = settings
        self.extension_names = tuple(extensions)
        # False for one-shot commands (sync-commands): no web server, no workers, no automatic sync,
        # so they never compete with a running `mutebot run` for its port or its queue.
        self.serving = serving
        self.failed_extensions: dict[str, BaseException] = {}
        self.clock = clock
        self._services: Services | None = None
        self.web: WebServer | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.ready_event = asyncio.Event()
        self.tree.error(self.on_app_command_error)

    @property
    def services(self) -> Services:
        if self._services is None:
            raise RuntimeError("services are available once setup_hook has run")
        return self._services

    async def setup_hook(self) -> None:
        settings = self.settings
        stores = await Stores.open(settings.database_path)
        db = stores.db
        await db.migrate()
        vault = TokenVault(settings.token_encryption_keys)
        x = XClient(settings.x_api_base, clock=self.clock,
                    consumer_key=settings.x_consumer_key, consumer_secret=settings.x_consumer_secret)
        directory = UserDirectory(stores.directory, x, clock=self.clock)
        accounts = AccountService(settings, stores, vault, x, clock=self.clock)
        accounts.on_linked = self.confirm_link
        accounts.on_relink_needed = self.ask_to_relink
        mutes = MuteService(stores, accounts, directory, x, clock=self.clock)
        queue = ActionQueue(stores, accounts, mutes, x, clock=self.clock)
        queue.reporter = DiscordProgress(self, self.dm, clock=self.clock)
        lists = MuteLists(stores, accounts, directory, mutes, queue, clock=self.clock)
        self._services = Services(settings, stores, db, vault, x, directory, accounts, mutes, queue, lists)

        for name in self.extension_names:
            try:
                await self.load_extension(name)
            except Exception as exc:  # one broken cog must not take the others down
                self.failed_extensions[name] = exc
                log.exception("extension %s failed to load; the others carry on", name)
        self.add_dynamic_items(PageButton)
        if not self.serving:
            return
        self.web = WebServer(build_app(db, accounts), settings.web_host, settings.web_port)
        await self.web.start()
        await self.sync_if_changed()
        self.start_task("purge-states", self._purge_states)
        self.start_task("retention", self._retention)
        self.start_task("action-queue", queue.run)

    def start_task(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """A background loop that is restarted after an error and cancelled on shutdown."""

        async def supervised() -> None:
            while True:
                try:
                    await factory()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("background task %s failed; restarting in 5 s", name)
                    await asyncio.sleep(5)

        self._tasks[name] = asyncio.create_task(supervised(), name=f"mutebot:{name}")

    async def _purge_states(self) -> None:
        while True:
            purged = await self.services.accounts.purge_states()
            if purged:
                log.info("purged %d expired authorisation state(s)", purged)
            await asyncio.sleep(STATE_PURGE_INTERVAL)

    async def _retention(self) -> None:
        """Everything that grows with use has a bound: old finished work, old audit lines, stale lookups."""
        while True:
            await self.purge_old()
            await asyncio.sleep(RETENTION_INTERVAL)

    async def purge_old(self) -> dict[str, int]:
        services = self.services
        now = self.clock()
        purged = {
            "finished actions and jobs": await services.stores.queue.purge_finished(now - FINISHED_WORK_RETENTION),
            "audit lines": await services.stores.lists.purge_audit(now - AUDIT_RETENTION),
            "stale X user lookups": await services.directory.purge(),
        }
        if any(purged.values()):
            log.info("retention: purged %s", ", ".join(f"{n} {what}" for what, n in purged.items() if n))
        return purged

    # -- commands --------------------------------------------------------------------------------

    def command_tree_hash(self) -> str:
        payload = [command.to_dict(self.tree) for command in self.tree.get_commands()]
        encoded = json.dumps(sorted(payload, key=lambda c: str(c["name"])), sort_keys=True).encode()
        return hashlib.sha256(encoded).hexdigest()

    async def sync_if_changed(self) -> bool:
        """Discord limits command writes: sync only when the tree differs from the last synced one."""
        digest = self.command_tree_hash()
        if await self.services.stores.meta.get("command_tree_hash") == digest:
            log.info("slash commands unchanged since the last sync")
            return False
        await self.sync_now()
        return True

    async def sync_now(self, guild_id: int | None = None) -> int:
        guild = discord.Object(guild_id) if guild_id else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        synced = await self.tree.sync(guild=guild)
        if guild is None:  # what `run` compares against next time: the global tree as just pushed
            await self.services.stores.meta.set("command_tree_hash", self.command_tree_hash())
        log.info("synced %d slash command(s) %s", len(synced), f"to guild {guild_id}" if guild_id else "globally")
        return len(synced)

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        await report_error(interaction, error)

    async def on_ready(self) -> None:
        log.info("connected to Discord as %s (%s guilds)", self.user, len(self.guilds))
        self.ready_event.set()

    # -- messages to members -----------------------------------------------------------------------

    async def dm(self, user_id: int, *, content: str | None = None, embed: discord.Embed | None = None,
                 view: discord.ui.View | None = None) -> discord.Message | None:
        """Send a DM; None when the member does not accept DMs from us."""
        try:
            user = self.get_user(user_id) or await self.fetch_user(user_id)
            channel = user.dm_channel or await user.create_dm()
            missing = discord.utils.MISSING
            return await channel.send(content, embed=embed or missing, view=view or missing)
        except discord.Forbidden:
            return None
        except discord.HTTPException as exc:
            log.warning("DM to member %s failed (%s)", user_id, exc.status)
            return None

    async def confirm_link(self, discord_user_id: int, user: XUser) -> None:
        if self._services is not None:
            self._services.queue.poke()  # a relinked member's paused actions can go out again
        await self.dm(discord_user_id, embed=account_embed(
            "X account linked", user, colour=COLOUR_OK,
            note="You can now use `/mute`, `/unmute`, `/mutes` and the server's mute lists.",
        ))

    async def ask_to_relink(self, discord_user_id: int) -> None:
        await self.dm(discord_user_id, content=(
            "X no longer accepts mutebot's access to your X account. Run `/link` in your server to reconnect; "
            "anything queued for you waits until then."
        ))

    # -- shutdown ------------------------------------------------------------------------------------

    async def close(self) -> None:
        # close() can run twice at once (a signal while the connection is also ending): take
        # everything out of the shared attributes before the first await.
        tasks, self._tasks = list(self._tasks.values()), {}
        web, self.web = self.web, None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await super().close()
        if web is not None:
            await web.stop()
        if self._services is not None:
            services, self._services = self._services, None
            await services.queue.aclose()
            await services.accounts.aclose()
            await services.x.aclose()
            await services.db.close()


async def serve(settings: Settings, stop: asyncio.Event, bot: MuteBot | None = None) -> int:
    """Run until `stop` is set or the connection ends; close everything either way."""
    point_discord_py_at(settings.discord_api_base, settings.discord_gateway_url)
    # Migrate before connecting, so a database from a newer mutebot is refused before any network traffic.
    db = await Database.open(settings.database_path)
    try:
        await db.migrate()
    finally:
        await db.close()
    bot = bot or MuteBot(settings)
    token = settings.discord_token.reveal() if settings.discord_token else ""
    async with bot:
        runner = asyncio.create_task(bot.start(token))
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if runner not in done:
            log.info("shutting down")
            await bot.close()
        waiter.cancel()
        try:
            await runner
        except discord.LoginFailure:
            log.error("DISCORD_TOKEN: Discord refused the bot token")
            return 2
    return 0


def run_bot(settings: Settings) -> int:
    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await serve(settings, stop)

    return asyncio.run(main())


def sync_commands(settings: Settings, guild_id: int | None = None) -> int:
    async def main() -> int:
        point_discord_py_at(settings.discord_api_base, settings.discord_gateway_url)
        bot = MuteBot(settings, serving=False)
        token = settings.discord_token.reveal() if settings.discord_token else ""
        async with bot:
            await bot.login(token)  # runs setup_hook: storage and cogs, nothing that serves
            count = await bot.sync_now(guild_id)
        print(f"pushed {count} slash command(s) {f'to guild {guild_id}' if guild_id else 'globally'}")
        return 0

    return asyncio.run(main())
