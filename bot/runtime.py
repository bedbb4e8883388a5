"""MuteBot, the one `commands.AutoShardedBot` subclass: start-up, cog loading, command sync, errors, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.accounts import AccountService
from bot.capture import CaptureService
from bot.config import Settings, StartupError, listen_problem
from bot.directory import UserDirectory
from bot.discord_endpoints import point_discord_py_at
from bot.membership import DiscordMembership
from bot.memory import tune_collector
from bot.metrics import Metrics
from bot.modlog import ModLog
from bot.mutelists import MuteLists
from bot.mutes import MuteService
from bot.paginator import PageButton
from bot.progress import DiscordProgress
from bot.queue import LEASE, ActionQueue
from bot.replies import COLOUR_OK, account_embed, counted, report_error
from bot.store import Database, Stores
from bot.timers import MuteTimers, TimerSchedule
from bot.vault import TokenVault
from bot.waiting import wait_for_event
from bot.web import WebServer, build_app
from bot.x_client import XClient, XUser

log = logging.getLogger(__name__)

DEFAULT_EXTENSIONS: tuple[str, ...] = ("cogs.linking", "cogs.muting", "cogs.mutelists")
STATE_PURGE_INTERVAL = 300.0
RETENTION_INTERVAL = 3600.0
FINISHED_WORK_RETENTION = 30 * 24 * 3600.0  # finished queued actions and jobs
AUDIT_RETENTION = 365 * 24 * 3600.0  # moderators' changes to lists
DISCORD_RETRY_DELAYS = (5.0, 10.0, 20.0, 40.0, 60.0)  # seconds before attempt 2, 3, ...; then every minute
# For tests only, not an operator's setting (INTERFACE.md does not name it): a shorter lease on claimed actions,
# so that a test can watch a killed process's claims expire and be taken over without waiting a minute.
TEST_LEASE_VARIABLE = "MUTEBOT_TEST_ACTION_LEASE"
# For tests only, likewise: seconds added to the wall clock of `mutebot run`, so that a test can let a timed
# mute's end pass while the process is down, and the process reads the clock the in-test X emulator reads.
TEST_CLOCK_VARIABLE = "MUTEBOT_TEST_CLOCK_OFFSET"


def process_clock() -> Callable[[], float]:
    """The wall clock, moved by TEST_CLOCK_VARIABLE's seconds when a test sets it."""
    offset = float(os.environ.get(TEST_CLOCK_VARIABLE) or 0)
    if not offset:
        return time.time
    return lambda: time.time() + offset


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
    timers: MuteTimers
    captures: CaptureService
    modlog: ModLog


