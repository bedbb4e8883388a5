"""Sandbox: the X emulator, the Discord stand-in and the real bot in one process, for tests, the demo and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from urllib.parse import urlencode

import httpx

from bot.config import Settings, load_settings
from bot.discord_endpoints import point_discord_py_at
from bot.runtime import DEFAULT_EXTENSIONS, MuteBot
from bot.sandbox.discord_payloads import DEFAULT_MEMBER_PERMISSIONS, MODERATOR_PERMISSIONS
from bot.sandbox.discord_standin import DiscordStandIn
from bot.sandbox.members import Member, Message
from bot.sandbox.ports import free_port
from bot.sandbox.x_emulator import XEmulator
from bot.vault import TokenVault


class DiscordRequestsRefused(AssertionError):
    """The bot sent Discord request bodies it would have refused (the stand-in answered them with a 400)."""

    heading = "the bot sent Discord request bodies that Discord refuses (checked against its OpenAPI spec):"

    def __init__(self, report: str) -> None:
        super().__init__(f"{self.heading}\n{report}")


class OffsetClock:
    """The wall clock, moved forward on demand: what the bot and the X emulator both read, so a test can let
    days pass (timed mutes, token expiry) while real time keeps flowing for rate-limit windows."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class Sandbox:
    """Starts everything on loopback; `member()` gives people to drive, `link()` walks the OAuth flow."""

    # The default for `check_discord_requests`: True requires the spec, None checks when it is at hand.
    check_discord_requests: bool | None = None
    # Where a sandbox given no `database_url` gets one: None keeps SQLite in `directory`; the tests on
    # PostgreSQL (MUTEBOT_TEST_BACKEND=postgresql, tests/conftest.py) hand out a fresh database each.
    databases: Callable[[], Awaitable[str]] | None = None

    def __init__(
        self,
        directory: Path | None = None,
        *,
        x_users: int = 50,
        window_seconds: float = 900.0,
        extensions: Sequence[str] = DEFAULT_EXTENSIONS,
        env: dict[str, str] | None = None,
        client_secret: str | None = "sandbox-secret",  # noqa: S107 - the emulator's own client
        check_discord_requests: bool | None = None,
        database_url: str | None = None,
        on_sqlite: bool = False,  # SQLite whatever the suite's backend: a test of the SQLite file itself
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mutebot-")
            directory = Path(self._tmp.name)
        self.directory = directory
        self.web_port = free_port()
        self.public_base_url = f"http://127.0.0.1:{self.web_port}"
        self.clock = OffsetClock()
        self.x = XEmulator(
            users=x_users,
            clock=self.clock,
            window_seconds=window_seconds,
            client_secret=client_secret,
            redirect_uris=[f"{self.public_base_url}/oauth/callback"],
        )
        # Every body the bot sends Discord is checked against Discord's spec; stop() fails on any it refused.
        # None: when the spec is at hand (the tests insist it is: tests/conftest.py).
        if check_discord_requests is None:
            check_discord_requests = Sandbox.check_discord_requests
        self.discord = DiscordStandIn(check_requests=check_discord_requests)
        self.extensions = tuple(extensions)
        self.extra_env = dict(env or {})
        self.client_secret = client_secret
        self.database_url = database_url
        self.on_sqlite = on_sqlite
        self.key = TokenVault.generate_key()
        self.bot: MuteBot | None = None
        self._bot_task: asyncio.Task[None] | None = None
        self.guild_id = 0
        self.http = httpx.AsyncClient(timeout=10)

    def settings(self) -> Settings:
        return load_settings(self.environment(), "run")

    def environment(self) -> dict[str, str]:
        """The bot's configuration as environment variables (for `mutebot run` in another process)."""
        env = {
            "DISCORD_TOKEN": self.discord.bot_token,
            "DISCORD_API_BASE": self.discord.api_base,
            "DISCORD_GATEWAY_URL": self.discord.gateway_url,
            "X_CLIENT_ID": self.x.client_id,
            "X_API_BASE": self.x.base_url,
            "X_AUTHORIZE_URL": f"{self.x.base_url}/i/oauth2/authorize",
            "PUBLIC_BASE_URL": self.public_base_url,
            "WEB_PORT": str(self.web_port),
            "DATABASE_PATH": str(self.directory / "mutebot.sqlite3"),
            "TOKEN_ENCRYPTION_KEY": self.key,
            "X_CONSUMER_KEY": self.x.consumer_key,
            "X_CONSUMER_SECRET": self.x.consumer_secret,
        }
        if self.client_secret:
            env["X_CLIENT_SECRET"] = self.client_secret
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        return {**env, **self.extra_env}

    async def start(self, *, with_bot: bool = True) -> Sandbox:
        if self.database_url is None and Sandbox.databases is not None and not self.on_sqlite:
            self.database_url = await Sandbox.databases()
        await self.x.start()
        await self.discord.start()
        self.guild_id = self.discord.add_guild("Sandbox Server")
        if with_bot:
            await self.start_bot()
        return self

    async def start_bot(self) -> MuteBot:
        """Start (or restart) the real bot against the stand-ins, and wait until it is connected."""
        settings = self.settings()
        point_discord_py_at(settings.discord_api_base, settings.discord_gateway_url)
        bot = MuteBot(settings, extensions=self.extensions, guild_ready_timeout=0.05, clock=self.clock)
        self.bot = bot
        self._bot_task = asyncio.create_task(self._run_bot(bot, settings))
        ready = asyncio.create_task(bot.ready_event.wait())
        done, _ = await asyncio.wait({ready, self._bot_task}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            if self._bot_task in done:
                self._bot_task.result()
            raise TimeoutError("the bot did not connect to the Discord stand-in within 15 s")
        return bot

    @staticmethod
    async def _run_bot(bot: MuteBot, settings: Settings) -> None:
        token = settings.discord_token.reveal() if settings.discord_token else ""
        async with bot:
            await bot.start(token)

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass for the bot and the emulator at once; the bot's timers look again now."""
        self.clock.offset += seconds
        if self.bot is not None:
            with contextlib.suppress(RuntimeError):  # not set up yet: it reads the clock when it is
                self.bot.services.timers.schedule.poke()
                self.bot.services.queue.poke()

    async def stop_bot(self) -> None:
        if self.bot is not None:
            await self.bot.close()
        if self._bot_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._bot_task
        self.bot, self._bot_task = None, None

    async def stop(self, *, check: bool = True) -> None:
        """Stop everything; then, with `check`, fail if the bot sent Discord anything Discord would refuse."""
        await self.stop_bot()
        await self.http.aclose()
        await self.discord.stop()
        await self.x.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
        if check and self.discord.violations:
            raise DiscordRequestsRefused(self.discord.violation_report())

    async def __aenter__(self) -> Sandbox:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop(check=exc is None)
        if exc is not None and self.discord.violations:
            # The failure in flight stays the error; what Discord refused is said beside it.
            exc.add_note(f"{DiscordRequestsRefused.heading}\n{self.discord.violation_report()}")

    # -- people ---------------------------------------------------------------------------------

    def member(self, username: str, *, moderator: bool = False) -> Member:
        permissions = MODERATOR_PERMISSIONS if moderator else DEFAULT_MEMBER_PERMISSIONS
        return self.discord.add_member(self.guild_id, username, permissions=permissions)

    @staticmethod
    def link_url(message: Message) -> str:
        for button in message.buttons:
            if button.get("url"):
                return str(button["url"])
        raise AssertionError(f"no link button in {message!r}")

    async def authorize(
        self, url: str, x_username: str | None, *, deny: bool = False, browser: httpx.AsyncClient | None = None
    ) -> httpx.Response:
        """What the member's browser does: open the link (the bot's start page sets its cookie and sends the
        browser on to X), approve (or deny) there, then follow X back to our callback. `browser` is another
        browser (its own cookie jar); by default the sandbox's one."""
        browser = browser or self.http
        if url.startswith(f"{self.public_base_url}/"):
            opened = await browser.get(url)
            if not opened.is_redirect:
                return opened  # the start page refused: it says why
            url = opened.headers["location"]
        extra = urlencode({"deny": "1"} if deny else {"login": x_username or ""})
        return await browser.get(f"{url}&{extra}", follow_redirects=True)

    async def link(self, member: Member, x_username: str) -> httpx.Response:
        """The whole /link journey: the DM's button, X's authorization page, the callback."""
        before = len(await member.dms())
        await member.slash("link")
        dms = await member.dms()
        if len(dms) <= before:
            raise AssertionError("/link sent no DM")
        response = await self.authorize(self.link_url(dms[-1]), x_username)
        if response.status_code != 200:
            raise AssertionError(f"linking {member.username} as @{x_username} failed: {response.text}")
        return response
