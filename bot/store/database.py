"""The database: one writer connection, a pool of readers, single-round-trip write batches, and migrations.

Every statement of mutebot runs through here, and every SQL string lives in a store module beside this one
(`bot/store/*.py`): services never see SQL, placeholders or dialect quirks.

SQLite allows one writer at a time but, in WAL mode, any number of concurrent readers. So:

- writes (and reads that decide a write) go to the one writer connection, serialised by an asyncio lock;
- plain reads go to a small pool of read-only connections and never wait behind a write;
- a `Batch` collects a command's writes and sends them in ONE thread round trip, inside
  BEGIN IMMEDIATE ... COMMIT (aiosqlite otherwise costs one round trip per statement, fetch and close);
- a `peek` (a read of a few rows by key) runs on the event loop: an indexed lookup takes a few microseconds,
  where handing it to a thread and back costs about 0.2 ms. It reads through the writer connection when no
  write holds it (whose page cache is warm: another connection's cache is dropped by every write, which made
  the same lookup 60 µs instead of 7), else through the loop's own read-only connection;
- a small batch (a command's few rows) runs on the loop too, on the writer connection while its lock is held,
  for the same reason; a big one (an import, a refetched mute list) goes to the writer's thread;
- the small batches written in one turn of the loop commit together (group commit), up to GROUP_MAX at a time:
  a commit's cost is mostly the WAL pages it writes, the same few index pages for every /mute of a burst, so a
  burst's commands share one commit instead of paying one each; a batch that fails takes only its own writer's
  command down;
- checkpoints (copying the WAL back into the file, with an fsync) never run on the loop: SQLite would run one
  inside every ~100th commit, 5-15 ms with the loop stopped. The writer's automatic checkpoints are off and a
  task runs them on a connection of their own, in its thread.

`Database.open` takes a file path (SQLite, the default) or a `postgresql://` URL (`PostgresDatabase` in
`bot/store/postgres.py`, over asyncpg). Both have the interface below; what differs in their SQL is the
`Dialect`'s, and each migration is written once unless a backend has its own (`migrations/postgresql/`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import os
import re
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, cast

import aiosqlite

log = logging.getLogger(__name__)

Params = Sequence[Any]


class Row(Protocol):
    """A result row: by column name or position (sqlite3.Row, asyncpg.Record)."""

    def __getitem__(self, key: int | str, /) -> Any: ...


T = TypeVar("T")
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
DEFAULT_READERS = 2
BUSY_TIMEOUT_MS = 5000
# A peek never waits on the loop: if the file is busy (a checkpoint), it goes to a reader thread instead.
PEEK_BUSY_TIMEOUT_S = 0.0
INLINE_ROWS = 24  # a batch touching at most this many rows is written on the loop (see the module docstring)
# At most this many batches commit together: a group runs on the loop, and 64 /mute batches hold it about 2 ms.
GROUP_MAX = 64
CHECKPOINT_EVERY_S = 0.5  # how often the checkpoint task copies committed WAL pages back into the file
WAL_KEEP_BYTES = 64 * 1024 * 1024  # a WAL grown past this during a burst is cut back once it restarts


class SchemaTooNewError(Exception):
    """The database was migrated by a newer mutebot than this one."""


class DatabaseOpenError(Exception):
    """The database could not be opened (no PostgreSQL there, a file that is not a database): one line naming
    the variable to change, as `mutebot` prints it before exiting 2."""

    def __init__(self, variable: str, what: str, reason: str) -> None:
        super().__init__(f"{variable}: {what} ({reason}); check {variable}")
        self.variable = variable


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def _migrations_in(folder: Any) -> list[Migration]:
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers in {versions}")
    return found


def bundled_migrations(dialect: str = "sqlite") -> list[Migration]:
    """The numbered SQL files shipped in the `migrations` package, in order. A backend's own folder
    (`migrations/postgresql/`) holds its version of those whose SQL differs there, under the same number."""
    root = resources.files("migrations")
    found = {m.version: m for m in _migrations_in(root)}
    own = root.joinpath(dialect)
    if dialect != "sqlite" and own.is_dir():
        for migration in _migrations_in(own):
            if migration.version not in found:
                raise RuntimeError(f"migrations/{dialect}/{migration.version:04d}_{migration.name}.sql overrides "
                                   "no migration of that number")
            found[migration.version] = migration
    return [found[v] for v in sorted(found)]


@dataclass(frozen=True)
class Dialect:
    """What differs between backends, in one place. Store SQL is written with `?` placeholders,
    `ON CONFLICT` upserts and `RETURNING`, which SQLite (3.35+) and PostgreSQL both understand; the
    dialect turns `?` into what the driver takes (`$1`, `$2`, ... for asyncpg)."""

    name: str
    begin: str
    shared: bool  # several processes may use the database at once (so none may take back another's claims)
    numbered_placeholders: bool
    integrity_errors: tuple[type[Exception], ...]
    # how a fresh database records its migrations, and how to ask whether it does yet
    migrations_table: str
    has_migrations_table: str
    # appended to a subquery choosing a row to claim: two processes claiming at once skip each other's row
    skip_locked: str = ""
    # a statement that, committed, tells every process listening on channel ? (None: nothing to tell)
    notify: str | None = None

    def sql(self, statement: str) -> str:
        return _numbered(statement) if self.numbered_placeholders else statement


@functools.lru_cache(maxsize=2048)
def _numbered(statement: str) -> str:
    """`?` -> `$1`, `$2`, ... outside quoted strings and identifiers."""
    out: list[str] = []
    quote: str | None = None
    n = 0
    for char in statement:
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "?":
            n += 1
            out.append(f"${n}")
            continue
        out.append(char)
    return "".join(out)


SQLITE = Dialect(
    "sqlite", begin="BEGIN IMMEDIATE", shared=False, numbered_placeholders=False,
    integrity_errors=(sqlite3.IntegrityError,),
    migrations_table="CREATE TABLE IF NOT EXISTS schema_migrations ("
                     " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)",
    has_migrations_table="SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
)


# -- one statement and its answer, run inside a connection's own thread --------------------------------

@dataclass
class Statement:
    sql: str
    params: Params = ()
    many: Iterable[Params] | None = None
    fetch: bool = False


class Pending(Generic[T]):
    """The answer of a statement queued in a batch; readable once the batch has run."""

    def __init__(self, convert: Callable[[Any], T]) -> None:
        self._convert = convert
        self._value: Any = None
        self._ready = False

    def _set(self, raw: Any) -> None:
        self._value, self._ready = self._convert(raw), True

    @property
    def value(self) -> T:
        if not self._ready:
            raise RuntimeError("the batch has not run yet")
        return self._value  # type: ignore[no-any-return]


def _run(conn: sqlite3.Connection, statements: Sequence[Statement], begin: str | None,
         prelude: str | None = None) -> list[Any]:
    """Executed in the connection's thread: the whole batch (and its BEGIN/COMMIT) is one round trip."""
    if prelude:
        conn.execute(prelude)
    if begin:
        conn.execute(begin)
    try:
        results: list[Any] = []
        for st in statements:
            if st.many is not None:
                conn.executemany(st.sql, st.many)
                results.append(None)
                continue
            cursor = conn.execute(st.sql, st.params)
            try:
                results.append(cursor.fetchall() if st.fetch else cursor.rowcount)
            finally:
                cursor.close()
        if begin:
            conn.execute("COMMIT")
        return results
    except BaseException:
        if begin and conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


