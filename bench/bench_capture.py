"""Capturing a 1,000-account pile-on: the X calls and wall time of `/mutelist capture`, against the fewest calls
X's page sizes allow (100 per page; one lookup of the post).

`python -m bench capture`.
"""

from __future__ import annotations

import asyncio
import math
import sys
import tempfile
import time
from pathlib import Path

from bench.common import report
from bot.sandbox.harness import Sandbox

REPOSTERS, LIKERS, QUOTERS, REPLIERS = 100, 100, 300, 499  # with the author: 1,000 different accounts
PAGE = 100


async def run() -> int:
    with tempfile.TemporaryDirectory(prefix="mutebot-bench-") as tmp:
        sandbox = Sandbox(Path(tmp), check_discord_requests=False)
        await sandbox.start()
        try:
            mod = sandbox.member("mod", moderator=True)
            await sandbox.link(mod, "user1")
            post = sandbox.x.seed_post(
                "target", reposters=[f"b{i}" for i in range(REPOSTERS)], likers=[f"l{i}" for i in range(LIKERS)],
                quoters=[f"q{i}" for i in range(QUOTERS)], repliers=[f"r{i}" for i in range(REPLIERS)])
            await mod.slash("mutelist create", name="pile-on")
            before = sum(n for k, n in sandbox.x.calls.items() if k.startswith("GET /2/tweets"))
            started = time.perf_counter()
            preview = await mod.slash("mutelist capture", name="pile-on",
                                      post=f"https://x.com/target/status/{post.id}")
            seconds = time.perf_counter() - started
            calls = sum(n for k, n in sandbox.x.calls.items() if k.startswith("GET /2/tweets")) - before
            shown = str(preview.embeds[0].get("title", "")) if preview.embeds else preview.text
            added = await preview.click("Add")
            title = str(added.embeds[0].get("title", "")) if added.embeds else ""
        finally:
            await sandbox.stop(check=False)
    # the post itself is in its own conversation: search pages cover the replies and the post
    floor = 1 + math.ceil(REPOSTERS / PAGE) + math.ceil(LIKERS / PAGE) + math.ceil(QUOTERS / PAGE) + math.ceil(
        (REPLIERS + 1) / PAGE)
    print(f"  preview: {shown!r}; then {title!r}")
    ok = report("X calls to capture a 1,000-account pile-on (floor: page sizes)", calls, floor, "calls")
    ok &= report("wall time of the capture's preview", seconds, 5.0, "s")
    return 0 if ok and title == "Capture added" else 1


def main() -> int:
    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
