"""Fixtures that start the X emulator, the Discord stand-in and the real bot for end-to-end tests, and the
backends the store runs on.

The suite runs on SQLite; `MUTEBOT_TEST_BACKEND=postgresql` runs it again with every sandbox on a fresh database
of a throwaway PostgreSQL cluster (bot/sandbox/postgres.py), as `make test` and CI do. Tests that take the
`database_target` fixture run on both backends in every run. Without a PostgreSQL server a developer's run leaves
those out and says so at the end; under CI (CI=true), or when PostgreSQL was asked for, a missing server fails.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.sandbox.harness import Sandbox
from bot.sandbox.members import Member
from bot.sandbox.postgres import ThrowawayPostgres, unavailable_reason

# Seconds; pyproject.toml's pytest timeout ends the test a little later.
STUCK_AFTER = float(os.environ.get("MUTEBOT_STUCK_AFTER", "200"))

# Every end-to-end test also checks what the bot sends Discord, against Discord's vendored spec: required.
Sandbox.check_discord_requests = True

BACKEND = os.environ.get("MUTEBOT_TEST_BACKEND", "sqlite").strip().lower() or "sqlite"
BACKENDS = ("sqlite", "postgresql")
_left_out: list[str] = []


def _postgresql_required() -> bool:
    return BACKEND == "postgresql" or os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_configure(config: pytest.Config) -> None:
    if BACKEND not in BACKENDS:
        raise pytest.UsageError(f"MUTEBOT_TEST_BACKEND must be one of {', '.join(BACKENDS)}, not {BACKEND!r}")
    reason = unavailable_reason()
    if reason is not None and _postgresql_required():
        why = "MUTEBOT_TEST_BACKEND=postgresql" if BACKEND == "postgresql" else "CI runs every test on PostgreSQL too"
        raise pytest.UsageError(f"{why}, but {reason}. `make postgresql` installs it (Debian's package, as root).")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = unavailable_reason()
    if reason is None:
        return
    left_out = [item for item in items if _on_postgresql(item)]
    if left_out:
        _left_out.extend([reason, *[item.nodeid for item in left_out]])
        items[:] = [item for item in items if not _on_postgresql(item)]
        config.hook.pytest_deselected(items=left_out)


def _on_postgresql(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return "postgresql" in getattr(item, "fixturenames", ()) or (
        callspec is not None and callspec.params.get("database_target") == "postgresql")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _left_out:
        return
    reason, *tests = _left_out
    terminalreporter.section("NOT RUN ON POSTGRESQL", sep="!", red=True, bold=True)
    terminalreporter.write_line(f"{len(tests)} tests did not run on PostgreSQL: {reason}.", red=True, bold=True)
    terminalreporter.write_line("`make postgresql` installs it; `make test` then runs them, and the whole suite "
                                "on PostgreSQL as CI does.")
    for nodeid in tests:
        terminalreporter.write_line(f"  not run: {nodeid}")


@pytest.fixture(scope="session")
def postgresql() -> Iterator[ThrowawayPostgres]:
    """One throwaway cluster for the session; each test takes fresh databases from it."""
    cluster = ThrowawayPostgres().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session", autouse=True)
def _sandboxes_on_the_backend(request: pytest.FixtureRequest) -> Iterator[None]:
    if BACKEND != "postgresql":
        yield
        return
    cluster: ThrowawayPostgres = request.getfixturevalue("postgresql")
    Sandbox.databases = cluster.new_database
    try:
        yield
    finally:
        Sandbox.databases = None


@pytest.fixture(params=BACKENDS)
async def database_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """What `Database.open` takes, once per backend: a SQLite file, or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite3")
    cluster: ThrowawayPostgres = request.getfixturevalue("postgresql")
    return await cluster.new_database()


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with Sandbox(tmp_path) as running:
        yield running


@pytest.fixture
def alice(sandbox: Sandbox) -> Member:
    return sandbox.member("alice")


@pytest.fixture
def bob(sandbox: Sandbox) -> Member:
    return sandbox.member("bob")


@pytest.fixture
def mod(sandbox: Sandbox) -> Member:
    return sandbox.member("mod", moderator=True)


@pytest.fixture(autouse=True)
async def _tasks_shown_if_stuck() -> AsyncIterator[None]:
    """A test still running after STUCK_AFTER seconds prints where each of its asyncio tasks waits: the thread
    dump pytest-timeout gives shows only the idle event loop."""
    loop = asyncio.get_running_loop()

    def show() -> None:
        print(f"\n--- still running after {STUCK_AFTER:.0f} s; asyncio tasks:", file=sys.__stderr__)
        for task in asyncio.all_tasks(loop):
            task.print_stack(file=sys.__stderr__)

    timer = threading.Timer(STUCK_AFTER, lambda: loop.call_soon_threadsafe(show))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