async def _in_thread(conn: aiosqlite.Connection, statements: Sequence[Statement], begin: str | None,
                     prelude: str | None = None) -> list[Any]:
    # aiosqlite's public calls cost a thread round trip each (execute, fetch, close); `_execute` runs one
    # function of ours in its thread, so a statement with its rows, or a whole batch, is one trip.
    # aiosqlite is pinned below 0.23 in pyproject.toml; tests/test_store.py covers this call.
    raw = conn._conn
    execute: Callable[..., Awaitable[list[Any]]] = conn._execute
    return await execute(_run, raw, statements, begin, prelude)


class Batch:
    """A command's writes, sent together: `await db.batch()` as a context manager commits them on exit."""

    def __init__(self) -> None:
        self.statements: list[Statement] = []
        self._pending: list[tuple[int, Pending[Any]]] = []
        self.after_commit: list[Callable[[], None]] = []

    def __bool__(self) -> bool:
        return bool(self.statements)

    def execute(self, sql: str, params: Params = ()) -> Pending[int]:
        """A write; its answer is the number of rows it changed."""
        return self._add(Statement(sql, tuple(params)), int)

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        self.statements.append(Statement(sql, (), list(rows)))

    def fetchall(self, sql: str, params: Params = ()) -> Pending[list[Row]]:
        """A read (or `... RETURNING`) inside the same transaction as the writes around it."""
        return self._add(Statement(sql, tuple(params), fetch=True), list)

    def fetchval(self, sql: str, params: Params = ()) -> Pending[Any]:
        return self._add(Statement(sql, tuple(params), fetch=True), lambda rows: rows[0][0] if rows else None)

    def exists(self, sql: str, params: Params = ()) -> Pending[bool]:
        """True when the query returns a row with a true first column."""
        return self._add(Statement(sql, tuple(params), fetch=True), lambda rows: bool(rows and rows[0][0]))

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run after the batch committed (cache invalidation that must not happen for a rolled-back write)."""
        self.after_commit.append(callback)

    def _add(self, statement: Statement, convert: Callable[[Any], T]) -> Pending[T]:
        pending: Pending[T] = Pending(convert)
        self._pending.append((len(self.statements), pending))
        self.statements.append(statement)
        return pending

    def _settle(self, results: list[Any]) -> None:
        for index, pending in self._pending:
            pending._set(results[index])
        for callback in self.after_commit:
            callback()


# Which task holds the writer, and its open transaction: nested calls from the same task run inside it.
# Both remember the task, because a task created inside a transaction inherits these variables but not
# the lock.
_holder: contextvars.ContextVar[object | None] = contextvars.ContextVar("mutebot_db_holder", default=None)
_open: contextvars.ContextVar[tuple[object, Batch] | None] = contextvars.ContextVar("mutebot_db_txn", default=None)


def _current_transaction() -> Batch | None:
    held = _open.get()
    return held[1] if held is not None and held[0] is asyncio.current_task() else None


@dataclass
class RoundTrips:
    """Thread round trips to the database, counted for the benchmarks."""

    writes: int = 0
    reads: int = 0
    peeks: int = 0  # reads answered on the loop's own connection, without a thread round trip
    inline_writes: int = 0  # small batches written on the loop, without a thread round trip
    checkpoints: int = 0  # WAL checkpoints run by the checkpoint task (not counted in `total`: no command waits)
    by_task: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Every visit to the database: through a thread or on the loop."""
        return self.writes + self.reads + self.peeks + self.inline_writes

    @property
    def thread_hops(self) -> int:
        return self.writes + self.reads


