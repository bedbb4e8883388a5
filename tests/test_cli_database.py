"""A database that cannot be opened is one line naming the variable to change, exit 2: never a traceback, never a
process left hanging on a connection opened before the failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.sandbox.harness import free_port
from bot.sandbox.postgres import ThrowawayPostgres
from tests.test_cli import mutebot, offline_env

COMMANDS = ("migrate", "rotate-keys", "run")


def refused(result_stderr: str, variable: str) -> str:
    """The one line the command printed; fails on a traceback or on anything more than that line."""
    assert "Traceback" not in result_stderr, result_stderr
    lines = result_stderr.splitlines()
    assert len(lines) == 1, result_stderr
    assert lines[0].startswith(f"mutebot: {variable}: "), result_stderr
    assert lines[0].endswith(f"; check {variable}"), result_stderr
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unreachable_database_url_is_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    closed = free_port()
    url = f"postgresql://mutebot:hunter2@127.0.0.1:{closed}/mutebot"
    result = mutebot(command, cwd=tmp_path, env={**offline_env(tmp_path), "DATABASE_URL": url})
    assert result.returncode == 2, result.stderr
    assert refused(result.stderr, "DATABASE_URL") == (
        f"mutebot: DATABASE_URL: cannot connect to PostgreSQL at 127.0.0.1:{closed} (connection refused); "
        "check DATABASE_URL"
    )
    assert "hunter2" not in result.stderr + result.stdout
    assert result.stdout == ""


@pytest.mark.parametrize("command", COMMANDS)
async def test_a_database_postgresql_refuses_is_one_line_and_exit_2(
    tmp_path: Path, command: str, postgresql: ThrowawayPostgres
) -> None:
    url = postgresql.url("no_such_database")  # the server answers, and says why it will not let us in
    result = mutebot(command, cwd=tmp_path, env={**offline_env(tmp_path), "DATABASE_URL": url})
    assert result.returncode == 2, result.stderr
    line = refused(result.stderr, "DATABASE_URL")
    assert line.startswith("mutebot: DATABASE_URL: cannot connect to PostgreSQL at ")
    assert '(database "no_such_database" does not exist)' in line


@pytest.mark.parametrize("command", COMMANDS)
def test_a_database_path_that_is_not_a_database_is_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    path = tmp_path / "mutebot.sqlite3"
    path.write_text("these are someone's notes, not a database\n")
    result = mutebot(command, cwd=tmp_path, env={**offline_env(tmp_path), "DATABASE_PATH": str(path)})
    assert result.returncode == 2, result.stderr
    assert refused(result.stderr, "DATABASE_PATH") == (
        f"mutebot: DATABASE_PATH: cannot open the SQLite database {path} (file is not a database); "
        "check DATABASE_PATH"
    )
    assert path.read_text() == "these are someone's notes, not a database\n"  # left as it was


def test_migrate_into_a_directory_under_a_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    # `migrate` may create DATABASE_PATH's directory: here a file stands where that directory would be.
    (tmp_path / "data").write_text("")
    path = tmp_path / "data" / "mutebot.sqlite3"
    result = mutebot("migrate", cwd=tmp_path, env={**offline_env(tmp_path), "DATABASE_PATH": str(path)})
    assert result.returncode == 2, result.stderr
    assert refused(result.stderr, "DATABASE_PATH") == (
        f"mutebot: DATABASE_PATH: cannot open the SQLite database {path} ({tmp_path / 'data'} is not a "
        "directory); check DATABASE_PATH"
    )
