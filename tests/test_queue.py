"""The action queue end to end: X's rate windows, pauses, retries, failures, and a SIGKILL mid-apply."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from bot.progress import progress_bar
from bot.queue import ActionQueue
from bot.runtime import TEST_LEASE_VARIABLE
from bot.sandbox.harness import Sandbox
from bot.sandbox.members import Attachment, Member, Message
from bot.sandbox.processes import BotProcess
from tests.helpers import until

POSTS = "POST /2/users/:id/muting"


def queue_of(sandbox: Sandbox) -> ActionQueue:
    assert sandbox.bot is not None
    return sandbox.bot.services.queue


async def make_list(sandbox: Sandbox, mod: Member, name: str, usernames: list[str]) -> None:
    await mod.slash("mutelist create", name=name)
    reply = await mod.slash("mutelist import", name=name, file=Attachment("l.txt", "\n".join(usernames).encode()))
    assert f"**{len(usernames)}** added" in reply.embeds[0]["description"], reply.embeds


def finished(message: Message) -> bool:
    return bool(message.embeds) and str(message.embeds[0].get("title", "")).startswith(("Finished", "Cancelled"))


async def people(sandbox: Sandbox) -> tuple[Member, Member]:
    mod, alice = sandbox.member("mod", moderator=True), sandbox.member("alice")
    await sandbox.link(mod, "user1")
    await sandbox.link(alice, "user2")
    return mod, alice


def test_progress_bar() -> None:
    assert progress_bar(0.6) == "[██████░░░░] 60%"
    assert progress_bar(0) == "[░░░░░░░░░░] 0%" and progress_bar(1) == "[██████████] 100%"


async def test_apply_waits_for_the_rate_window_without_a_single_429(tmp_path: Path) -> None:
    async with Sandbox(tmp_path, x_users=130, window_seconds=1.5) as sandbox:
        mod, alice = await people(sandbox)
        targets = [f"user{i}" for i in range(10, 130)]  # 120: three windows of 50
        await make_list(sandbox, mod, "big", targets)
        reply = await alice.slash("mutelist apply", name="big")
        assert "**120** to mute" in reply.embeds[0]["description"]
        progress = await alice.wait_for_dm(lambda m: "Applying the list `big`" in m.text)
        await progress.wait_for(lambda m: "left" in m.text and "%" in m.text, timeout=5)
        summary = await alice.wait_for_dm(finished, timeout=20)
        assert "Muted **120**" in summary.embeds[0]["description"]
        assert sandbox.x.calls["429"] == 0
        assert sandbox.x.calls[POSTS] == 120
        assert len(sandbox.x.mutes_of("user2")) == 120
        assert progress.edits >= 3 and "100%" in progress.text  # edited in place, throttled


async def test_relink_pauses_the_member_then_resumes(tmp_path: Path) -> None:
    async with Sandbox(tmp_path, x_users=80, window_seconds=1.5) as sandbox:
        mod, alice = await people(sandbox)
        await make_list(sandbox, mod, "big", [f"user{i}" for i in range(10, 70)])
        await alice.slash("mutelist apply", name="big")
        await until(lambda: sandbox.x.calls[POSTS] >= 50, what="the first window")
        sandbox.x.revoke_user("user2")
        progress = await alice.wait_for_dm(lambda m: "Applying the list `big`" in m.text)
        await progress.wait_for(lambda m: "Paused" in m.text and "/link" in m.text, timeout=10)
        assert await queue_of(sandbox).pending_for(alice.id) == 10
        status = await alice.slash("status")
        assert "Pending queued actions: **10**" in status.embeds[0]["description"]
        await sandbox.link(alice, "user2")
        summary = await alice.wait_for_dm(finished, timeout=15)
        assert "Muted **60**" in summary.embeds[0]["description"]
        assert len(sandbox.x.mutes_of("user2")) == 60 and sandbox.x.calls["429"] == 0


async def test_usage_cap_pauses_the_whole_queue(tmp_path: Path) -> None:
    async with Sandbox(tmp_path, x_users=40) as sandbox:
        mod, alice = await people(sandbox)
        await make_list(sandbox, mod, "small", [f"user{i}" for i in range(10, 20)])
        queue = queue_of(sandbox)
        queue.usage_cap_pause = 1.5
        sandbox.x.usage_capped = True
        await alice.slash("mutelist apply", name="small")
        progress = await alice.wait_for_dm(lambda m: "Applying the list `small`" in m.text)
        await progress.wait_for(lambda m: "usage cap" in m.text)
        assert await queue.paused_until() > 0
        status = await alice.slash("status")
        assert "usage cap" in status.embeds[0]["description"]
        sandbox.x.usage_capped = False
        summary = await alice.wait_for_dm(finished, timeout=10)
        assert "Muted **10**" in summary.embeds[0]["description"]


async def test_x_unavailable_is_retried_then_failed_and_unknown_targets_fail(tmp_path: Path) -> None:
    async with Sandbox(tmp_path, x_users=40) as sandbox:
        mod, alice = await people(sandbox)
        await mod.slash("mutelist create", name="odd")
        upload = Attachment("ids.csv", b"id\n1999999999\n")  # an id X does not know
        await mod.slash("mutelist import", name="odd", file=upload)
        queue = queue_of(sandbox)
        await alice.slash("mutelist apply", name="odd")
        summary = await alice.wait_for_dm(finished)
        text = summary.embeds[0]["description"]
        assert "failed **1**" in text and "@1999999999: X refused the request" in text

        await mod.slash("mutelist create", name="down")
        await mod.slash("mutelist add", name="down", username="user30")
        queue.backoff_base = 0.01
        sandbox.x.error_rate = 1.0
        before = sandbox.x.calls[POSTS]
        await alice.slash("mutelist apply", name="down")
        summary = await alice.wait_for_dm(lambda m: finished(m) and "down" in m.embeds[0]["title"])
        assert "failed **1**" in summary.embeds[0]["description"]
        assert "gave up after 5 attempts" in summary.embeds[0]["description"]
        assert sandbox.x.calls[POSTS] - before == 5


async def test_sigkill_mid_apply_then_restart_finishes_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """The real `mutebot run` in a subprocess, killed with SIGKILL mid-apply, then started again. On SQLite the
    lone process takes back its claim at once; on PostgreSQL (shared) only once its lease ran out, shortened
    here for both processes."""
    monkeypatch.setenv(TEST_LEASE_VARIABLE, "3")
    sandbox = Sandbox(tmp_path, x_users=150, window_seconds=1.0)
    await sandbox.start(with_bot=False)
    env = {**os.environ, **sandbox.environment(), "LOG_LEVEL": "WARNING"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", env=env, cwd=str(tmp_path),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await until(lambda: sandbox.discord.connected and sandbox.discord.command_writes > 0, what="the bot")
        mod, alice = await people(sandbox)
        targets = [f"user{i}" for i in range(10, 150)]  # 140
        await make_list(sandbox, mod, "big", targets)
        await alice.slash("mutelist apply", name="big")
        await until(lambda: sandbox.x.calls[POSTS] >= 70, what="half of the mutes")
        process.send_signal(signal.SIGKILL)
        await process.wait()
        sent_before = sandbox.x.calls[POSTS]
        assert 70 <= sent_before < 140
        await sandbox.start_bot()  # the same database, in-process this time
        summary = await alice.wait_for_dm(finished, timeout=20)
        assert "Muted **140**" in summary.embeds[0]["description"]
        expected = {sandbox.x.user(name).id for name in targets}
        muted = sandbox.x.mutes_of("user2")
        assert len(muted) == len(set(muted)) == 140 and set(muted) == expected
        assert 140 <= sandbox.x.calls[POSTS] <= 141  # at most one request repeated: the one in flight
        assert sandbox.x.calls["429"] == 0
        db = queue_of(sandbox).db
        assert await db.fetchval("SELECT count(*) FROM actions") == 140
        assert await db.fetchval("SELECT count(*) FROM actions WHERE status = 'done'") == 140
        assert await db.fetchval("SELECT max(attempts) FROM actions") <= 2
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await sandbox.stop()


async def test_a_summary_owed_by_a_killed_process_is_sent_once_after_the_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job is closed and its summary DM on its way when `mutebot run` is SIGKILLed, before Discord took the
    DM: closing the job and owing its summary are one write, so the next start sends the summary, exactly once.
    On PostgreSQL (shared) the new process takes it over once the debt is older than the lease, shortened here."""
    monkeypatch.setenv(TEST_LEASE_VARIABLE, "3")
    sandbox = Sandbox(tmp_path, x_users=80, window_seconds=1.0)
    await sandbox.start(with_bot=False)
    process = BotProcess("bot", {**os.environ, **sandbox.environment(), "LOG_LEVEL": "WARNING"}, tmp_path)
    await process.start()
    try:
        await until(lambda: sandbox.discord.connected and sandbox.discord.command_writes > 0, what="the bot")
        mod, alice = await people(sandbox)
        await make_list(sandbox, mod, "big", [f"user{i}" for i in range(10, 70)])  # 60: more than a window
        await alice.slash("mutelist apply", name="big")
        await alice.wait_for_dm(lambda m: "big" in m.text)  # the progress message: posted, edited from now on
        sandbox.discord.hold_dms(alice.id)
        await until(lambda: sandbox.discord.held_dm_requests >= 1, what="the summary on its way", timeout=20)
        await process.kill()
        await until(lambda: not sandbox.discord.connected, what="the killed process's gateway to close")
        sandbox.discord.hold_dms(alice.id, False)  # the held DM's sender is gone: it is never posted
        assert not [m for m in await alice.dms() if finished(m)]

        await sandbox.start_bot()
        summary = await alice.wait_for_dm(finished, timeout=20)
        assert "Muted **60**" in summary.embeds[0]["description"], summary.embeds
        db = queue_of(sandbox).db

        async def nothing_owed() -> bool:
            return await db.fetchval("SELECT count(*) FROM jobs WHERE summary_owed_at IS NOT NULL") == 0

        await until(nothing_owed, what="the summary's debt to be cleared")
        assert len([m for m in await alice.dms() if finished(m)]) == 1
    finally:
        await process.kill()
        await sandbox.stop()