class Database(ABC):
    """What every backend offers the stores (SQLite below, PostgreSQL in bot/store/postgres.py).

    Transactions (and, on SQLite, every write) are serialised within the process by one asyncio lock, re-entrant
    within a task: SQLite allows one writer anyway, and on PostgreSQL it keeps a process's read-then-write
    steps from interleaving exactly as they cannot on SQLite (a write batch there needs no such turn: it has no
    read a later write depends on, and PostgreSQL's row locks order it)."""

    dialect: Dialect
    location: str  # for messages: the file, or the URL without its password

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self.round_trips = RoundTrips()

    @classmethod
    async def open(cls, target: Path | str, *, readers: int = DEFAULT_READERS) -> Database:
        """The SQLite file at `target`, or the PostgreSQL database a `postgresql://` URL names."""
        if is_postgresql_url(str(target)):
            from bot.store.postgres import PostgresDatabase

            return await PostgresDatabase.connect(str(target))
        return await SqliteDatabase.open_file(Path(target), readers=readers)

    @abstractmethod
    async def close(self) -> None: ...

    def announce(self, batch: Batch, channel: str) -> None:
        """Tell the other processes on this database, when `batch` commits, that `channel` has news."""
        if self.dialect.notify is not None:
            batch.execute(self.dialect.notify, (channel,))

    async def listen(self, channel: str, callback: Callable[[], None]) -> None:  # noqa: B027 (no-op on SQLite)
        """Call `callback` whenever another process (or this one) announces on `channel`; on a database only
        one process uses (SQLite), there is no one to hear from."""

    @asynccontextmanager
    async def _held(self) -> AsyncIterator[None]:
        if _holder.get() is asyncio.current_task():
            yield
            return
        async with self._lock:
            reset = _holder.set(asyncio.current_task())
            try:
                yield
            finally:
                _holder.reset(reset)

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Batch]:
        """BEGIN ... COMMIT around reads and writes that depend on each other; rolled back on error,
        re-entrant within one task. Yields a batch: writes queued on it are sent together, before the next
        read of the transaction and at its end."""

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[Batch]:
        """Collect writes; on exit they run in one round trip (inside the surrounding transaction, if any)."""
        current = _current_transaction()
        if current is not None:
            yield current
            return
        batch = Batch()
        yield batch
        await self.write(batch)

    @abstractmethod
    async def write(self, batch: Batch) -> None: ...

    @abstractmethod
    async def _flush(self, batch: Batch) -> None:
        """Inside a transaction: send what is queued so a following read sees it."""

    @abstractmethod
    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """A read: on a reader connection, or inside a transaction on its connection (after its queued writes)."""

    @abstractmethod
    async def peek(self, sql: str, params: Params = ()) -> list[Row]:
        """A read of a few rows by an index, answered as cheaply as the backend can."""

    @abstractmethod
    def _exclusive(self) -> AbstractAsyncContextManager[None]:
        """Held while migrating: no other writer of this process, nor another process's migration."""

    # -- single statements (used by the stores) ----------------------------------------------------------

    async def execute(self, sql: str, params: Params = ()) -> int:
        """One write in its own transaction (or in the current one); returns the changed row count."""
        async with self.batch() as batch:
            pending = batch.execute(sql, params)
        return await self._answer(pending)

    async def _answer(self, pending: Pending[T]) -> T:
        """Inside a transaction, send what is queued so the answer exists; outside, the batch already ran."""
        current = _current_transaction()
        if current is not None:
            await self._flush(current)
        return pending.value

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    async def returning(self, sql: str, params: Params = ()) -> list[Row]:
        """A write with `RETURNING`, in its own transaction or the current one."""
        async with self.batch() as batch:
            rows = batch.fetchall(sql, params)
        return await self._answer(rows)

    async def ping(self) -> bool:
        return bool(await self.fetchval("SELECT 1") == 1)

    # -- migrations -------------------------------------------------------------------------------------

    async def schema_version(self) -> int:
        if not await self.fetchval(self.dialect.has_migrations_table):
            return 0
        return int(await self.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))

    async def migrate(self, migrations: Sequence[Migration] | None = None) -> list[Migration]:
        """Apply pending migrations, each in its own transaction; returns the ones applied."""
        migrations = bundled_migrations(self.dialect.name) if migrations is None else list(migrations)
        known = migrations[-1].version if migrations else 0
        async with self._exclusive():
            await self.execute(self.dialect.migrations_table)
            current = await self.schema_version()
            if current > known:
                raise SchemaTooNewError(
                    f"the database {self.location} has schema version {current}, but this mutebot knows only "
                    f"up to {known}; upgrade mutebot (or use a backup made before the upgrade)"
                )
            # Every bundled migration not yet recorded, not only those above the highest: two branches may
            # each add one, and the one merged second must still be applied where the first already was.
            done = {int(row[0]) for row in await self.fetchall("SELECT version FROM schema_migrations")}
            applied: list[Migration] = []
            for migration in migrations:
                if migration.version in done:
                    continue
                async with self.transaction() as batch:
                    for statement in split_sql(migration.sql, self.dialect):
                        batch.execute(statement)
                    batch.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                        (migration.version, migration.name, time.time()),
                    )
                log.info("applied migration %04d_%s", migration.version, migration.name)
                applied.append(migration)
            return applied


