"""The command line as an operator meets it: quiet start-up, --version, help texts."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import bot
from bot.cli import COMMANDS, build_parser
from bot.logs import VoiceNoticeFilter
from bot.runtime import retry_delay
from bot.sandbox.harness import Sandbox, free_port
from bot.store import AccountStore, Database
from bot.vault import TokenVault

# The checkout these tests belong to, ahead of wherever the package was installed from.
REPOSITORY = str(Path(__file__).resolve().parents[1])


def python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env={**os.environ, "PYTHONPATH": REPOSITORY},
                          capture_output=True, text=True, timeout=60, check=False)


def mutebot(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`mutebot ARGS` in `cwd`, with only PATH and HOME from this environment."""
    base = {"PATH": os.environ.get("PATH", ""), "HOME": str(cwd), "PYTHONPATH": REPOSITORY}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=60, check=False)


def test_importing_the_bot_and_making_a_client_prints_nothing(tmp_path: Path) -> None:
    # discord.Client() is where discord.py logs its voice notices (seen once a handler is installed, as
    # `mutebot run` does); authlib warns when its httpx part is first imported.
    code = (
        "import logging; logging.basicConfig()\n"
        "import bot.runtime, discord, authlib.integrations.httpx_client\n"
        "discord.Client(intents=discord.Intents.default())\n"
        "from authlib.deprecate import deprecate\n"
        "deprecate('something else')\n"  # authlib's other warnings still reach the operator
    )
    result = python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "sys:1: AuthlibDeprecationWarning: something else\n"


def test_the_voice_filter_drops_exactly_the_voice_notices() -> None:
    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("discord.client", logging.WARNING, __file__, 1, message, None, None)

    voice = VoiceNoticeFilter()
    assert not voice.filter(record("PyNaCl is not installed, voice will NOT be supported"))
    assert not voice.filter(record("davey is not installed, voice will NOT be supported"))
    assert voice.filter(record("Shard ID None has stopped responding to the gateway."))
    assert any(isinstance(f, VoiceNoticeFilter) for f in logging.getLogger("discord.client").filters)


