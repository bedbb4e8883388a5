"""ActionQueue: durable, rate-limit-aware mutes and unmutes sent to X on members' behalf, with progress reports."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import discord

from bot.accounts import AccountService
from bot.errors import NotLinked, RelinkRequired, describe
from bot.mutes import MuteService
from bot.storage import Database
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
PROGRESS_INTERVAL = 2.0
DEFAULT_WINDOW = 15 * 60.0  # used for an ETA only until the headers have shown the window's length
FINISHED = ("done", "skipped", "failed", "cancelled")


@dataclass(frozen=True)
class Target:
    x_user_id: str
    username: str


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
    pause_reason: str | None
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
    """Delivers a job's progress to its member (the Discord side lives outside the engine)."""

    async def progress(self, job: JobProgress) -> None: ...

    async def finished(self, job: JobProgress) -> None: ...


@dataclass
class _JobMessages:
    last_at: float = 0.0
    scheduled: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ActionQueue:
    """Actions live in SQLite; one worker sends them as fast as each member's X rate window allows.

    Every member has their own X limits, so members are served concurrently (at most `concurrency`
    requests in flight overall) and in turn: a FIFO semaphore hands slots round-robin, so a member
    with 10,000 queued mutes does not hold back one with ten.
    """

    def __init__(
        self, db: Database, accounts: AccountService, mutes: MuteService, x: XClient,
        *, clock: Callable[[], float] = time.time, concurrency: int = CONCURRENCY,
        max_attempts: int = MAX_ATTEMPTS, usage_cap_pause: float = USAGE_CAP_PAUSE,
        progress_interval: float = PROGRESS_INTERVAL, backoff_base: float = 2.0,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.mutes = mutes
        self.x = x
        self.clock = clock
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.usage_cap_pause = usage_cap_pause
        self.progress_interval = progress_interval
        self.backoff_base = backoff_base
        self.reporter: JobReporter | None = None
        self.wake = asyncio.Event()
        self.sent = 0  # requests sent to X by this process, for tests and benchmarks
        self._paused_until = 0.0
        self._windows: dict[tuple[str, str], float] = {}
        self._messages: dict[int, _JobMessages] = {}
        self._background: set[asyncio.Task[None]] = set()

    def poke(self) -> None:
        """New work, a relink, or a finished send: the worker looks again now rather than at its timer."""
        self.wake.set()

    # -- enqueueing ---------------------------------------------------------------------------------

    async def create_job(
        self, member_id: int, *, guild_id: int | None, list_id: int | None, title: str, total: int,
        already_muted: int = 0, kept_unmuted: int = 0, progress_channel_id: int | None = None,
        progress_message_id: int | None = None,
    ) -> int:
        now = self.clock()
        return await self.db.execute(
            "INSERT INTO jobs (discord_user_id, guild_id, list_id, title, total, status, progress_channel_id,"
            " progress_message_id, created_at, already_muted, kept_unmuted)"
            " VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)",
            (member_id, guild_id, list_id, title, total, progress_channel_id, progress_message_id, now,
             already_muted, kept_unmuted),
        )

    async def enqueue(
        self, member_id: int, kind: str, targets: Sequence[Target], *, cause: str, list_id: int | None = None,
        job_id: int | None = None,
    ) -> int:
        if kind not in ENDPOINTS:
            raise ValueError(kind)
        if not targets:
            return 0
        now = self.clock()
        await self.db.executemany(
            "INSERT INTO actions (discord_user_id, kind, x_user_id, username, cause, list_id, job_id, status,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
            [(member_id, kind, t.x_user_id, t.username, cause, list_id, job_id, now, now) for t in targets],
        )
        self.poke()
        return len(targets)

    async def cancel(self, where: str, params: Sequence[object], outcome: str) -> list[int]:
        """Cancel pending actions matching `where`; returns the jobs touched (they may now be over)."""
        rows = await self.db.fetchall(
            f"SELECT DISTINCT job_id FROM actions WHERE status = 'pending' AND job_id IS NOT NULL AND {where}",  # noqa: S608
            tuple(params),
        )
        await self.db.execute(
            f"UPDATE actions SET status = 'cancelled', outcome = ?, updated_at = ?"  # noqa: S608
            f" WHERE status = 'pending' AND {where}",
            (outcome, self.clock(), *params),
        )
        return [int(r["job_id"]) for r in rows]

    async def settle_jobs(self, job_ids: Sequence[int], *, cancelled: bool = False) -> None:
        """Close the jobs that have nothing left to send, and report them."""
        for job_id in job_ids:
            await self._maybe_finish(job_id, status="cancelled" if cancelled else "done")

    async def pending_for(self, member_id: int) -> int:
        return int(await self.db.fetchval(
            "SELECT count(*) FROM actions WHERE discord_user_id = ? AND status IN ('pending', 'in_flight')",
            (member_id,),
        ) or 0)

    # -- the worker ---------------------------------------------------------------------------------

    async def recover(self) -> int:
        """After a crash: what was in flight goes back to pending (sent again at most once; X's mute and
        unmute are idempotent)."""
        recovered = await self.db.execute(
            "UPDATE actions SET status = 'pending', updated_at = ? WHERE status = 'in_flight'", (self.clock(),)
        )
        if recovered:
            log.info("%d interrupted action(s) will be sent again", recovered)
        paused = await self.db.fetchval("SELECT value FROM meta WHERE key = 'queue_paused_until'")
        self._paused_until = float(paused) if paused else 0.0
        return recovered

    async def paused_until(self) -> float:
        return self._paused_until if self._paused_until > self.clock() else 0.0

    async def run(self) -> None:
        """The worker: sleep until the earliest member is due, serve everyone due, repeat."""
        await self.recover()
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
                for member_id, x_user_id, due_at in await self._due_members(now):
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

    def _served(self, serving: dict[int, asyncio.Task[None]], member_id: int, task: asyncio.Task[None]) -> None:
        serving.pop(member_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("serving member %s failed", member_id, exc_info=task.exception())
        self.poke()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=seconds)

    async def _due_members(self, now: float) -> list[tuple[int, str, float]]:
        """Members with pending work and a usable link, each with when their next send may go out."""
        rows = await self.db.fetchall(
            "SELECT a.discord_user_id, la.x_user_id, a.kind, min(a.not_before) AS not_before FROM actions a"
            " JOIN linked_accounts la ON la.discord_user_id = a.discord_user_id AND la.needs_relink = 0"
            " WHERE a.status = 'pending' GROUP BY a.discord_user_id, a.kind"
        )
        due: dict[int, tuple[str, float]] = {}
        for row in rows:
            allowed = self.x.rate_limits.next_allowed_at(row["x_user_id"], ENDPOINTS[row["kind"]])
            at = max(float(row["not_before"]), allowed)
            member = int(row["discord_user_id"])
            if member not in due or at < due[member][1]:
                due[member] = (row["x_user_id"], at)
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
            marks = ",".join("?" * len(kinds))
            row = await self.db.fetchone(
                "SELECT id, kind, x_user_id, username, cause, list_id, job_id, attempts FROM actions"  # noqa: S608
                f" WHERE status = 'pending' AND discord_user_id = ? AND not_before <= ? AND kind IN ({marks})"
                " ORDER BY id LIMIT 1",
                (member_id, now, *kinds),
            )
            if row is None:
                return
            async with slots:
                keep_going = await self._perform(member_id, x_user_id, row)
            if not keep_going:
                return

    # -- one action -----------------------------------------------------------------------------------

    async def _skip_reason(self, member_id: int, r: sqlite3.Row) -> str | None:
        """List actions are re-checked when sent: the member's own choices and other lists win."""
        if r["cause"] != "list":
            return None
        target = r["x_user_id"]
        choice = await self.db.fetchval(
            "SELECT choice FROM manual_choices WHERE discord_user_id = ? AND x_user_id = ?", (member_id, target)
        )
        if r["kind"] == "mute":
            return "you unmuted it yourself" if choice == "unmuted" else None
        if choice == "muted":
            return "you muted it yourself"
        if choice == "unmuted":
            return "already unmuted by you"
        other = await self.db.fetchval(
            "SELECT 1 FROM list_mutes WHERE discord_user_id = ? AND x_user_id = ? AND list_id IS NOT ?"
            " UNION SELECT 1 FROM subscriptions s JOIN mute_list_entries e ON e.list_id = s.list_id"
            " WHERE s.discord_user_id = ? AND e.x_user_id = ? AND s.list_id IS NOT ? LIMIT 1",
            (member_id, target, r["list_id"], member_id, target, r["list_id"]),
        )
        return "another list you follow mutes it" if other else None

    async def _perform(self, member_id: int, x_user_id: str, r: sqlite3.Row) -> bool:
        """Send one action; False when this member (or the whole queue) must stop for now."""
        action_id, kind, target, job_id = r["id"], r["kind"], r["x_user_id"], r["job_id"]
        skip = await self._skip_reason(member_id, r)
        if skip is not None:
            await self._finish(action_id, "skipped", skip)
            await self._after(job_id)
            return True
        # Committed before the request: a crash from here on means "send again", never "forget".
        claimed = await self.db.execute(
            "UPDATE actions SET status = 'in_flight', attempts = attempts + 1, updated_at = ?"
            " WHERE id = ? AND status = 'pending'",
            (self.clock(), action_id),
        )
        if claimed != 1:
            return True  # cancelled meanwhile
        endpoint = ENDPOINTS[kind]
        sent_at = self.clock()

        async def send(auth: UserAuth) -> bool:
            self.sent += 1
            return await (self.x.mute(auth, target) if kind == "mute" else self.x.unmute(auth, target))

        try:
            await self.accounts.call(member_id, send)
        except RelinkRequired:
            await self._release(action_id, not_before=0.0, refund=True)
            await self._pause_member_jobs(member_id, "X needs you to run `/link` again; the rest waits until then.")
            return False
        except NotLinked:
            await self._finish(action_id, "cancelled", "your X account was unlinked")
            await self._after(job_id)
            return False
        except XRateLimited as exc:  # our budget said yes, X said no (another app, or a shared limit)
            await self._release(action_id, not_before=exc.reset_at, refund=True)
            return False
        except XUsageCapped:
            await self._release(action_id, not_before=0.0, refund=True)
            await self._pause_for_cap()
            return False
        except XUnavailable as exc:
            await self._retry_or_fail(action_id, int(r["attempts"]) + 1, describe(exc), job_id)
            return True
        except (XInvalidRequest, XForbidden, XUserNotFound, XUnauthorized) as exc:
            await self._finish(action_id, "failed", describe(exc))
            await self._after(job_id)
            return True
        except XError as exc:
            await self._retry_or_fail(action_id, int(r["attempts"]) + 1, describe(exc), job_id)
            return True
        self._learn_window(x_user_id, endpoint, sent_at)
        user = XUser(target, r["username"], "")
        async with self.db.transaction():
            await self._finish(action_id, "done", "muted" if kind == "mute" else "unmuted")
            await self.mutes.record(member_id, user, muted=kind == "mute", manual=False)
            if kind == "mute" and r["cause"] == "list" and r["list_id"] is not None:
                await self.db.execute(
                    "INSERT OR IGNORE INTO list_mutes (discord_user_id, x_user_id, list_id, muted_at)"
                    " SELECT ?, ?, id, ? FROM mute_lists WHERE id = ?",
                    (member_id, target, self.clock(), r["list_id"]),
                )
            elif kind == "unmute":
                await self.db.execute(
                    "DELETE FROM list_mutes WHERE discord_user_id = ? AND x_user_id = ?", (member_id, target)
                )
        await self._after(job_id)
        return True

    def _learn_window(self, x_user_id: str, endpoint: str, sent_at: float) -> None:
        """The first call of a window tells the window's length: its reset minus when it was sent."""
        state = self.x.rate_limits.get(x_user_id, endpoint)
        if state is not None and state.remaining == state.limit - 1 and state.reset_at > sent_at:
            self._windows[(x_user_id, endpoint)] = max(1.0, float(round(state.reset_at - sent_at)))

    async def _finish(self, action_id: int, status: str, outcome: str) -> None:
        await self.db.execute(
            "UPDATE actions SET status = ?, outcome = ?, updated_at = ? WHERE id = ?",
            (status, outcome[:300], self.clock(), action_id),
        )

    async def _release(self, action_id: int, *, not_before: float, refund: bool) -> None:
        await self.db.execute(
            "UPDATE actions SET status = 'pending', not_before = ?, updated_at = ?,"
            " attempts = attempts - ? WHERE id = ? AND status = 'in_flight'",
            (not_before, self.clock(), 1 if refund else 0, action_id),
        )

    async def _retry_or_fail(self, action_id: int, attempts: int, reason: str, job_id: int | None) -> None:
        if attempts >= self.max_attempts:
            await self._finish(action_id, "failed", f"{reason} (gave up after {attempts} attempts)")
            await self._after(job_id)
            return
        delay = self.backoff_base * 2 ** (attempts - 1) * random.uniform(0.75, 1.25)
        await self._release(action_id, not_before=self.clock() + delay, refund=False)

    async def _pause_for_cap(self) -> None:
        until = self.clock() + self.usage_cap_pause
        if until <= self._paused_until:
            return
        self._paused_until = until
        await self.db.execute(
            "INSERT INTO meta (key, value) VALUES ('queue_paused_until', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(until),),
        )
        reason = (f"X's monthly usage cap for this app is reached; everything queued waits and is retried "
                  f"<t:{int(until)}:R>.")
        log.warning("X usage cap reached: the action queue pauses until %.0f", until)
        rows = await self.db.fetchall(
            "UPDATE jobs SET status = 'paused', pause_reason = ? WHERE status IN ('running', 'paused')"
            " RETURNING id",
            (reason,),
        )
        for job in rows:
            self._report(int(job["id"]), force=True)

    async def _resume_after_cap(self) -> None:
        self._paused_until = 0.0
        await self.db.execute("DELETE FROM meta WHERE key = 'queue_paused_until'")
        rows = await self.db.fetchall(
            "UPDATE jobs SET status = 'running', pause_reason = NULL WHERE status = 'paused' RETURNING id"
        )
        for job in rows:
            self._report(int(job["id"]), force=True)

    async def _pause_member_jobs(self, member_id: int, reason: str) -> None:
        rows = await self.db.fetchall(
            "UPDATE jobs SET status = 'paused', pause_reason = ? WHERE discord_user_id = ? AND status = 'running'"
            " RETURNING id",
            (reason, member_id),
        )
        for job in rows:
            self._report(int(job["id"]), force=True)

    async def _after(self, job_id: int | None) -> None:
        if job_id is None:
            return
        await self.db.execute(
            "UPDATE jobs SET status = 'running', pause_reason = NULL WHERE id = ? AND status = 'paused'"
            " AND pause_reason NOT LIKE '%usage cap%'",
            (job_id,),
        )
        if not await self._maybe_finish(job_id, status="done"):
            self._report(job_id)

    async def _maybe_finish(self, job_id: int, *, status: str) -> bool:
        # A job any of whose actions was cancelled (list deleted, unsubscribed) ends as cancelled,
        # whichever send happened to finish it.
        changed = await self.db.execute(
            "UPDATE jobs SET finished_at = ?, pause_reason = NULL, status = CASE WHEN EXISTS"
            " (SELECT 1 FROM actions WHERE job_id = ? AND status = 'cancelled') THEN 'cancelled' ELSE ? END"
            " WHERE id = ? AND status IN ('running', 'paused') AND NOT EXISTS"
            " (SELECT 1 FROM actions WHERE job_id = ? AND status IN ('pending', 'in_flight'))",
            (self.clock(), job_id, status, job_id, job_id),
        )
        if changed:
            self._report(job_id, final=True)
        return bool(changed)

    # -- progress -----------------------------------------------------------------------------------

    async def progress(self, job_id: int) -> JobProgress | None:
        job = await self.db.fetchone(
            "SELECT id, discord_user_id, title, status, total, already_muted, kept_unmuted, pause_reason,"
            " progress_channel_id, progress_message_id FROM jobs WHERE id = ?",
            (job_id,),
        )
        if job is None:
            return None
        counts = {r["status"]: int(r["n"]) for r in await self.db.fetchall(
            "SELECT status, count(*) AS n FROM actions WHERE job_id = ? GROUP BY status", (job_id,)
        )}
        failures = [(str(r["username"] or r["x_user_id"]), str(r["outcome"] or "")) for r in await self.db.fetchall(
            "SELECT username, x_user_id, outcome FROM actions WHERE job_id = ? AND status = 'failed'"
            " ORDER BY id LIMIT 50",
            (job_id,),
        )]
        unmuting = bool(await self.db.fetchval(
            "SELECT 1 FROM actions WHERE job_id = ? AND kind = 'unmute' LIMIT 1", (job_id,)
        ))
        finished = sum(counts.get(s, 0) for s in FINISHED)
        member_id = int(job["discord_user_id"])
        return JobProgress(
            id=job_id, member_id=member_id, title=job["title"], status=job["status"],
            total=int(job["total"]), finished=finished, succeeded=counts.get("done", 0),
            failed=counts.get("failed", 0), skipped=counts.get("skipped", 0), cancelled=counts.get("cancelled", 0),
            already_muted=int(job["already_muted"]), kept_unmuted=int(job["kept_unmuted"]),
            pause_reason=job["pause_reason"], eta_seconds=await self.eta(member_id),
            failures=failures, channel_id=job["progress_channel_id"], message_id=job["progress_message_id"],
            unmuting=unmuting,
        )

    async def eta(self, member_id: int) -> float | None:
        """Seconds until the member's queue is empty: what is left over X's rate, per window length."""
        rows = await self.db.fetchall(
            "SELECT a.kind, count(*) AS n, la.x_user_id FROM actions a JOIN linked_accounts la"
            " ON la.discord_user_id = a.discord_user_id WHERE a.discord_user_id = ?"
            " AND a.status IN ('pending', 'in_flight') GROUP BY a.kind",
            (member_id,),
        )
        if not rows:
            return 0.0
        now = self.clock()
        longest = 0.0
        for row in rows:
            endpoint = ENDPOINTS[row["kind"]]
            left = int(row["n"])
            state = self.x.rate_limits.get(row["x_user_id"], endpoint)
            if state is None:
                longest = max(longest, left * 0.05)
                continue
            window = self._windows.get((row["x_user_id"], endpoint), DEFAULT_WINDOW)
            in_window = state.remaining if state.reset_at > now else state.limit
            if left <= in_window:
                seconds = left * 0.05
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
            self._spawn(self._deliver(job_id, state, final=True))
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

    async def report_now(self, job_id: int) -> None:
        """The first report of a new job (and the summary straight away when there was nothing to send)."""
        if not await self._maybe_finish(job_id, status="done"):
            self._report(job_id, force=True)

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def progress_bar(fraction: float, width: int = 10) -> str:
    """`[██████░░░░] 60%`"""
    fraction = min(max(fraction, 0.0), 1.0)
    filled = math.floor(fraction * width + 1e-9)
    return f"[{'█' * filled}{'░' * (width - filled)}] {math.floor(fraction * 100 + 1e-9)}%"


def duration(seconds: float) -> str:
    seconds = max(0, math.ceil(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


# -- the member-facing side: progress messages in DMs (or the command's own reply when DMs are closed) --

INTERACTION_EDIT_WINDOW = 14.5 * 60  # Discord honours an interaction token for 15 minutes


def render_progress(job: JobProgress) -> str:
    lines = [f"**{job.title}**", f"`{progress_bar(job.fraction)}` {job.finished}/{job.total}"]
    if job.status == "paused":
        lines.append(f"⏸️ Paused: {job.pause_reason or 'waiting'}")
    elif job.over:
        lines.append("Cancelled." if job.status == "cancelled" else "Finished.")
    elif job.eta_seconds is not None and job.total:
        lines.append(f"About {duration(job.eta_seconds)} left (X allows a limited number of changes per window).")
    return "\n".join(lines)


def render_summary(job: JobProgress) -> str:
    done = "unmuted" if job.unmuting else "muted"
    parts = [f"{done.capitalize()} **{job.succeeded}**"]
    if not job.unmuting:
        parts.append(f"already muted **{job.already_muted}**")
    if job.kept_unmuted:
        parts.append(f"left alone because you unmuted them yourself **{job.kept_unmuted}**")
    if job.skipped:
        parts.append(f"skipped **{job.skipped}**")
    if job.cancelled:
        parts.append(f"cancelled **{job.cancelled}**")
    parts.append(f"failed **{job.failed}**")
    text = " · ".join(parts)
    if job.failures:
        text += "\n\nFailed:\n" + "\n".join(f"• @{name}: {reason}" for name, reason in job.failures[:20])
        if job.failed > 20:
            text += f"\n… and {job.failed - 20} more."
    return text[:4000]


class DiscordProgress:
    """JobReporter for Discord: edits the job's message in place, then sends the summary."""

    def __init__(
        self, client: discord.Client, dm: Callable[..., Awaitable[discord.Message | None]],
        *, clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.dm = dm
        self.clock = clock
        self._interactions: dict[int, tuple[discord.Interaction, float]] = {}

    def use_interaction(self, interaction: discord.Interaction) -> int:
        """Report in this interaction's own (ephemeral) reply; returns the key to store as the message id."""
        self._interactions[interaction.id] = (interaction, self.clock())
        return interaction.id

    async def _edit(self, job: JobProgress, content: str) -> bool:
        if job.message_id is None:
            return False
        try:
            if job.channel_id is None:
                held = self._interactions.get(job.message_id)
                if held is None or self.clock() - held[1] > INTERACTION_EDIT_WINDOW:
                    return False
                await held[0].edit_original_response(content=content)
                return True
            channel = self.client.get_partial_messageable(job.channel_id)
            await channel.get_partial_message(job.message_id).edit(content=content)
            return True
        except discord.HTTPException as exc:
            log.info("could not edit the progress of job %s (%s)", job.id, exc.status)
            return False

    async def progress(self, job: JobProgress) -> None:
        await self._edit(job, render_progress(job))

    async def finished(self, job: JobProgress) -> None:
        await self._edit(job, render_progress(job))
        title = f"{'Cancelled' if job.status == 'cancelled' else 'Finished'}: {job.title}"
        embed = discord.Embed(title=title[:256], description=render_summary(job), colour=discord.Colour(0x1D9BF0))
        if job.channel_id is None and job.message_id is not None:
            held = self._interactions.pop(job.message_id, None)
            if held is not None and self.clock() - held[1] <= INTERACTION_EDIT_WINDOW:
                try:
                    await held[0].followup.send(embed=embed, ephemeral=True)
                    return
                except discord.HTTPException as exc:
                    log.info("could not send the summary of job %s (%s)", job.id, exc.status)
        await self.dm(job.member_id, embed=embed)