class MuteBot(commands.AutoShardedBot):
    """The shards SHARD_COUNT and SHARD_IDS name (unset: as many as Discord recommends, all here); whichever
    process runs a server's shard gets its interactions, while every process's queue serves the shared
    database."""

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
        # Only counted when served: the hooks cost little, but /mute is measured against a bare floor.
        self.metrics: Metrics | None = Metrics(clock=clock) if settings.metrics_port else None
        traced: dict[str, Any] = {"http_trace": self.metrics.discord_trace()} if self.metrics else {}
        shard_ids: dict[str, Any] = {} if settings.shard_ids is None else {"shard_ids": list(settings.shard_ids)}
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            chunk_guilds_at_startup=False,
            member_cache_flags=discord.MemberCacheFlags.none(),
            max_messages=None,
            guild_ready_timeout=guild_ready_timeout,
            shard_count=settings.shard_count,
            **shard_ids,
            **traced,
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
        stores = await Stores.open(settings.database)
        db = stores.db
        await db.migrate()
        vault = TokenVault(settings.token_encryption_keys)
        x = XClient(settings.x_api_base, clock=self.clock,
                    consumer_key=settings.x_consumer_key, consumer_secret=settings.x_consumer_secret)
        if self.metrics is not None:
            x.observers.append(self.metrics.x_call)
            x.rate_limits = self.metrics.counted_rate_limits(x.rate_limits)
            self.metrics.queue_counts = stores.queue.action_counts
        directory = UserDirectory(stores.directory, x, clock=self.clock)
        accounts = AccountService(settings, stores, vault, x, clock=self.clock)
        accounts.on_linked = self.confirm_link
        accounts.on_relink_needed = self.ask_to_relink
        schedule = TimerSchedule(stores, clock=self.clock)
        mutes = MuteService(stores, accounts, directory, x, schedule, clock=self.clock)
        queue = ActionQueue(stores, accounts, mutes, x, clock=self.clock,
                            lease=float(os.environ.get(TEST_LEASE_VARIABLE) or LEASE))
        queue.reporter = DiscordProgress(self, self.dm, clock=self.clock)
        membership = DiscordMembership(self, clock=self.clock)
        modlog = ModLog(stores, self, self.dm, clock=self.clock)
        lists = MuteLists(stores, accounts, directory, mutes, queue, members=membership, modlog=modlog,
                          clock=self.clock)
        timers = MuteTimers(stores, schedule, queue, clock=self.clock)
        captures = CaptureService(stores, accounts, lists, x, members=membership, modlog=modlog, clock=self.clock)
        self._services = Services(settings, stores, db, vault, x, directory, accounts, mutes, queue, lists, timers,
                                  captures, modlog)

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
        try:
            await self.web.start()
        except OSError as exc:  # serve() checked the port, but something may have taken it since
            raise StartupError(_port_taken("WEB_PORT", settings.web_host, settings.web_port,
                                           (exc.strerror or str(exc)).lower())) from None
        if self.metrics is not None and settings.metrics_port is not None:
            try:
                await self.metrics.start(settings.web_host, settings.metrics_port)
            except OSError as exc:
                raise StartupError(_port_taken("METRICS_PORT", settings.web_host, settings.metrics_port,
                                               (exc.strerror or str(exc)).lower())) from None
        await self.sync_if_changed()
        self.start_task("purge-states", self._purge_states)
        self.start_task("retention", self._retention)
        self.start_task("action-queue", queue.run)
        self.start_task("mute-timers", timers.run)
        self.start_task("modlog", modlog.run)

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
                log.info("purged %s", counted(purged, "expired authorisation state"))
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
            "expired capture previews": await services.captures.purge(),
            "ended X rate windows": await services.stores.rate_limits.purge(now - RETENTION_INTERVAL),
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
        log.info("synced %s %s", counted(len(synced), "slash command"),
                 f"to guild {guild_id}" if guild_id else "globally")
        return len(synced)

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        outcome = await report_error(interaction, error)
        if self.metrics is not None and interaction.command is not None:
            self.metrics.command(interaction.command.qualified_name, outcome)

    async def on_app_command_completion(
        self, interaction: discord.Interaction, command: app_commands.Command[Any, ..., Any] | app_commands.ContextMenu
    ) -> None:
        if self.metrics is not None:
            self.metrics.command(command.qualified_name, "ok")

    def serves_guild(self, guild_id: int) -> bool:
        """Whether the server's events come to one of this process's shards (Discord's rule: shard
        (guild_id >> 22) % shard_count)."""
        if self.shard_count is None or self.shard_ids is None:
            return True
        return (guild_id >> 22) % self.shard_count in self.shard_ids

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
        if self._services is not None:  # while Discord's connection is still open
            await self._services.queue.flush_summaries()
        await super().close()
        if web is not None:
            await web.stop()
        if self.metrics is not None:
            await self.metrics.stop()
        if self._services is not None:
            services, self._services = self._services, None
            await services.queue.aclose()
            await services.accounts.aclose()
            await services.x.aclose()
            await services.db.close()


def _port_taken(variable: str, host: str, port: int, reason: str) -> str:
    if reason.startswith(host):  # listen_problem: the host is not this machine's
        return f"WEB_HOST: cannot listen on {host}:{port} ({reason}); set WEB_HOST to an address of this machine"
    return (f"{variable}: cannot listen on {host}:{port} ({reason}); stop what uses that port, "
            f"or set {variable} to a free one")


def discord_unreachable(exc: BaseException) -> str | None:
    """Why Discord could not be reached, in a few words ("connection refused"); None when `exc` is not a
    network failure (those are bugs, and keep their traceback)."""
    if isinstance(exc, discord.DiscordServerError):
        return f"it answered {exc.status}"
    if isinstance(exc, discord.GatewayNotFound):
        return "it named no gateway"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "its host name does not resolve"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "its TLS certificate was refused"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, ConnectionRefusedError) or os_error.errno == errno.ECONNREFUSED or (
            "Connect call failed" in str(os_error)  # asyncio's wording when every address refused
        ):
            return "connection refused"
        if isinstance(os_error, TimeoutError):
            return "no answer"
        return (os_error.strerror or str(os_error) or type(os_error).__name__).lower()
    if isinstance(exc, aiohttp.ServerDisconnectedError | ConnectionResetError):
        return "the connection was closed"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, aiohttp.ClientError):  # any other failure of the connection itself
        return str(exc) or type(exc).__name__
    return None


def retry_delay(attempt: int) -> float:
    """Seconds to wait before `attempt` (2, 3, ...) to reach Discord: 5, 10, 20, 40, then 60 s."""
    return DISCORD_RETRY_DELAYS[min(attempt - 2, len(DISCORD_RETRY_DELAYS) - 1)]


