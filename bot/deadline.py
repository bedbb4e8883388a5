"""Answering a slash command inside Discord's deadline: at once when the work is quick, after a defer when not.

Discord drops an interaction that gets no first answer within 3 seconds of its creation. Deferring first ("mutebot
is thinking…") always meets that, but costs a round trip to Discord before the work starts and another for the
followup: the member's answer comes one Discord round trip later than it needs to. `finish_in_time` starts the
work, answers with its result when it is done well inside the deadline, and defers only when it is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import discord

__all__ = ["DEFER_AFTER_SECONDS", "finish_in_time"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long after Discord created the interaction mutebot waits for the work before it defers: half of Discord's
# 3 s, so that a clock up to 1.5 s behind Discord's, or a slow network, still leaves the defer in time.
DEFER_AFTER_SECONDS = 1.5


def seconds_left(interaction: discord.Interaction[Any], budget: float = DEFER_AFTER_SECONDS) -> float:
    """What is left of `budget`, counted from the interaction's creation (its snowflake's time).

    A clock ahead of Discord's makes every interaction look older: mutebot then defers sooner, which is safe.
    A clock behind it makes the creation look later than now: the budget then counts from now, never longer.
    """
    age = time.time() - interaction.created_at.timestamp()
    return min(budget, max(0.0, budget - age))


async def finish_in_time(interaction: discord.Interaction[Any], work: Coroutine[Any, Any, T]) -> T:
    """Run `work` and return its result; if it is not done inside the budget, defer (ephemeral, thinking) first.

    The caller answers with `send_ephemeral`, which sends the first answer or the followup, whichever the
    interaction's state then allows; an error from `work` reaches the command's error handler the same way.
    """
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds_left(interaction))
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
        except BaseException:
            # Too late for Discord, or cancelled: the work itself still finishes (a mute half-recorded helps
            # nobody), and the defer's error is what the handler then sees.
            log.warning("could not defer interaction %s; finishing its work first", interaction.id)
            with contextlib.suppress(Exception):
                await asyncio.shield(task)
            raise
    return await task
