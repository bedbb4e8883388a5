"""The queue across processes: 20 members applying a 1,000-entry list at once, served by `mutebot run` on SQLite
(one process), on PostgreSQL (one process) and on PostgreSQL (two processes, one Discord shard each).

`python -m bench processes`, or `python -m bench.bench_processes --entries 200 --window 1` for a quicker run.
Every configuration runs real `mutebot run` processes against the same stand-ins (this process serves them
and plays the members), so the three differ only in the database and the number of bot processes. Printed:
elapsed time, X rate windows used (50 mutes per member per `--window` seconds, X's limit on a compressed
clock), mutes per second, and each against the SQLite process of the same run. The throwaway PostgreSQL runs
with fsync off, as SQLite's WAL with synchronous=NORMAL does not sync on commit either.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.bench_queue import LIMIT, POSTS, finished, make_list
from bench.common import report
from bot.sandbox.harness import Sandbox
from bot.sandbox.members import Member
from bot.sandbox.polling import until
from bot.sandbox.ports import free_port
from bot.sandbox.postgres import ThrowawayPostgres, unavailable_reason
from bot.sandbox.processes import BotProcess
from bot.store import Database


@dataclass
class Result:
    label: str
    elapsed: float
    windows: float
    per_second: float
    by_process: dict[str, int]


async def serve(label: str, processes: int, database_url: str | None, args: argparse.Namespace) -> Result | None:
    members, entries, window = args.members, args.entries, args.window
    with tempfile.TemporaryDirectory(prefix="mutebot-bench-") as tmp:
        directory = Path(tmp)
        env = {"LOG_LEVEL": "WARNING", **({"SHARD_COUNT": str(processes)} if processes > 1 else {})}
        sandbox = Sandbox(directory, x_users=members + entries + 10, window_seconds=window,
                          database_url=database_url, env=env, check_discord_requests=False)
        await sandbox.start(with_bot=False)
        base = {**os.environ, **sandbox.environment()}
        bots: list[BotProcess] = []
        if processes == 1:
            bots.append(BotProcess("bot", base, directory))
        else:  # one shard each; the first also serves the OAuth callback (PUBLIC_BASE_URL is its port)
            owner = (sandbox.guild_id >> 22) % processes
            shards = [owner, *(s for s in range(processes) if s != owner)]
            for n, shard in enumerate(shards):
                if shard != owner:
                    sandbox.discord.add_guild(f"Server on shard {shard}", shard=(shard, processes))
                port = {} if n == 0 else {"WEB_PORT": str(free_port())}
                bots.append(BotProcess(f"bot{n}", {**base, "SHARD_IDS": str(shard), **port}, directory))
        try:
            for bot in bots:
                await bot.start()
            await sandbox.discord.wait_until_ready(timeout=60)
            await until(lambda: sandbox.discord.command_writes > 0, what="the slash commands", timeout=60)
            mod = sandbox.member("mod", moderator=True)
            await sandbox.link(mod, "user1")
            people: list[Member] = []
            for i in range(members):
                people.append(sandbox.member(f"member{i}"))
                await sandbox.link(people[-1], f"user{2 + i}")
            first = 2 + members
            names = [f"user{i}" for i in range(first, first + entries)]
            await make_list(sandbox, mod, "shared", names)

            posts_before = sandbox.x.calls[POSTS]
            started = time.perf_counter()
            await asyncio.gather(*(m.slash("mutelist apply", name="shared") for m in people))
            timeout = entries / LIMIT * window * 6 + 120
            summaries = await asyncio.gather(*(m.wait_for_dm(finished, timeout=timeout) for m in people))
            elapsed = time.perf_counter() - started
            assert all(f"Muted **{entries}**" in s.embeds[0]["description"] for s in summaries), summaries[0].embeds
            total = members * entries
            posts = sandbox.x.calls[POSTS] - posts_before
            wrong = [m.username for i, m in enumerate(people)
                     if len(set(sandbox.x.mutes_of(f"user{2 + i}"))) != entries]
            by_process = await sent_by(database_url or str(directory / "mutebot.sqlite3"))
            print(f"{label}: {members} members x {entries} entries, {LIMIT} per {window:g} s window each")
            print(f"  elapsed {elapsed:.2f} s = {elapsed / window:.2f} windows; {total / elapsed:.0f} mutes/s of "
                  f"the {members * LIMIT / window:.0f}/s X allows; POSTs {posts} for {total}; "
                  f"429s {sandbox.x.calls['429']}")
            if processes > 1:
                print("  sent by each process: " + ", ".join(f"{n}" for n in sorted(by_process.values(), reverse=True)))
            ok = report("429 answers", sandbox.x.calls["429"], 0, "")
            ok &= report("requests per entry", posts / total, 1, "")
            ok &= report("members missing a mute at X", len(wrong), 0, "")
            return Result(label, elapsed, elapsed / window, total / elapsed, by_process) if ok else None
        except BaseException as exc:
            exc.add_note("\n".join(f"{bot.name}'s log:\n{bot.output()}" for bot in bots))
            raise
        finally:
            for bot in bots:
                await bot.stop()
            await sandbox.stop()


async def sent_by(target: str) -> dict[str, int]:
    """Done actions per claiming process, from the shared database."""
    db = await Database.open(target)
    try:
        rows = await db.fetchall("SELECT claimed_by, count(*) AS n FROM actions WHERE status = 'done' GROUP BY 1")
        return {str(r["claimed_by"]): int(r["n"]) for r in rows}
    finally:
        await db.close()


async def run(args: argparse.Namespace) -> bool:
    results: list[Result | None] = [await serve("SQLite, 1 process", 1, None, args)]
    reason = unavailable_reason()
    if reason is not None:
        print(f"  NOT RUN: the PostgreSQL configurations, because {reason}; `make postgresql` installs it")
    else:
        server = ThrowawayPostgres().start()
        try:
            for processes in (1, 2):
                label = f"PostgreSQL, {processes} process{'es' if processes > 1 else ''}"
                results.append(await serve(label, processes, await server.new_database(), args))
        finally:
            server.stop()
    if any(r is None for r in results):
        return False
    done = [r for r in results if r is not None]
    floor = done[0]
    print(f"against SQLite with 1 process ({floor.per_second:.0f} mutes/s, {floor.windows:.2f} windows):")
    for r in done[1:]:
        print(f"  {r.label:<24} {r.per_second:6.0f} mutes/s  ratio {r.per_second / floor.per_second:.2f};  "
              f"{r.windows:6.2f} windows  ratio {r.windows / floor.windows:.2f}")
    print(f"  (X's limits alone would allow it in {math.ceil(args.entries / LIMIT)} windows; the members, the "
          "stand-ins and every bot process share this machine's cores)")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_processes", description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=20, help="members applying at once (default 20)")
    parser.add_argument("--entries", type=int, default=1000, help="entries in the list (default 1000)")
    parser.add_argument("--window", type=float, default=2.0, help="rate-window length in seconds (default 2)")
    args = parser.parse_args(list(argv) if argv is not None else [])
    logging.disable(logging.WARNING)
    return 0 if asyncio.run(run(args)) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
