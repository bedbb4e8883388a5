"""Discord shards: SHARD_COUNT and SHARD_IDS pick what this process runs, and each shard gets only its servers."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp
import discord

from bot.config import load_settings
from bot.runtime import MuteBot
from bot.sandbox.discord_standin import DiscordStandIn
from bot.sandbox.harness import Sandbox, free_port


def shard_of(guild_id: int, count: int) -> int:
    return (guild_id >> 22) % count  # Discord's rule, written out here rather than taken from the stand-in


class Seen:
    """The guilds whose interactions one bot received, from discord.py's own `on_interaction` event."""

    def __init__(self, bot: MuteBot) -> None:
        self.guilds: list[int | None] = []
        bot.add_listener(self.interaction, "on_interaction")

    async def interaction(self, interaction: discord.Interaction) -> None:
        self.guilds.append(interaction.guild_id)


async def test_unset_runs_every_shard_discord_recommends_in_one_process(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    await sandbox.start(with_bot=False)
    try:
        sandbox.discord.shard_count = 2  # what GET /gateway/bot recommends
        first = sandbox.guild_id
        second = sandbox.discord.add_guild("Second Server", shard=(1 - shard_of(first, 2), 2))
        bot = await sandbox.start_bot()
        seen = Seen(bot)
        assert sandbox.discord.identifies == 2
        assert (bot.shard_count, sorted(bot.shards)) == (2, [0, 1])
        assert {guild.id: guild.shard_id for guild in bot.guilds} == {first: shard_of(first, 2),
                                                                       second: shard_of(second, 2)}
        alice = sandbox.member("alice")
        carol = sandbox.discord.add_member(second, "carol")
        for member in (alice, carol):
            reply = await member.slash("status")
            assert reply.ephemeral and reply.embeds
        assert sorted(seen.guilds) == sorted([first, second])
    finally:
        await sandbox.stop()


async def test_the_stand_in_recommends_its_shard_count_and_refuses_a_shard_out_of_range() -> None:
    async with DiscordStandIn() as standin:
        standin.shard_count = 3
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{standin.api_base}/gateway/bot") as answer:
                assert (await answer.json())["shards"] == 3
            async with http.ws_connect(standin.gateway_url) as ws:
                assert (await ws.receive_json())["op"] == 10  # HELLO
                await ws.send_json({"op": 2, "d": {"token": standin.bot_token, "intents": 0, "shard": [1, 1],
                                                   "properties": {}}})
                closed = await ws.receive()
                assert (closed.type, ws.close_code) == (aiohttp.WSMsgType.CLOSE, 4010)  # Discord's "Invalid shard"
        assert standin.identifies == 0 and standin.shard_of(None) is None


async def test_two_processes_one_shard_each_get_only_their_servers_interactions(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path, env={"SHARD_COUNT": "2", "SHARD_IDS": "0"})
    await sandbox.start(with_bot=False)
    second_bot: MuteBot | None = None
    runner: asyncio.Task[None] | None = None
    try:
        first = sandbox.guild_id
        second = sandbox.discord.add_guild("Second Server", shard=(1 - shard_of(first, 2), 2))
        on_zero, on_one = (first, second) if shard_of(first, 2) == 0 else (second, first)
        bot_zero = await sandbox.start_bot()
        # The other process: the same configuration and database, shard 1, a web port of its own.
        settings = load_settings({**sandbox.environment(), "SHARD_IDS": "1", "WEB_PORT": str(free_port())}, "run")
        second_bot = MuteBot(settings, guild_ready_timeout=0.05, clock=sandbox.clock)
        runner = asyncio.create_task(Sandbox._run_bot(second_bot, settings))
        await asyncio.wait_for(second_bot.ready_event.wait(), 15)
        seen_zero, seen_one = Seen(bot_zero), Seen(second_bot)

        assert [guild.id for guild in bot_zero.guilds] == [on_zero]
        assert [guild.id for guild in second_bot.guilds] == [on_one]
        assert sandbox.discord.shard_of(on_zero) == 0 and sandbox.discord.shard_of(on_one) == 1
        assert sandbox.discord.shard_of(None) == 0  # DMs go to shard 0
        alice = sandbox.discord.add_member(on_zero, "alice")
        carol = sandbox.discord.add_member(on_one, "carol")
        for _ in range(2):
            for member in (alice, carol):
                reply = await member.slash("status")
                assert reply.ephemeral and reply.embeds
        assert seen_zero.guilds == [on_zero, on_zero]
        assert seen_one.guilds == [on_one, on_one]
    finally:
        if second_bot is not None:
            await second_bot.close()
        if runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        await sandbox.stop()
