"""bot.waiting: a background loop waiting on an event stops when it is cancelled, whenever that comes."""

from __future__ import annotations

import asyncio

from bot.waiting import wait_for_event


async def test_a_cancel_that_arrives_as_the_event_fires_stops_the_loop() -> None:
    # With Python 3.11's asyncio.wait_for this cancellation is swallowed and the loop waits again: a shutdown
    # awaiting it then hangs (seen in CI: the queue worker outlived the bot's close()).
    event = asyncio.Event()

    async def loop() -> None:
        while True:
            await wait_for_event(event, 10)
            event.clear()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    event.set()
    task.cancel()  # in the same turn of the loop as the event
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done and task.cancelled()


async def test_it_says_whether_the_event_came_or_the_time_ran_out() -> None:
    event = asyncio.Event()
    assert await wait_for_event(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_for_event(event, 5) is True
    assert await wait_for_event(event, -1) is True  # already set: no wait at all
