"""/mute and /status against a floor bot, and browsing a 10,000-mute account; `python -m bench commands`.

The floor (bench/floor.py) is a minimal one-file bot making only /mute's external calls (defer, one
lookup, one POST muting, one followup). It runs against fresh stand-ins before and after mutebot, which
does the same work against fresh stand-ins of its own, in this process and this run; mutebot's numbers are
printed beside the floor's (both of its runs together) as ratios, with the targets of issue 13.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.common import median, percentile, report, report_ratio
from bench.floor import running_floor
from bot.sandbox.harness import Sandbox
from bot.sandbox.members import Member, Reply

SEQUENTIAL_MEMBERS, SEQUENTIAL_EACH = 10, 40  # 40 mutes each stay inside X's 50 per window
BURST, BURST_MEMBERS = 500, 20
WARM_UP = 20


@dataclass
class Run:
    sequential_ms: list[float]
    burst_per_s: float
    burst_ack_ms: list[float]
    burst_completed: int
    status_per_s: float
    round_trips_per_mute: float | None = None
    thread_hops_per_mute: float | None = None


async def _drive(sequential: list[Member], burst: list[Member],
                 trips: Callable[[], tuple[int, int]] | None) -> Run:
    for n in range(WARM_UP):  # the same warm-up for both bots: first connections, caches, lazy imports
        await burst[n % BURST_MEMBERS].slash("mute", username=f"user{2000 + n}")
    latencies: list[float] = []
    target = 100
    before = trips() if trips else (0, 0)
    for member in sequential:
        for _ in range(SEQUENTIAL_EACH):
            target += 1
            reply = await member.slash("mute", username=f"user{target}")
            assert reply.embeds, reply
            assert reply.embeds[0]["title"] == "Muted on X", reply
            assert reply.latency is not None
            latencies.append(reply.latency * 1000)
    after = trips() if trips else before
    per_mute = [(after[i] - before[i]) / len(latencies) for i in (0, 1)]

    async def fire(command: str) -> tuple[float, list[Reply]]:
        jobs: list[Awaitable[Reply]] = []
        for n in range(BURST):
            options = {"username": f"user{1000 + n}"} if command == "mute" else {}
            jobs.append(burst[n % BURST_MEMBERS].slash(command, **options))
        started = time.perf_counter()
        replies = await asyncio.gather(*jobs)
        return time.perf_counter() - started, list(replies)

    elapsed, replies = await fire("mute")
    completed = sum(1 for r in replies if r.embeds and r.embeds[0]["title"] == "Muted on X")
    acks = [(r.ack_latency or 0.0) * 1000 for r in replies]
    status_elapsed, status_replies = await fire("status")
    status_done = sum(1 for r in status_replies if r.embeds)
    return Run(latencies, completed / elapsed, acks, completed, status_done / status_elapsed,
               per_mute[0] if trips else None, per_mute[1] if trips else None)


async def floor_run() -> Run:
    sandbox = Sandbox(x_users=2500, check_discord_requests=False)
    await sandbox.start(with_bot=False)
    try:
        members = [sandbox.member(f"member{i}") for i in range(1, 1 + SEQUENTIAL_MEMBERS + BURST_MEMBERS)]
        tokens = {}
        for i, member in enumerate(members, start=1):
            token = sandbox.x.issue_token(f"user{i}")
            tokens[member.id] = (sandbox.x.user(f"user{i}").id, str(token["access_token"]))
        async with running_floor(sandbox, tokens):
            return await _drive(members[:SEQUENTIAL_MEMBERS], members[SEQUENTIAL_MEMBERS:], None)
    finally:
        await sandbox.stop()


async def linked_members(sandbox: Sandbox, first: int, count: int) -> list[Member]:
    members = []
    for i in range(first, first + count):
        member = sandbox.member(f"member{i}")
        await sandbox.link(member, f"user{i}")
        members.append(member)
    return members


async def mutebot_run() -> tuple[Run, bool]:
    ok = True
    async with Sandbox(x_users=2500, check_discord_requests=False) as sandbox:
        assert sandbox.bot is not None
        db = sandbox.bot.services.db
        members = await linked_members(sandbox, 1, SEQUENTIAL_MEMBERS + BURST_MEMBERS)
        run = await _drive(members[:SEQUENTIAL_MEMBERS], members[SEQUENTIAL_MEMBERS:],
                           lambda: (db.round_trips.total, db.round_trips.thread_hops))

        # Browsing every page of a 10,000-mute account.
        browser = (await linked_members(sandbox, 40, 1))[0]
        sandbox.x.seed_mutes("user40", [f"muted{i}" for i in range(10_000)])
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
        ok &= report("GET muting calls", reads, 10, "calls")
        ok &= report("page flip p99", percentile(flips, 99), 25, "ms")
        print(f"  page flip median {median(flips):.2f} ms")
        print(f"  X 429 answers during the run: {sandbox.x.calls['429']}")
    return run, ok


def _bracketing(before: Run, after: Run) -> Run:
    """The floor measured before and after mutebot, as one: a machine that speeds up or slows down during the
    run (this one does, by up to a third) then moves both sides of a ratio alike."""
    return Run(before.sequential_ms + after.sequential_ms, (before.burst_per_s + after.burst_per_s) / 2,
               before.burst_ack_ms + after.burst_ack_ms, min(before.burst_completed, after.burst_completed),
               (before.status_per_s + after.status_per_s) / 2)


async def run() -> bool:
    before = await floor_run()
    mine, ok = await mutebot_run()
    floor = _bracketing(before, await floor_run())
    print(f"/mute against the floor (same stand-ins, same run; {BURST} at once over {BURST_MEMBERS} members):")
    print(f"  floor:   sequential median {median(floor.sequential_ms):.2f} ms, burst {floor.burst_per_s:.1f}/s, "
          f"ack p99 {percentile(floor.burst_ack_ms, 99):.0f} ms, /status {floor.status_per_s:.1f}/s")
    print(f"  mutebot: sequential median {median(mine.sequential_ms):.2f} ms, burst {mine.burst_per_s:.1f}/s, "
          f"ack p99 {percentile(mine.burst_ack_ms, 99):.0f} ms, /status {mine.status_per_s:.1f}/s")
    ok &= report("/mute completed in the burst", mine.burst_completed, BURST, "cmds", lower_is_better=False)
    ok &= report_ratio("burst throughput, mutebot / floor", mine.burst_per_s, floor.burst_per_s, 0.8,
                       higher_is_better=True)
    ok &= report_ratio("burst first-ack p99, mutebot / floor", percentile(mine.burst_ack_ms, 99),
                       percentile(floor.burst_ack_ms, 99), 1.5)
    ok &= report_ratio("sequential median, mutebot / floor", median(mine.sequential_ms),
                       median(floor.sequential_ms), 1.3)
    ok &= report_ratio("mutebot /mute : /status throughput", mine.burst_per_s, mine.status_per_s, 0.5,
                       higher_is_better=True)
    # The same ratio for the floor, which does nothing but the four calls: what any bot making them can reach
    # against these stand-ins (a /status is one call, a /mute four).
    print(f"  for reference, the floor's own /mute : /status: {floor.burst_per_s / floor.status_per_s:.2f}")
    assert mine.round_trips_per_mute is not None
    assert mine.thread_hops_per_mute is not None
    ok &= report("database round trips per sequential /mute", mine.round_trips_per_mute, 4, "trips")
    print(f"  of which through a thread (the rest are small reads and writes on the loop): "
          f"{mine.thread_hops_per_mute:.2f}")
    return ok


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    return 0 if asyncio.run(run()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