def is_postgresql_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def _rows(statements: Sequence[Statement]) -> int:
    """How many rows a batch touches, as far as it says: a statement's one, an executemany's list."""
    return sum(len(st.many) if isinstance(st.many, list) else (1 if st.many is None else INLINE_ROWS + 1)
               for st in statements)


def _fail_group(group: list[tuple[Batch, asyncio.Future[None]]], exc: BaseException) -> None:
    for _, waiter in group:
        if not waiter.done():
            waiter.set_exception(exc)


def _settle_group(group: list[tuple[Batch, asyncio.Future[None]]], results: list[Any]) -> None:
    """Hand each batch of a committed group its own statements' answers, and wake its writer."""
    start = 0
    for batch, waiter in group:
        end = start + len(batch.statements)
        try:
            batch._settle(results[start:end])
        except Exception as exc:  # an after-commit callback failed: its writer hears of it
            if not waiter.done():
                waiter.set_exception(exc)
        else:
            if not waiter.done():
                waiter.set_result(None)
        start = end


class SqliteDatabase(Database):
    """The writer connection (WAL, foreign keys, busy timeout) and `readers` read-only connections."""

    def __init__(self, writer: aiosqlite.Connection, readers: list[aiosqlite.Connection], path: Path,
                 checkpointer: aiosqlite.Connection | None = None) -> None:
        super().__init__()
        self._writer = writer
        self._readers = readers
        self._peeker: sqlite3.Connection | None = None
        if readers:
            self._peeker = sqlite3.connect(str(path), timeout=PEEK_BUSY_TIMEOUT_S, isolation_level=None)
            self._peeker.row_factory = sqlite3.Row
            self._peeker.execute("PRAGMA query_only=ON")
        self._next_reader = 0
        # Small batches written in the current turn of the loop, committed together at its end (`write`).
        self._group: list[tuple[Batch, asyncio.Future[None]]] | None = None
        # Groups formed and not yet committed, by id (a group is a list: compared by identity, not contents).
        self._waiting_groups: dict[int, list[tuple[Batch, asyncio.Future[None]]]] = {}
        self._group_tasks: set[asyncio.Task[None]] = set()
        self._writer_waits = True  # the writer's busy_timeout: BUSY_TIMEOUT_MS (its thread) or 0 (on the loop)
        self._checkpointer = checkpointer
        self._committed = asyncio.Event()  # set by a write; the checkpoint task waits for it
        self._checkpoints: asyncio.Task[None] | None = None
        if checkpointer is not None:
            self._checkpoints = asyncio.create_task(self._checkpoint_loop(), name="sqlite-checkpoints")
        self.path = path
        self.location = str(path)
        self.dialect = SQLITE

    @classmethod
    async def open_file(cls, path: Path, *, readers: int = DEFAULT_READERS) -> SqliteDatabase:
        """Raises DatabaseOpenError for a file that cannot be opened as a database, with nothing left open (an
        open aiosqlite connection's thread would keep the process from exiting)."""
        memory = str(path) == ":memory:"
        opened: list[aiosqlite.Connection] = []

        async def connect() -> aiosqlite.Connection:
            opened.append(await _connect(str(path)))
            return opened[-1]

        try:
            if not memory:
                path.parent.mkdir(parents=True, exist_ok=True)
                _create_private(path)
            writer = await connect()
            await writer.execute("PRAGMA journal_mode=WAL")  # the first read of the file: is it a database?
            await writer.execute("PRAGMA synchronous=NORMAL")
            await writer.execute(f"PRAGMA journal_size_limit={WAL_KEEP_BYTES}")
            pool: list[aiosqlite.Connection] = []
            checkpointer = None
            if not memory:  # an in-memory database is private to its connection: it reads through the writer
                for _ in range(readers):
                    reader = await connect()
                    await reader.execute("PRAGMA query_only=ON")
                    pool.append(reader)
                if readers:  # writes may then run on the loop (Database._inline): their checkpoints must not
                    await writer.execute("PRAGMA wal_autocheckpoint=0")
                    checkpointer = await connect()
            return cls(writer, pool, path, checkpointer)
        except (OSError, sqlite3.Error) as exc:
            for conn in opened:
                with contextlib.suppress(sqlite3.Error):
                    await conn.close()
            raise DatabaseOpenError("DATABASE_PATH", f"cannot open the SQLite database {path}",
                                    _file_problem(exc, path)) from None

    async def _checkpoint_loop(self) -> None:
        """Copy committed WAL pages back into the file, off the loop, while anything was written; PASSIVE never
        waits for (nor holds up) the writer or a reader."""
        assert self._checkpointer is not None
        while True:
            await self._committed.wait()
            self._committed.clear()
            try:
                await self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
                self.round_trips.checkpoints += 1
            except sqlite3.Error as exc:  # e.g. the disk is full: the next round tries again
                log.warning("a WAL checkpoint of %s failed: %s", self.location, exc)
            await asyncio.sleep(CHECKPOINT_EVERY_S)

    async def close(self) -> None:
        for group in list(self._waiting_groups.values()):  # what waits for the end of this turn is written first
            self._commit_group(group)
        if self._group_tasks:
            await asyncio.gather(*self._group_tasks, return_exceptions=True)
        if self._checkpoints is not None:
            self._checkpoints.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpoints
            self._checkpoints = None
        if self._checkpointer is not None:
            await self._checkpointer.close()  # the writer, closed last, checkpoints what is left
            self._checkpointer = None
        if self._peeker is not None:
            self._peeker.close()
            self._peeker = None
        for reader in self._readers:
            await reader.close()
        await self._writer.close()

    # -- transactions -----------------------------------------------------------------------------------

    def _exclusive(self) -> AbstractAsyncContextManager[None]:
        return self._held()  # one process writes a SQLite file at a time anyway

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Batch]:
        current = _current_transaction()
        if current is not None:
            yield current
            return
        async with self._held():
            batch = Batch()
            await self._trip(self._writer, [Statement(self.dialect.begin)], None, write=True)
            marker = _open.set((asyncio.current_task(), batch))
            try:
                yield batch
                await self._flush(batch)
            except BaseException:
                await self._trip(self._writer, [Statement("ROLLBACK")], None, write=True)
                raise
            finally:
                _open.reset(marker)
            await self._trip(self._writer, [Statement("COMMIT")], None, write=True)
            batch._settle([])

    async def write(self, batch: Batch) -> None:
        if not batch.statements:
            batch._settle([])
            return
        if _holder.get() is asyncio.current_task() or not self._readers or _rows(batch.statements) > INLINE_ROWS:
            await self._write_alone(batch)
            return
        # Group commit: the small batches written in the same turn of the event loop commit together, in one
        # transaction on the loop. A commit's cost is mostly its WAL pages (the same index pages for every
        # /mute of a burst), so a burst's commands share them instead of each writing its own.
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        group = self._group
        if group is None:
            group = self._group = []
            self._waiting_groups[id(group)] = group
            asyncio.get_running_loop().call_soon(self._commit_group, group)
        group.append((batch, waiter))
        if len(group) >= GROUP_MAX:  # later writers of this turn form the next group
            self._group = None
        await waiter  # a writer cancelled before its group runs is left out of it, as if it had never asked

    async def _write_alone(self, batch: Batch) -> None:
        # One statement is atomic on its own (autocommit); several are wrapped in one transaction.
        begin = self.dialect.begin if len(batch.statements) > 1 else None
        async with self._held():
            results = self._inline(batch.statements, begin)
            if results is None:
                results = await self._trip(self._writer, batch.statements, begin, write=True)
        batch._settle(results)

    def _commit_group(self, forming: list[tuple[Batch, asyncio.Future[None]]]) -> None:
        """Run a group formed during the last turn of the loop: at once when no transaction holds the writer,
        else (or when another process holds the file) in a task that waits its turn."""
        if forming is self._group:
            self._group = None
        if self._waiting_groups.pop(id(forming), None) is None:
            return  # already committed (by close, before this turn's end)
        group = [(b, w) for b, w in forming if not w.cancelled()]
        if not group:
            return
        together = True
        if not self._lock.locked():
            statements = [st for batch, _ in group for st in batch.statements]
            try:
                results = self._inline(statements, self.dialect.begin if len(statements) > 1 else None,
                                       any_size=True)
            except sqlite3.Error:  # one batch failed and the whole group rolled back: each goes again alone
                results, together = None, False
            except Exception as exc:  # not the database's answer (a bug): every writer hears it, none hangs
                _fail_group(group, exc)
                return
            if results is not None:
                _settle_group(group, results)
                return
        task = asyncio.get_running_loop().create_task(self._commit_group_later(group, together=together))
        self._group_tasks.add(task)
        task.add_done_callback(self._group_tasks.discard)

    async def _commit_group_later(self, group: list[tuple[Batch, asyncio.Future[None]]], *, together: bool) -> None:
        """The group once the writer is free (or in its thread, the file being busy); batch by batch when it
        failed together, so that each writer gets its own batch's answer or error."""
        statements = [st for batch, _ in group for st in batch.statements]
        if together:
            try:
                async with self._held():
                    results = self._inline(statements, self.dialect.begin, any_size=True)
                    if results is None:
                        results = await self._trip(self._writer, statements, self.dialect.begin, write=True)
            except sqlite3.Error:
                pass  # as on the loop: each batch alone
            except BaseException as exc:
                _fail_group(group, exc)
                if not isinstance(exc, Exception):
                    raise
                return
            else:
                _settle_group(group, results)
                return
        for index, (batch, waiter) in enumerate(group):
            try:
                await self._write_alone(batch)
            except Exception as exc:  # the writer waiting for it gets the error, as if it had written alone
                if not waiter.done():
                    waiter.set_exception(exc)
            except BaseException as exc:  # stopped: no writer is left waiting
                _fail_group(group[index:], exc)
                raise
            else:
                if not waiter.done():
                    waiter.set_result(None)

    def _inline(self, statements: Sequence[Statement], begin: str | None, *, any_size: bool = False
                ) -> list[Any] | None:
        """Run a small batch (or a group of them) on the loop, on the writer (its lock is held, or nothing awaits
        inside the call, so its thread is idle); None when the batch is too big or the file is busy (another
        process writing), for the thread to do it."""
        if (not any_size and _rows(statements) > INLINE_ROWS) or not self._readers:
            return None
        raw: sqlite3.Connection = self._writer._conn
        if self._writer_waits:  # never wait on the loop (set once, until the thread needs it back)
            raw.execute("PRAGMA busy_timeout=0")
            self._writer_waits = False
        try:
            results = _run(raw, statements, begin)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            return None  # nothing was written: BEGIN IMMEDIATE (or the lone statement) found the file busy
        self.round_trips.inline_writes += 1
        self._committed.set()
        return results

    async def _flush(self, batch: Batch) -> None:
        """Inside a transaction: send what is queued so a following read sees it."""
        if not batch.statements:
            return
        statements, pending = batch.statements, batch._pending
        batch.statements, batch._pending = [], []
        results = await self._trip(self._writer, statements, None, write=True)
        for index, item in pending:
            item._set(results[index])

    async def _trip(
        self, conn: aiosqlite.Connection, statements: Sequence[Statement], begin: str | None, *, write: bool
    ) -> list[Any]:
        if write:
            self.round_trips.writes += 1
            self._committed.set()
            if conn is self._writer and not self._writer_waits:  # in its thread it waits for a busy file
                self._writer_waits = True
                return await _in_thread(conn, statements, begin, f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        else:
            self.round_trips.reads += 1
        return await _in_thread(conn, statements, begin)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """A read: on a reader connection, or on the writer inside a transaction (after its queued writes)."""
        batch = _current_transaction()
        statement = [Statement(sql, tuple(params), fetch=True)]
        if batch is not None:
            await self._flush(batch)
            return cast(list[Row], (await self._trip(self._writer, statement, None, write=True))[0])
        if not self._readers:
            async with self._held():
                return cast(list[Row], (await self._trip(self._writer, statement, None, write=True))[0])
        reader = self._readers[self._next_reader % len(self._readers)]
        self._next_reader += 1
        return cast(list[Row], (await self._trip(reader, statement, None, write=False))[0])

    async def peek(self, sql: str, params: Params = ()) -> list[Row]:
        """A read of a few rows by an index, answered on the loop's own read-only connection.

        Only for statements that touch a handful of rows through a key: the loop is held while it runs."""
        if self._peeker is None or _current_transaction() is not None:
            return await self.fetchall(sql, params)
        # The writer when no write holds it (its thread is idle then): its page cache is warm.
        conn: sqlite3.Connection = self._peeker if self._lock.locked() else self._writer._conn
        try:
            rows = conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            return await self.fetchall(sql, params)
        self.round_trips.peeks += 1
        return cast(list[Row], rows)


async def _connect(path: str) -> aiosqlite.Connection:
    # check_same_thread=False: the writer also runs small batches on the loop (Database._inline), never at
    # the same time as its own thread, since both happen under the write lock.
    conn = await aiosqlite.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = aiosqlite.Row
    await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    await conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _file_problem(exc: OSError | sqlite3.Error, path: Path) -> str:
    """Why the file could not be opened, in a few words ("file is not a database")."""
    if isinstance(exc, sqlite3.Error):
        return str(exc)
    if isinstance(exc, FileExistsError | NotADirectoryError) and exc.filename:  # mkdir, or a path through a file
        return f"{exc.filename} is not a directory"
    reason = (exc.strerror or type(exc).__name__).lower()
    return reason if exc.filename in (None, str(path)) else f"{exc.filename}: {reason}"


def _create_private(path: Path) -> None:
    """The database holds encrypted tokens and who muted whom: readable by its owner only, with its
    -wal and -shm files (SQLite gives those the main file's permissions)."""
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def split_sql(script: str, dialect: Dialect = SQLITE) -> list[str]:
    """Split a migration into statements, so that each runs inside our own transaction
    (executescript would COMMIT on its own). PostgreSQL's function bodies are `$$`-quoted: a `;` inside
    one does not end the statement."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        buffer += line
        if not buffer.strip().endswith(";"):
            continue
        complete = (buffer.count("$$") % 2 == 0 if dialect.name == "postgresql"
                    else sqlite3.complete_statement(buffer))
        if complete:
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
