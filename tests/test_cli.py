"""The command line as an operator meets it: quiet start-up, --version, help texts."""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bot
from bot.cli import COMMANDS, build_parser
from bot.logs import VoiceNoticeFilter
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


def test_check_names_database_path_in_a_missing_directory(tmp_path: Path) -> None:
    env = {"DISCORD_TOKEN": "t", "X_CLIENT_ID": "c", "PUBLIC_BASE_URL": "https://bot.example",
           "TOKEN_ENCRYPTION_KEY": TokenVault.generate_key(), "DATABASE_PATH": "dta/mutebot.sqlite3"}
    result = mutebot("check", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "  - DATABASE_PATH: the directory dta does not exist; create it, or correct the path\n" in result.stderr
    assert "Traceback" not in result.stderr


def test_version(tmp_path: Path) -> None:
    result = mutebot("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == f"mutebot {bot.__version__}\n"
    assert bot.__version__ == importlib.metadata.version("mutebot")


def subcommands() -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_the_commands_are_the_documented_ones() -> None:
    assert set(subcommands()) == {"run", "migrate", "keygen", "rotate-keys", "sync-commands", "check", "sandbox",
                                  "demo"}


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
