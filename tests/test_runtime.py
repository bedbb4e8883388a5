"""The bot runtime: the one error handler, and `mutebot run` as an operator runs it (signals, clean exit)."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from bot.logs import setup_logging
from bot.memory import YOUNG_THRESHOLD
from bot.runtime import GatewayRetryNotice, discord_unreachable
from bot.sandbox.harness import Sandbox, free_port
from bot.store import Database


async def test_unexpected_error_gets_an_apology_with_an_incident_id(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = setup_logging("INFO", logging.StreamHandler(stream))
    try:
        async with Sandbox(tmp_path, extensions=("cogs.linking", "tests.faulty_cog")) as sandbox:
            reply = await sandbox.member("alice").slash("explode")
    finally:
        logging.getLogger().removeHandler(handler)
    assert reply.ephemeral
    description = reply.embeds[0]["description"]
    match = re.search(r"incident `([0-9a-f]{8})`", description)
    assert match, description
    assert "Traceback" not in description
    assert "boom" not in description
    logs = stream.getvalue()
    assert f"incident {match.group(1)}" in logs
    assert "RuntimeError: boom" in logs
    assert "should-not-be-logged" not in logs


async def test_mutebot_run_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    await sandbox.start(with_bot=False)
    try:
        env = {**os.environ, **sandbox.environment(), "LOG_LEVEL": "INFO", "PYTHONWARNINGS": "default"}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            await sandbox.discord.wait_until_ready(timeout=30)
            alice = sandbox.member("alice")
            alice.reply_timeout = 30
            reply = await alice.slash("status")
            assert "not linked" in reply.embeds[0]["description"]
            health = await sandbox.http.get(f"{sandbox.public_base_url}/healthz")
            assert health.json()["status"] == "ok"
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        text = stderr.decode()
        assert process.returncode == 0, text
        assert "Traceback" not in text
        assert "Unclosed" not in text
        assert "shutting down" in text
    finally:
        await sandbox.stop()


def test_the_collector_is_tuned_once_start_up_is_done() -> None:
    """In a process of its own (the setting is process-wide): start-up's objects frozen out of the collector's
    walks, and the young generation collected every YOUNG_THRESHOLD allocations instead of 700."""
    code = ("import gc, bot.runtime; from bot.memory import tune_collector; before = gc.get_threshold(); "
            "tune_collector(); print(before[0], gc.get_threshold()[0], gc.get_threshold()[1:] == before[1:], "
            "gc.get_freeze_count())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    default, tuned, kept, frozen = done.stdout.split()
    assert (int(default), int(tuned), kept) == (700, YOUNG_THRESHOLD, "True")
    assert int(frozen) > 10_000, frozen  # bot.runtime imports discord.py, aiohttp, authlib and the rest


async def test_sync_commands_pushes_now_globally_or_to_one_guild(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    await sandbox.start()  # a running bot holds the web port: the one-shot command must not need it
    try:
        env = {**os.environ, **sandbox.environment()}
        for extra in ([], ["--guild", str(sandbox.guild_id)]):
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "sync-commands", *extra, env=env, cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
            assert process.returncode == 0, stderr.decode()
            assert "pushed" in stdout.decode()
        assert {"link", "mute", "mutes"} <= {c["name"] for c in sandbox.discord.commands[None]}
        assert {"link", "mute", "mutes"} <= {c["name"] for c in sandbox.discord.commands[sandbox.guild_id]}
    finally:
        await sandbox.stop()


async def test_expired_states_are_purged(sandbox: Sandbox) -> None:
    alice = sandbox.member("alice")
    await alice.slash("link")
    await alice.slash("link")
    assert sandbox.bot is not None
    services = sandbox.bot.services
    await services.db.execute(
        "UPDATE oauth_states SET expires_at = 1"
        " WHERE state_hash = (SELECT state_hash FROM oauth_states ORDER BY created_at LIMIT 1)"
    )
    assert await services.accounts.purge_states() == 1
    assert await services.db.fetchval("SELECT count(*) FROM oauth_states") == 1


async def test_a_refused_bot_token_exits_2_naming_the_variable(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    await sandbox.start(with_bot=False)
    try:
        env = {**os.environ, **sandbox.environment(), "DISCORD_TOKEN": "not-the-token"}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        await sandbox.stop()
    assert process.returncode == 2
    assert "DISCORD_TOKEN" in stderr.decode()
    assert "Traceback" not in stderr.decode()
    assert "not-the-token" not in stderr.decode()


async def test_run_refuses_a_database_from_a_newer_mutebot(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    await sandbox.start(with_bot=False)
    try:
        env = {**os.environ, **sandbox.environment()}
        db = await Database.open(sandbox.settings().database)  # SQLite, or the suite's PostgreSQL
        try:
            await db.migrate()
            await db.execute("INSERT INTO schema_migrations VALUES (9999, 'from_the_future', 0)")
        finally:
            await db.close()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
        assert sandbox.discord.identifies == 0
    finally:
        await sandbox.stop()
    assert process.returncode == 2
    assert "upgrade mutebot" in stderr.decode()
    assert "Traceback" not in stderr.decode()


async def test_a_gateway_reconnect_is_logged_as_one_line_without_a_traceback() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorError) as refused:
            await session.get(f"http://127.0.0.1:{free_port()}/gateway")
    error = refused.value
    assert discord_unreachable(error) == "connection refused"
    # What discord.py's Client.connect logs before each reconnect: log.exception, so a whole traceback.
    record = logging.LogRecord("discord.client", logging.ERROR, __file__, 1, "Attempting a reconnect in %.2fs",
                               (5.0,), (type(error), error, error.__traceback__))
    assert GatewayRetryNotice("ws://127.0.0.1:1/gateway").filter(record)
    assert record.getMessage() == (
        "Discord's gateway is not reachable at ws://127.0.0.1:1/gateway (connection refused); retrying in 5 s"
    )
    assert record.exc_info is None and record.levelname == "WARNING"
    bug = RuntimeError("not the network")
    other = logging.LogRecord("discord.client", logging.ERROR, __file__, 1, "Attempting a reconnect in %.2fs",
                              (5.0,), (RuntimeError, bug, None))
    assert GatewayRetryNotice("ws://127.0.0.1:1/gateway").filter(other)
    assert other.exc_info is not None  # anything else keeps its traceback
