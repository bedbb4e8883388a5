"""/mute with each bot in a process of its own; `python -m bench apart`.

`bench commands` runs the bots and the stand-ins in one process, as issue 13 sets its targets: there the stand-ins'
work (about half of the CPU) is shared by every side, which narrows the gaps between bots. Here `mutebot run` and
the floor (bench/floor.py, started as `python -m bench.floor`) each get a process, and so a core of their own, while
this process serves the stand-ins and plays the members; a bot's own cost per command then shows more directly.
Reported, no targets: sequential median and burst throughput, first-ack and answer p99, against the floor (which
defers first, as mutebot does once busy) and the floor that answers at once (as mutebot does one command at a
time).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.bench_commands import linked_members
from bench.common import median, percentile, reported
from bench.floor import floor_members
from bot.sandbox.harness import Sandbox
from bot.sandbox.members import Member
from bot.sandbox.polling import until
from bot.sandbox.processes import BotProcess

BURST, BURST_MEMBERS, ROUNDS = 500, 20, 3
SEQUENTIAL_MEMBERS, SEQUENTIAL_EACH = 5, 40
WARM_UP, POOL_WARM_UP = 20, 100  # one at a time (caches, lazy imports), then at once (connection pools)
MEMBERS = SEQUENTIAL_MEMBERS + ROUNDS * BURST_MEMBERS
FIRST_TARGET = MEMBERS + 1  # targets are never a member's own account
X_USERS = FIRST_TARGET + SEQUENTIAL_MEMBERS * SEQUENTIAL_EACH + ROUNDS * BURST + WARM_UP + POOL_WARM_UP


@dataclass
class Side:
    label: str
    sandbox: Sandbox
    members: list[Member]
    stop: Callable[[], Awaitable[None]]
    pid: int
    sequential_ms: list[float] = field(default_factory=list)
    burst_per_s: list[float] = field(default_factory=list)
    ack_ms: list[float] = field(default_factory=list)
    answer_ms: list[float] = field(default_factory=list)
    deferred: int = 0
    burst_cpu_s: float = 0.0  # the bot process's CPU time (user + system) over its bursts
    next_target: int = FIRST_TARGET

    def cpu_seconds(self) -> float:
        """CPU time the bot's process has used so far, from /proc (Linux)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    @property
    def cpu_ms_per_mute(self) -> float:
        return self.burst_cpu_s / (ROUNDS * BURST) * 1000

    def target(self) -> str:
        self.next_target += 1
        return f"user{self.next_target - 1}"

    def round_members(self, r: int) -> list[Member]:
        start = SEQUENTIAL_MEMBERS + r * BURST_MEMBERS  # 20 fresh members a round: 25 mutes each, inside X's 50
        return self.members[start:start + BURST_MEMBERS]


async def start(label: str, kind: str, directory: Path, extra: dict[str, str]) -> Side:
    directory.mkdir()
    sandbox = Sandbox(directory, x_users=X_USERS, check_discord_requests=False)
    await sandbox.start(with_bot=False)
    env = {**os.environ, **sandbox.environment(), "LOG_LEVEL": "WARNING", **extra}
    members: list[Member] = []
    if kind == "floor":
        members, tokens = floor_members(sandbox, MEMBERS)
        (directory / "tokens.json").write_text(json.dumps(tokens))
        env["FLOOR_TOKENS"] = str(directory / "tokens.json")
        with (directory / "floor.log").open("ab") as log:
            process = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.floor", env=env,
                                                           stderr=log, stdout=asyncio.subprocess.DEVNULL)

        async def stop() -> None:
            process.terminate()
            await process.wait()

        pid = process.pid
    else:
        bot = BotProcess(label, env, directory)
        await bot.start()
        stop = bot.stop
        assert bot.process is not None
        pid = bot.process.pid
    await sandbox.discord.wait_until_ready(timeout=60)
    await until(lambda: sandbox.discord.command_writes > 0, what=f"{label}'s slash commands", timeout=60)
    if kind != "floor":
        members = await linked_members(sandbox, 1, MEMBERS)
    side = Side(label, sandbox, members, stop, pid)
    first = side.round_members(0)
    for n in range(WARM_UP):
        await first[n % BURST_MEMBERS].slash("mute", username=side.target())
    await asyncio.gather(*(first[n % BURST_MEMBERS].slash("mute", username=side.target())
                           for n in range(POOL_WARM_UP)))
    return side


