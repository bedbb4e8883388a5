"""The Discord stand-in carries a real discord.py bot through slash commands, components, DMs and RESUME."""

from __future__ import annotations

import asyncio
import contextlib
import io
import select
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import discord
import discord.gateway
import discord.http
import pytest
from discord import app_commands
from discord.ext import commands

from bot.discord_endpoints import DEFAULT_API_BASE, DEFAULT_GATEWAY_URL, point_discord_py_at
from bot.sandbox.discord_payloads import MODERATOR_PERMISSIONS, VIEW_CHANNEL
from bot.sandbox.discord_standin import DiscordStandIn, StandInTimeout
from bot.sandbox.harness import DiscordRequestsRefused, Sandbox
from bot.sandbox.members import Attachment, CommandNotAvailable, Member
from bot.sandbox.x_emulator import XEmulator


class Counter(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=60)
        self.count = 0
        self.add_item(discord.ui.Button(label="Docs", url="https://example.com/docs"))

    @discord.ui.button(label="Add one", custom_id="counter:add", style=discord.ButtonStyle.primary)
    async def add(self, interaction: discord.Interaction, button: discord.ui.Button[Counter]) -> None:
        self.count += 1
        button.disabled = self.count >= 2
        await interaction.response.edit_message(content=f"count {self.count}", view=self)


class Prefs(discord.ui.View):
    @discord.ui.button(label="Stop", custom_id="prefs:stop")
    async def stop_button(self, interaction: discord.Interaction, button: discord.ui.Button[Prefs]) -> None:
        await interaction.response.send_message(f"stopped in DM={interaction.guild is None}")

    @discord.ui.select(
        custom_id="prefs:lang",
        placeholder="Language",
        options=[discord.SelectOption(label="English", value="en"), discord.SelectOption(label="French", value="fr")],
    )
    async def language(self, interaction: discord.Interaction, select: discord.ui.Select[Prefs]) -> None:
        await interaction.response.edit_message(content=f"language {select.values[0]}", view=self)


class ReasonModal(discord.ui.Modal, title="Why?"):
    reason: discord.ui.TextInput[ReasonModal] = discord.ui.TextInput(label="Reason", custom_id="reason")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"noted: {self.reason.value}", ephemeral=True)


