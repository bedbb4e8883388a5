"""The floor: a minimal one-file discord.py bot that does only the external work of /mute.

Per /mute it defers, looks the username up on X, POSTs the mute and sends the followup, with aiohttp
(discord.py's own HTTP client) and a token issued up front: no database, no checks, no cache. With
`defer=False` it answers with the embed as its first callback instead: the same calls less the defer, as mutebot
makes them when X answers inside its budget (bot/deadline.py), for a like-for-like reading.
Its /status answers at once with an embed. The benchmarks run it against the same stand-ins as mutebot,
in the same process and the same run, and print mutebot's numbers as ratios against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os

import aiohttp
import discord
from discord import app_commands

from bot.discord_endpoints import point_discord_py_at
from bot.memory import tune_collector
from bot.sandbox.harness import Sandbox
from bot.sandbox.members import Member


class FloorBot(discord.Client):
    def __init__(self, x_base: str, tokens: dict[int, tuple[str, str]], *, defer: bool = True) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(intents=intents, max_messages=None, member_cache_flags=discord.MemberCacheFlags.none(),
                         chunk_guilds_at_startup=False, guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.x_base = x_base
        self.tokens = tokens  # member id -> (X user id, access token)
        self.session: aiohttp.ClientSession | None = None
        self.ready = asyncio.Event()

        @self.tree.command(name="mute", description="Mute an X account")
        async def mute(interaction: discord.Interaction, username: str) -> None:
            if defer:
                await interaction.response.defer(ephemeral=True, thinking=True)
            x_user_id, token = self.tokens[interaction.user.id]
            headers = {"Authorization": f"Bearer {token}"}
            assert self.session is not None
            async with self.session.get(f"{self.x_base}/2/users/by/username/{username}", headers=headers) as r:
                target = (await r.json())["data"]
            async with self.session.post(f"{self.x_base}/2/users/{x_user_id}/muting", headers=headers,
                                         json={"target_user_id": target["id"]}) as r:
                await r.json()
            embed = discord.Embed(title="Muted on X", description=f"{target['name']} (@{target['username']})")
            if defer:
                await interaction.followup.send(embed=embed, ephemeral=True)
            else:
                await interaction.response.send_message(embed=embed, ephemeral=True)

        @self.tree.command(name="status", description="Your link")
        async def status(interaction: discord.Interaction) -> None:
            await interaction.response.send_message(embed=discord.Embed(title="Linked"), ephemeral=True)

    async def setup_hook(self) -> None:
        self.session = aiohttp.ClientSession()
        await self.tree.sync()

    async def on_ready(self) -> None:
        self.ready.set()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        await super().close()


def floor_members(sandbox: Sandbox, count: int) -> tuple[list[Member], dict[int, tuple[str, str]]]:
    """`count` members (member1 ...), each with a token issued up front for the X account of the same number (user1
    ...), as mutebot's members are linked: the floor's tokens by member id."""
    members = [sandbox.member(f"member{i}") for i in range(1, count + 1)]
    tokens = {}
    for i, member in enumerate(members, start=1):
        token = sandbox.x.issue_token(f"user{i}")
        tokens[member.id] = (sandbox.x.user(f"user{i}").id, str(token["access_token"]))
    return members, tokens


@contextlib.asynccontextmanager
async def running_floor(  # type: ignore[no-untyped-def]
    sandbox: Sandbox, tokens: dict[int, tuple[str, str]], *, defer: bool = True
):
    """Start the floor bot against a sandbox started with `with_bot=False`."""
    point_discord_py_at(sandbox.discord.api_base, sandbox.discord.gateway_url)
    bot = FloorBot(sandbox.x.base_url, tokens, defer=defer)
    task = asyncio.create_task(bot.start(sandbox.discord.bot_token))
    await asyncio.wait_for(bot.ready.wait(), 15)
    try:
        yield bot
    finally:
        await bot.close()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _serve_from_environment() -> None:
    """The floor as a process of its own (bench/bench_apart.py): the stand-ins' addresses and the members'
    tokens come from the environment, as `mutebot run` gets its own."""
    point_discord_py_at(os.environ["DISCORD_API_BASE"], os.environ["DISCORD_GATEWAY_URL"])
    with open(os.environ["FLOOR_TOKENS"], encoding="utf-8") as file:
        tokens = {int(member): (x_user_id, token) for member, (x_user_id, token) in json.load(file).items()}
    bot = FloorBot(os.environ["X_API_BASE"], tokens, defer=os.environ.get("FLOOR_DEFER") == "1")

    async def tune_once_ready() -> None:
        await bot.ready.wait()
        tune_collector()  # as `mutebot run` does

    tuning = asyncio.create_task(tune_once_ready())
    try:
        await bot.start(os.environ["DISCORD_TOKEN"])
    finally:
        tuning.cancel()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_from_environment())