class GatewayRetryNotice(logging.Filter):
    """discord.py logs each gateway reconnect with a whole traceback ("Attempting a reconnect in 5.00s");
    an operator needs one line: where, why, and when the next try is."""

    def __init__(self, gateway_url: str) -> None:
        super().__init__()
        self.gateway_url = gateway_url

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != "Attempting a reconnect in %.2fs" or not record.exc_info or not record.args:
            return True
        reason = discord_unreachable(record.exc_info[1]) if record.exc_info[1] else None
        if reason is None:
            return True  # not a network failure: keep the traceback
        delay = record.args[0] if isinstance(record.args, tuple) else 0
        record.msg = "Discord's gateway is not reachable at %s (%s); retrying in %.0f s"
        record.args = (self.gateway_url, reason, delay)
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _quiet_gateway_retries(gateway_url: str) -> None:
    client_log = logging.getLogger("discord.client")
    for old in [f for f in client_log.filters if isinstance(f, GatewayRetryNotice)]:
        client_log.removeFilter(old)
    client_log.addFilter(GatewayRetryNotice(gateway_url))


async def serve(settings: Settings, stop: asyncio.Event, bot: MuteBot | None = None) -> int:
    """Run until `stop` is set or the connection ends; close everything either way.

    While Discord cannot be reached, try again with a growing delay, one log line per attempt, until it can
    or `stop` is set. A configuration Discord refuses, or a port that is taken, raises StartupError or
    returns 2: retrying would not help."""
    point_discord_py_at(settings.discord_api_base, settings.discord_gateway_url)
    _quiet_gateway_retries(settings.discord_gateway_url)
    # Migrate before connecting, so a database from a newer mutebot is refused before any network traffic.
    db = await Database.open(settings.database)
    try:
        await db.migrate()
    finally:
        await db.close()
    # The same for a port something else holds: say so now, not after connecting to Discord.
    if problem := listen_problem(settings.web_host, settings.web_port):
        raise StartupError(_port_taken("WEB_PORT", settings.web_host, settings.web_port, problem))
    if settings.metrics_port is not None and (problem := listen_problem(settings.web_host, settings.metrics_port)):
        raise StartupError(_port_taken("METRICS_PORT", settings.web_host, settings.metrics_port, problem))
    token = settings.discord_token.reveal() if settings.discord_token else ""
    attempt = 1
    while True:
        current = bot if bot is not None and attempt == 1 else MuteBot(settings, clock=process_clock())
        try:
            return await _serve_once(current, token, stop)
        except discord.LoginFailure:
            log.error("DISCORD_TOKEN: Discord refused the bot token")
            return 2
        except Exception as exc:
            reason = discord_unreachable(exc)
            if reason is None:
                raise
        attempt += 1
        delay = retry_delay(attempt)
        log.warning("Discord is not reachable at %s (%s); retrying in %.0f s (attempt %d)",
                    settings.discord_api_base, reason, delay, attempt)
        await wait_for_event(stop, delay)
        if stop.is_set():
            log.info("shutting down")
            return 0


async def _serve_once(bot: MuteBot, token: str, stop: asyncio.Event) -> int:
    async with bot:
        runner = asyncio.create_task(bot.start(token))
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if runner not in done:
            log.info("shutting down")
            await bot.close()
        waiter.cancel()
        await runner
    return 0


def run_bot(settings: Settings) -> int:
    async def main() -> int:
        tune_collector()  # every module is imported by now: their objects need never be walked again
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await serve(settings, stop)

    return asyncio.run(main())


def sync_commands(settings: Settings, guild_id: int | None = None) -> int:
    """Push the commands once; a Discord that cannot be reached or refuses the token is one line, exit 2."""

    async def main() -> int:
        point_discord_py_at(settings.discord_api_base, settings.discord_gateway_url)
        bot = MuteBot(settings, serving=False)
        token = settings.discord_token.reveal() if settings.discord_token else ""
        async with bot:
            await bot.login(token)  # runs setup_hook: storage and cogs, nothing that serves
            count = await bot.sync_now(guild_id)
        where = f"to guild {guild_id}" if guild_id else "globally"
        print(f"pushed {counted(count, 'slash command')} {where}")
        return 0

    try:
        return asyncio.run(main())
    except discord.LoginFailure:
        print("mutebot sync-commands: DISCORD_TOKEN: Discord refused the bot token", file=sys.stderr)
        return 2
    except Exception as exc:
        reason = discord_unreachable(exc)
        if reason is None:
            raise
        print(f"mutebot sync-commands: Discord is not reachable at {settings.discord_api_base} ({reason}); "
              "check DISCORD_API_BASE and the network, then run it again", file=sys.stderr)
        return 2
