"""Waiting on an event with a time limit, without losing a cancellation.

Python 3.11's `asyncio.wait_for` swallows a cancellation that arrives as the awaited event fires (CPython
gh-86296, fixed in 3.12): a background loop then keeps running after shutdown cancelled it, and the shutdown
waits for it forever. `asyncio.timeout` has no such race.
"""

from __future__ import annotations

import asyncio


async def wait_for_event(event: asyncio.Event, seconds: float) -> bool:
    """True when `event` is set within `seconds`; False when the time ran out first."""
    try:
        async with asyncio.timeout(max(0.0, seconds)):
            await event.wait()
    except TimeoutError:
        return False
    return True
