"""`mutebot run` in subprocesses: two on one PostgreSQL, one Discord shard each, where the loss of one costs its
members nothing; and one killed and started again across the end of timed mutes, on the sandbox's clock."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from bot.runtime import TEST_CLOCK_VARIABLE, TEST_LEASE_VARIABLE
from bot.sandbox.harness import Sandbox
from bot.sandbox.members import Member
from bot.sandbox.ports import free_port
from bot.sandbox.postgres import ThrowawayPostgres
from bot.sandbox.processes import BotProcess
from bot.store import Stores
from bot.timers import MEMBERS_PER_ROUND
from tests.helpers import until
from tests.test_queue import POSTS, finished, make_list, people
from tests.test_timed_mutes import DELETES, ended

ENTRIES = 123


@asynccontextmanager
async def two_shards(sandbox: Sandbox, cwd: Path) -> AsyncIterator[tuple[BotProcess, BotProcess, int]]:
    """`mutebot run` twice on the sandbox's database, one shard each, both connected: (A, B, A's shard). A serves the
    sandbox's server and the OAuth callback (PUBLIC_BASE_URL is its port); B the other shard, with a server of its
    own. On the way out both are killed and the sandbox stopped; a failure carries both logs."""
    owner_shard = (sandbox.guild_id >> 22) % 2
    other_shard = 1 - owner_shard
    sandbox.discord.add_guild("The other server", shard=(other_shard, 2))
    base = {**os.environ, **sandbox.environment()}
    a = BotProcess("a", {**base, "SHARD_IDS": str(owner_shard)}, cwd)
    b = BotProcess("b", {**base, "SHARD_IDS": str(other_shard), "WEB_PORT": str(free_port())}, cwd)
    try:
        await a.start()
        await b.start()
        await sandbox.discord.wait_until_ready(timeout=30)  # both shards, one in each process
        await until(lambda: sandbox.discord.command_writes > 0, what="the commands")
        yield a, b, owner_shard
    except BaseException as exc:
        exc.add_note(f"process A's log:\n{a.output()}\nprocess B's log:\n{b.output()}")
        raise
    finally:
        await a.kill()
        await b.kill()
        await sandbox.stop()


@asynccontextmanager
async def one_at_a_time(sandbox: Sandbox, cwd: Path) -> AsyncIterator[Callable[[str], Awaitable[BotProcess]]]:
    """Gives `start(name)`: `mutebot run` on the sandbox's database (one process at a time, serving its server and
    the OAuth callback), on the sandbox's clock as it reads when started (TEST_CLOCK_VARIABLE), connected. On the
    way out every one is killed and the sandbox stopped; a failure carries their logs."""
    started: list[BotProcess] = []

    async def start(name: str) -> BotProcess:
        env = {**os.environ, **sandbox.environment(), TEST_CLOCK_VARIABLE: repr(sandbox.clock.offset)}
        process = BotProcess(name, env, cwd)
        started.append(process)
        await process.start()
        await sandbox.discord.wait_until_ready(timeout=30)
        await until(lambda: sandbox.discord.command_writes > 0, what="the commands")
        return process

    try:
        yield start
    except BaseException as exc:
        exc.add_note("\n".join(f"process {p.name}'s log:\n{p.output()}" for p in started))
        raise
    finally:
        for process in started:
            await process.kill()
        await sandbox.stop()


async def kill(sandbox: Sandbox, process: BotProcess) -> None:
    """SIGKILL, and wait until the Discord stand-in has seen its connection drop."""
    await process.kill()
    await until(lambda: not sandbox.discord.connected, what="the killed process's gateway to close")


async def left_behind(sandbox: Sandbox, members: list[Member]) -> tuple[int, int]:
    """(timers, actions not yet sent for these members) in the database, as another process sees it."""
    stores = await Stores.open(sandbox.settings().database)
    try:
        return (await stores.timers.count(),
                sum([await stores.queue.pending_count(m.id) for m in members]))
    finally:
        await stores.db.close()


async def test_a_timed_mute_killed_across_its_end_ends_once_after_the_restart(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path, x_users=20, env={"LOG_LEVEL": "WARNING"})
    await sandbox.start(with_bot=False)
    async with one_at_a_time(sandbox, tmp_path) as start:
        first = await start("first")
        alice = sandbox.member("alice")
        await sandbox.link(alice, "user2")
        reply = await alice.slash("mute", username="user3", duration="1m")
        assert reply.embeds[0]["title"] == "Muted on X", reply
        dms = len(await alice.dms())
        await kill(sandbox, first)  # well before the minute is up on its clock
        sandbox.advance(5 * 60)  # the end passes while nothing runs
        assert sandbox.x.calls[DELETES] == 0 and sandbox.x.user("user3").id in sandbox.x.mutes_of("user2")

        second = await start("second")  # five minutes on, for it and the X emulator alike
        summary = await alice.wait_for_dm(ended, timeout=30)
        assert summary.embeds[0]["title"] == "Finished: 1 timed mute ended"
        assert "Unmuted **1**" in summary.embeds[0]["description"]
        await second.stop()  # SIGTERM: whatever it was going to send, it has sent
        assert sandbox.x.mutes_of("user2") == []
        assert sandbox.x.calls[DELETES] == 1
        assert sandbox.x.calls["429"] == 0
        assert len(await alice.dms()) == dms + 1  # the one summary, nothing else
        assert await left_behind(sandbox, [alice]) == (0, 0)  # the timer is gone, nothing waits to be sent


async def test_every_timer_due_while_the_process_was_killed_fires_once(tmp_path: Path) -> None:
    """More members than one round of the timer task takes (MEMBERS_PER_ROUND), each with a timed mute (the first
    with three), all due while no process runs."""
    count = MEMBERS_PER_ROUND + 1
    accounts = [f"user{i}" for i in range(10, 10 + count)]
    sandbox = Sandbox(tmp_path, x_users=10 + count, env={"LOG_LEVEL": "WARNING"})
    await sandbox.start(with_bot=False)
    async with one_at_a_time(sandbox, tmp_path) as start:
        first = await start("first")
        members = [sandbox.member(f"m{i}") for i in range(count)]
        for member, account in zip(members, accounts, strict=True):
            await sandbox.link(member, account)
            reply = await member.slash("mute", username="user2", duration="1m")
            assert reply.embeds[0]["title"] == "Muted on X", reply
        for target in ("user3", "user4"):
            reply = await members[0].slash("mute", username=target, duration="2m")
            assert reply.embeds[0]["title"] == "Muted on X", reply
        dms = {m.id: len(await m.dms()) for m in members}
        await kill(sandbox, first)
        sandbox.advance(10 * 60)
        assert sandbox.x.calls[DELETES] == 0

        second = await start("second")
        for member in members:
            await member.wait_for_dm(ended, timeout=60)
        await second.stop()
        assert all(sandbox.x.mutes_of(account) == [] for account in accounts)
        assert sandbox.x.calls[DELETES] == count + 2  # each of them once
        assert sandbox.x.calls["429"] == 0
        titles = [[m.embeds[0]["title"] for m in (await member.dms())[dms[member.id]:]] for member in members]
        assert titles[0] == ["Finished: 3 timed mutes ended"]
        assert all(t == ["Finished: 1 timed mute ended"] for t in titles[1:]), titles
        assert await left_behind(sandbox, members) == (0, 0)


async def test_a_killed_process_leaves_its_servers_job_to_the_other_which_finishes_it_exactly(
    tmp_path: Path, postgresql: ThrowawayPostgres, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TEST_LEASE_VARIABLE, "3")  # a killed process's claim is taken over after 3 s, not 60
    # 50 mutes per window (X's limit) of 2 s: the 123 take three windows, which the two processes share.
    sandbox = Sandbox(tmp_path, x_users=150, window_seconds=2.0, database_url=await postgresql.new_database(),
                      env={"SHARD_COUNT": "2", "LOG_LEVEL": "WARNING"})
    await sandbox.start(with_bot=False)
    sandbox.x.latency = 0.02  # a window's 50 mutes take a second: long enough for both processes to be sending
    async with two_shards(sandbox, tmp_path) as (a, b, owner_shard):
        mod, alice = await people(sandbox)
        targets = [f"user{i}" for i in range(10, 10 + ENTRIES)]
        await make_list(sandbox, mod, "big", targets)
        await alice.slash("mutelist apply", name="big")
        await until(lambda: sandbox.x.calls[POSTS] >= ENTRIES // 2, what="half of the mutes")
        await a.kill()
        sent_when_killed = sandbox.x.calls[POSTS]
        assert sent_when_killed < ENTRIES

        # B finishes the job alone: A's claim in flight is taken over once its lease ran out, and the
        # progress message and the summary come from B, through Discord's REST API.
        summary = await alice.wait_for_dm(finished, timeout=60)
        assert not a.running
        assert f"Muted **{ENTRIES}**" in summary.embeds[0]["description"]
        expected = {sandbox.x.user(name).id for name in targets}
        muted = sandbox.x.mutes_of("user2")
        assert len(muted) == len(set(muted)) == ENTRIES and set(muted) == expected
        # A serves one action of a member at a time: at most that one was in flight when it died.
        assert ENTRIES <= sandbox.x.calls[POSTS] <= ENTRIES + 1
        assert sandbox.x.calls["429"] == 0  # the two never overspent user2's windows between them
        progress = [m for m in await alice.dms() if m.text.startswith("**Applying the list `big`**")]
        assert len(progress) == 1 and f"{ENTRIES}/{ENTRIES}" in progress[0].text

        # A comes back: it takes back nothing (its old claim was finished by B) and sends nothing again.
        sent = sandbox.x.calls[POSTS]
        await a.start()
        await sandbox.discord.wait_until_ready(timeout=30, shard_id=owner_shard)
        await mod.slash("mutelist create", name="after")
        await mod.slash("mutelist add", name="after", username=f"user{10 + ENTRIES}")
        await alice.slash("mutelist apply", name="after")  # answered by A; sent by either
        after = await alice.wait_for_dm(lambda m: finished(m) and "after" in m.embeds[0]["title"], timeout=30)
        assert "Muted **1**" in after.embeds[0]["description"]
        # Actions are served in order: anything of the big job sent again would have gone before this one.
        assert sandbox.x.calls[POSTS] == sent + 1
        assert sandbox.x.calls["429"] == 0
        assert len([m for m in await alice.dms() if finished(m)]) == 2  # one summary per job
        assert a.running and b.running


async def test_work_queued_through_one_process_is_taken_up_by_the_other_at_once(
    tmp_path: Path, postgresql: ThrowawayPostgres,
) -> None:
    """The other process's worker hears of new work (NOTIFY) instead of finding it at its 30 s idle poll, and the
    two take different actions of one member (SKIP LOCKED), never the same one twice."""
    sandbox = Sandbox(tmp_path, x_users=120, window_seconds=2.0, database_url=await postgresql.new_database(),
                      env={"SHARD_COUNT": "2", "LOG_LEVEL": "WARNING"})
    await sandbox.start(with_bot=False)
    sandbox.x.latency = 0.02
    async with two_shards(sandbox, tmp_path):
        mod, alice = await people(sandbox)
        targets = [f"user{i}" for i in range(10, 110)]  # two windows of 50
        await make_list(sandbox, mod, "big", targets)
        await alice.slash("mutelist apply", name="big")  # answered by A, the server's shard
        summary = await alice.wait_for_dm(finished, timeout=20)  # well inside B's idle poll
        assert "Muted **100**" in summary.embeds[0]["description"]
        assert sorted(sandbox.x.mutes_of("user2")) == sorted(sandbox.x.user(n).id for n in targets)
        assert sandbox.x.calls[POSTS] == 100 and sandbox.x.calls["429"] == 0
        conn = await asyncpg.connect(sandbox.database_url)
        try:
            claimants = await conn.fetch("SELECT claimed_by, count(*) FROM actions GROUP BY claimed_by")
        finally:
            await conn.close()
        assert len(claimants) == 2, claimants  # both processes sent some of them


async def test_a_members_own_mute_spends_the_window_every_process_shares(
    tmp_path: Path, postgresql: ThrowawayPostgres,
) -> None:
    """/mute and /unmute take their call from the account's window on the shared database, as queued sends do: when
    another process has used it up, the member is told when to try again and nothing is sent."""
    url = await postgresql.new_database()
    async with Sandbox(tmp_path, x_users=20, database_url=url) as sandbox:
        alice = sandbox.member("alice")
        await sandbox.link(alice, "user2")
        first = await alice.slash("mute", username="user3")
        assert first.embeds[0]["title"] == "Muted on X"
        other = await Stores.open(url)  # another process's view of the same database
        try:
            x_id = sandbox.x.user("user2").id
            window = [r for r in await other.db.fetchall(
                "SELECT remaining, reset_at FROM rate_limits WHERE x_user_id = ? AND endpoint = 'muting.post'",
                (x_id,))]
            assert len(window) == 1 and int(window[0]["remaining"]) == 49  # this /mute's answer, written through
            # The other process spends the rest of the window.
            await other.db.execute("UPDATE rate_limits SET remaining = 0 WHERE x_user_id = ?", (x_id,))
        finally:
            await other.db.close()
        posts = sandbox.x.calls[POSTS]
        refused = await alice.slash("mute", username="user4")
        assert re.search(r"Try again <t:\d+:R>", refused.embeds[0]["description"]), refused.embeds
        assert sandbox.x.calls[POSTS] == posts and sandbox.x.calls["429"] == 0
        assert sandbox.x.mutes_of("user2") == [sandbox.x.user("user3").id]