class SampleBot(commands.Bot):
    def __init__(self) -> None:
        # A low guild_ready_timeout: discord.py otherwise waits 2 s after the last GUILD_CREATE.
        super().__init__(
            command_prefix=commands.when_mentioned, intents=discord.Intents.default(), guild_ready_timeout=0.1
        )
        self.dm_errors: list[int] = []
        self.add_commands()

    async def setup_hook(self) -> None:
        await self.tree.sync()

    def add_commands(self) -> None:
        tree = self.tree

        @tree.command(description="Say hello with an embed and buttons")
        async def hello(interaction: discord.Interaction) -> None:
            embed = discord.Embed(title="Hello", description=f"hi {interaction.user.name}")
            await interaction.response.send_message(embed=embed, view=Counter(), ephemeral=True)

        @tree.command(description="Answer after thinking")
        async def slow(interaction: discord.Interaction) -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            await asyncio.sleep(0.05)
            await interaction.followup.send("done thinking", ephemeral=True)

        @tree.command(description="Edit the deferred original")
        async def edit(interaction: discord.Interaction) -> None:
            await interaction.response.defer()
            await interaction.edit_original_response(content="edited original")
            await interaction.followup.send("and a followup")

        @tree.command(description="Ask for a reason")
        async def form(interaction: discord.Interaction) -> None:
            await interaction.response.send_modal(ReasonModal())

        async def fruit_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            fruits = ["apple", "apricot", "banana"]
            return [app_commands.Choice(name=f, value=f) for f in fruits if f.startswith(current)]

        @tree.command(description="Pick a fruit")
        @app_commands.autocomplete(fruit=fruit_choices)
        async def pick(interaction: discord.Interaction, fruit: str, count: int = 1, fresh: bool = False) -> None:
            await interaction.response.send_message(f"{count} {fruit} fresh={fresh}")

        @tree.command(description="DM the caller")
        async def dm(interaction: discord.Interaction) -> None:
            view = discord.ui.View()
            view.add_item(discord.ui.Button(label="Open", url="https://example.com/authorize"))
            try:
                await interaction.user.send("a private hello", view=view)
            except discord.Forbidden as exc:
                self.dm_errors.append(exc.code)
                await interaction.response.send_message("your DMs are closed", view=view, ephemeral=True)
            else:
                await interaction.response.send_message("check your DMs", ephemeral=True)

        @tree.command(description="Read an uploaded file")
        async def upload(interaction: discord.Interaction, file: discord.Attachment) -> None:
            data = await file.read()
            await interaction.response.send_message(
                f"{file.filename}: {len(data)} bytes, first {data.splitlines()[0]!r}"
            )

        @tree.command(description="Send a CSV")
        async def export(interaction: discord.Interaction) -> None:
            await interaction.response.defer()
            csv = discord.File(io.BytesIO(b"username\nalice\nbob\n"), filename="list.csv")
            await interaction.followup.send("here it is", file=csv)

        @tree.command(description="Moderators only")
        @app_commands.default_permissions(manage_guild=True)
        async def mod(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("hello moderator", ephemeral=True)

        @tree.command(description="DM a settings panel")
        async def prefs(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("sent", ephemeral=True)
            await interaction.user.send("choose", view=Prefs())

        @tree.command(description="Post progress in the channel and edit it")
        async def progress(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("started", ephemeral=True)
            assert isinstance(interaction.channel, discord.TextChannel)
            message = await interaction.channel.send("0%")
            await message.edit(content="100%")

        @tree.command(description="Post in a channel, saying what discord.py believed first")
        async def post(interaction: discord.Interaction, channel: discord.TextChannel) -> None:
            allowed = channel.permissions_for(channel.guild.me).send_messages
            try:
                await channel.send(f"posted by {interaction.user.name}")
            except discord.Forbidden as exc:
                outcome = f"refused {exc.status} {exc.code}"
            else:
                outcome = "posted"
            await interaction.response.send_message(f"{outcome}; may send: {allowed}", ephemeral=True)

        @tree.command(description="Answers with more than Discord's 6,000 characters of embeds")
        async def oversize(interaction: discord.Interaction) -> None:
            embeds = [discord.Embed(description="a" * 4096), discord.Embed(description="b" * 2000)]
            await interaction.response.send_message(embeds=embeds)

        @tree.command(description="Never answers")
        async def silent(interaction: discord.Interaction) -> None:
            return None

        @tree.command(description="Show what discord.py believes about the caller")
        async def whoami(interaction: discord.Interaction) -> None:
            assert isinstance(interaction.user, discord.Member)
            by_roles = interaction.user.guild_permissions.manage_guild
            owner = interaction.guild is not None and interaction.guild.owner_id == interaction.user.id
            text = f"manage_guild={interaction.permissions.manage_guild}/{by_roles} owner={owner}"
            await interaction.response.send_message(text, ephemeral=True)

        mutelist = app_commands.Group(name="mutelist", description="Shared mute lists")

        @mutelist.command(name="add", description="Add an account")
        async def mutelist_add(interaction: discord.Interaction, name: str, username: str) -> None:
            await interaction.response.send_message(f"added {username} to {name}")

        tree.add_command(mutelist)


@contextlib.asynccontextmanager
async def running_bot(standin: DiscordStandIn, bot: commands.Bot) -> AsyncIterator[None]:
    point_discord_py_at(standin.api_base, standin.gateway_url)
    runner = asyncio.create_task(bot.start(standin.bot_token))
    try:
        await standin.wait_until_ready()
        yield
    finally:
        await bot.close()
        await runner
        point_discord_py_at(DEFAULT_API_BASE, DEFAULT_GATEWAY_URL)


@dataclass
class World:
    standin: DiscordStandIn
    bot: SampleBot
    alice: Member
    bob: Member
    moderator: Member


@pytest.fixture
async def world() -> AsyncIterator[World]:
    standin = DiscordStandIn()
    await standin.start()
    guild_id = standin.add_guild("Mute Club")
    alice = standin.add_member(guild_id, "alice")
    bob = standin.add_member(guild_id, "bob")
    moderator = standin.add_member(guild_id, "mod", permissions=MODERATOR_PERMISSIONS)
    bot = SampleBot()
    try:
        async with running_bot(standin, bot):
            yield World(standin, bot, alice, bob, moderator)
        assert standin.unknown_requests == []
        assert not standin.violations, standin.violation_report()
    finally:
        await standin.stop()


async def test_point_discord_py_at_is_idempotent() -> None:
    try:
        for _ in range(2):
            point_discord_py_at("http://127.0.0.1:9/api/v10/", "ws://127.0.0.1:9/gateway")
        assert discord.http.Route.BASE == "http://127.0.0.1:9/api/v10"
        route = discord.http.Route("POST", "/webhooks/{webhook_id}/{webhook_token}", webhook_id=1, webhook_token="t")
        assert route.url == "http://127.0.0.1:9/api/v10/webhooks/1/t"
        assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == "ws://127.0.0.1:9/gateway"
    finally:
        point_discord_py_at(DEFAULT_API_BASE, DEFAULT_GATEWAY_URL)
    assert discord.http.Route.BASE == DEFAULT_API_BASE


async def test_bot_registers_commands_and_connects(world: World) -> None:
    standin = world.standin
    assert standin.identifies == 1
    assert standin.command_writes == 1
    assert {c["name"] for c in standin.commands[None]} >= {"hello", "mutelist", "pick"}
    assert all(c["id"] for c in standin.commands[None])
    await asyncio.wait_for(world.bot.wait_until_ready(), 5)
    assert [g.name for g in world.bot.guilds] == ["Mute Club"]


async def test_embed_with_buttons_and_click_edits_message(world: World) -> None:
    reply = await world.alice.slash("hello")
    assert reply.ephemeral
    assert reply.embeds[0]["title"] == "Hello"
    assert "hi alice" in reply.embeds[0]["description"]
    assert [b["label"] for b in reply.buttons] == ["Add one", "Docs"]
    assert reply.buttons[1]["url"] == "https://example.com/docs"
    assert reply.ack_latency is not None
    assert reply.latency is not None

    clicked = await reply.click("Add one")
    assert clicked.callback_type == 7
    assert clicked.message_id == reply.message_id
    assert reply.text == "count 1"
    clicked = await reply.click("counter:add")
    assert reply.text == "count 2"
    assert reply.buttons[0]["disabled"] is True
    assert reply.message is not None
    assert reply.message.edits == 2
    with pytest.raises(CommandNotAvailable, match="disabled"):
        await reply.click("Add one")
    with pytest.raises(CommandNotAvailable, match="link"):
        await reply.click("Docs")


async def test_deferred_answers_and_followups(world: World) -> None:
    slow = await world.alice.slash("slow")
    assert slow.text == "done thinking"
    assert slow.ephemeral
    assert slow.record.callback_type == 5
    assert slow.latency is not None
    assert slow.ack_latency is not None
    assert slow.latency >= slow.ack_latency

    edited = await world.alice.slash("edit")
    await edited.wait_for(lambda r: len(r.followups) == 1)
    assert edited.text == "edited original"
    assert not edited.ephemeral
    assert edited.followups[0].text == "and a followup"


async def test_modal_submit(world: World) -> None:
    reply = await world.alice.slash("form")
    assert reply.modal is not None
    assert reply.modal["title"] == "Why?"
    submitted = await reply.submit({"Reason": "spam"})
    assert submitted.text == "noted: spam"
    assert submitted.ephemeral


async def test_autocomplete_and_typed_options(world: World) -> None:
    choices = await world.alice.autocomplete("pick", "fruit", "ap")
    assert [c["value"] for c in choices] == ["apple", "apricot"]
    reply = await world.alice.slash("pick", fruit="banana", count=3, fresh=True)
    assert reply.text == "3 banana fresh=True"
    with pytest.raises(CommandNotAvailable, match="takes an int"):
        await world.alice.slash("pick", fruit="banana", count="3")
    with pytest.raises(CommandNotAvailable, match="needs option 'fruit'"):
        await world.alice.slash("pick")
    with pytest.raises(CommandNotAvailable, match="not registered"):
        await world.alice.slash("nope")


async def test_subcommands_and_permissions(world: World) -> None:
    reply = await world.alice.slash("mutelist add", name="spam", username="@someone")
    assert reply.text == "added @someone to spam"
    with pytest.raises(CommandNotAvailable, match="is a group"):
        await world.alice.slash("mutelist")
    with pytest.raises(CommandNotAvailable, match="lacks permissions"):
        await world.alice.slash("mod")
    assert (await world.moderator.slash("mod")).text == "hello moderator"
    assert (await world.moderator.slash("whoami")).text == "manage_guild=True/True owner=False"
    assert (await world.alice.slash("whoami")).text == "manage_guild=False/False owner=False"


async def test_guilds_and_members_added_while_connected(world: World) -> None:
    standin = world.standin
    await asyncio.wait_for(world.bot.wait_until_ready(), 5)
    joined = asyncio.ensure_future(world.bot.wait_for("guild_join", timeout=5))
    await asyncio.sleep(0)
    late_guild = standin.add_guild("Late Guild")
    assert (await joined).id == late_guild
    dave = standin.add_member(late_guild, "dave", permissions=MODERATOR_PERMISSIONS | 1 << 13)
    assert (await dave.slash("whoami")).text == "manage_guild=True/True owner=False"


async def test_dm_sent_and_refused(world: World) -> None:
    reply = await world.alice.slash("dm")
    assert reply.text == "check your DMs"
    dms = await world.alice.dms()
    assert [m.text for m in dms] == ["a private hello"]
    assert dms[0].buttons[0]["url"] == "https://example.com/authorize"

    world.standin.refuse_dms(world.bob.id)
    reply = await world.bob.slash("dm")
    assert reply.text == "your DMs are closed"
    assert reply.buttons[0]["url"] == "https://example.com/authorize"
    assert world.bot.dm_errors == [50007]
    assert await world.bob.dms() == []


async def test_channel_option_overwrites_and_a_channel_that_refuses_the_bot(world: World) -> None:
    standin = world.standin
    guild_id = world.alice.guild_id
    log = standin.add_channel(guild_id, "mod-log")  # while connected: CHANNEL_CREATE
    reply = await world.moderator.slash("post", channel=log)
    assert reply.text == "posted; may send: True"
    assert [m.content for m in standin.channel_messages(log)] == ["posted by mod"]
    [interaction] = [r for r in standin.interactions.values() if r.payload["data"].get("name") == "post"]
    resolved = interaction.payload["data"]["resolved"]["channels"][str(log)]
    assert resolved["name"] == "mod-log" and int(resolved["permissions"]) == MODERATOR_PERMISSIONS

    standin.refuse_bot(log)  # CHANNEL_UPDATE: discord.py's cache learns the overwrite too
    reply = await world.moderator.slash("post", channel=log)
    assert reply.text == "refused 403 50013; may send: False"
    standin.refuse_bot(log, permissions=VIEW_CHANNEL)
    reply = await world.moderator.slash("post", channel=log)
    assert reply.text == "refused 403 50001; may send: False"
    standin.refuse_bot(log, refuse=False)
    reply = await world.moderator.slash("post", channel=log)
    assert reply.text == "posted; may send: True"
    assert len(standin.channel_messages(log)) == 2

    elsewhere = standin.add_channel(standin.add_guild("Another Server"), "general-2")
    with pytest.raises(CommandNotAvailable, match="offers only the channels"):
        await world.moderator.slash("post", channel=elsewhere)


async def test_attachment_option_and_file_upload(world: World) -> None:
    upload = Attachment("list.csv", b"username\nalice\n")
    reply = await world.moderator.slash("upload", file=upload)
    assert reply.text == "list.csv: 15 bytes, first b'username'"

    export = await world.alice.slash("export")
    assert export.text == "here it is"
    [attachment] = export.attachments
    assert attachment.filename == "list.csv"
    assert attachment.data == b"username\nalice\nbob\n"
    assert attachment.content_type == "text/csv"
    async with aiohttp.ClientSession() as session, session.get(attachment.url) as resp:
        assert await resp.read() == attachment.data


async def test_gateway_drop_resumes_and_keeps_answering(world: World) -> None:
    standin = world.standin
    await standin.drop_gateway()
    await standin.wait_for_state(lambda: standin.resumes == 1 and standin.connected, 10, "a RESUME")
    assert standin.identifies == 1
    reply = await world.alice.slash("pick", fruit="apple")
    assert reply.text == "1 apple fresh=False"


async def test_rest_answers_and_unknown_routes(world: World) -> None:
    standin = world.standin
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{standin.api_base}/gateway/bot") as resp:
            assert resp.headers["Content-Type"] == "application/json"
            assert (await resp.json())["url"] == standin.gateway_url
        async with session.get(f"{standin.api_base}/users/@me") as resp:
            assert resp.status == 401
        async with session.get(f"{standin.api_base}/no/such/route") as resp:
            assert resp.status == 404
            assert await resp.json() == {"message": "404: Not Found", "code": 0}
    assert standin.unknown_requests == [("GET", "/no/such/route")]
    standin.unknown_requests.clear()
    assert ("GET", "/users/@me") in standin.requests


async def test_dm_components_and_channel_messages(world: World) -> None:
    await world.alice.slash("prefs")
    panel = await world.alice.wait_for_dm(lambda m: m.text == "choose")
    stopped = await panel.click("Stop")
    assert stopped.text == "stopped in DM=True"
    chosen = await panel.select("Language", ["French"])
    assert chosen.callback_type == 7
    assert panel.text == "language fr"

    standin = world.standin
    await world.alice.slash("progress")
    await standin.wait_for_state(lambda: any(m.content == "100%" for m in standin.messages.values()))
    channel_messages = [m for m in standin.messages.values() if m.content == "100%"]
    assert len(channel_messages) == 1
    assert channel_messages[0].edits == 1


async def test_unanswered_interaction_times_out_with_explanation(world: World) -> None:
    world.alice.reply_timeout = 0.3
    with pytest.raises(StandInTimeout, match="the bot to answer /silent"):
        await world.alice.slash("silent")


async def test_an_answer_discord_refused_is_named_when_the_member_gives_up(world: World) -> None:
    world.alice.reply_timeout = 0.5
    with pytest.raises(StandInTimeout, match=r"refused bodies: POST /interactions/.*MAX_EMBED_SIZE_EXCEEDED"):
        await world.alice.slash("oversize")
    assert [v.where for v in world.standin.violations] == ["data.embeds"]
    world.standin.violations.clear()  # expected here; the fixture fails on any left


async def test_bot_with_all_intents_gets_members_without_chunk_delay() -> None:
    async with DiscordStandIn() as standin:
        guild_id = standin.add_guild()
        carol = standin.add_member(guild_id, "carol")
        bot = commands.Bot(
            command_prefix=commands.when_mentioned, intents=discord.Intents.all(), guild_ready_timeout=0.1
        )

        @bot.tree.command(description="Count members")
        async def members(interaction: discord.Interaction) -> None:
            assert interaction.guild is not None
            await interaction.response.send_message(f"{interaction.guild.member_count} members")

        async def sync() -> None:
            await bot.tree.sync()

        bot.setup_hook = sync  # type: ignore[method-assign]
        async with running_bot(standin, bot):
            await asyncio.wait_for(bot.wait_until_ready(), 2)
            guild = bot.get_guild(guild_id)
            assert guild is not None
            assert guild.get_member(carol.id) is not None
            assert (await carol.slash("members")).text == "2 members"


# -- what the bot sends is checked against Discord's spec and rules ---------------------------------------------


@dataclass
class Raw:
    """A bare stand-in (no bot) and a session that sends it bodies as a bot would."""

    standin: DiscordStandIn
    session: aiohttp.ClientSession
    channel_id: int

    async def send(self, method: str, path: str, body: object) -> tuple[int, dict[str, object]]:
        headers = {"Authorization": f"Bot {self.standin.bot_token}"}
        async with self.session.request(method, self.standin.api_base + path, json=body, headers=headers) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def raw() -> AsyncIterator[Raw]:
    async with DiscordStandIn() as standin, aiohttp.ClientSession() as session:
        guild_id = standin.add_guild()
        yield Raw(standin, session, standin.guilds[guild_id].channel_id)


def _button(label: str, **extra: object) -> dict[str, object]:
    return {"type": 2, "style": 1, "label": label, "custom_id": f"b:{label}", **extra}


def _row(*buttons: dict[str, object]) -> dict[str, object]:
    return {"type": 1, "components": list(buttons)}


def _embed(**extra: object) -> dict[str, object]:
    return {"title": "t", "description": "d", **extra}


def _field(index: int = 0, **extra: object) -> dict[str, object]:
    return {"name": f"n{index}", "value": "v", **extra}


def _leaf(errors: dict[str, object], where: str) -> list[str]:
    node: object = errors
    for key in where.split(".") if where else []:
        assert isinstance(node, dict) and key in node, f"no {where!r} in {errors}"
        node = node[key]
    assert isinstance(node, dict)
    return [str(e["code"]) for e in node["_errors"]]


MESSAGE, CALLBACK = "POST /channels/{channel}/messages", "POST /interactions/1/token/callback"
LONG_ID = "x" * 101
# (rule, route, body, where Discord's errors object puts it, its code)
BAD_BODIES = [
    ("a non-link button needs a custom_id", MESSAGE,
     {"components": [_row({"type": 2, "style": 1, "label": "Go"})]},
     "components.0.components.0.custom_id", "BUTTON_COMPONENT_CUSTOM_ID_REQUIRED"),
    ("a link button needs a url", MESSAGE,
     {"components": [_row({"type": 2, "style": 5, "label": "Open"})]},
     "components.0.components.0.url", "BUTTON_COMPONENT_URL_REQUIRED"),
    ("a link button has no custom_id", MESSAGE,
     {"components": [_row({"type": 2, "style": 5, "label": "Open", "url": "https://x.com", "custom_id": "open"})]},
     "components.0.components.0.custom_id", "BUTTON_COMPONENT_CUSTOM_ID_NOT_ALLOWED"),
    ("a non-link button has no url", MESSAGE,
     {"components": [_row(_button("Go", url="https://x.com"))]},
     "components.0.components.0.url", "BUTTON_COMPONENT_URL_NOT_ALLOWED"),
    ("at most 5 action rows", MESSAGE,
     {"components": [_row(_button(f"r{i}")) for i in range(6)]},
     "components", "BASE_TYPE_MAX_LENGTH"),
    ("at most 5 buttons a row", MESSAGE,
     {"components": [_row(*(_button(f"b{i}") for i in range(6)))]},
     "components.0.components", "COMPONENT_LAYOUT_WIDTH_EXCEEDED"),
    ("custom_id at most 100 characters", MESSAGE,
     {"components": [_row(_button("Go", custom_id=LONG_ID))]},
     "components.0.components.0.custom_id", "BASE_TYPE_MAX_LENGTH"),
    ("custom_ids unique in a message", MESSAGE,
     {"components": [_row(_button("A", custom_id="same"), _button("B", custom_id="same"))]},
     "components.0.components.1.custom_id", "COMPONENT_CUSTOM_ID_DUPLICATED"),
    ("at most 25 embed fields", MESSAGE,
     {"embeds": [_embed(fields=[_field(i) for i in range(26)])]},
     "embeds.0.fields", "BASE_TYPE_MAX_LENGTH"),
    ("at most 6,000 characters across a message's embeds", MESSAGE,
     {"embeds": [_embed(description="a" * 4000), _embed(description="b" * 1990, footer={"text": "f" * 10})]},
     "embeds", "MAX_EMBED_SIZE_EXCEEDED"),
    ("the 6,000 count takes field names and values and the author's name", MESSAGE,
     {"embeds": [_embed(title="", description="", author={"name": "a" * 200},
                        fields=[_field(i, name="n" * 250, value="v" * 1000) for i in range(5)])]},
     "embeds", "MAX_EMBED_SIZE_EXCEEDED"),
    ("embed title at most 256", MESSAGE, {"embeds": [_embed(title="t" * 257)]},
     "embeds.0.title", "BASE_TYPE_MAX_LENGTH"),
    ("embed description at most 4096", MESSAGE, {"embeds": [_embed(description="d" * 4097)]},
     "embeds.0.description", "BASE_TYPE_MAX_LENGTH"),
    ("field name at most 256", MESSAGE, {"embeds": [_embed(fields=[_field(name="n" * 257)])]},
     "embeds.0.fields.0.name", "BASE_TYPE_MAX_LENGTH"),
    ("field value at most 1024", MESSAGE, {"embeds": [_embed(fields=[_field(value="v" * 1025)])]},
     "embeds.0.fields.0.value", "BASE_TYPE_MAX_LENGTH"),
    ("footer at most 2048", MESSAGE, {"embeds": [_embed(footer={"text": "f" * 2049})]},
     "embeds.0.footer.text", "BASE_TYPE_MAX_LENGTH"),
    ("author name at most 256", MESSAGE, {"embeds": [_embed(author={"name": "a" * 257})]},
     "embeds.0.author.name", "BASE_TYPE_MAX_LENGTH"),
    ("content at most 2000 (the spec allows 4000)", MESSAGE, {"content": "c" * 2001},
     "content", "BASE_TYPE_MAX_LENGTH"),
    ("content at most 2000 in an interaction's answer", CALLBACK, {"type": 4, "data": {"content": "c" * 2001}},
     "data.content", "BASE_TYPE_MAX_LENGTH"),
    ("at most 25 autocomplete choices", CALLBACK,
     {"type": 8, "data": {"choices": [{"name": f"c{i}", "value": f"c{i}"} for i in range(26)]}},
     "data.choices", "BASE_TYPE_MAX_LENGTH"),
    ("an autocomplete choice's name at most 100", CALLBACK,
     {"type": 8, "data": {"choices": [{"name": "n" * 101, "value": "v"}]}},
     "data.choices.0.name", "BASE_TYPE_MAX_LENGTH"),
    ("an autocomplete choice's value at most 100", CALLBACK,
     {"type": 8, "data": {"choices": [{"name": "n", "value": "v" * 101}]}},
     "data.choices.0.value", "BASE_TYPE_MAX_LENGTH"),
    # What only the spec says, through its $refs and unions:
    ("the spec: a field needs a value", MESSAGE, {"embeds": [_embed(fields=[{"name": "n"}])]},
     "embeds.0.fields.0.value", "BASE_TYPE_REQUIRED"),
    ("the spec: a button style is one of Discord's", MESSAGE, {"components": [_row(_button("Go", style=9))]},
     "components.0.components.0.style", "BASE_TYPE_CHOICES"),
    ("the spec: a followup's button label at most 80", "POST /webhooks/1/token",
     {"components": [_row(_button("l" * 81))]}, "components.0.components.0.label", "BASE_TYPE_MAX_LENGTH"),
    ("the spec: a callback's type is one Discord has", CALLBACK, {"type": 3}, "type", "BASE_TYPE_CHOICES"),
    ("the spec: a snowflake is digits", "POST /users/@me/channels", {"recipient_id": "me"},
     "recipient_id", "SCHEMA_PATTERN"),
    ("the spec: a command name at most 32", "PUT /applications/1/commands",
     [{"name": "n" * 33, "description": "d"}], "0.name", "BASE_TYPE_MAX_LENGTH"),
]


@pytest.mark.parametrize(
    ("route", "body", "where", "code"), [case[1:] for case in BAD_BODIES], ids=[case[0] for case in BAD_BODIES]
)
async def test_a_body_discord_refuses_is_answered_400_and_recorded(
    raw: Raw, route: str, body: object, where: str, code: str
) -> None:
    method, path = route.format(channel=raw.channel_id).split(" ")
    status, answer = await raw.send(method, path, body)
    assert status == 400
    assert answer["code"] == 50035 and answer["message"] == "Invalid Form Body"
    errors = answer["errors"]
    assert isinstance(errors, dict)
    assert code in _leaf(errors, where)
    assert (method, path, where, code) in [(v.method, v.path, v.where, v.code) for v in raw.standin.violations]
    assert code in raw.standin.violation_report()


async def test_a_valid_body_passes_the_check(raw: Raw) -> None:
    body = {
        "content": "c" * 2000,
        "embeds": [
            _embed(title="t" * 256, description="d" * 2935, footer={"text": "f" * 100}, author={"name": "a" * 44},
                   fields=[_field(i, value="v" * 100) for i in range(25)], color=0x1DA1F2),
            _embed(title="", description="e" * 100),
        ],
        "components": [
            _row(*(_button(f"b{i}") for i in range(4)), {"type": 2, "style": 5, "label": "X", "url": "https://x.com"}),
            *(_row(_button(f"r{i}", custom_id="c" * 99 + str(i))) for i in range(3)),
            _row({"type": 3, "custom_id": "pick", "options": [{"label": "A", "value": "a"}]}),
        ],
        "allowed_mentions": {"parse": [], "users": [123, "456"]},
        "attachments": [{"id": 0, "filename": "list.csv"}],
        "flags": 4,
    }
    # Every limit at its edge: 2,000 of content, 25 fields, 5 rows, 5 buttons a row, and exactly 6,000 characters
    # of embeds (title, description, footer, author, field names and values, the second embed's description).
    total = 256 + 2935 + 100 + 44 + sum(len(f"n{i}") + 100 for i in range(25)) + 100
    assert total == 6000
    status, answer = await raw.send("POST", f"/channels/{raw.channel_id}/messages", body)
    assert status == 200, answer
    status, answer = await raw.send("POST", "/users/@me/channels", {"recipient_id": 1})
    assert status == 400 and answer["code"] == 50033  # passed the check; no such user in the stand-in
    assert raw.standin.violations == []


async def test_the_standins_own_checks_and_broken_json_count_as_violations(raw: Raw) -> None:
    command = {"name": "pick", "description": "d", "options": [
        {"type": 3, "name": "a", "description": "d"}, {"type": 3, "name": "b", "description": "d", "required": True},
    ]}
    status, answer = await raw.send("PUT", f"/applications/{raw.standin.application_id}/commands", [command])
    assert (status, answer["code"]) == (400, 50035)
    headers = {"Authorization": f"Bot {raw.standin.bot_token}", "Content-Type": "application/json"}
    url = f"{raw.standin.api_base}/channels/{raw.channel_id}/messages"
    async with raw.session.post(url, data=b"{not json", headers=headers) as resp:
        assert resp.status == 400 and (await resp.json())["code"] == 50109
    assert [v.code for v in raw.standin.violations] == ["STANDIN_CHECK", "INVALID_JSON"]
    assert "required options must be placed before non-required options" in raw.standin.violation_report()


async def test_discord_py_gets_discords_error_for_a_refused_body(world: World) -> None:
    channel = world.bot.get_channel(world.standin.guilds[world.alice.guild_id].channel_id)
    assert isinstance(channel, discord.TextChannel)
    embeds = [discord.Embed(description="a" * 4000), discord.Embed(description="b" * 2001)]
    with pytest.raises(discord.HTTPException) as refused:
        await channel.send(embeds=embeds)
    assert (refused.value.status, refused.value.code) == (400, 50035)
    assert "embeds: Embed size exceeds maximum size of 6000" in refused.value.text
    assert [(v.path, v.where, v.code) for v in world.standin.violations] == [
        (f"/channels/{channel.id}/messages", "embeds", "MAX_EMBED_SIZE_EXCEEDED")
    ]
    world.standin.violations.clear()  # expected here; the fixture fails on any left


async def _send_refused_body(sandbox: Sandbox) -> None:
    channel_id = sandbox.discord.guilds[sandbox.guild_id].channel_id
    body = {"components": [_row({"type": 2, "style": 1, "label": "Go"})]}
    response = await sandbox.http.post(
        f"{sandbox.discord.api_base}/channels/{channel_id}/messages", json=body,
        headers={"Authorization": f"Bot {sandbox.discord.bot_token}"},
    )
    assert response.status_code == 400


async def test_the_sandbox_fails_at_stop_naming_what_discord_refused(tmp_path: Path) -> None:
    sandbox = await Sandbox(tmp_path).start(with_bot=False)
    await _send_refused_body(sandbox)
    with pytest.raises(DiscordRequestsRefused, match=r"components\.0\.components\.0\.custom_id: A non-link button"):
        await sandbox.stop()


async def test_a_failing_test_keeps_its_error_and_gets_the_refusals_as_a_note(tmp_path: Path) -> None:
    async def failing_test() -> None:
        async with Sandbox(tmp_path) as sandbox:
            await _send_refused_body(sandbox)
            raise LookupError("the test's own failure")

    with pytest.raises(LookupError, match="the test's own failure") as failure:
        await failing_test()
    assert "BUTTON_COMPONENT_CUSTOM_ID_REQUIRED" in "\n".join(failure.value.__notes__)


async def test_the_sandbox_can_be_told_not_to_check(tmp_path: Path) -> None:
    sandbox = await Sandbox(tmp_path, check_discord_requests=False).start(with_bot=False)
    channel_id = sandbox.discord.guilds[sandbox.guild_id].channel_id
    response = await sandbox.http.post(
        f"{sandbox.discord.api_base}/channels/{channel_id}/messages",
        json={"components": [_row({"type": 2, "style": 1, "label": "Go"})]},
        headers={"Authorization": f"Bot {sandbox.discord.bot_token}"},
    )
    assert response.status_code == 200
    await sandbox.stop()
    assert sandbox.discord.violations == []


def test_without_jsonschema_the_standin_runs_unchecked_unless_asked_to_check() -> None:
    # An installed package has no dev tools: `mutebot demo` must still run (unchecked); a test run never does.
    script = (
        "import sys; sys.modules['jsonschema'] = None\n"
        "from bot.sandbox.discord_standin import DiscordStandIn\n"
        "assert DiscordStandIn().spec is None\n"
        "try:\n"
        "    DiscordStandIn(check_requests=True)\n"
        "except ImportError:\n"
        "    print('refused')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "refused"


def _connect_all(host: str, port: int, count: int, patience: float) -> int:
    """Open `count` connections at once from this thread; how many the kernel completed within `patience`
    seconds each (a SYN dropped by a full accept queue is retried by TCP only after 1 s)."""
    sockets: list[socket.socket] = []
    completed = 0
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex((host, port))
            sockets.append(sock)
        poller = select.poll()  # not select.select: a test process's descriptors may be numbered past 1024
        by_fd = {sock.fileno(): sock for sock in sockets}
        for fd in by_fd:
            poller.register(fd, select.POLLOUT)
        deadline = time.monotonic() + patience
        done: set[int] = set()
        while len(done) < count and (left := deadline - time.monotonic()) > 0:
            for fd, _ in poller.poll(left * 1000):
                poller.unregister(fd)
                done.add(fd)
        completed = sum(1 for fd in done if by_fd[fd].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0)
    finally:
        for sock in sockets:
            sock.close()
    return completed


@pytest.mark.parametrize("which", ["discord", "x"])
async def test_the_stand_ins_take_hundreds_of_connections_at_once_as_the_real_services_do(which: str) -> None:
    """500 commands answered at once open hundreds of connections in a moment; with aiohttp's default accept queue
    (128) the kernel dropped the rest and each waited out TCP's 1 s retransmission, in the benchmarks too."""
    server: DiscordStandIn | XEmulator
    if which == "discord":
        server = DiscordStandIn()
        await server.start()
        port = int(server.http_base.rsplit(":", 1)[1])
    else:
        server = XEmulator(users=1)
        port = int((await server.start()).rsplit(":", 1)[1])
    try:
        # The loop is kept busy (nothing accepted) while another thread connects: only the queue holds them.
        connecting = asyncio.get_running_loop().run_in_executor(None, _connect_all, "127.0.0.1", port, 600, 0.5)
        time.sleep(0.7)  # noqa: ASYNC251 - holding the loop is the point
        assert await connecting == 600
    finally:
        await server.stop()
