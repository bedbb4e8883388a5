"""PostgresDatabase: the store's `Database` on PostgreSQL through an asyncpg pool, for several processes at once.

Chosen by a `postgresql://` DATABASE_URL. Everything the stores call behaves as on SQLite (bot/store/database.py):

- a `Batch` goes out on one pooled connection, inside BEGIN ... COMMIT when it has several statements
  (asyncpg sends each statement as its own exchange, so it is one visit rather than one message), at once,
  without the process's write lock (row locks order it against everything else, in this process and others),
  and a batch PostgreSQL ends to break a deadlock is sent again;
- a `transaction()` keeps one pooled connection for its task, and takes a transaction-scoped advisory lock, so
  transactions of every process run one at a time, as SQLite's single writer does: the read-then-write steps
  the services do inside them (firing a timer, settling a send) are never interleaved, across processes either;
- reads outside a transaction take any pooled connection and see what is committed;
- a `peek` is a plain read: there is no loop-side connection to save a thread hop on;
- `announce` and `listen` are NOTIFY and LISTEN, on a connection of their own (opened again, after a pause, if
  it is lost; then every listener is called once, for what it may have missed meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast
from urllib.parse import urlsplit

import asyncpg

from bot.secrets import redact_url
from bot.store.database import (
    Batch,
    Database,
    DatabaseOpenError,
    Dialect,
    Params,
    Row,
    Statement,
    _current_transaction,
    _open,
)

log = logging.getLogger(__name__)

POOL_MIN = 1
LISTEN_RETRY_S = 2.0  # a lost LISTEN connection is opened again after this pause
DEADLOCK_ATTEMPTS = 3  # a write batch PostgreSQL ended to break a deadlock is sent again, this often in all
POOL_MAX = 10  # per process: the queue sends at most 8 at once, and commands read beside it
# Keys of the advisory locks (any two constants; "mute" and "bot" in ASCII).
MIGRATION_LOCK = 0x6D757465
TRANSACTION_LOCK = 0x626F74

POSTGRESQL = Dialect(
    "postgresql", begin="BEGIN", shared=True, numbered_placeholders=True,
    integrity_errors=(asyncpg.IntegrityConstraintViolationError,),
    migrations_table="CREATE TABLE IF NOT EXISTS schema_migrations ("
                     " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)",
    has_migrations_table="SELECT to_regclass('schema_migrations') IS NOT NULL",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    notify="SELECT pg_notify(?, '')",
)


def _server(url: str) -> str:
    """host:port of a DATABASE_URL, for messages (never its password)."""
    parts = urlsplit(url)
    if not parts.hostname:  # e.g. ?host=/run/postgresql
        return redact_url(url)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port or 5432}"


def _connect_problem(exc: Exception) -> str:
    """Why PostgreSQL could not be reached or let us in, in a few words ("connection refused")."""
    if isinstance(exc, asyncpg.PostgresError | asyncpg.ClientConfigurationError):
        return str(exc)  # PostgreSQL's own words: 'database "x" does not exist', 'password authentication failed'
    if isinstance(exc, socket.gaierror):
        return "its host name does not resolve"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    assert isinstance(exc, OSError)
    # asyncio's "Multiple exceptions: [Errno 111] ..." when every address of the host refused
    if exc.errno == errno.ECONNREFUSED or (exc.errno is None and f"[Errno {errno.ECONNREFUSED}]" in str(exc)):
        return "connection refused"
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


def _count(status: str) -> int:
    """The changed-row count in a command tag ("UPDATE 3", "INSERT 0 1"); 0 for tags without one."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset: nothing past what asyncpg always does (rolling back a transaction left open).

    Its default sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every release, one more
    exchange with the server for every batch and read. mutebot leaves no session state on a pooled connection:
    LISTEN and the migration's session lock have connections of their own, and locks taken by transactions are
    transaction-scoped."""


class PostgresDatabase(Database):
    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        super().__init__()
        self._pool = pool
        self.location = redact_url(url)
        self.dialect = POSTGRESQL
        self._connections: dict[int, asyncpg.pool.PoolConnectionProxy] = {}  # an open transaction's, by batch
        self._url = url
        self._listener: asyncpg.Connection | None = None
        self._listeners: list[tuple[str, Callable[[], None]]] = []
        self._relisten: asyncio.Task[None] | None = None
        self._closing = False

    @classmethod
    async def connect(cls, url: str, *, min_size: int = POOL_MIN, max_size: int = POOL_MAX) -> PostgresDatabase:
        """Raises DatabaseOpenError when there is no PostgreSQL to reach there, or it refuses us."""
        try:
            pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, reset=_keep_session)
        except (OSError, asyncpg.PostgresError, asyncpg.ClientConfigurationError) as exc:
            raise DatabaseOpenError("DATABASE_URL", f"cannot connect to PostgreSQL at {_server(url)}",
                                    _connect_problem(exc)) from None
        return cls(pool, url)

    async def close(self) -> None:
        self._closing = True
        if self._relisten is not None:
            self._relisten.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relisten
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        await self._pool.close()

    # -- LISTEN / NOTIFY ---------------------------------------------------------------------------------

    async def listen(self, channel: str, callback: Callable[[], None]) -> None:
        self._listeners.append((channel, callback))
        if self._listener is None:
            await self._open_listener()
        else:
            await self._listener.add_listener(channel, self._heard(callback))

    @staticmethod
    def _heard(callback: Callable[[], None]) -> Callable[..., None]:
        def heard(connection: object, pid: int, channel: str, payload: str) -> None:
            callback()
        return heard

    async def _open_listener(self) -> None:
        conn = await asyncpg.connect(self._url)
        for channel, callback in self._listeners:
            await conn.add_listener(channel, self._heard(callback))
        conn.add_termination_listener(self._lost)
        self._listener = conn

    def _lost(self, connection: object) -> None:
        if self._closing:
            return
        log.warning("lost the connection that listens for other processes' news; opening it again")
        self._listener = None
        self._relisten = asyncio.create_task(self._listen_again(), name="postgresql-listen")

    async def _listen_again(self) -> None:
        while not self._closing:
            await asyncio.sleep(LISTEN_RETRY_S)
            try:
                await self._open_listener()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("listening again failed (%s); trying again in %.0f s", exc, LISTEN_RETRY_S)
                continue
            for _, callback in self._listeners:
                callback()  # whatever was announced while nobody listened
            return

    # -- running statements ------------------------------------------------------------------------------

    async def _run(self, conn: Any, statements: Sequence[Statement]) -> list[Any]:
        results: list[Any] = []
        for st in statements:
            sql = self.dialect.sql(st.sql)
            if st.many is not None:
                rows = [tuple(r) for r in st.many]
                if rows:
                    await conn.executemany(sql, rows)
                results.append(None)
            elif st.fetch:
                results.append(await conn.fetch(sql, *st.params))
            else:
                results.append(_count(await conn.execute(sql, *st.params)))
        return results

    # -- transactions -------------------------------------------------------------------------------------

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        # A session lock, so on a connection of its own: closing it releases the lock whatever happened, and
        # no pooled connection ever carries session state (the pool does not reset them: `_keep_session`).
        async with self._held():
            conn = await asyncpg.connect(self._url)
            try:
                await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
                yield
            finally:
                await conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Batch]:
        current = _current_transaction()
        if current is not None:
            yield current
            return
        async with self._held(), self._pool.acquire() as conn:
            batch = Batch()
            self.round_trips.writes += 1
            await conn.execute(self.dialect.begin)
            await conn.execute("SELECT pg_advisory_xact_lock($1)", TRANSACTION_LOCK)
            marker = _open.set((asyncio.current_task(), batch))
            self._connections[id(batch)] = conn
            try:
                yield batch
                await self._flush(batch)
            except BaseException:
                if not conn.is_closed():
                    await conn.execute("ROLLBACK")
                raise
            finally:
                _open.reset(marker)
                self._connections.pop(id(batch), None)
            await conn.execute("COMMIT")
            batch._settle([])

    async def write(self, batch: Batch) -> None:
        if not batch.statements:
            batch._settle([])
            return
        self.round_trips.writes += 1
        # A batch goes out at once, not behind this process's write lock: PostgreSQL's row locks order it against
        # anything running meanwhile, in this process or another, as they already did across processes. (Behind
        # the lock a burst's /mute batches, a dozen exchanges with the server each, went one at a time: 250-300
        # /mute a second.) One statement is atomic on its own; several go inside BEGIN ... COMMIT.
        single = len(batch.statements) == 1
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                async with self._pool.acquire() as conn:
                    if single:
                        results = await self._run(conn, batch.statements)
                    else:
                        async with conn.transaction():
                            results = await self._run(conn, batch.statements)
                break
            except asyncpg.DeadlockDetectedError:
                # PostgreSQL rolled the whole batch back: nothing of it happened, so it can go again.
                if attempt == DEADLOCK_ATTEMPTS:
                    raise
                log.warning("a write batch was chosen to end a deadlock; sending it again")
        batch._settle(results)

    async def _flush(self, batch: Batch) -> None:
        if not batch.statements:
            return
        statements, pending = batch.statements, batch._pending
        batch.statements, batch._pending = [], []
        self.round_trips.writes += 1
        results = await self._run(self._connections[id(batch)], statements)
        for index, item in pending:
            item._set(results[index])

    # -- reads --------------------------------------------------------------------------------------------

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        batch = _current_transaction()
        if batch is not None:
            await self._flush(batch)
            self.round_trips.writes += 1
            conn = self._connections[id(batch)]
            return cast(list[Row], await conn.fetch(self.dialect.sql(sql), *params))
        self.round_trips.reads += 1
        return cast(list[Row], await self._pool.fetch(self.dialect.sql(sql), *params))

    async def peek(self, sql: str, params: Params = ()) -> list[Row]:
        return await self.fetchall(sql, params)

