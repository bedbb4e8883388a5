"""MuteTimers: the ends of timed mutes, kept in the database and fired once each.

One task sleeps until the earliest end and is woken early when a sooner one is set (RoboDanny's reminder
model). Firing takes a member's due timers out of the database in the same transaction that queues their
unmutes, so after a restart or a crash each due timer fires once, and the unmutes go through the action
queue within X's limits. The member hears about each batch in one message (the job's summary).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.replies import counted, timed_mutes_ended_title
from bot.store import Stores
from bot.store.database import Batch, Pending
from bot.store.queue import QueuedTarget
from bot.waiting import wait_for_event

if TYPE_CHECKING:  # the queue imports the mute service, which imports the schedule from here
    from bot.queue import ActionQueue

log = logging.getLogger(__name__)

IDLE = 3600.0  # with nothing due sooner, look again this often anyway (a timer set by another process)
# While sleeping, read the clock again this often: asyncio sleeps on the monotonic clock, so a wall clock that
# jumped ahead (a suspended machine, an NTP step; a test's injected clock) would otherwise be noticed late.
CLOCK_CHECK = 60.0
MEMBERS_PER_ROUND = 100


class TimerSchedule:
    """Setting and cancelling ends, in the caller's write; the runner is woken when one is set."""

    def __init__(self, stores: Stores, *, clock: Callable[[], float] = time.time) -> None:
        self.store = stores.timers
        self.clock = clock
        self.wake = asyncio.Event()

    def schedule(self, batch: Batch, member_id: int, x_user_id: str, username: str, ends_at: float) -> None:
        """End this mute at `ends_at` (replacing an earlier end)."""
        self.store.set(batch, member_id, x_user_id, username, ends_at, self.clock())
        batch.on_commit(self.poke)

    def cancel(self, batch: Batch, member_id: int, x_user_id: str) -> Pending[bool]:
        """The mute is permanent now, or gone: it has no end any more. The answer says whether it had one."""
        return self.store.cancel(batch, member_id, x_user_id)

    def poke(self) -> None:
        """A timer was set (perhaps sooner than the one slept for), or the clock moved: look again now."""
        self.wake.set()


class MuteTimers:
    """The runner: fires due timers (see the module docstring)."""

    def __init__(self, stores: Stores, schedule: TimerSchedule, queue: ActionQueue, *,
                 clock: Callable[[], float] = time.time, idle: float = IDLE,
                 clock_check: float = CLOCK_CHECK) -> None:
        self.db = stores.db
        self.store = stores.timers
        self.lists = stores.lists
        self.mutes = stores.mutes
        self.schedule = schedule
        self.queue = queue
        self.clock = clock
        self.idle = idle
        self.clock_check = clock_check  # a plain attribute: tests shorten it
        self._sleeping_until: float | None = None
        self.fired = 0  # timers this process fired, for tests
        self.rounds = 0  # looks at the clock, for tests that wait for one

    @property
    def sleeping_until(self) -> float | None:
        """The clock time the task sleeps until (the earliest end, or the idle look), None while it is awake."""
        return self._sleeping_until

    async def run(self) -> None:
        while True:
            self.schedule.wake.clear()
            await self.fire_due()
            self.rounds += 1
            due = await self.store.next_due()
            now = self.clock()
            self._sleeping_until = now + self.idle if due is None else min(due, now + self.idle)
            try:
                await self._sleep_until(self._sleeping_until)
            finally:
                self._sleeping_until = None

    async def _sleep_until(self, deadline: float) -> None:
        """Until the clock reads `deadline`, or the schedule wakes the task (a sooner end was set)."""
        while (left := deadline - self.clock()) > 0:
            if await wait_for_event(self.schedule.wake, min(left, self.clock_check)):
                return

    async def fire_due(self) -> int:
        fired = 0
        while True:
            members = await self.store.due_members(self.clock(), MEMBERS_PER_ROUND)
            if not members:
                return fired
            for member_id in members:
                fired += await self._fire(member_id)

    async def _fire(self, member_id: int) -> int:
        now = self.clock()
        async with self.db.transaction() as batch:
            timers = await self.store.take_due(member_id, now)
            if not timers:
                return 0  # another process took them
            unmute: list[QueuedTarget] = []
            for timer in timers:
                # The member's timed choice is over either way; a list they subscribe to that holds it keeps it muted.
                self.mutes.forget_choice(batch, member_id, timer.x_user_id)
                holding = await self._subscribed_lists_holding(member_id, timer.x_user_id)
                if not holding:
                    unmute.append(QueuedTarget(timer.x_user_id, timer.username))
                # Those lists are now why it stays muted: a later removal from them unmutes it, as for any mute
                # a list made (else it would stay muted with no reason mutebot knows).
                for list_id in holding:
                    self.lists.record_list_mute(batch, member_id, timer.x_user_id, list_id, now)
            kept = len(timers) - len(unmute)
            title = timed_mutes_ended_title(len(timers), kept)
            job_id = await self.queue.create_job(member_id, guild_id=None, list_id=None, title=title,
                                                 total=len(unmute))
            self.queue.enqueue(batch, member_id, "unmute", unmute, cause="manual", job_id=job_id)
        self.fired += len(timers)
        log.info("member %s: %s ended, %s queued", member_id, counted(len(timers), "timed mute"),
                 counted(len(unmute), "unmute"))
        await self.queue.report_now(job_id)
        return len(timers)

    async def _subscribed_lists_holding(self, member_id: int, x_user_id: str) -> list[int]:
        """The lists the member subscribes to that have the account as an entry (issue 17's words). Not
        `held_elsewhere`: that also counts a list that once muted it for them and that they have left since."""
        return [reason.list_id for reason in await self.lists.reasons(member_id, x_user_id) if reason.following]
