"""/mute latency, a 500-command burst, and browsing a 10,000-mute account, through the stand-in and the emulator."""

from __future__ import annotations

import asyncio
import logging
import time

from bench.common import median, percentile, report
from bot.sandbox.harness import Sandbox
from bot.sandbox.members import Member, Reply


async def linked_members(sandbox: Sandbox, first: int, count: int) -> list[Member]:
    members = []
    for i in range(first, first + count):
        member = sandbox.member(f"member{i}")
        await sandbox.link(member, f"user{i}")
        members.append(member)
    return members


async def run() -> bool:
    ok = True
    async with Sandbox(x_users=2500) as sandbox:
        # Sequential /mute: 10 members x 40 mutes stay inside X's 50-per-window limit.
        sequential = await linked_members(sandbox, 1, 10)
        latencies: list[float] = []
        target = 100
        for member in sequential:
            for _ in range(40):
                target += 1
                reply = await member.slash("mute", username=f"user{target}")
                assert reply.embeds[0]["title"] == "Muted on X", reply.embeds
                assert reply.latency is not None
                latencies.append(reply.latency * 1000)
        print(f"sequential /mute, {len(latencies)} commands (injected interaction -> reply the member sees):")
        ok &= report("median", median(latencies), 10, "ms")
        ok &= report("p99", percentile(latencies, 99), 25, "ms")

        # The burst: 500 /mute at once across 20 members (25 each), then the same for /status.
        burst = await linked_members(sandbox, 11, 20)

        async def fire(command: str) -> tuple[float, list[Reply]]:
            jobs = []
            for n in range(500):
                member = burst[n % 20]
                options = {"username": f"user{1000 + n}"} if command == "mute" else {}
                jobs.append(member.slash(command, **options))
            started = time.perf_counter()
            replies = await asyncio.gather(*jobs)
            return time.perf_counter() - started, list(replies)

        elapsed, replies = await fire("mute")
        acks = [r.ack_latency or 0.0 for r in replies]
        completed = sum(1 for r in replies if r.embeds and r.embeds[0]["title"] == "Muted on X")
        status_elapsed, status_replies = await fire("status")
        status_done = sum(1 for r in status_replies if r.embeds)
        print("burst of 500 commands across 20 members:")
        ok &= report("/mute completed", completed, 500, "cmds", lower_is_better=False)
        ok &= report("/mute slowest acknowledgement", max(acks) * 1000, 3000, "ms")
        print(f"  /mute throughput   {completed / elapsed:8.1f} mutes/s   ({elapsed:.2f} s)")
        print(f"  /status throughput {status_done / status_elapsed:8.1f} cmds/s    ({status_elapsed:.2f} s)")
        print(f"  ratio /mute : /status = {(completed / elapsed) / (status_done / status_elapsed):.2f}")

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
    return ok


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    return 0 if asyncio.run(run()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
