"""A local Discord (REST v10 and gateway) that the unmodified discord.py 2.7 client can run against."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, WSMsgType, web

from bot.sandbox.discord_payloads import (
    ATTACHMENT_SIZE_LIMIT,
    BOT_PERMISSIONS,
    DEFAULT_MEMBER_PERMISSIONS,
    EPHEMERAL_FLAG,
    JSON,
    LOADING_FLAG,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    InteractionRecord,
    StoredAttachment,
    StoredMessage,
    channel_permissions,
    dm_channel_json,
    guess_content_type,
    iso_now,
    member_json,
    message_problems,
    overwrite_json,
    role_json,
    snowflake,
    text_channel_json,
    user_json,
)
from bot.sandbox.discord_spec import DiscordSpec, Violation, form_errors
from bot.sandbox.members import Member
from bot.sandbox.ports import LISTEN_BACKLOG

__all__ = ["DiscordStandIn", "StandInError", "StandInTimeout"]

HEARTBEAT_INTERVAL_MS = 41_250
GUILD_MEMBERS_INTENT = 1 << 1
# Discord's deadline for the first answer to an interaction.
ACK_DEADLINE_SECONDS = 3.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UploadedFile = tuple[str, bytes, str | None]
INVALID_FORM_BODY = 50035
PARSED_BODY = web.RequestKey[tuple[Any, dict[int, UploadedFile]]]("standin_parsed_body", tuple)


class StandInError(RuntimeError):
    """The test asked the stand-in for something Discord would not allow."""


class StandInTimeout(TimeoutError):
    """The bot did not do what a test waited for; the message says what the stand-in saw."""


@dataclasses.dataclass
class StandInChannel:
    """A text channel of a server, with its permission overwrites (Discord's overwrite objects)."""

    id: int
    guild_id: int
    name: str
    position: int = 0
    overwrites: list[JSON] = dataclasses.field(default_factory=list)

    def to_json(self) -> JSON:
        return text_channel_json(self.id, self.guild_id, self.name, overwrites=self.overwrites,
                                 position=self.position)


@dataclasses.dataclass
class StandInGuild:
    id: int
    name: str
    channel_id: int
    joined_at: str
    # Nobody the tests drive owns the server: discord.py grants an owner every permission.
    owner_id: int = dataclasses.field(default_factory=snowflake)
    members: dict[int, Member] = dataclasses.field(default_factory=dict)
    # One role per permission set beyond @everyone's, so Member.guild_permissions agrees with the
    # interaction's "permissions" field.
    roles: dict[int, int] = dataclasses.field(default_factory=dict)
    announced_roles: set[int] = dataclasses.field(default_factory=set)
    # Its text channels, "general" (channel_id, where members run commands) first.
    channels: dict[int, StandInChannel] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class GatewaySession:
    """One gateway connection: a shard, as IDENTIFY named it (`[shard_id, shard_count]`, or shard 0 of 1),
    and what a RESUME of it replays."""

    shard_id: int
    shard_count: int
    session_id: str
    intents: int
    ws: web.WebSocketResponse | None
    seq: int = 0
    sent: list[JSON] = dataclasses.field(default_factory=list)
    ready: bool = False

    def owns(self, guild_id: int | None) -> bool:
        """Discord's rule: a guild's events go to shard (guild_id >> 22) % num_shards; DMs to shard 0."""
        if guild_id is None:
            return self.shard_id == 0
        return (guild_id >> 22) % self.shard_count == self.shard_id


class DiscordApiError(Exception):
    """Raised inside a route to answer with Discord's error JSON."""

    def __init__(
        self, status: int, code: int, message: str, errors: JSON | None = None, *, recorded: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.recorded = recorded  # already among the stand-in's violations
        self.body: JSON = {"code": code, "message": message}
        if errors:
            self.body["errors"] = errors


def json_response(data: Any, status: int = 200) -> web.Response:
    # discord.py compares the content type to exactly "application/json": no charset allowed.
    return web.Response(body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"})


class DiscordStandIn:
    """Plays Discord for one bot: REST routes, the gateway, and the people in its servers."""

    def __init__(
        self,
        *,
        bot_token: str = "standin-bot-token",  # noqa: S107 - a stand-in accepts only its own fake token
        application_id: int = 1_100_000_000_000_000_001,
        bot_user_id: int = 1_100_000_000_000_000_002,
        bot_username: str = "mutebot",
        ack_deadline: float | None = ACK_DEADLINE_SECONDS,
        enforce_command_permissions: bool = True,
        check_requests: bool | None = None,
    ) -> None:
        self.bot_token = bot_token
        self.application_id = application_id
        self.bot_user_id = bot_user_id
        self.bot_user: JSON = user_json(bot_user_id, bot_username, bot=True)
        self.ack_deadline = ack_deadline
        self.enforce_command_permissions = enforce_command_permissions
        self.api_base = ""
        self.gateway_url = ""
        self.http_base = ""

        self.guilds: dict[int, StandInGuild] = {}
        self.removed_guilds: set[int] = set()  # servers the bot was removed from
        self.users: dict[int, JSON] = {}
        # Registered commands: key None holds the global ones, a guild id that guild's.
        self.commands: dict[int | None, list[JSON]] = {None: []}
        self.command_writes = 0
        self.identifies = 0
        self.shard_count = 1  # what GET /gateway/bot recommends
        self.resumes = 0
        self.requests: list[tuple[str, str]] = []
        self.unknown_requests: list[tuple[str, str]] = []
        # Every body the bot sends is checked against Discord's OpenAPI spec and the rules the spec omits; what
        # Discord would refuse is answered with its 400 and kept here, so the test that caused it fails.
        # None: check when the spec and jsonschema are at hand (a checkout with the dev tools), as tests require.
        self.spec: DiscordSpec | None = (
            DiscordSpec.load() if check_requests else None if check_requests is False else DiscordSpec.available()
        )
        self.violations: list[Violation] = []
        self.messages: dict[int, StoredMessage] = {}
        self.attachments: dict[int, StoredAttachment] = {}
        self.interactions: dict[int, InteractionRecord] = {}
        self.dm_channels: dict[int, int] = {}
        self._dm_recipients: dict[int, int] = {}
        self._refused_dms: set[int] = set()
        self._held_dms: dict[int, asyncio.Event] = {}
        self.held_dm_requests = 0  # DMs that arrived while held (hold_dms)
        self._by_token: dict[str, InteractionRecord] = {}

        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._sessions: dict[int, GatewaySession] = {}  # by shard id
        self._send_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application(middlewares=[self._record], client_max_size=64 * 1024 * 1024)
        self._add_routes(app.router)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=LISTEN_BACKLOG)
        await site.start()
        server = site._server
        assert server is not None
        bound = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.http_base = f"http://{host}:{bound}"
        self.api_base = f"{self.http_base}/api/v10"
        self.gateway_url = f"ws://{host}:{bound}/gateway"

    async def stop(self) -> None:
        for user_id in list(self._held_dms):
            self.hold_dms(user_id, False)
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"stand-in stopping")
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DiscordStandIn:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the world the bot lives in ----------------------------------------------------------------

    def add_guild(self, name: str = "Test Guild", *, shard: tuple[int, int] | None = None) -> int:
        """A new server with the bot in it; with `shard` (`(shard_id, shard_count)`), one whose id Discord's
        rule puts on that shard (its timestamp part moved on a millisecond at a time until it does)."""
        guild_id = snowflake()
        while shard is not None and (guild_id >> 22) % shard[1] != shard[0]:
            guild_id += 1 << 22
        guild = StandInGuild(id=guild_id, name=name, channel_id=snowflake(), joined_at=iso_now())
        guild.channels[guild.channel_id] = StandInChannel(guild.channel_id, guild.id, "general")
        self.guilds[guild.id] = guild
        self.commands.setdefault(guild.id, [])
        session = self._live(guild.id)
        if session is not None:
            # Without "unavailable" a GUILD_CREATE means the bot joined (discord.py: on_guild_join).
            data = self._guild_create(guild, session.intents)
            del data["unavailable"]
            self._spawn(self._dispatch("GUILD_CREATE", data, guild.id))
        return guild.id

    def add_member(self, guild_id: int, username: str, *, permissions: int = DEFAULT_MEMBER_PERMISSIONS,
                   user_id: int | None = None) -> Member:
        """A new user in this server, or (with `user_id`) an existing user joining a second server."""
        guild = self._guild(guild_id)
        member = Member(self, user_id=user_id or snowflake(), username=username, guild_id=guild_id,
                        permissions=permissions)
        self.users[member.id] = user_json(member.id, username)
        guild.members[member.id] = member
        if (session := self._live(guild_id)) is not None and session.intents & GUILD_MEMBERS_INTENT:
            event = {**self.member_payload(member, with_permissions=False), "guild_id": str(guild_id)}

            async def announce() -> None:
                await self._announce_roles(guild)
                await self._dispatch("GUILD_MEMBER_ADD", event, guild_id)

            self._spawn(announce())
        return member

    def remove_member(self, guild_id: int, member: Member) -> None:
        """The member leaves the server (or is kicked). Discord tells a bot only through GUILD_MEMBER_REMOVE,
        which needs the privileged GUILD_MEMBERS intent; without it the bot finds out by asking
        (GET /guilds/{guild.id}/members/{user.id} then answers 404 Unknown Member)."""
        guild = self._guild(guild_id)
        if guild.members.pop(member.id, None) is None:
            raise StandInError(f"{member.username} is not a member of guild {guild_id}")
        if (session := self._live(guild_id)) is not None and session.intents & GUILD_MEMBERS_INTENT:
            event = {"guild_id": str(guild_id), "user": self.users[member.id]}
            self._spawn(self._dispatch("GUILD_MEMBER_REMOVE", event, guild_id))

    async def remove_bot(self, guild_id: int) -> None:
        """The bot is kicked from (or leaves) a server: Discord sends GUILD_DELETE with an unavailable-guild
        object whose `unavailable` is not set ("the user was removed from the guild", Discord's gateway
        docs; discord.py then fires on_guild_remove). Its routes answer 403 Missing Access afterwards."""
        guild = self._guild(guild_id)
        del self.guilds[guild_id]
        self.commands.pop(guild_id, None)
        self.removed_guilds.add(guild.id)
        if self._live(guild.id) is not None:
            await self._dispatch("GUILD_DELETE", {"id": str(guild.id)}, guild.id)

    def add_channel(self, guild_id: int, name: str) -> int:
        """A new text channel in the server (CHANNEL_CREATE to a connected bot); returns its id."""
        guild = self._guild(guild_id)
        channel = StandInChannel(snowflake(), guild.id, name, position=len(guild.channels))
        guild.channels[channel.id] = channel
        if self._live(guild.id) is not None:
            self._spawn(self._dispatch("CHANNEL_CREATE", channel.to_json(), guild.id))
        return channel.id

    def refuse_bot(self, channel_id: int, refuse: bool = True, *, permissions: int = SEND_MESSAGES) -> None:
        """What a server's admin does in a channel's settings: a member overwrite that denies the bot
        `permissions` there (without Send Messages, Discord answers its posts 403 Missing Permissions,
        50013; without View Channel, 403 Missing Access, 50001). `refuse=False` removes the overwrite.
        A connected bot gets CHANNEL_UPDATE, as Discord sends on every change to overwrites."""
        channel = self._text_channel(channel_id)
        channel.overwrites = [o for o in channel.overwrites if o["id"] != str(self.bot_user_id)]
        if refuse:
            channel.overwrites.append(overwrite_json(self.bot_user_id, member=True, deny=permissions))
        if self._live(channel.guild_id) is not None:
            self._spawn(self._dispatch("CHANNEL_UPDATE", channel.to_json(), channel.guild_id))

    def permissions_in(self, channel_id: int, user_id: int) -> int:
        """A member's (or the bot's) permissions in a server's channel, overwrites applied."""
        channel = self._text_channel(channel_id)
        guild = self._guild(channel.guild_id)
        if user_id == self.bot_user_id:
            base, roles = BOT_PERMISSIONS, set[int]()
        else:
            member = guild.members[user_id]
            role_id = self._role_for(guild, member.permissions)
            base, roles = DEFAULT_MEMBER_PERMISSIONS | member.permissions, {role_id} if role_id else set()
        return channel_permissions(base, channel.overwrites, guild_id=guild.id, role_ids=roles, member_id=user_id)

    def refuse_dms(self, user_id: int, refuse: bool = True) -> None:
        if refuse:
            self._refused_dms.add(user_id)
        else:
            self._refused_dms.discard(user_id)

    def hold_dms(self, user_id: int, hold: bool = True) -> None:
        """Keep new DMs to this user waiting unanswered, as a stalled network would, until `hold=False`. A held
        DM whose sender is gone by then (a killed process) is never posted: it never fully reached Discord."""
        if hold:
            self._held_dms.setdefault(user_id, asyncio.Event())
        else:
            held = self._held_dms.pop(user_id, None)
            if held is not None:
                held.set()

    async def drop_gateway(self, shard_id: int = 0) -> None:
        """Cut the bot's gateway connection (of that shard) the way a network blip does; discord.py then
        RESUMEs."""
        session = self._sessions.get(shard_id)
        ws = session.ws if session is not None else None
        if session is None or ws is None:
            raise StandInError(f"no bot is connected to the gateway as shard {shard_id}")
        session.ws, session.ready = None, False
        self._bump()
        await ws.close(code=4000, message=b"connection dropped by the stand-in")

    async def wait_until_ready(self, timeout: float = 10, *, shard_id: int | None = None) -> None:
        """Until that shard has its READY; without `shard_id`, every shard of the count the bot identified
        with (one, unsharded)."""
        await self.wait_for_state(lambda: self.ready_shards(shard_id), timeout,
                                  "the bot to connect and receive READY")

    def ready_shards(self, shard_id: int | None = None) -> bool:
        if shard_id is not None:
            session = self._sessions.get(shard_id)
            return session is not None and session.ready
        counts = {session.shard_count for session in self._sessions.values()}
        return len(counts) == 1 and all(self.ready_shards(i) for i in range(counts.pop()))

    def shard_of(self, guild_id: int | None) -> int | None:
        """The shard a connected bot receives this guild's events on (0 for DMs); None before any IDENTIFY."""
        for session in self._sessions.values():
            if session.owns(guild_id):
                return session.shard_id
        return None

    async def wait_for_answer(self, record: InteractionRecord, timeout: float = 10, what: str = "") -> None:
        """Wait, woken only by changes to this interaction, until the bot has finished answering it."""
        try:
            async with asyncio.timeout(timeout):
                while not record.complete:
                    record.changed.clear()
                    await record.changed.wait()
        except TimeoutError:
            raise StandInTimeout(self._explain(what or "the answer", timeout)) from None

    async def wait_for_state(self, predicate: Callable[[], bool], timeout: float = 10, what: str = "") -> None:
        """Wait, woken by every change the bot makes, until ``predicate()`` holds."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._changed.wait()
        except TimeoutError:
            raise StandInTimeout(self._explain(what or "the condition", timeout)) from None

    @property
    def connected(self) -> bool:
        return any(session.ws is not None for session in self._sessions.values())

    # -- helpers the member driver uses ------------------------------------------------------------

    def registered_command(self, name: str, guild_id: int | None) -> JSON | None:
        scopes: list[int | None] = [guild_id, None] if guild_id is not None else [None]
        for scope in scopes:
            for command in self.commands.get(scope, []):
                if command["name"] == name and command.get("type", 1) == 1:
                    return command
        return None

    def member_payload(self, member: Member, *, with_permissions: bool = True) -> JSON:
        guild = self._guild(member.guild_id)
        data = member_json(
            self.users[member.id],
            permissions=member.permissions if with_permissions else None,
            joined_at=guild.joined_at,
        )
        role_id = self._role_for(guild, member.permissions)
        if role_id is not None:
            data["roles"] = [str(role_id)]
        return data

    def _role_for(self, guild: StandInGuild, permissions: int) -> int | None:
        if permissions & ~DEFAULT_MEMBER_PERMISSIONS == 0:
            return None
        role_id = guild.roles.get(permissions)
        if role_id is None:
            role_id = guild.roles[permissions] = snowflake()
        return role_id

    async def _announce_roles(self, guild: StandInGuild) -> None:
        # The bot must know a role before an event names it, as Discord guarantees.
        for permissions, role_id in list(guild.roles.items()):
            if role_id not in guild.announced_roles and self._live(guild.id) is not None:
                guild.announced_roles.add(role_id)
                role = role_json(role_id, f"perms-{permissions}", permissions)
                await self._dispatch("GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": role}, guild.id)

    def dm_channel_for(self, user_id: int) -> int:
        channel_id = self.dm_channels.get(user_id)
        if channel_id is None:
            channel_id = snowflake()
            self.dm_channels[user_id] = channel_id
            self._dm_recipients[channel_id] = user_id
        return channel_id

    def channel_messages(self, channel_id: int) -> list[StoredMessage]:
        return [m for m in self.messages.values() if m.channel_id == channel_id and not m.deleted]

    def store_attachment(
        self, filename: str, data: bytes, content_type: str | None, *, ephemeral: bool = False
    ) -> StoredAttachment:
        attachment_id = snowflake()
        attachment = StoredAttachment(
            id=attachment_id,
            filename=filename,
            data=data,
            content_type=guess_content_type(filename, content_type),
            url=f"{self.http_base}/attachments/{attachment_id}/{quote(filename)}",
            ephemeral=ephemeral,
        )
        self.attachments[attachment_id] = attachment
        return attachment

    async def dispatch_interaction(
        self,
        member: Member,
        type_: int,
        data: JSON,
        *,
        source: StoredMessage | None = None,
        in_dm: bool = False,
    ) -> InteractionRecord:
        """Send INTERACTION_CREATE as ``member`` would cause it, to the shard that owns the server (a DM's
        to shard 0), and record it for the answer."""
        target = None if in_dm else member.guild_id
        if self._live(target) is None:
            await self.wait_for_state(lambda: self._live(target) is not None, 10,
                                      "the bot's shard for this interaction to connect and receive READY")
        interaction_id = snowflake()
        token = f"standin-interaction-{interaction_id}-{secrets.token_urlsafe(24)}"
        user = self.users[member.id]
        payload: JSON = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": type_,
            "data": data,
            "token": token,
            "version": 1,
            "app_permissions": str(BOT_PERMISSIONS if in_dm else self.permissions_in(
                self._guild(member.guild_id).channel_id, self.bot_user_id)),
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }
        guild_id: int | None
        if in_dm:
            guild_id = None
            channel_id = self.dm_channel_for(member.id)
            payload.update(
                user=user,
                channel_id=str(channel_id),
                channel=dm_channel_json(channel_id, user),
                context=1,
                authorizing_integration_owners={"0": "0"},
            )
        else:
            guild = self._guild(member.guild_id)
            if member.id not in guild.members:
                raise StandInError(f"{member.username} left guild {guild.id}; they cannot use its commands")
            guild_id = guild.id
            channel_id = guild.channel_id
            member_data = self.member_payload(member)
            await self._announce_roles(guild)
            payload.update(
                guild_id=str(guild.id),
                guild={"id": str(guild.id), "locale": "en-US", "features": []},
                guild_locale="en-US",
                channel_id=str(channel_id),
                channel=guild.channels[channel_id].to_json(),
                member=member_data,
                context=0,
                authorizing_integration_owners={"0": str(guild.id)},
            )
        if source is not None:
            payload["message"] = source.to_json()
        record = InteractionRecord(
            id=interaction_id,
            token=token,
            type=type_,
            payload=payload,
            channel_id=channel_id,
            guild_id=guild_id,
            dispatched_at=time.perf_counter(),
            source_message_id=source.id if source is not None else None,
        )
        self.interactions[interaction_id] = record
        self._by_token[token] = record
        await self._dispatch("INTERACTION_CREATE", payload, guild_id)
        return record

    # -- internals -------------------------------------------------------------------------------

    def _bump(self, record: InteractionRecord | None = None) -> None:
        # One event per change: every waiter wakes, re-checks its predicate, and waits on the new one.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        if record is not None:
            record.changed.set()

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _explain(self, what: str, timeout: float) -> str:
        recent = ", ".join(f"{m} {p}" for m, p in self.requests[-8:]) or "none"
        unknown = ", ".join(f"{m} {p}" for m, p in self.unknown_requests) or "none"
        # An answer Discord refused never arrives: say so, rather than leave only the timeout.
        refused = "; ".join(str(v) for v in self.violations[-3:]) or "none"
        return (
            f"timed out after {timeout:g}s waiting for {what}; bot connected: {self.connected}; "
            f"last requests: {recent}; unknown routes: {unknown}; refused bodies: {refused}"
        )

    def _guild(self, guild_id: int) -> StandInGuild:
        try:
            return self.guilds[guild_id]
        except KeyError:
            if guild_id in self.removed_guilds:
                raise StandInError(f"the bot was removed from guild {guild_id}") from None
            raise StandInError(f"no guild {guild_id} in the stand-in; call add_guild() first") from None

    def _known_guild(self, raw_id: str) -> StandInGuild | None:
        """A guild route's guild; one the bot was removed from answers as Discord does for a server the
        bot is not in: 403 Missing Access (50001)."""
        guild_id = int(raw_id)
        if guild_id in self.removed_guilds:
            raise DiscordApiError(403, 50001, "Missing Access")
        return self.guilds.get(guild_id)

    def _live(self, guild_id: int | None) -> GatewaySession | None:
        """The ready session that gets this guild's events (a DM's: shard 0), if one is connected."""
        for session in self._sessions.values():
            if session.ready and session.owns(guild_id):
                return session
        return None

    def _guild_create(self, guild: StandInGuild, intents: int = 0) -> JSON:
        bot_member = member_json(self.bot_user, permissions=None, joined_at=guild.joined_at)
        members = [bot_member]
        member_data = [self.member_payload(m, with_permissions=False) for m in guild.members.values()]
        if intents & GUILD_MEMBERS_INTENT:
            members += member_data
        guild.announced_roles.update(guild.roles.values())
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "features": [],
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "max_members": 500_000,
            "application_id": None,
            "roles": [role_json(guild.id, "@everyone", DEFAULT_MEMBER_PERMISSIONS)]
            + [role_json(r, f"perms-{p}", p) for p, r in guild.roles.items()],
            "emojis": [],
            "stickers": [],
            "channels": [channel.to_json() for channel in guild.channels.values()],
            "threads": [],
            "members": members,
            "member_count": len(guild.members) + 1,
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "large": False,
            "unavailable": False,
            "joined_at": guild.joined_at,
        }

    # -- gateway ---------------------------------------------------------------------------------

    async def _send(self, ws: web.WebSocketResponse, frame: JSON) -> None:
        # A socket that is closing just misses the frame; a RESUME replays dispatches from the log.
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await ws.send_str(json.dumps(frame))

    async def _dispatch_locked(self, session: GatewaySession, event: str, data: JSON) -> None:
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.sent.append(frame)
        if session.ws is not None:
            await self._send(session.ws, frame)
        self._bump()

    async def _dispatch(self, event: str, data: JSON, guild_id: int | None) -> None:
        """To the session of the shard that owns `guild_id` (None: shard 0), kept for its RESUME while it is
        away; nothing when no bot ever identified as that shard."""
        async with self._send_lock:
            session = next((s for s in self._sessions.values() if s.owns(guild_id)), None)
            if session is not None:
                await self._dispatch_locked(session, event, data)

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            await self._send(ws, {"op": 10, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}, "s": None, "t": None})
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_frame(ws, json.loads(msg.data))
        finally:
            self._sockets.discard(ws)
            for session in self._sessions.values():
                if session.ws is ws:
                    session.ws, session.ready = None, False
            self._bump()
        return ws

    async def _on_frame(self, ws: web.WebSocketResponse, frame: JSON) -> None:
        op = frame.get("op")
        data = frame.get("d") or {}
        if op == 1:
            await self._send(ws, {"op": 11, "d": None, "s": None, "t": None})
        elif op == 2:
            await self._identify(ws, data)
        elif op == 6:
            await self._resume(ws, data)
        elif op == 8:
            await self._request_members(data)

    async def _identify(self, ws: web.WebSocketResponse, data: JSON) -> None:
        if data.get("token") != self.bot_token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        shard = data.get("shard") or [0, 1]
        try:
            shard_id, shard_count = int(shard[0]), int(shard[1])
        except (TypeError, ValueError, IndexError):
            shard_id, shard_count = -1, 0
        if not 0 <= shard_id < shard_count:
            await ws.close(code=4010, message=b"Invalid shard.")  # Discord's close code for a bad shard
            return
        async with self._send_lock:
            self.identifies += 1
            session = GatewaySession(shard_id, shard_count, uuid.uuid4().hex, int(data.get("intents", 0)), ws)
            self._sessions[shard_id] = session
            owned = [guild for guild in self.guilds.values() if session.owns(guild.id)]
            ready: JSON = {
                "v": 10,
                "user": self.bot_user,
                "guilds": [{"id": str(g.id), "unavailable": True} for g in owned],
                "session_id": session.session_id,
                "session_type": "normal",
                "resume_gateway_url": self.gateway_url,
                "application": {"id": str(self.application_id), "flags": 0},
                "private_channels": [],
                "relationships": [],
                "presences": [],
                "user_settings": {},
                "geo_ordered_rtc_regions": [],
                "auth": {},
            }
            if "shard" in data:
                ready["shard"] = data["shard"]
            await self._dispatch_locked(session, "READY", ready)
            for guild in owned:
                await self._dispatch_locked(session, "GUILD_CREATE", self._guild_create(guild, session.intents))
            session.ready = True
        self._bump()

    async def _resume(self, ws: web.WebSocketResponse, data: JSON) -> None:
        session = next((s for s in self._sessions.values() if s.session_id == data.get("session_id")), None)
        if data.get("token") != self.bot_token or session is None:
            # Not resumable: discord.py answers by identifying afresh.
            await self._send(ws, {"op": 9, "d": False, "s": None, "t": None})
            return
        async with self._send_lock:
            self.resumes += 1
            session.ws = ws
            seen = int(data.get("seq") or 0)
            for frame in session.sent:
                if frame["s"] > seen:
                    await self._send(ws, frame)
            await self._dispatch_locked(session, "RESUMED", {})
            session.ready = True
        self._bump()

    async def _request_members(self, data: JSON) -> None:
        guild = self.guilds.get(int(data.get("guild_id", 0)))
        if guild is None:
            return
        query = str(data.get("query") or "").lower()
        wanted = {int(u) for u in data.get("user_ids") or []}
        members = [
            self.member_payload(m, with_permissions=False)
            for m in guild.members.values()
            if (not wanted or m.id in wanted) and m.username.lower().startswith(query)
        ]
        limit = int(data.get("limit") or 0)
        if limit:
            members = members[:limit]
        chunk: JSON = {
            "guild_id": str(guild.id),
            "members": members,
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce"):
            chunk["nonce"] = data["nonce"]
        await self._dispatch("GUILD_MEMBERS_CHUNK", chunk, guild.id)

    # -- REST ------------------------------------------------------------------------------------

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path.removeprefix("/api/v10") or "/"
        self.requests.append((request.method, path))
        try:
            await self._check_body(request, path)
            return await handler(request)
        except DiscordApiError as exc:
            if exc.body["code"] == INVALID_FORM_BODY and not exc.recorded:
                # The stand-in's own checks (a merged edit, a command definition) count as much as the spec's.
                self.violations += [
                    Violation(request.method, path, str(where), "STANDIN_CHECK", str(message))
                    for where, message in (exc.body.get("errors") or {"": exc.body["message"]}).items()
                ]
            return json_response(exc.body, exc.status)

    def violation_report(self) -> str:
        """The request bodies Discord would have refused, one a line ("" if none)."""
        return "\n".join(f"  {violation}" for violation in self.violations)

    async def _check_body(self, request: web.Request, path: str) -> None:
        if self.spec is None or request.method not in ("POST", "PUT", "PATCH"):
            return
        try:
            body, _ = await self._parsed_body(request)
        except ValueError:
            violation = Violation(request.method, path, "", "INVALID_JSON", "The request body contains invalid JSON.")
            self.violations.append(violation)
            raise DiscordApiError(400, 50109, violation.message, recorded=True) from None
        found = self.spec.check(request.method, path, body)
        if found:
            self.violations += found
            self._bump()
            raise DiscordApiError(400, INVALID_FORM_BODY, "Invalid Form Body", form_errors(found), recorded=True)

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        api = "/api/v10"
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/users/@me", self._get_me),
            ("GET", "/users/{user_id}", self._get_user),
            ("GET", "/oauth2/applications/@me", self._get_application),
            ("GET", "/applications/@me", self._get_application),
            ("GET", "/gateway", self._get_gateway),
            ("GET", "/gateway/bot", self._get_gateway),
            ("GET", "/applications/{app}/commands", self._get_commands),
            ("PUT", "/applications/{app}/commands", self._put_commands),
            ("POST", "/applications/{app}/commands", self._post_command),
            ("GET", "/applications/{app}/guilds/{guild_id}/commands", self._get_commands),
            ("PUT", "/applications/{app}/guilds/{guild_id}/commands", self._put_commands),
            ("POST", "/applications/{app}/guilds/{guild_id}/commands", self._post_command),
            ("DELETE", "/applications/{app}/commands/{command_id}", self._delete_command),
            ("DELETE", "/applications/{app}/guilds/{guild_id}/commands/{command_id}", self._delete_command),
            ("POST", "/interactions/{interaction_id}/{token}/callback", self._callback),
            ("POST", "/webhooks/{app}/{token}", self._followup),
            ("GET", "/webhooks/{app}/{token}/messages/{message_id}", self._webhook_message),
            ("PATCH", "/webhooks/{app}/{token}/messages/{message_id}", self._webhook_message),
            ("DELETE", "/webhooks/{app}/{token}/messages/{message_id}", self._webhook_message),
            ("POST", "/users/@me/channels", self._create_dm),
            ("GET", "/channels/{channel_id}", self._get_channel),
            ("POST", "/channels/{channel_id}/messages", self._post_message),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self._channel_message),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self._channel_message),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self._channel_message),
            ("GET", "/guilds/{guild_id}", self._get_guild),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member),
        ]
        for method, path, handler in routes:
            router.add_route(method, api + path, handler)
        router.add_get("/gateway", self._gateway)
        router.add_get("/attachments/{attachment_id}/{filename}", self._get_attachment)
        router.add_route("*", "/{tail:.*}", self._unknown)

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        self.unknown_requests.append((request.method, request.path.removeprefix("/api/v10")))
        self._bump()
        return json_response({"message": "404: Not Found", "code": 0}, 404)

    def _authorize(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bot {self.bot_token}":
            raise DiscordApiError(401, 0, "401: Unauthorized")

    def _check_app(self, request: web.Request) -> None:
        if request.match_info.get("app") != str(self.application_id):
            raise DiscordApiError(404, 10002, "Unknown Application")

    async def _get_me(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        return json_response(self.bot_user)

    async def _get_user(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        user = self.users.get(int(request.match_info["user_id"]))
        if user is None:
            raise DiscordApiError(404, 10013, "Unknown User")
        return json_response(user)

    async def _get_application(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        return json_response(
            {
                "id": str(self.application_id),
                "name": self.bot_user["username"],
                "icon": None,
                "description": "",
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": user_json(snowflake(), "owner"),
                "team": None,
                "verify_key": "0" * 64,
                "flags": 0,
                "bot": self.bot_user,
                "interactions_endpoint_url": None,
                "rpc_origins": [],
                "tags": [],
                "redirect_uris": [],
            }
        )

    async def _get_gateway(self, request: web.Request) -> web.StreamResponse:
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        return json_response({"url": self.gateway_url, "shards": self.shard_count, "session_start_limit": limit})

    def _command_scope(self, request: web.Request) -> int | None:
        self._authorize(request)
        self._check_app(request)
        raw = request.match_info.get("guild_id")
        if raw is None:
            return None
        guild_id = int(raw)
        if guild_id not in self.guilds:
            raise DiscordApiError(403, 50001, "Missing Access")
        return guild_id

    async def _get_commands(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.commands.get(self._command_scope(request), []))

    def _register(self, scope: int | None, body: JSON, existing: list[JSON]) -> JSON:
        problems = command_problems(body)
        if problems:
            raise DiscordApiError(400, 50035, "Invalid Form Body", problems)
        same = next(
            (c for c in existing if c["name"] == body["name"] and c.get("type", 1) == body.get("type", 1)), None
        )
        command: JSON = {
            "type": 1,
            "options": [],
            "default_member_permissions": None,
            "dm_permission": True,
            "nsfw": False,
            "contexts": None,
            "integration_types": [0],
            **body,
            "id": same["id"] if same else str(snowflake()),
            "application_id": str(self.application_id),
            "version": str(snowflake()),
        }
        if scope is not None:
            command["guild_id"] = str(scope)
        return command

    async def _put_commands(self, request: web.Request) -> web.StreamResponse:
        scope = self._command_scope(request)
        body = await request.json()
        if not isinstance(body, list):
            raise DiscordApiError(400, 50035, "Invalid Form Body")
        existing = self.commands.get(scope, [])
        registered = [self._register(scope, item, existing) for item in body]
        names = [(c["name"], c["type"]) for c in registered]
        if len(set(names)) != len(names):
            raise DiscordApiError(
                400, 50035, "Invalid Form Body", {"_errors": "Application command names must be unique"}
            )
        self.commands[scope] = registered
        self.command_writes += 1
        self._bump()
        return json_response(registered)

    async def _post_command(self, request: web.Request) -> web.StreamResponse:
        scope = self._command_scope(request)
        existing = self.commands.setdefault(scope, [])
        command = self._register(scope, await request.json(), existing)
        self.commands[scope] = [c for c in existing if c["id"] != command["id"]] + [command]
        self.command_writes += 1
        self._bump()
        return json_response(command, 201)

    async def _delete_command(self, request: web.Request) -> web.StreamResponse:
        scope = self._command_scope(request)
        command_id = request.match_info["command_id"]
        before = self.commands.get(scope, [])
        after = [c for c in before if c["id"] != command_id]
        if len(after) == len(before):
            raise DiscordApiError(404, 10063, "Unknown application command")
        self.commands[scope] = after
        self.command_writes += 1
        self._bump()
        return web.Response(status=204)

    async def _read_body(self, request: web.Request) -> tuple[JSON, dict[int, UploadedFile]]:
        """A JSON body, or a multipart one with ``payload_json`` and ``files[n]`` parts."""
        body, files = await self._parsed_body(request)
        return (body if isinstance(body, dict) else {}), files

    async def _parsed_body(self, request: web.Request) -> tuple[Any, dict[int, UploadedFile]]:
        """The body as sent (None if empty), read once: the check and the route both need it, and a multipart
        stream can be read only once."""
        if PARSED_BODY in request:
            parsed: tuple[Any, dict[int, UploadedFile]] = request[PARSED_BODY]
            return parsed
        files: dict[int, UploadedFile] = {}
        if not request.content_type.startswith("multipart/"):
            raw = await request.read()
            body = json.loads(raw) if raw.strip() else None
            request[PARSED_BODY] = (body, files)
            return body, files
        payload: JSON = {}
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            name = part.name or ""
            raw = await part.read(decode=False)
            if name == "payload_json":
                payload = json.loads(raw)
            elif name.startswith("files[") and name.endswith("]"):
                files[int(name[6:-1])] = (part.filename or "file", bytes(raw), part.headers.get("Content-Type"))
        request[PARSED_BODY] = (payload, files)
        return payload, files

    def _attachments(
        self,
        entries: list[JSON] | None,
        files: dict[int, UploadedFile],
        existing: list[StoredAttachment],
        *,
        ephemeral: bool,
    ) -> list[StoredAttachment]:
        # ``attachments`` lists the ones to keep (by id) and the new uploads (by their files[n] index).
        kept = {a.id: a for a in existing}
        result: list[StoredAttachment] = [] if entries is not None else list(existing)
        used: set[int] = set()
        for entry in entries or []:
            entry_id = int(entry["id"])
            if entry_id in kept:
                result.append(kept[entry_id])
            elif entry_id in files:
                filename, data, content_type = files[entry_id]
                result.append(
                    self.store_attachment(entry.get("filename") or filename, data, content_type, ephemeral=ephemeral)
                )
                used.add(entry_id)
        for index in sorted(set(files) - used):
            filename, data, content_type = files[index]
            result.append(self.store_attachment(filename, data, content_type, ephemeral=ephemeral))
        return result

    def _new_message(
        self,
        channel_id: int,
        guild_id: int | None,
        body: JSON,
        files: dict[int, UploadedFile],
        *,
        webhook: bool,
        extra_flags: int = 0,
    ) -> StoredMessage:
        flags = (int(body.get("flags") or 0) | extra_flags) & ~LOADING_FLAG
        msg = StoredMessage(
            id=snowflake(),
            channel_id=channel_id,
            guild_id=guild_id,
            author=self.bot_user,
            content=str(body.get("content") or ""),
            embeds=list(body.get("embeds") or []),
            components=list(body.get("components") or []),
            flags=flags,
            webhook_id=self.application_id if webhook else None,
        )
        msg.attachments = self._attachments(body.get("attachments"), files, [], ephemeral=bool(flags & EPHEMERAL_FLAG))
        self._validate(msg)
        self.messages[msg.id] = msg
        return msg

    def _validate(self, msg: StoredMessage) -> None:
        if not msg.visible and not msg.flags & LOADING_FLAG:
            raise DiscordApiError(400, 50006, "Cannot send an empty message")
        problems = message_problems(msg)
        if problems:
            raise DiscordApiError(400, 50035, "Invalid Form Body", problems)

    def _edit(self, msg: StoredMessage, body: JSON, files: dict[int, UploadedFile]) -> None:
        candidate = dataclasses.replace(msg)
        if "content" in body:
            candidate.content = str(body["content"] or "")
        if "embeds" in body:
            candidate.embeds = list(body["embeds"] or [])
        if "components" in body:
            candidate.components = list(body["components"] or [])
        if "flags" in body and body["flags"] is not None:
            # Ephemerality is fixed at creation; other flags (suppress embeds, components v2) may change.
            candidate.flags = (msg.flags & EPHEMERAL_FLAG) | (int(body["flags"]) & ~(EPHEMERAL_FLAG | LOADING_FLAG))
        candidate.flags &= ~LOADING_FLAG
        candidate.attachments = self._attachments(
            body.get("attachments") if "attachments" in body else None,
            files,
            msg.attachments,
            ephemeral=bool(msg.flags & EPHEMERAL_FLAG),
        )
        self._validate(candidate)
        candidate.edits = msg.edits + 1
        candidate.edited_timestamp = iso_now()
        for f in dataclasses.fields(StoredMessage):
            setattr(msg, f.name, getattr(candidate, f.name))

    # -- interactions ----------------------------------------------------------------------------

    def _interaction(self, interaction_id: str, token: str) -> InteractionRecord:
        record = self._by_token.get(token)
        if record is None or str(record.id) != interaction_id:
            raise DiscordApiError(404, 10062, "Unknown interaction")
        return record

    def _mark_content(self, record: InteractionRecord) -> None:
        if record.first_content_at is None:
            record.first_content_at = time.perf_counter()

    async def _callback(self, request: web.Request) -> web.StreamResponse:
        record = self._interaction(request.match_info["interaction_id"], request.match_info["token"])
        body, files = await self._read_body(request)
        now = time.perf_counter()
        if self.ack_deadline is not None and now - record.dispatched_at > self.ack_deadline:
            raise DiscordApiError(404, 10062, "Unknown interaction")
        if record.callback_type is not None:
            raise DiscordApiError(400, 40060, "Interaction has already been acknowledged.")
        kind = int(body.get("type", 0))
        data: JSON = body.get("data") or {}
        allowed = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}[record.type]
        if kind not in allowed:
            raise DiscordApiError(400, 50035, "Invalid Form Body", {"type": f"callback type {kind} is not valid here"})
        message: StoredMessage | None = None
        if kind == 4:
            message = self._new_message(record.channel_id, record.guild_id, data, files, webhook=True)
            record.original_message_id = message.id
            self._mark_content(record)
        elif kind == 5:
            flags = LOADING_FLAG | (int(data.get("flags") or 0) & EPHEMERAL_FLAG)
            message = StoredMessage(
                id=snowflake(),
                channel_id=record.channel_id,
                guild_id=record.guild_id,
                author=self.bot_user,
                flags=flags,
                webhook_id=self.application_id,
            )
            self.messages[message.id] = message
            record.original_message_id = message.id
        elif kind in (6, 7):
            record.original_message_id = record.source_message_id
            if kind == 7:
                message = self._source(record)
                self._edit(message, data, files)
                self._mark_content(record)
        elif kind == 8:
            choices = list(data.get("choices") or [])
            if len(choices) > 25:
                raise DiscordApiError(400, 50035, "Invalid Form Body", {"choices": "Must be 25 or fewer in length."})
            record.choices = choices
        elif kind == 9:
            if not data.get("custom_id") or not data.get("title") or not data.get("components"):
                raise DiscordApiError(
                    400, 50035, "Invalid Form Body", {"data": "a modal needs custom_id, title, components"}
                )
            record.modal = data
        record.callback_type = kind
        record.acked_at = now
        self._bump(record)
        interaction: JSON = {
            "id": str(record.id),
            "type": record.type,
            "response_message_loading": kind == 5,
            "response_message_ephemeral": bool(message and message.flags & EPHEMERAL_FLAG),
        }
        resource: JSON = {"type": kind}
        if message is not None:
            interaction["response_message_id"] = str(message.id)
            resource["message"] = message.to_json()
        return json_response({"interaction": interaction, "resource": resource})

    def _source(self, record: InteractionRecord) -> StoredMessage:
        if record.source_message_id is None:
            raise DiscordApiError(400, 50035, "Invalid Form Body", {"type": "no message to update"})
        return self.messages[record.source_message_id]

    def _webhook_interaction(self, request: web.Request) -> InteractionRecord:
        self._check_app(request)
        record = self._by_token.get(request.match_info["token"])
        if record is None or record.callback_type is None:
            # Discord only opens the interaction webhook once the interaction is acknowledged.
            raise DiscordApiError(404, 10015, "Unknown Webhook")
        return record

    async def _followup(self, request: web.Request) -> web.StreamResponse:
        record = self._webhook_interaction(request)
        body, files = await self._read_body(request)
        original = self.messages.get(record.original_message_id or 0)
        if record.callback_type == 5 and original is not None and original.flags & LOADING_FLAG:
            # Discord turns the first followup after a thinking deferral into the deferred message.
            self._edit(original, body, files)
            message = original
            record.original_edited = True
        else:
            message = self._new_message(record.channel_id, record.guild_id, body, files, webhook=True)
        record.followup_ids.append(message.id)
        self._mark_content(record)
        self._bump(record)
        return json_response(message.to_json())

    async def _webhook_message(self, request: web.Request) -> web.StreamResponse:
        record = self._webhook_interaction(request)
        raw_id = request.match_info["message_id"]
        target = record.original_message_id if raw_id == "@original" else int(raw_id)
        if target is None or (target != record.original_message_id and target not in record.followup_ids):
            raise DiscordApiError(404, 10008, "Unknown Message")
        message = self.messages[target]
        if message.deleted:
            raise DiscordApiError(404, 10008, "Unknown Message")
        if request.method == "DELETE":
            message.deleted = True
            self._bump(record)
            return web.Response(status=204)
        if request.method == "PATCH":
            body, files = await self._read_body(request)
            self._edit(message, body, files)
            if target == record.original_message_id:
                record.original_edited = True
            self._mark_content(record)
            self._bump(record)
        return json_response(message.to_json())

    # -- channels and DMs ------------------------------------------------------------------------

    def _text_channel(self, channel_id: int) -> StandInChannel:
        for guild in self.guilds.values():
            channel = guild.channels.get(channel_id)
            if channel is not None:
                return channel
        raise StandInError(f"no text channel {channel_id} in the stand-in's servers")

    def _channel(self, channel_id: int) -> tuple[JSON, int | None]:
        for guild in self.guilds.values():
            if channel_id in guild.channels:
                if not self.permissions_in(channel_id, self.bot_user_id) & VIEW_CHANNEL:
                    raise DiscordApiError(403, 50001, "Missing Access")
                return guild.channels[channel_id].to_json(), guild.id
        user_id = self._dm_recipients.get(channel_id)
        if user_id is not None:
            return dm_channel_json(channel_id, self.users[user_id]), None
        raise DiscordApiError(404, 10003, "Unknown Channel")

    async def _create_dm(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        body = await request.json()
        user_id = int(body.get("recipient_id", 0))
        if user_id not in self.users:
            raise DiscordApiError(400, 50033, "Invalid Recipient(s)")
        channel_id = self.dm_channel_for(user_id)
        return json_response(dm_channel_json(channel_id, self.users[user_id]))

    async def _get_channel(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        channel, _ = self._channel(int(request.match_info["channel_id"]))
        return json_response(channel)

    async def _post_message(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        channel_id = int(request.match_info["channel_id"])
        _, guild_id = self._channel(channel_id)
        recipient = self._dm_recipients.get(channel_id)
        if recipient is not None and recipient in self._refused_dms:
            raise DiscordApiError(403, 50007, "Cannot send messages to this user")
        if recipient is not None and recipient in self._held_dms:
            self.held_dm_requests += 1
            self._bump()
            await self._held_dms[recipient].wait()
            if request.transport is None or request.transport.is_closing():
                raise DiscordApiError(503, 0, "the sender went away while the DM was held")
        if guild_id is not None and not self.permissions_in(channel_id, self.bot_user_id) & SEND_MESSAGES:
            raise DiscordApiError(403, 50013, "Missing Permissions")
        body, files = await self._read_body(request)
        body["flags"] = int(body.get("flags") or 0) & ~EPHEMERAL_FLAG
        message = self._new_message(channel_id, guild_id, body, files, webhook=False)
        self._bump()
        return json_response(message.to_json())

    async def _channel_message(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        channel_id = int(request.match_info["channel_id"])
        self._channel(channel_id)
        message = self.messages.get(int(request.match_info["message_id"]))
        if message is None or message.channel_id != channel_id or message.deleted:
            raise DiscordApiError(404, 10008, "Unknown Message")
        if message.flags & EPHEMERAL_FLAG:
            # Ephemeral messages exist only for their reader; only the interaction webhook reaches them.
            raise DiscordApiError(404, 10008, "Unknown Message")
        if request.method == "DELETE":
            message.deleted = True
            self._bump()
            return web.Response(status=204)
        if request.method == "PATCH":
            if message.author["id"] != str(self.bot_user_id):
                raise DiscordApiError(403, 50005, "Cannot edit a message authored by another user")
            body, files = await self._read_body(request)
            self._edit(message, body, files)
            for record in self.interactions.values():
                # interaction.message.edit() after a deferred update answers that click too.
                if record.callback_type == 6 and record.original_message_id == message.id:
                    record.original_edited = True
                    self._mark_content(record)
            self._bump()
        return json_response(message.to_json())

    async def _get_guild(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        guild = self._known_guild(request.match_info["guild_id"])
        if guild is None:
            raise DiscordApiError(404, 10004, "Unknown Guild")
        data = self._guild_create(guild)
        for key in ("channels", "members", "threads", "voice_states", "presences", "joined_at", "large"):
            data.pop(key, None)
        return json_response(data)

    async def _get_member(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        guild = self._known_guild(request.match_info["guild_id"])
        member = guild.members.get(int(request.match_info["user_id"])) if guild else None
        if member is None:
            raise DiscordApiError(404, 10007, "Unknown Member")
        return json_response(self.member_payload(member, with_permissions=False))

    async def _get_attachment(self, request: web.Request) -> web.StreamResponse:
        attachment = self.attachments.get(int(request.match_info["attachment_id"]))
        if attachment is None or quote(attachment.filename) != quote(request.match_info["filename"]):
            return json_response({"message": "404: Not Found", "code": 0}, 404)
        return web.Response(body=attachment.data, headers={"Content-Type": attachment.content_type})


def command_problems(body: JSON) -> JSON | None:
    """Discord's checks on a command definition that a bot most easily gets wrong."""
    errors: JSON = {}
    name = str(body.get("name") or "")
    kind = body.get("type", 1)
    if not 1 <= len(name) <= 32 or (kind == 1 and name != name.lower()):
        errors["name"] = f"invalid command name {name!r}"
    if kind == 1 and not 1 <= len(str(body.get("description") or "")) <= 100:
        errors["description"] = f"/{name}: description must be 1-100 characters"
    options = list(body.get("options") or [])
    if len(options) > 25:
        errors["options"] = f"/{name}: at most 25 options"
    _option_problems(name, options, errors)
    return errors or None


def _option_problems(path: str, options: list[JSON], errors: JSON) -> None:
    seen_optional = False
    for option in options:
        label = f"{path} {option.get('name')}"
        if not 1 <= len(str(option.get("description") or "")) <= 100:
            errors[label] = "description must be 1-100 characters"
        if option.get("type") in (1, 2):
            _option_problems(label, list(option.get("options") or []), errors)
            continue
        if option.get("required"):
            if seen_optional:
                errors[label] = "required options must be placed before non-required options"
        else:
            seen_optional = True
        if len(option.get("choices") or []) > 25:
            errors[label] = "at most 25 choices"
