"""Scale: `mutebot run` (a real process) over 10,000 linked members and 1,000,000 cached mutes.

Prints its resident memory (target < 300 MB) and the /mutes page flip latency for a member with 100,000
mutes, deep pages included (target p99 <= 25 ms). `python -m bench scale`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import median, percentile, report
from bot.sandbox.harness import Sandbox
from bot.store import Database
from bot.vault import TokenVault

MEMBERS = 10_000
TOTAL_MUTES = 1_000_000
BIG = 100_000
FLIPS = 100


async def seed(path: Path, key: str, big_member: int) -> None:
    db = await Database.open(path)
    await db.migrate()
    await db.close()
    sealed = TokenVault([key]).encrypt("scale-bench-token")
    now = time.time()
    conn = sqlite3.connect(path)
    with conn:
        members = [big_member] + [10_000_000 + i for i in range(MEMBERS - 1)]
        conn.executemany(
            "INSERT INTO linked_accounts (discord_user_id, x_user_id, x_username, auth_kind, access_token,"
            " linked_at, updated_at) VALUES (?, ?, ?, 'oauth2', ?, ?, ?)",
            [(m, str(900_000 + i), f"linked{i}", sealed, now, now) for i, m in enumerate(members)],
        )
        each = (TOTAL_MUTES - BIG) // (MEMBERS - 1)
        rows = [(big_member, str(5_000_000 + j), f"target{j}", f"Target {j}", j) for j in range(BIG)]
        for m in members[1:]:
            rows.extend((m, str(6_000_000 + j), f"other{j}", "", j) for j in range(each))
        conn.executemany(
            "INSERT INTO cached_mutes (discord_user_id, x_user_id, username, name, position) VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany("INSERT INTO mute_cache_state (discord_user_id, fetched_at, total) VALUES (?, ?, ?)",
                         [(m, now + 3600, BIG if m == big_member else each) for m in members])
    total = conn.execute("SELECT count(*) FROM cached_mutes").fetchone()[0]
    conn.close()
    print(f"seeded {len(members):,} linked members and {total:,} cached mutes")


def rss_mb(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def run() -> bool:
    ok = True
    with tempfile.TemporaryDirectory(prefix="mutebot-scale-") as tmp:
        sandbox = Sandbox(Path(tmp), check_discord_requests=False)
        await sandbox.start(with_bot=False)
        big = sandbox.member("big")
        env = sandbox.environment()
        await seed(Path(env["DATABASE_PATH"]), sandbox.key, big.id)
        proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], env={**os.environ, **env, "LOG_LEVEL": "WARNING"},
                                cwd=tmp)
        try:
            await sandbox.discord.wait_until_ready(timeout=30)
            await sandbox.discord.wait_for_state(lambda: sandbox.discord.registered_command("mutes", None) is not None,
                                                 30, "the slash commands to be synced")
            reply = await big.slash("mutes")
            assert "100000 muted accounts" in str(reply.embeds[0]["footer"]), reply.embeds
            flips: list[float] = []
            for label in ["Next"] * FLIPS + ["Last"] + ["Previous"] * FLIPS:
                started = time.perf_counter()
                reply = await reply.click(label)
                flips.append((time.perf_counter() - started) * 1000)
            footer = str(reply.embeds[0]["footer"]["text"])
            rss, peak = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            await sandbox.stop()
    print(f"`mutebot run` over {MEMBERS:,} members and {TOTAL_MUTES:,} cached mutes; "
          f"{len(flips)} flips of a {BIG:,}-mute list (first pages, then from the last: {footer}):")
    ok &= report("resident memory after the flips", rss, 300, "MB")
    print(f"  peak resident memory {peak:.1f} MB")
    ok &= report("page flip p99", percentile(flips, 99), 25, "ms")
    print(f"  page flip median {median(flips):.2f} ms")
    return ok


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    return 0 if asyncio.run(run()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
