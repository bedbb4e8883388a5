"""ActionQueue: durable, rate-limit-aware mutes and unmutes sent to X on members' behalf, with progress reports."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.accounts import AccountService
from bot.errors import ACTION_OUTCOMES, NotLinked, RelinkRequired, describe, gave_up
from bot.mutes import MuteService
from bot.store import Stores
from bot.store.database import Batch, Pending
from bot.store.queue import FINISHED, PAUSE_RELINK, PAUSE_USAGE_CAP, ActionRow, QueuedTarget
from bot.text import counted
from bot.waiting import wait_for_event
from bot.windows import XWindows
from bot.x_client import (
    UserAuth,
    XClient,
    XError,
    XForbidden,
    XInvalidRequest,
    XRateLimited,
    XUnauthorized,
    XUnavailable,
    XUsageCapped,
    XUser,
    XUserNotFound,
)

log = logging.getLogger(__name__)

ENDPOINTS = {"mute": "muting.post", "unmute": "muting.delete"}
MAX_ATTEMPTS = 5
CONCURRENCY = 8
USAGE_CAP_PAUSE = 15 * 60.0
IDLE_POLL = 30.0  # a safety net only: new work and finished sends wake the worker at once
# How long a claimed action stays this process's: a send takes seconds at most (X's timeouts), so an action
# still in flight past its lease was claimed by a process that died, and on a shared database another takes it.
LEASE = 60.0
PROGRESS_INTERVAL = 2.0
SUMMARY_FLUSH_S = 5.0  # on shutdown, how long summaries already on their way may take to arrive
QUEUE_CHANNEL = "mutebot_queue"  # announced when work is queued, so every process's worker looks at once
DEFAULT_WINDOW = 15 * 60.0  # used for an ETA only until the headers have shown the window's length
SEND_SECONDS = 0.05  # the ETA's guess for one send inside an open window

Target = QueuedTarget


@dataclass(frozen=True)
class JobProgress:
    """A job as its member sees it: counts, why it waits, and the failures by account."""

    id: int
    member_id: int
    title: str
    status: str  # running | paused | done | cancelled
    total: int
    finished: int
    succeeded: int
    failed: int
    skipped: int
    cancelled: int
    already_muted: int
    kept_unmuted: int
    pause_kind: str | None  # usage_cap | relink
    pause_until: float | None
    eta_seconds: float | None
    failures: list[tuple[str, str]]
    channel_id: int | None
    message_id: int | None
    unmuting: bool = False

    @property
    def fraction(self) -> float:
        return 1.0 if self.total == 0 else self.finished / self.total

    @property
    def over(self) -> bool:
        return self.status in ("done", "cancelled")


class JobReporter(Protocol):
    """Delivers a job's progress to its member (the Discord side lives in bot/progress.py)."""

    async def progress(self, job: JobProgress) -> None: ...

    async def finished(self, job: JobProgress) -> None: ...