def test_rotate_keys_refuses_a_database_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "mutbot.sqlite3"  # a typo
    env = {"DATABASE_PATH": str(missing), "TOKEN_ENCRYPTION_KEY": TokenVault.generate_key()}
    result = mutebot("rotate-keys", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr == (
        f"mutebot rotate-keys: DATABASE_PATH: there is no database at {missing}; "
        "set DATABASE_PATH to the bot's database file\n"
    )
    assert result.stdout == ""
    assert not missing.exists()


def test_rotate_keys_re_encrypts_an_existing_database(tmp_path: Path) -> None:
    env = {"DATABASE_PATH": str(tmp_path / "mutebot.sqlite3"), "TOKEN_ENCRYPTION_KEY": TokenVault.generate_key()}
    assert mutebot("migrate", cwd=tmp_path, env=env).returncode == 0
    result = mutebot("rotate-keys", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "re-encrypted 0" in result.stdout


def test_rotate_keys_with_a_token_no_key_decrypts_changes_nothing_and_exits_2(tmp_path: Path) -> None:
    """A key lost (or removed before rotating): rotate-keys refuses at once, says what to do, and re-encrypts
    nothing, not even the tokens it could read (one transaction)."""
    lost, kept, new = (TokenVault.generate_key() for _ in range(3))
    path = tmp_path / "mutebot.sqlite3"

    async def two_links() -> list[bytes]:
        db = await Database.open(path)
        try:
            await db.migrate()
            async with db.batch() as batch:
                for member, key in ((1, kept), (2, lost)):
                    AccountStore(db).save(
                        batch, member, x_user_id=str(member), x_username=f"user{member}", x_name="",
                        x_avatar_url=None, auth_kind="oauth2", access_token=TokenVault([key]).encrypt("access"),
                        refresh_token=None, token_secret=None, scopes="", expires_at=None, now=0.0,
                    )
            return [bytes(r["access_token"]) for r in
                    await db.fetchall("SELECT access_token FROM linked_accounts ORDER BY discord_user_id")]
        finally:
            await db.close()

    async def stored() -> list[bytes]:
        db = await Database.open(path)
        try:
            return [bytes(r["access_token"]) for r in
                    await db.fetchall("SELECT access_token FROM linked_accounts ORDER BY discord_user_id")]
        finally:
            await db.close()

    before = asyncio.run(two_links())
    result = mutebot("rotate-keys", cwd=tmp_path,
                     env={"DATABASE_PATH": str(path), "TOKEN_ENCRYPTION_KEY": f"{new},{kept}"})
    assert result.returncode == 2
    assert result.stderr == (
        "mutebot: TOKEN_ENCRYPTION_KEY: a stored token cannot be decrypted with any of its keys, so rotate-keys "
        "re-encrypted nothing. Put the key that encrypted it back after the first key and run rotate-keys again; if "
        "that key is lost, run rotate-keys again once the members whose links it locked have run /link again or "
        "/unlink (until then they are asked to relink)\n"
    )
    assert result.stdout == ""
    assert asyncio.run(stored()) == before


def test_check_names_database_path_in_a_missing_directory(tmp_path: Path) -> None:
    env = {"DISCORD_TOKEN": "t", "X_CLIENT_ID": "c", "PUBLIC_BASE_URL": "https://bot.example",
           "TOKEN_ENCRYPTION_KEY": TokenVault.generate_key(), "DATABASE_PATH": "dta/mutebot.sqlite3"}
    result = mutebot("check", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "  - DATABASE_PATH: the directory dta does not exist; create it, or correct the path\n" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_prints_the_shards_and_refuses_a_shard_that_does_not_exist(tmp_path: Path) -> None:
    env = {"DISCORD_TOKEN": "t", "X_CLIENT_ID": "c", "PUBLIC_BASE_URL": "https://bot.example",
           "TOKEN_ENCRYPTION_KEY": TokenVault.generate_key(), "DATABASE_PATH": str(tmp_path / "m.sqlite3"),
           "SHARD_COUNT": "4", "SHARD_IDS": "2,3"}
    result = mutebot("check", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "  shards:        2, 3 of 4\n" in result.stdout
    result = mutebot("check", cwd=tmp_path, env={**env, "SHARD_IDS": "3,4"})
    assert result.returncode == 2
    assert ("  - SHARD_IDS: shard 4 does not exist with SHARD_COUNT=4; shards are numbered 0 to 3\n"
            in result.stderr)


def test_version(tmp_path: Path) -> None:
    result = mutebot("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == f"mutebot {bot.__version__}\n"
    assert bot.__version__ == importlib.metadata.version("mutebot")


def subcommands() -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_the_commands_are_the_documented_ones() -> None:
    assert set(subcommands()) == {"run", "migrate", "migrate-to", "keygen", "rotate-keys", "sync-commands", "check",
                                  "sandbox", "demo"}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_a_description_and_explained_options(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([name, "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # unwrapped
    assert COMMANDS[name] in text
    for action in subcommands()[name]._actions:
        assert action.help, f"{name} {action.option_strings} has no help"
        if action.default not in (None, False, argparse.SUPPRESS):
            assert f"{action.help} (default: {action.default})" in text


def test_sandbox_help_explains_each_option_and_how_to_use_it(tmp_path: Path) -> None:
    result = mutebot("sandbox", "--help", cwd=tmp_path)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for shown in ("--host HOST address to listen on (default: 127.0.0.1)",
                  "--port PORT port to listen on (default: 8400)",
                  "named user1 … userN (default: 50)",
                  "length of every rate-limit window; X's limits per window stay as X has them (default: 900.0)",
                  "X_CLIENT_ID (default: mutebot-sandbox)",
                  "X_CLIENT_SECRET (default: a public client)",
                  "repeat for several; any other is refused, as X does (default: "
                  "http://127.0.0.1:8080/oauth/callback)",
                  "X_API_BASE=http://HOST:PORT", "login=USERNAME"):
        assert shown in text
    assert "None" not in text


def test_top_level_help_lists_every_command_in_one_line_each(tmp_path: Path) -> None:
    result = mutebot("--help", cwd=tmp_path)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for name, line in COMMANDS.items():
        assert f"{name} {line}" in text
    assert "--version" in text


# -- network failures: one line each, never a traceback ------------------------------------------------------------


def offline_env(tmp_path: Path) -> dict[str, str]:
    """A usable configuration whose Discord is a closed port on this machine."""
    closed = free_port()
    return {"DISCORD_TOKEN": "token", "X_CLIENT_ID": "client", "PUBLIC_BASE_URL": "https://bot.example",
            "TOKEN_ENCRYPTION_KEY": TokenVault.generate_key(), "DATABASE_PATH": str(tmp_path / "mutebot.sqlite3"),
            "DISCORD_API_BASE": f"http://127.0.0.1:{closed}/api/v10",
            "DISCORD_GATEWAY_URL": f"ws://127.0.0.1:{closed}/gateway", "WEB_PORT": str(free_port())}


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_retry_delays_grow_to_a_minute() -> None:
    assert [retry_delay(attempt) for attempt in range(2, 9)] == [5, 10, 20, 40, 60, 60, 60]


async def test_run_waits_for_an_unreachable_discord_one_line_per_attempt_then_connects(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    await sandbox.start(with_bot=False)
    port = int(sandbox.discord.api_base.split(":")[2].split("/")[0])
    await sandbox.discord.stop()  # Discord is down when the bot starts
    try:
        env = {**os.environ, **sandbox.environment(), "LOG_LEVEL": "INFO"}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stderr is not None
            lines: list[str] = []
            while not any("retrying" in line for line in lines):
                line = (await asyncio.wait_for(process.stderr.readline(), timeout=30)).decode()
                assert line, "mutebot run ended instead of retrying: " + "".join(lines)
                lines.append(line)
            assert lines[-1].rstrip().endswith(
                f"Discord is not reachable at http://127.0.0.1:{port}/api/v10 (connection refused); "
                "retrying in 5 s (attempt 2)"
            ), lines
            await sandbox.discord.start(port=port)  # Discord is back: the next attempt connects
            await sandbox.discord.wait_until_ready(timeout=30)
            alice = sandbox.member("alice")
            alice.reply_timeout = 30
            assert "not linked" in (await alice.slash("status")).embeds[0]["description"]
            process.send_signal(signal.SIGTERM)
            _, rest = await asyncio.wait_for(process.communicate(), timeout=20)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        text = "".join(lines) + rest.decode()
        assert process.returncode == 0, text
        assert "Traceback" not in text and "Unclosed" not in text
        assert text.count("is not reachable") == 1
    finally:
        await sandbox.stop()


async def test_run_stops_at_once_while_waiting_for_discord(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": REPOSITORY, **offline_env(tmp_path)},
    )
    try:
        assert process.stderr is not None
        line = b""
        while b"retrying in 5 s (attempt 2)" not in line:
            line = await asyncio.wait_for(process.stderr.readline(), timeout=30)
            assert line, "mutebot run ended instead of retrying"
        process.send_signal(signal.SIGINT)
        _, rest = await asyncio.wait_for(process.communicate(), timeout=4)  # well before the 5 s are up
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    assert b"Traceback" not in rest and b"attempt 3" not in rest


def test_sync_commands_with_discord_unreachable_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = offline_env(tmp_path)
    result = mutebot("sync-commands", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"mutebot sync-commands: Discord is not reachable at {env['DISCORD_API_BASE']} (connection refused); "
        "check DISCORD_API_BASE and the network, then run it again"
    )
    assert "Traceback" not in result.stderr


def test_run_on_a_taken_web_port_names_web_port_and_exits_2(tmp_path: Path, taken_port: int) -> None:
    result = mutebot("run", cwd=tmp_path, env={**offline_env(tmp_path), "WEB_PORT": str(taken_port)})
    assert result.returncode == 2
    *migrations, last = result.stderr.splitlines()
    assert last == (
        f"mutebot: WEB_PORT: cannot listen on 127.0.0.1:{taken_port} (address already in use); stop what uses "
        "that port, or set WEB_PORT to a free one"
    )
    assert all("applied migration" in line for line in migrations)  # said before any attempt to reach Discord


def test_sandbox_on_a_taken_port_names_the_option_and_exits_2(tmp_path: Path, taken_port: int) -> None:
    result = mutebot("sandbox", "--port", str(taken_port), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        f"mutebot sandbox: --port: cannot listen on 127.0.0.1:{taken_port} (address already in use); stop what "
        "uses that port, or choose another with --port\n"
    )
    assert result.stdout == ""


def test_run_on_a_taken_metrics_port_names_metrics_port_and_exits_2(tmp_path: Path, taken_port: int) -> None:
    result = mutebot("run", cwd=tmp_path, env={**offline_env(tmp_path), "METRICS_PORT": str(taken_port)})
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"mutebot: METRICS_PORT: cannot listen on 127.0.0.1:{taken_port} (address already in use); stop what uses "
        "that port, or set METRICS_PORT to a free one"
    )
