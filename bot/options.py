"""Slash-command option types that parse what a member typed once, at the command boundary."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.durations import MAX_INPUT as MAX_DURATION_INPUT
from bot.durations import parse_duration
from bot.errors import ChannelElsewhere
from bot.usernames import Username, normalize_username

MAX_USERNAME_INPUT = 200  # a profile link with a query string fits; anything longer is not a username


class UsernameTransformer(app_commands.Transformer):
    """`name`, `@name` or a profile link → a valid X username; an InvalidUsername reaches the one error
    handler (as the cause of a TransformerError) before anything else runs."""

    @property
    def type(self) -> discord.AppCommandOptionType:
        return discord.AppCommandOptionType.string

    @property
    def min_value(self) -> int:
        return 1

    @property
    def max_value(self) -> int:
        return MAX_USERNAME_INPUT

    async def transform(self, interaction: discord.Interaction, value: str) -> Username:
        return normalize_username(value)


UsernameOption = app_commands.Transform[Username, UsernameTransformer]


class DurationTransformer(app_commands.Transformer):
    """`30m`, `12h`, `7d`, `2w` or `1d12h` → seconds; an InvalidDuration reaches the one error handler before
    anything else runs, so a bad duration costs no X call."""

    @property
    def type(self) -> discord.AppCommandOptionType:
        return discord.AppCommandOptionType.string

    @property
    def max_value(self) -> int:
        return MAX_DURATION_INPUT

    async def transform(self, interaction: discord.Interaction, value: str) -> int:
        return parse_duration(value)


DurationOption = app_commands.Transform[int, DurationTransformer]


class ServerTextChannelTransformer(app_commands.Transformer):
    """A text channel of the server the command runs in. Discord's picker offers only those, but the
    interaction is checked all the same: a channel of another server (or one mutebot was never told of) is
    refused in words (ChannelElsewhere), before anything else runs."""

    @property
    def type(self) -> discord.AppCommandOptionType:
        return discord.AppCommandOptionType.channel

    @property
    def channel_types(self) -> list[discord.ChannelType]:
        return [discord.ChannelType.text, discord.ChannelType.news]

    async def transform(self, interaction: discord.Interaction, value: app_commands.AppCommandChannel
                        ) -> discord.TextChannel:
        channel = interaction.guild.get_channel(value.id) if interaction.guild is not None else None
        if not isinstance(channel, discord.TextChannel) or channel.guild.id != interaction.guild_id:
            raise ChannelElsewhere()
        return channel


ServerTextChannelOption = app_commands.Transform[discord.TextChannel, ServerTextChannelTransformer]
