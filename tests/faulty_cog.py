"""An extension whose command fails unexpectedly, to prove the error handler's apology and incident id."""

import discord
from discord import app_commands
from discord.ext import commands


class Faulty(commands.Cog):
    @app_commands.command(name="explode", description="fails on purpose")
    async def explode(self, interaction: discord.Interaction) -> None:
        raise RuntimeError("boom with access_token=should-not-be-logged")


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Faulty())
