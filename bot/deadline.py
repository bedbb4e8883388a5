"""Answering a slash command in time: at once when the work is quick, after a defer when it is not or when busy.

Discord drops an interaction that gets no first answer within 3 seconds of its creation. Deferring first ("mutebot
is thinking…") always meets that, but costs a round trip to Discord before the answer: when the work is quick, the
member's answer comes one round trip later than it needs to. `finish_in_time` starts the work and answers with its
result when it is done inside the budget; it defers when the budget runs out while the work goes on (X is slow),
and first of all when the command reaches its handler already late (the event loop is behind), so that the defer
can never be late itself, or when other commands are already in progress (a burst): then every member sees a
sign of life as soon as a minimal bot would show one, instead of waiting for the answer behind everybody else's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import discord

__all__ = ["BEHIND_SECONDS", "DEFER_AFTER_SECONDS", "finish_in_time", "in_progress", "seconds_left"]

T = TypeVar("T")

# How long after Discord created the interaction mutebot waits for the work before it defers: half of Discord's
# 3 s, so that a clock up to 1.5 s behind Discord's, or a slow network, still leaves the defer in time.
DEFER_AFTER_SECONDS = 1.5
# An interaction this old when its handler starts found the event loop behind (more commands at once than it takes
# in): its defer goes out first, since a timer set now could fire late on that same busy loop.
BEHIND_SECONDS = 0.5
# With this many commands of the process already in progress, a new one defers first: in a burst each member's
# first acknowledgement then comes about when a minimal bot's would, at the price of a fourth call per command.
# None answers at once whatever the load (the answer itself is then the first acknowledgement, which in a burst of
# 500 comes about twice as late). `python -m bench commands` measures both in the same run (README, "How /mute
# answers").
DEFER_FIRST_WHEN_BUSY: int | None = 4

_in_progress = 0  # per process: its commands share one event loop, whichever bot object runs them


def in_progress() -> int:
    """Commands of this process inside `finish_in_time` now."""
    return _in_progress


def age(interaction: discord.Interaction[Any]) -> float:
    """Seconds since Discord created the interaction (its snowflake's time); never negative."""
    return max(0.0, time.time() - interaction.created_at.timestamp())


def seconds_left(interaction: discord.Interaction[Any], budget: float = DEFER_AFTER_SECONDS) -> float:
    """What is left of `budget`, counted from the interaction's creation.

    A clock ahead of Discord's makes every interaction look older: mutebot then defers sooner, which is safe.
    A clock behind it makes the creation look later than now: the budget then counts from now, never longer.
    """
    return min(budget, max(0.0, budget - age(interaction)))


async def finish_in_time(interaction: discord.Interaction[Any], work: Coroutine[Any, Any, T]) -> T:
    """Run `work` and return its result, deferring (ephemeral, thinking) first when the command arrived late or
    DEFER_FIRST_WHEN_BUSY others are in progress, or as soon as the budget runs out while the work goes on.

    The caller answers with `send_ephemeral`, which sends the first answer or the followup, whichever the
    interaction's state then allows; an error from `work` reaches the command's error handler the same way.
    """
    global _in_progress
    busy = DEFER_FIRST_WHEN_BUSY is not None and _in_progress >= DEFER_FIRST_WHEN_BUSY
    _in_progress += 1
    try:
        return await _finish(interaction, work, defer_first=busy or age(interaction) >= BEHIND_SECONDS)
    finally:
        _in_progress -= 1


async def _finish(interaction: discord.Interaction[Any], work: Coroutine[Any, Any, T], *, defer_first: bool) -> T:
    if defer_first:
        task = asyncio.ensure_future(work)  # its first steps (the reads, X's request) overlap the defer
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
        except BaseException:
            # Discord no longer takes an answer (or we are being stopped): the work, perhaps already at X, still
            # finishes and is recorded (a mute at X that mutebot does not know of helps nobody); then the
            # handler sees why nothing could be answered.
            with contextlib.suppress(Exception):
                await asyncio.shield(task)
            raise
        return await task
    # The work runs here, and a timer sends the defer beside it only if the budget runs out first: the quick,
    # common case costs one timer and no task.
    loop = asyncio.get_running_loop()
    deferring: asyncio.Task[Any] | None = None

    def defer_now() -> None:
        nonlocal deferring
        deferring = loop.create_task(interaction.response.defer(ephemeral=True, thinking=True))

    timer = loop.call_later(seconds_left(interaction), defer_now)
    try:
        return await work
    finally:
        timer.cancel()
        if deferring is not None:
            # The answer must come after the defer. A defer that failed (too late for Discord) is what the
            # handler then sees, once the work itself has finished: a mute half-recorded helps nobody.
            await deferring