@dataclass
class _JobMessages:
    last_at: float = 0.0
    scheduled: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ActionQueue:
    """Actions live in the store; one worker sends them as fast as each member's X rate window allows.

    Every member has their own X limits, so members are served concurrently (at most `concurrency`
    requests in flight overall) and in turn: a FIFO semaphore hands slots round-robin, so a member
    with 10,000 queued mutes does not hold back one with ten.
    """

    def __init__(
        self, stores: Stores, accounts: AccountService, mutes: MuteService, x: XClient,
        *, clock: Callable[[], float] = time.time, concurrency: int = CONCURRENCY,
        max_attempts: int = MAX_ATTEMPTS, usage_cap_pause: float = USAGE_CAP_PAUSE,
        progress_interval: float = PROGRESS_INTERVAL, backoff_base: float = 2.0, lease: float = LEASE,
    ) -> None:
        self.db = stores.db
        self.store = stores.queue
        self.lists = stores.lists
        self.mute_store = stores.mutes
        self.windows = XWindows(x, stores.rate_limits, stores.db, clock=clock)
        self.accounts = accounts
        self.mutes = mutes
        self.x = x
        self.clock = clock
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.usage_cap_pause = usage_cap_pause
        self.progress_interval = progress_interval
        self.backoff_base = backoff_base
        self.lease = lease
        # This run's name on its claims: a process that starts again is a new run, and takes back only its own
        # claims and expired ones, never those of a live process on the same database.
        self.claimant = secrets.token_hex(8)
        self._leases_checked_at = 0.0
        self.reporter: JobReporter | None = None
        self.wake = asyncio.Event()
        self.sent = 0  # requests sent to X by this process, for tests and benchmarks
        self._paused_until = 0.0
        self._windows: dict[tuple[str, str], float] = {}
        self._messages: dict[int, _JobMessages] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._summaries: set[asyncio.Task[None]] = set()  # final reports on their way (flush_summaries)
        accounts.on_work_cancelled = self.settle_jobs  # an unlink or relink ends jobs: closed now, with summaries

    def poke(self) -> None:
        """New work, a relink, or a finished send: the worker looks again now rather than at its timer."""
        self.wake.set()

    # -- enqueueing ---------------------------------------------------------------------------------

    async def create_job(
        self, member_id: int, *, guild_id: int | None, list_id: int | None, title: str, total: int,
        already_muted: int = 0, kept_unmuted: int = 0, progress_channel_id: int | None = None,
        progress_message_id: int | None = None,
    ) -> int:
        return await self.store.create_job(
            member_id, guild_id=guild_id, list_id=list_id, title=title, total=total, already_muted=already_muted,
            kept_unmuted=kept_unmuted, channel_id=progress_channel_id, message_id=progress_message_id,
            now=self.clock(),
        )

    def enqueue(
        self, batch: Batch, member_id: int, kind: str, targets: Sequence[Target], *, cause: str,
        list_id: int | None = None, job_id: int | None = None,
    ) -> int:
        """Queue actions in the caller's write; the worker is woken once it has committed."""
        if kind not in ENDPOINTS:
            raise ValueError(kind)
        if not targets:
            return 0
        self.store.enqueue(batch, member_id, kind, targets, cause=cause, list_id=list_id, job_id=job_id,
                           now=self.clock())
        self.db.announce(batch, QUEUE_CHANNEL)  # to the other processes on a shared database
        batch.on_commit(self.poke)
        return len(targets)

    async def cancel_for_list(
        self, list_id: int, *, outcome: str, member: int | None = None, target: str | None = None,
        kind: str | None = None,
    ) -> tuple[int, list[int]]:
        """Cancel a list's pending actions; returns (how many, the jobs touched: they may now be over)."""
        return await self.store.cancel_for_list(list_id, outcome=outcome, now=self.clock(), member=member,
                                                target=target, kind=kind)

    async def settle_jobs(self, job_ids: Sequence[int], *, cancelled: bool = False) -> None:
        """Close the jobs that have nothing left to send, and report them."""
        for job_id in job_ids:
            await self._maybe_finish(job_id, status="cancelled" if cancelled else "done")

    async def pending_for(self, member_id: int) -> int:
        return await self.store.pending_count(member_id)

    # -- the worker ---------------------------------------------------------------------------------

    async def recover(self) -> int:
        """After a crash: what was in flight goes back to pending (sent again at most once; X's mute and
        unmute are idempotent), and a job with nothing left to send (its last actions were cancelled by an
        unlink, or the process stopped before it was closed) is closed now, with its summary. On a shared
        database only this run's own claims and expired leases: the others belong to live processes."""
        self._leases_checked_at = self.clock()
        recovered = await self.store.recover(self._leases_checked_at, every_claim=not self.db.dialect.shared,
                                             claimant=self.claimant)
        if recovered:
            log.info("%s will be sent again", counted(recovered, "interrupted action"))
        self._paused_until = await self.store.paused_until()
        # Summaries a stopped run owed (it closed their jobs but was killed before Discord took them), claimed
        # before this run closes any job of its own. On a shared database, only those owed longer than a lease:
        # younger ones may be on their way from a live process.
        await self._send_owed_summaries(self._leases_checked_at - (self.lease if self.db.dialect.shared else 0.0))
        await self.settle_jobs(await self.store.open_jobs_with_nothing_left())
        return recovered

    async def _send_owed_summaries(self, owed_since: float) -> None:
        owed = await self.store.claim_owed_summaries(self.clock(), owed_since)
        if owed:
            log.info("sending %s that a stopped process owed", counted(len(owed), "job summary", "job summaries"))
        for job_id in owed:
            self._report(job_id, final=True)

    async def paused_until(self) -> float:
        return self._paused_until if self._paused_until > self.clock() else 0.0

    async def run(self) -> None:
        """The worker: sleep until the earliest member is due, serve everyone due, repeat."""
        await self.recover()
        await self.db.listen(QUEUE_CHANNEL, self.poke)  # work queued by another process
        slots = asyncio.Semaphore(self.concurrency)
        serving: dict[int, asyncio.Task[None]] = {}
        try:
            while True:
                self.wake.clear()
                now = self.clock()
                if self._paused_until > now:
                    await self._sleep(self._paused_until - now)
                    continue
                if self._paused_until:
                    await self._resume_after_cap()
                next_at = now + IDLE_POLL
                if self.db.dialect.shared:  # another process may have died holding claims: take them over
                    next_at = min(next_at, await self._take_over_expired(now))
                for member_id, x_user_id, due_at in await self._due_members():
                    if member_id in serving:
                        continue
                    if due_at > now:
                        next_at = min(next_at, due_at)
                        continue
                    task = asyncio.create_task(self._serve(member_id, x_user_id, slots), name=f"queue:{member_id}")
                    serving[member_id] = task
                    task.add_done_callback(functools.partial(self._served, serving, member_id))
                await self._sleep(max(0.0, next_at - self.clock()))
        finally:
            for task in serving.values():
                task.cancel()
            for task in list(serving.values()):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _take_over_expired(self, now: float) -> float:
        """Every half lease, put back in flight actions whose lease ran out; returns when to look again."""
        if now >= self._leases_checked_at + self.lease / 2:
            self._leases_checked_at = now
            taken = await self.store.recover(now, every_claim=False)
            if taken:
                log.warning("%s claimed by a process that stopped will be sent again", counted(taken, "action"))
            await self._send_owed_summaries(now - self.lease)
        return self._leases_checked_at + self.lease / 2

    def _served(self, serving: dict[int, asyncio.Task[None]], member_id: int, task: asyncio.Task[None]) -> None:
        serving.pop(member_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("serving member %s failed", member_id, exc_info=task.exception())
        self.poke()

    async def _sleep(self, seconds: float) -> None:
        await wait_for_event(self.wake, seconds)

    async def _due_members(self) -> list[tuple[int, str, float]]:
        """Members with pending work and a usable link, each with when their next send may go out."""
        due: dict[int, tuple[str, float]] = {}
        blocked = await self.windows.used_up()  # by another process, unseen by this one's headers
        for row in await self.store.due_members():
            endpoint = ENDPOINTS[row.kind]
            allowed = self.x.rate_limits.next_allowed_at(row.x_user_id, endpoint)
            at = max(row.not_before, allowed, blocked.get((row.x_user_id, endpoint), 0.0))
            if row.member_id not in due or at < due[row.member_id][1]:
                due[row.member_id] = (row.x_user_id, at)
        return [(member, x_id, at) for member, (x_id, at) in due.items()]

    async def _serve(self, member_id: int, x_user_id: str, slots: asyncio.Semaphore) -> None:
        """Send this member's due actions one at a time, taking a shared slot for each, until none is due."""
        while True:
            now = self.clock()
            if self._paused_until > now:
                return
            kinds = [k for k, e in ENDPOINTS.items() if self.x.rate_limits.next_allowed_at(x_user_id, e) <= now]
            if not kinds:
                return
            async with slots:  # claimed only once a slot is free: a claim's lease runs from here
                claimed_at = self.clock()
                action = await self.store.claim_next(member_id, claimed_at, kinds, claimed_at + self.lease,
                                                     self.claimant)
                if action is None:
                    return
                keep_going = await self._perform(member_id, x_user_id, action)
            if not keep_going:
                return

    # -- one action -----------------------------------------------------------------------------------

    async def _skip_reason(self, member_id: int, action: ActionRow) -> str | None:
        """List actions are re-checked when sent: the member's own choices and other lists win (the outcome of
        a skipped one: a key of ACTION_OUTCOMES)."""
        if action.cause != "list":
            return None
        choice = await self.mute_store.choice(member_id, action.x_user_id)
        if action.kind == "mute":
            return "unmuted_by_you" if choice == "unmuted" else None
        if choice == "muted":
            return "muted_by_you"
        if choice == "unmuted":
            return "already_unmuted"
        if await self.lists.held_elsewhere(member_id, action.x_user_id, action.list_id):
            return "held_elsewhere"
        return None

    async def _perform(self, member_id: int, x_user_id: str, action: ActionRow) -> bool:
        """Send one claimed action; False when this member (or the whole queue) must stop for now."""
        kind, target, job_id = action.kind, action.x_user_id, action.job_id
        skip = await self._skip_reason(member_id, action)
        if skip is not None:
            async with self.db.transaction() as batch:
                skipped = await self.store.skip_claimed(action.id, ACTION_OUTCOMES[skip], self.clock())
                if skipped and action.kind == "unmute" and action.list_id is not None:
                    # The list that asked for this unmute no longer holds the account; whatever keeps it
                    # muted now is the reason (another followed list takes the list's place).
                    self.lists.hand_over(batch, member_id, action.x_user_id, action.list_id)
                ended = self._after(batch, job_id)
            self._reported(job_id, ended)
            return True
        endpoint = ENDPOINTS[kind]
        reset_at = await self.windows.take(x_user_id, endpoint)  # on a shared database, with every process
        if reset_at:
            await self._release(action.id, not_before=reset_at, refund=True)
            return False
        sent_at = self.clock()

        async def send(auth: UserAuth) -> bool:
            self.sent += 1
            # The queue retries on its own, slower schedule: one call per attempt it counts.
            if kind == "mute":
                return await self.x.mute(auth, target, retries=0)
            return await self.x.unmute(auth, target, retries=0)

        try:
            try:
                await self.accounts.call(member_id, send)
            finally:
                await self.windows.share(x_user_id, endpoint)
        except RelinkRequired:
            await self._release(action.id, not_before=0.0, refund=True)
            await self._pause_member_jobs(member_id)
            return False
        except NotLinked:
            await self._finish(action.id, "cancelled", ACTION_OUTCOMES["unlinked"], job_id)
            return False
        except XRateLimited as exc:  # our budget said yes, X said no (another app, or a shared limit)
            await self._release(action.id, not_before=exc.reset_at, refund=True)
            return False
        except XUsageCapped:
            await self._release(action.id, not_before=0.0, refund=True)
            await self._pause_for_cap()
            return False
        except XUnavailable as exc:
            await self._retry_or_fail(action.id, action.attempts + 1, describe(exc), job_id)
            return True
        except (XInvalidRequest, XForbidden, XUserNotFound, XUnauthorized) as exc:
            await self._finish(action.id, "failed", describe(exc), job_id)
            return True
        except XError as exc:
            await self._retry_or_fail(action.id, action.attempts + 1, describe(exc), job_id)
            return True
        self._learn_window(x_user_id, endpoint, sent_at)
        now = self.clock()
        async with self.db.transaction() as batch:  # the action, the cache and the list's record: together
            # Only while the action is still ours: an unlink during the send cancelled it and forgot the
            # member's cache, and what the send did must not write any of it back.
            if await self.store.settle_claimed(action.id, "done", "muted" if kind == "mute" else "unmuted", now):
                self.mutes.record(batch, member_id, XUser(target, action.username, ""), muted=kind == "mute",
                                  manual=False)
                if kind == "mute" and action.cause == "list" and action.list_id is not None:
                    self.lists.record_list_mute(batch, member_id, target, action.list_id, now)
                elif kind == "unmute":
                    self.lists.forget_list_mutes(batch, member_id, target)
            ended = self._after(batch, job_id)
        self._reported(job_id, ended)
        return True

    def _learn_window(self, x_user_id: str, endpoint: str, sent_at: float) -> None:
        """The first call of a window tells the window's length: its reset minus when it was sent."""
        state = self.x.rate_limits.get(x_user_id, endpoint)
        if state is not None and state.remaining == state.limit - 1 and state.reset_at > sent_at:
            self._windows[(x_user_id, endpoint)] = max(1.0, float(round(state.reset_at - sent_at)))

    async def _finish(self, action_id: int, status: str, outcome: str, job_id: int | None) -> None:
        async with self.db.batch() as batch:
            self.store.finish(batch, action_id, status, outcome, self.clock())
            ended = self._after(batch, job_id)
        self._reported(job_id, ended)

    async def _release(self, action_id: int, *, not_before: float, refund: bool) -> None:
        await self.store.release(action_id, not_before=not_before, refund=refund, now=self.clock())

    async def _retry_or_fail(self, action_id: int, attempts: int, reason: str, job_id: int | None) -> None:
        if attempts >= self.max_attempts:
            await self._finish(action_id, "failed", gave_up(reason, attempts), job_id)
            return
        delay = self.backoff_base * 2 ** (attempts - 1) * random.uniform(0.75, 1.25)
        await self._release(action_id, not_before=self.clock() + delay, refund=False)

    async def _pause_for_cap(self) -> None:
        until = self.clock() + self.usage_cap_pause
        if until <= self._paused_until:
            return
        self._paused_until = until
        await self.store.set_paused_until(until)
        log.warning("X usage cap reached: the action queue pauses until %.0f", until)
        for job_id in await self.store.pause_all(PAUSE_USAGE_CAP, until):
            self._report(job_id, force=True)

    async def _resume_after_cap(self) -> None:
        self._paused_until = 0.0
        await self.store.set_paused_until(None)
        for job_id in await self.store.resume_all(PAUSE_USAGE_CAP):
            self._report(job_id, force=True)

    async def _pause_member_jobs(self, member_id: int) -> None:
        for job_id in await self.store.pause_member(member_id, PAUSE_RELINK):
            self._report(job_id, force=True)

    # -- a job's end ---------------------------------------------------------------------------------

    def _after(self, batch: Batch, job_id: int | None) -> Pending[int] | None:
        """Queue, in the action's own write, the job's resumption and (when nothing is left) its end."""
        if job_id is None:
            return None
        self.store.resume_job(batch, job_id)
        return self.store.finish_job_if_done(batch, job_id, "done", self.clock())

    def _reported(self, job_id: int | None, ended: Pending[int] | None) -> None:
        if job_id is not None:
            self._report(job_id, final=bool(ended is not None and ended.value))

    async def _maybe_finish(self, job_id: int, *, status: str) -> bool:
        async with self.db.batch() as batch:
            ended = self.store.finish_job_if_done(batch, job_id, status, self.clock())
        if ended.value:
            self._report(job_id, final=True)
        return bool(ended.value)

    # -- progress -----------------------------------------------------------------------------------

    async def progress(self, job_id: int) -> JobProgress | None:
        job = await self.store.job(job_id)
        if job is None:
            return None
        counts = await self.store.job_counts(job_id)
        by_status = counts.by_status
        return JobProgress(
            id=job_id, member_id=job.member_id, title=job.title, status=job.status,
            total=job.total, finished=sum(by_status.get(s, 0) for s in FINISHED), succeeded=by_status.get("done", 0),
            failed=by_status.get("failed", 0), skipped=by_status.get("skipped", 0),
            cancelled=by_status.get("cancelled", 0), already_muted=job.already_muted, kept_unmuted=job.kept_unmuted,
            pause_kind=job.pause_kind, pause_until=job.pause_until, eta_seconds=await self.eta(job.member_id),
            failures=counts.failures, channel_id=job.channel_id, message_id=job.message_id,
            unmuting=counts.unmuting,
        )

    async def eta(self, member_id: int) -> float | None:
        """Seconds until the member's queue is empty: what is left over X's rate, per window length."""
        left_by_kind = await self.store.pending_by_kind(member_id)
        if not left_by_kind:
            return 0.0
        account = await self.accounts.account(member_id)
        if account is None:
            return None
        now = self.clock()
        longest = 0.0
        for kind, left in left_by_kind.items():
            endpoint = ENDPOINTS[kind]
            state = self.x.rate_limits.get(account.x_user_id, endpoint)
            if state is None:
                longest = max(longest, left * SEND_SECONDS)
                continue
            window = self._windows.get((account.x_user_id, endpoint), DEFAULT_WINDOW)
            in_window = state.remaining if state.reset_at > now else state.limit
            if left <= in_window:
                seconds = left * SEND_SECONDS
            else:
                wait = max(0.0, state.reset_at - now) if state.reset_at > now else 0.0
                seconds = wait + math.ceil((left - in_window) / max(1, state.limit) - 1) * window
            longest = max(longest, seconds)
        return longest

    def _report(self, job_id: int, *, final: bool = False, force: bool = False) -> None:
        """Edit the job's message at most every `progress_interval` seconds; always at the end."""
        if self.reporter is None:
            return
        state = self._messages.setdefault(job_id, _JobMessages())
        if final:
            if state.scheduled is not None:
                state.scheduled.cancel()
                state.scheduled = None
            summary = self._spawn(self._deliver(job_id, state, final=True))
            self._summaries.add(summary)
            summary.add_done_callback(self._summaries.discard)
            return
        if state.scheduled is not None:
            return
        delay = 0.0 if force else max(0.0, state.last_at + self.progress_interval - self.clock())
        state.scheduled = self._spawn(self._deliver(job_id, state, final=False, delay=delay))

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        async def run() -> None:
            await coro

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _deliver(self, job_id: int, state: _JobMessages, *, final: bool, delay: float = 0.0) -> None:
        if delay:
            await asyncio.sleep(delay)
        async with state.lock:
            if not final:
                state.scheduled = None
            job = await self.progress(job_id)
            reporter = self.reporter
            if job is None or reporter is None or (job.over and not final):
                return
            state.last_at = self.clock()
            try:
                if final:
                    await reporter.finished(job)
                    self._messages.pop(job_id, None)
                else:
                    await reporter.progress(job)
            except Exception:
                log.exception("could not report job %s", job_id)
            if final:  # taken, or refused for good: owed no more (a stop or a kill before this leaves it owed)
                await self.store.summary_delivered(job_id)

    async def report_now(self, job_id: int) -> None:
        """The first report of a new job (and the summary straight away when there was nothing to send)."""
        if not await self._maybe_finish(job_id, status="done"):
            self._report(job_id, force=True)

    async def flush_summaries(self, timeout: float = SUMMARY_FLUSH_S) -> None:
        """On shutdown, before Discord's connection closes: a job that has ended is closed in the database
        at once, so no later start would send its summary; give the summaries on their way time to arrive."""
        if self._summaries:
            await asyncio.wait(set(self._summaries), timeout=timeout)

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
