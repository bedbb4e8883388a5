"""An extension that fails while loading, to prove that one broken cog does not stop the others."""

from discord.ext import commands


async def setup(bot: commands.Bot) -> None:
    raise RuntimeError("this cog is broken on purpose")