async def sequential(side: Side, member: Member) -> None:
    for _ in range(SEQUENTIAL_EACH):
        reply = await member.slash("mute", username=side.target())
        assert reply.embeds, (side.label, reply)
        assert reply.embeds[0]["title"] == "Muted on X", (side.label, reply)
        side.sequential_ms.append((reply.latency or 0.0) * 1000)


async def burst(side: Side, r: int) -> None:
    members = side.round_members(r)
    targets = [side.target() for _ in range(BURST)]
    cpu = side.cpu_seconds()
    started = time.perf_counter()
    replies = await asyncio.gather(*(members[n % BURST_MEMBERS].slash("mute", username=targets[n])
                                     for n in range(BURST)))
    elapsed = time.perf_counter() - started
    side.burst_cpu_s += side.cpu_seconds() - cpu
    done = sum(1 for reply in replies if reply.embeds and reply.embeds[0]["title"] == "Muted on X")
    assert done == BURST, (side.label, done)
    side.burst_per_s.append(done / elapsed)
    side.ack_ms.extend((reply.ack_latency or 0.0) * 1000 for reply in replies)
    side.answer_ms.extend((reply.latency or 0.0) * 1000 for reply in replies)
    side.deferred += sum(1 for reply in replies if reply.callback_type == 5)


async def run() -> bool:
    with tempfile.TemporaryDirectory(prefix="mutebot-bench-apart-") as tmp:
        sides: list[Side] = []
        try:
            sides.append(await start("floor", "floor", Path(tmp) / "floor", {"FLOOR_DEFER": "1"}))
            sides.append(await start("floor at once", "floor", Path(tmp) / "at_once", {}))
            sides.append(await start("mutebot", "mutebot", Path(tmp) / "mutebot", {}))
            for i in range(SEQUENTIAL_MEMBERS):  # in turns, so that drift in this machine's speed moves all alike
                for side in sides[i % 3:] + sides[:i % 3]:
                    await sequential(side, side.members[i])
            for r in range(ROUNDS):
                for side in sides[r % 3:] + sides[:r % 3]:
                    await burst(side, r)
        finally:
            for side in sides:
                await side.stop()
                await side.sandbox.stop()
    floor, at_once, mine = sides
    print(f"/mute with each bot in a process of its own ({BURST} at once over {BURST_MEMBERS} members, {ROUNDS} "
          f"rounds; reported, no targets):")
    for side in sides:
        print(f"  {side.label:<14} sequential median {median(side.sequential_ms):5.2f} ms, burst "
              f"{statistics.fmean(side.burst_per_s):7.1f}/s, first-ack p99 {percentile(side.ack_ms, 99):4.0f} ms, "
              f"answer p99 {percentile(side.answer_ms, 99):4.0f} ms, deferred {side.deferred} of "
              f"{ROUNDS * BURST}, the bot's CPU {side.cpu_ms_per_mute:.2f} ms per /mute in "
              f"the bursts")
    reported(
        ("the bot's CPU per /mute in the bursts (ms), mutebot / floor", mine.cpu_ms_per_mute, floor.cpu_ms_per_mute),
        ("burst throughput, mutebot / floor", statistics.fmean(mine.burst_per_s), statistics.fmean(floor.burst_per_s)),
        ("burst first-ack p99, mutebot / floor", percentile(mine.ack_ms, 99), percentile(floor.ack_ms, 99)),
        ("burst answer p99, mutebot / floor", percentile(mine.answer_ms, 99), percentile(floor.answer_ms, 99)),
        ("sequential median, mutebot / floor", median(mine.sequential_ms), median(floor.sequential_ms)),
        ("sequential median, mutebot / floor at once", median(mine.sequential_ms), median(at_once.sequential_ms)),
        width=60,
    )
    return True


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    return 0 if asyncio.run(run()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
