"""The store on its own: table ownership, write batches in one round trip, rollback, readers beside the writer."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import pytest

from bot.store import Batch, Database, Stores
from bot.store.database import split_sql
from bot.store.mutes import CachedMute

ROOT = Path(__file__).resolve().parent.parent
SQL_VERB = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|REPLACE|CREATE|ALTER|DROP)\b")


def _tables() -> set[str]:
    found: set[str] = set()
    for path in sorted((ROOT / "migrations").glob("*.sql")):
        for statement in split_sql(path.read_text()):
            match = re.match(r"CREATE TABLE (\w+)", statement)
            if match:
                found.add(match.group(1))
    return found


def _string_literals(source: str) -> list[str]:
    return re.findall(r'"(?:[^"\\\n]|\\.)*"', source)


def test_every_table_appears_in_sql_only_under_bot_store() -> None:
    tables = _tables()
    assert {"linked_accounts", "actions", "jobs", "cached_mutes", "manual_choices", "x_users"} <= tables
    offenders: list[str] = []
    for path in sorted([*(ROOT / "bot").rglob("*.py"), *(ROOT / "cogs").rglob("*.py")]):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("bot/store/"):
            continue
        for literal in _string_literals(path.read_text()):
            if not SQL_VERB.search(literal):
                continue
            named = [t for t in tables if re.search(rf"\b{t}\b", literal)]
            if named:
                offenders.append(f"{relative}: {literal[:80]} names {named}")
    assert offenders == []


def test_the_scan_would_see_sql_outside_the_store() -> None:
    # The check above must be able to fail: it finds a table named in a SQL string.
    literal = '"SELECT x_user_id FROM cached_mutes WHERE discord_user_id = ?"'
    assert _string_literals(f"rows = await db.fetchall({literal})") == [literal]
    assert SQL_VERB.search(literal) and "cached_mutes" in _tables()


async def test_a_batch_is_one_round_trip_and_rolls_back_whole(tmp_path: Path) -> None:
    stores = await Stores.open(tmp_path / "s.sqlite3")
    db = stores.db
    try:
        await db.migrate()
        before = db.round_trips.writes
        async with db.batch() as batch:
            stores.mutes.replace_all(batch, 7, [CachedMute(str(i), f"u{i}", "") for i in range(100)], 1.0)
            was = stores.mutes.record(batch, 7, "500", "late", "Late", muted=True, manual=True, now=2.0)
        assert db.round_trips.writes - before == 1
        assert was.value is False
        assert await stores.mutes.count(7) == 101
        assert (await stores.mutes.page(7, 0, 1))[0].username == "late"  # newest first
        assert await stores.mutes.choice(7, "500") == "muted"

        failing = Batch()
        stores.mutes.forget_cache(failing, 7)
        failing.execute("INSERT INTO manual_choices (discord_user_id, x_user_id, choice, at) VALUES (7, '1', 'x', 0)")
        with pytest.raises(sqlite3.IntegrityError):
            await db.write(failing)
        assert await stores.mutes.count(7) == 101  # the failed batch changed nothing
    finally:
        await db.close()


async def test_reads_do_not_wait_behind_an_open_write(tmp_path: Path) -> None:
    stores = await Stores.open(tmp_path / "r.sqlite3")
    db = stores.db
    try:
        await db.migrate()
        await stores.meta.set("k", "old")
        async with db.transaction() as batch:
            batch.execute("UPDATE meta SET value = 'new' WHERE key = 'k'")
            assert await db.fetchval("SELECT value FROM meta WHERE key = 'k'") == "new"  # inside: sees its write
            # Another task (one created inside the transaction inherits its context, not its lock) reads
            # on a reader connection at once, the last committed state.
            outside = await asyncio.create_task(stores.meta.get("k"))
            assert outside == "old"
        assert await stores.meta.get("k") == "new"
    finally:
        await db.close()


async def test_database_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "p.sqlite3")
    try:
        await db.migrate()
        assert (tmp_path / "p.sqlite3").stat().st_mode & 0o077 == 0
    finally:
        await db.close()


async def test_the_kept_total_follows_every_change_to_the_cache(tmp_path: Path) -> None:
    stores = await Stores.open(tmp_path / "t.sqlite3")
    db = stores.db
    try:
        await db.migrate()
        async with db.batch() as batch:
            stores.mutes.replace_all(batch, 3, [CachedMute(str(i), f"u{i}", "") for i in range(10)], 1.0)
        assert await stores.mutes.count(3) == 10
        async with db.batch() as batch:
            stores.mutes.record(batch, 3, "99", "new", "", muted=True, manual=True, now=2.0)
            stores.mutes.record(batch, 3, "1", "u1", "", muted=True, manual=True, now=2.0)  # already there
            stores.mutes.record(batch, 3, "2", "u2", "", muted=False, manual=True, now=2.0)
            stores.mutes.record(batch, 3, "404", "gone", "", muted=False, manual=True, now=2.0)  # never there
        counted = await db.fetchval("SELECT count(*) FROM cached_mutes WHERE discord_user_id = 3")
        assert counted == 10
        assert await stores.mutes.count(3) == counted
        async with db.batch() as batch:
            stores.mutes.forget_cache(batch, 3)
        assert await stores.mutes.count(3) == 0
    finally:
        await db.close()


async def test_small_batches_run_on_the_loop_and_wait_for_a_busy_file_in_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "i.sqlite3"
    stores = await Stores.open(path)
    db = stores.db
    try:
        await db.migrate()
        trips = db.round_trips
        inline, hops = trips.inline_writes, trips.writes
        async with db.batch() as batch:
            was = stores.mutes.record(batch, 5, "1", "one", "One", muted=True, manual=True, now=1.0)
        assert (trips.inline_writes - inline, trips.writes - hops) == (1, 0)
        assert was.value is False and await stores.mutes.holds(5, "1")

        failing = Batch()  # rolled back whole on the loop as in the thread
        stores.mutes.record(failing, 5, "2", "two", "", muted=True, manual=True, now=2.0)
        failing.execute("INSERT INTO manual_choices (discord_user_id, x_user_id, choice, at) VALUES (5, '1', 'x', 0)")
        with pytest.raises(sqlite3.IntegrityError):
            await db.write(failing)
        assert not await stores.mutes.holds(5, "2")

        # Another process holds the write lock: the loop must not wait (nor fail); the thread waits it out.
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, other.execute, "COMMIT")
        hops = trips.writes
        started = loop.time()
        async with db.batch() as batch:
            stores.mutes.record(batch, 5, "3", "three", "", muted=True, manual=True, now=3.0)
        assert trips.writes - hops == 1 and loop.time() - started >= 0.25
        assert await stores.mutes.holds(5, "3")
        other.close()
    finally:
        await db.close()


async def test_a_peek_sees_what_is_committed_and_inside_a_transaction_its_own_writes(tmp_path: Path) -> None:
    stores = await Stores.open(tmp_path / "k.sqlite3")
    db = stores.db
    try:
        await db.migrate()
        peeks = db.round_trips.peeks
        assert not await stores.mutes.holds(9, "1")
        async with db.transaction() as batch:
            stores.mutes.record(batch, 9, "1", "one", "", muted=True, manual=True, now=1.0)
            assert await stores.mutes.holds(9, "1")  # read on the writer, after the queued write
            assert await asyncio.create_task(stores.mutes.holds(9, "1")) is False  # outside: not committed yet
        assert await stores.mutes.holds(9, "1")
        assert db.round_trips.peeks - peeks == 3
    finally:
        await db.close()
