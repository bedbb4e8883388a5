"""The store on its own: table ownership, write batches in one round trip, rollback, readers beside the writer;
and the same schema and behaviour on SQLite and PostgreSQL (tests taking `database_target` run on both)."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from bot.sandbox.postgres import ThrowawayPostgres
from bot.store import Batch, Database, Migration, SchemaTooNewError, Stores, bundled_migrations
from bot.store.database import CHECKPOINT_EVERY_S, GROUP_MAX, SQLITE, split_sql
from bot.store.lists import DuplicateListName
from bot.store.mutes import CachedMute
from bot.store.postgres import POSTGRESQL
from bot.store.queue import PEEK_COUNT_LIMIT, QueuedTarget
from tests.helpers import until

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


async def test_a_batch_is_one_round_trip_and_rolls_back_whole(database_target: str) -> None:
    stores = await Stores.open(database_target)
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
        with pytest.raises(db.dialect.integrity_errors):
            await db.write(failing)
        assert await stores.mutes.count(7) == 101  # the failed batch changed nothing
    finally:
        await db.close()


async def test_reads_do_not_wait_behind_an_open_write(database_target: str) -> None:
    stores = await Stores.open(database_target)
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


async def test_the_kept_total_follows_every_change_to_the_cache(database_target: str) -> None:
    stores = await Stores.open(database_target)
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


async def test_small_batches_of_one_turn_of_the_loop_commit_together_and_each_gets_its_own_answer(
    tmp_path: Path,
) -> None:
    """Group commit (SQLite): the batches written in one turn of the loop are one transaction, one visit to the
    database; each writer still gets its own batch's answers, a failing batch fails alone, a writer cancelled
    before its group runs is left out, and a group waits for an open transaction."""
    stores = await Stores.open(tmp_path / "g.sqlite3")
    db = stores.db
    try:
        await db.migrate()
        trips = db.round_trips

        async def mute(member: int, target: str, *, refused: bool = False) -> bool:
            batch = Batch()
            was = stores.mutes.record(batch, member, target, target, "", muted=True, manual=True, now=1.0)
            if refused:  # a choice the schema refuses: the batch fails
                batch.execute("INSERT INTO manual_choices (discord_user_id, x_user_id, choice, at)"
                              " VALUES (?, ?, 'x', 0)", (member, target))
            await db.write(batch)
            return was.value

        await mute(1, "9")
        before = trips.inline_writes
        answers = await asyncio.gather(*(mute(1, str(n)) for n in range(8, 12)))
        assert answers == [False, True, False, False]  # "9" was muted already; the rest were not
        assert trips.inline_writes - before == 1
        assert all([await stores.mutes.holds(1, str(n)) for n in range(8, 12)])

        # A group holds the loop while it runs: past GROUP_MAX batches, the rest of the turn forms the next one.
        before = trips.inline_writes
        many = await asyncio.gather(*(mute(6, str(n)) for n in range(GROUP_MAX + 6)))
        assert many == [False] * (GROUP_MAX + 6)
        assert trips.inline_writes - before == 2
        assert await db.fetchval("SELECT count(*) FROM cached_mutes WHERE discord_user_id = 6") == GROUP_MAX + 6

        # One batch fails: the group's transaction rolls back, and each batch goes again alone.
        results = await asyncio.gather(mute(2, "1"), mute(2, "2", refused=True), mute(2, "3"),
                                       return_exceptions=True)
        assert results[0] is False and results[2] is False, results
        assert isinstance(results[1], sqlite3.IntegrityError), results
        assert [await stores.mutes.holds(2, t) for t in "123"] == [True, False, True]

        # A writer cancelled before the end of the turn: its batch is not written; the others are.
        kept = asyncio.ensure_future(mute(3, "1"))
        dropped = asyncio.ensure_future(mute(3, "2"))
        await asyncio.sleep(0)  # both have joined the group
        dropped.cancel()
        assert await kept is False
        with pytest.raises(asyncio.CancelledError):
            await dropped
        assert [await stores.mutes.holds(3, t) for t in "12"] == [True, False]

        # An open transaction holds the writer: the group waits for it, then commits.
        groups = trips.inline_writes
        async with db.transaction() as txn:
            txn.execute("INSERT INTO manual_choices (discord_user_id, x_user_id, choice, at)"
                        " VALUES (4, '0', 'muted', 0)")
            waiting = asyncio.gather(mute(4, "1"), mute(4, "2"))
            await asyncio.sleep(0.05)
            assert not waiting.done()
        assert list(await waiting) == [False, False]
        assert [await stores.mutes.holds(4, t) for t in "12"] == [True, True]
        assert trips.inline_writes - groups == 1
    finally:
        await db.close()


async def test_checkpoints_run_off_the_loop_and_keep_the_wal_from_growing(tmp_path: Path) -> None:
    """SQLite checkpoints inside a commit (every ~100th, 5-15 ms with an fsync); commits on the loop must not, so
    the writer's automatic checkpoints are off and a task of the database's runs them in a thread instead."""
    path = tmp_path / "c.sqlite3"
    stores = await Stores.open(path)
    db = stores.db
    wal = Path(f"{path}-wal")

    async def burst(first: int) -> None:
        for n in range(first, first + 400):
            async with db.batch() as batch:
                stores.mutes.record(batch, 5, str(n), f"u{n}", "", muted=True, manual=True, now=float(n))

    try:
        await db.migrate()
        writer: sqlite3.Connection = db._writer._conn  # type: ignore[attr-defined]
        assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        # Let the checkpoint of the migrations end and the task go back to waiting: one still running would be
        # counted below although it began before the burst, and copied none of it.
        await until(lambda: db.round_trips.checkpoints >= 1, what="the migrations' checkpoint", timeout=10)
        await asyncio.sleep(CHECKPOINT_EVERY_S + 0.2)
        inline = db.round_trips.inline_writes
        await burst(0)
        assert db.round_trips.inline_writes - inline == 400  # every one of them committed on the loop
        grown = wal.stat().st_size
        done = db.round_trips.checkpoints
        await until(lambda: db.round_trips.checkpoints > done, what="the checkpoint task", timeout=10)
        await burst(400)  # the WAL was copied back meanwhile: these restart it instead of growing it
        assert wal.stat().st_size <= grown * 1.25, (grown, wal.stat().st_size)
        assert len(await stores.mutes.page(5, 0, 1000)) == 800
    finally:
        await db.close()


async def test_a_peek_sees_what_is_committed_and_inside_a_transaction_its_own_writes(database_target: str) -> None:
    stores = await Stores.open(database_target)
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
        # SQLite answers the two outside the transaction on the loop; PostgreSQL has no loop-side connection.
        assert db.round_trips.peeks - peeks == (3 if db.dialect.name == "sqlite" else 0)
    finally:
        await db.close()


# -- both backends: the same schema, the same behaviour ----------------------------------------------------------

TAKEN_AS_WRITTEN_BY_BOTH = re.compile(r"\bREAL\b|\bBLOB\b|COLLATE NOCASE|CREATE TRIGGER|INTEGER PRIMARY KEY|"
                                      r"_id\s+INTEGER\b|_by\s+INTEGER\b")


def test_placeholders_are_numbered_for_postgresql_outside_quotes() -> None:
    assert POSTGRESQL.sql("SELECT '?', \"a?\" FROM t WHERE a = ? AND b IN (?, ?)") == (
        "SELECT '?', \"a?\" FROM t WHERE a = $1 AND b IN ($2, $3)")
    assert SQLITE.sql("SELECT ? WHERE '?'") == "SELECT ? WHERE '?'"


def test_postgresql_has_its_own_version_of_every_migration_it_cannot_take_as_written() -> None:
    base = bundled_migrations()
    own = {m.version: m for m in bundled_migrations("postgresql")}
    assert [m.version for m in base] == sorted(own)  # the same numbers, none of its own
    overridden = {m.version for m in base if own[m.version].sql != m.sql}
    assert {1, 4, 7} <= overridden
    for migration in base:
        if migration.version not in overridden:
            # Types PostgreSQL takes otherwise (REAL has 4 bytes there, INTEGER 32 bits), or syntax it lacks.
            assert not TAKEN_AS_WRITTEN_BY_BOTH.search(migration.sql), (
                f"migrations/{migration.version:04d}_{migration.name}.sql needs migrations/postgresql/ "
                f"{migration.version:04d}_{migration.name}.sql")
    assert TAKEN_AS_WRITTEN_BY_BOTH.search("    discord_user_id   INTEGER NOT NULL,")  # the check can fail


async def _columns(db: Database) -> dict[str, list[str]]:
    if db.dialect.name == "sqlite":
        tables = [r[0] for r in await db.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: sorted(r["name"] for r in await db.fetchall(f"PRAGMA table_info({t})")) for t in tables}
    rows = await db.fetchall("SELECT table_name, column_name FROM information_schema.columns"
                             " WHERE table_schema = 'public'")
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(str(row["table_name"]), []).append(str(row["column_name"]))
    return {t: sorted(c) for t, c in found.items()}


async def test_both_backends_have_the_same_tables_and_columns(tmp_path: Path, postgresql: ThrowawayPostgres) -> None:
    schemas = []
    for target in (str(tmp_path / "same.sqlite3"), await postgresql.new_database()):
        db = await Database.open(target)
        try:
            await db.migrate()
            schemas.append(await _columns(db))
        finally:
            await db.close()
    sqlite_schema, postgresql_schema = schemas
    assert "linked_accounts" in sqlite_schema and "mute_timers" in sqlite_schema
    assert postgresql_schema == sqlite_schema


async def test_migrations_apply_once_and_a_newer_schema_is_refused(database_target: str) -> None:
    db = await Database.open(database_target)
    try:
        applied = await db.migrate()
        assert [m.version for m in applied] == [m.version for m in bundled_migrations()]
        assert await db.schema_version() == bundled_migrations()[-1].version
        assert await db.migrate() == []
        await db.execute("INSERT INTO schema_migrations VALUES (9999, 'future', 0)")
        with pytest.raises(SchemaTooNewError, match="9999"):
            await db.migrate()
    finally:
        await db.close()


async def test_a_failing_migration_leaves_nothing_of_itself_behind(database_target: str) -> None:
    db = await Database.open(database_target)
    try:
        broken = [Migration(1, "ok", "CREATE TABLE a (x INTEGER);"),
                  Migration(2, "bad", "CREATE TABLE b (x INTEGER);\nINSERT INTO nowhere VALUES (1);")]
        with pytest.raises((sqlite3.OperationalError, asyncpg.UndefinedTableError)):
            await db.migrate(broken)
        assert await db.schema_version() == 1
        with pytest.raises((sqlite3.OperationalError, asyncpg.UndefinedTableError)):
            await db.fetchval("SELECT count(*) FROM b")
        assert await db.fetchval("SELECT count(*) FROM a") == 0
    finally:
        await db.close()


async def test_transactions_nest_and_roll_back_whole(database_target: str) -> None:
    stores = await Stores.open(database_target)
    db = stores.db
    try:
        await db.migrate()
        with pytest.raises(RuntimeError):  # noqa: PT012 - the nesting is what is tested
            async with db.transaction():
                await stores.meta.set("a", "1")
                async with db.transaction():
                    await stores.meta.set("b", "2")
                assert await stores.meta.get("b") == "2"  # inside: its own writes
                raise RuntimeError("boom")
        assert await db.fetchval("SELECT count(*) FROM meta") == 0
    finally:
        await db.close()


async def test_discord_ids_keep_all_64_bits_and_list_names_ignore_case(database_target: str) -> None:
    stores = await Stores.open(database_target)
    db = stores.db
    member, guild = 2**63 - 1, 1_100_000_000_000_000_001  # snowflakes are 64-bit
    try:
        await db.migrate()
        list_id = await stores.lists.create(guild, "Spam", "", member, 1.0)
        found = await stores.lists.by_name(guild, "sPAM")
        assert found is not None and (found.id, found.name, found.created_by) == (list_id, "Spam", member)
        with pytest.raises(DuplicateListName, match="Spam"):
            await stores.lists.create(guild, "SPAM", "", member, 2.0)
        assert await stores.lists.create(guild + 1, "spam", "", member, 3.0) != list_id  # another server's
        async with db.batch() as batch:
            stores.timers.set(batch, member, "42", "someone", 1.5e9 + 0.25, 1.0)
        assert await stores.timers.ends(member, ["42"]) == {"42": 1.5e9 + 0.25}  # times keep their fraction
    finally:
        await db.close()


async def test_a_due_timer_is_taken_by_exactly_one_of_two_processes(database_target: str) -> None:
    first, second = await Stores.open(database_target), await Stores.open(database_target)
    try:
        await first.db.migrate()
        async with first.db.batch() as batch:
            for member in range(1, 21):
                for target in ("1", "2", "3"):
                    first.timers.set(batch, member, target, f"u{target}", 10.0, 1.0)

        async def take(stores: Stores, member: int) -> int:
            async with stores.db.transaction():
                return len(await stores.timers.take_due(member, 11.0))

        taken = await asyncio.gather(*(take(s, m) for m in range(1, 21) for s in (first, second)))
        assert sum(taken) == 60 and set(taken) == {0, 3}
        assert await first.timers.count() == 0
    finally:
        await first.db.close()
        await second.db.close()


def _cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False, env={"PATH": os.environ.get("PATH", ""), "HOME": str(cwd), **env})


def test_mutebot_migrate_and_check_take_database_url(tmp_path: Path, postgresql: ThrowawayPostgres) -> None:
    url = asyncio.run(postgresql.new_database()).replace("mutebot@", "mutebot:hunter2@")  # trust ignores it
    first = _cli("migrate", cwd=tmp_path, env={"DATABASE_URL": url})
    assert first.returncode == 0, first.stderr
    assert "applied 0001_initial" in first.stdout and "mutebot:***@127.0.0.1" in first.stdout
    assert "hunter2" not in first.stdout + first.stderr
    second = _cli("migrate", cwd=tmp_path, env={"DATABASE_URL": url})
    assert second.returncode == 0 and "up to date" in second.stdout, second.stderr
    assert not list(tmp_path.glob("*.sqlite3"))  # DATABASE_PATH was not touched

    bad = _cli("check", cwd=tmp_path, env={"DATABASE_URL": "mysql://root:hunter2@db/mutebot"})
    assert bad.returncode == 2
    assert "  - DATABASE_URL: must be a PostgreSQL URL" in bad.stderr and "hunter2" not in bad.stderr
    nameless = _cli("check", cwd=tmp_path, env={"DATABASE_URL": "postgresql://db:5432"})
    assert "  - DATABASE_URL: names no database; end it with /dbname" in nameless.stderr


async def test_an_action_is_claimed_once_and_an_expired_lease_is_taken_over(database_target: str) -> None:
    first, second = await Stores.open(database_target), await Stores.open(database_target)
    try:
        await first.db.migrate()
        async with first.db.batch() as batch:
            first.queue.enqueue(batch, 5, "mute", [QueuedTarget(str(i), f"u{i}") for i in range(10)],
                                cause="manual", list_id=None, job_id=None, now=1.0)
        ids = [int(r[0]) for r in await first.db.fetchall("SELECT id FROM actions ORDER BY id")]
        # Two processes race for the member's actions, 12 claims each: every action is claimed exactly once.
        won = await asyncio.gather(*(s.queue.claim_next(5, 2.0, ["mute"], 62.0, name) for _ in range(12)
                                     for s, name in ((first, "first"), (second, "second"))))
        claimed = [action.id for action in won if action is not None]
        assert sorted(claimed) == ids
        assert all(action.attempts == 0 for action in won if action is not None)  # the count before this claim
        by_claimant = await first.db.fetchall("SELECT claimed_by, count(*) AS n FROM actions GROUP BY claimed_by")
        assert sum(int(r["n"]) for r in by_claimant) == 10
        # Their claimer is alive until the lease ends: nobody takes them over before that, not even a process
        # starting again (a new run has a new name); a run takes back its own at once.
        assert await second.queue.recover(30.0, every_claim=False, claimant="second, run 2") == 0
        own = {str(r["claimed_by"]): int(r["n"]) for r in by_claimant}.get("second", 0)
        assert await second.queue.recover(30.0, every_claim=False, claimant="second") == own
        assert await second.queue.recover(63.0, every_claim=False) == 10 - own
        assert await first.queue.claim_next(5, 63.0, ["unmute"], 123.0, "first") is None  # none of that kind
        assert await first.db.fetchval("SELECT count(*) FROM actions WHERE status = 'pending'") == 10
    finally:
        await first.db.close()
        await second.db.close()


async def test_processes_share_an_x_window_and_never_take_more_than_it_holds(database_target: str) -> None:
    first, second = await Stores.open(database_target), await Stores.open(database_target)
    try:
        await first.db.migrate()
        limits = (first.rate_limits, second.rate_limits)
        # Nothing known yet: the first calls may go; their answer tells the window.
        assert await first.rate_limits.reserve("7", "muting.post", 100.0, provisional_until=160.0) == 0.0
        await first.rate_limits.record("7", "muting.post", limit=5, remaining=4, reset_at=1000.0, now=100.0)
        # Four calls left, two processes asking at once for ten: four are given, the rest wait for the reset.
        answers = await asyncio.gather(*(limits[i % 2].reserve("7", "muting.post", 101.0, provisional_until=161.0)
                                         for i in range(10)))
        assert sorted(answers) == [0.0] * 4 + [1000.0] * 6
        assert [(w.x_user_id, w.reset_at) for w in await second.rate_limits.blocked(101.0)] == [("7", 1000.0)]
        # A late answer that says more remain does not give back what the other process has in flight.
        await second.rate_limits.record("7", "muting.post", limit=5, remaining=2, reset_at=1000.0, now=102.0)
        assert await first.rate_limits.reserve("7", "muting.post", 102.0, provisional_until=162.0) == 1000.0
        # An answer from a window already over is ignored; once it is over, the next window starts full.
        await first.rate_limits.record("7", "muting.post", limit=5, remaining=3, reset_at=900.0, now=1001.0)
        assert await second.rate_limits.blocked(1001.0) == []
        answers = await asyncio.gather(*(limits[i % 2].reserve("7", "muting.post", 1001.0, provisional_until=1061.0)
                                         for i in range(7)))
        assert sorted(answers) == [0.0] * 5 + [1061.0] * 2
        # The first answer of the new window says when it really ends; the lower count still wins.
        await first.rate_limits.record("7", "muting.post", limit=5, remaining=4, reset_at=1900.0, now=1002.0)
        assert [w.reset_at for w in await first.rate_limits.blocked(1002.0)] == [1900.0]
        assert await first.rate_limits.purge(2000.0) == 1
    finally:
        await first.db.close()
        await second.db.close()


async def test_on_postgresql_writes_do_not_wait_for_this_processs_transaction(
    postgresql: ThrowawayPostgres,
) -> None:
    """A lone write, and a batch, go out at once (PostgreSQL's row locks order them), not behind the process's
    write lock: the queue's claims and window reservations must not queue up behind another member's settlement,
    nor a burst's /mute batches behind each other (each is a dozen exchanges with the server)."""
    db = await Database.open(await postgresql.new_database())
    try:
        await db.migrate()
        await db.execute("INSERT INTO meta (key, value) VALUES ('a', '0'), ('b', '0'), ('c', '0'), ('d', '0')")
        inside, release = asyncio.Event(), asyncio.Event()

        async def long_transaction() -> None:
            async with db.transaction():
                await db.execute("UPDATE meta SET value = '1' WHERE key = 'a'")
                inside.set()
                await release.wait()

        holder = asyncio.create_task(long_transaction())
        await inside.wait()
        try:
            async with asyncio.timeout(5):  # behind the process's write lock it would wait for `release`
                assert await db.execute("UPDATE meta SET value = '2' WHERE key = 'b'") == 1
                async with db.batch() as batch:
                    batch.execute("UPDATE meta SET value = '3' WHERE key = 'c'")
                    batch.execute("UPDATE meta SET value = '4' WHERE key = 'd'")
        finally:
            release.set()
            await holder
        assert {r["key"]: r["value"] for r in await db.fetchall("SELECT key, value FROM meta")} == {
            "a": "1", "b": "2", "c": "3", "d": "4"}
    finally:
        await db.close()


async def test_on_postgresql_a_batch_chosen_to_end_a_deadlock_is_sent_again(postgresql: ThrowawayPostgres) -> None:
    url = await postgresql.new_database()
    first, second = await Database.open(url), await Database.open(url)  # two processes
    try:
        await first.migrate()
        await first.execute("INSERT INTO meta (key, value) VALUES ('a', '0'), ('b', '0')")
        locked_a = asyncio.Event()

        async def transaction_a_then_b() -> None:
            async with first.transaction():
                await first.execute("UPDATE meta SET value = 'first' WHERE key = 'a'")
                locked_a.set()
                await asyncio.sleep(0.3)  # the other's batch has taken b and waits for a
                await first.execute("UPDATE meta SET value = 'first' WHERE key = 'b'")

        async def batch_b_then_a() -> None:
            await locked_a.wait()
            async with second.batch() as batch:
                batch.execute("UPDATE meta SET value = 'second' WHERE key = 'b'")
                batch.execute("UPDATE meta SET value = 'second' WHERE key = 'a'")

        # The batch waited first, so PostgreSQL ends it to break the cycle; it goes again once the other commits.
        await asyncio.gather(transaction_a_then_b(), batch_b_then_a())
        values = {r["key"]: r["value"] for r in await first.fetchall("SELECT key, value FROM meta")}
        assert values == {"a": "second", "b": "second"}
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize("waiting", [0, 3, PEEK_COUNT_LIMIT, PEEK_COUNT_LIMIT + 7])
async def test_a_members_waiting_actions_are_counted_exactly_on_the_loop_up_to_the_limit(
    database_target: str, waiting: int
) -> None:
    stores = await Stores.open(database_target)
    try:
        await stores.db.migrate()
        async with stores.db.batch() as batch:
            stores.queue.enqueue(batch, 5, "mute", [QueuedTarget(str(i), f"u{i}") for i in range(waiting)],
                                 cause="manual", list_id=None, job_id=None, now=1.0)
            stores.queue.enqueue(batch, 6, "mute", [QueuedTarget("1", "u1")],  # another member's
                                 cause="manual", list_id=None, job_id=None, now=1.0)
        await stores.db.execute("UPDATE actions SET status = 'done' WHERE discord_user_id = 5 AND x_user_id = '0'")
        expected = max(0, waiting - 1)
        reads = stores.db.round_trips.reads
        assert await stores.queue.pending_count(5) == expected
        through_a_thread = stores.db.round_trips.reads - reads
        if stores.db.dialect.name == "sqlite":
            assert through_a_thread == (1 if expected > PEEK_COUNT_LIMIT else 0)
    finally:
        await stores.db.close()
