"""The one async storage layer: an aiosqlite connection, migrations, and serialised transactions."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

log = logging.getLogger(__name__)

Params = Sequence[Any] | dict[str, Any]
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class SchemaTooNewError(Exception):
    """The database was migrated by a newer mutebot than this one."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def bundled_migrations() -> list[Migration]:
    """The numbered SQL files shipped in the `migrations` package, in order."""
    found: list[Migration] = []
    for entry in resources.files("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers in {versions}")
    return found


# Which task currently holds the transaction: nested calls from the same task run inside it.
_holder: contextvars.ContextVar[object | None] = contextvars.ContextVar("mutebot_db_holder", default=None)
_in_transaction: contextvars.ContextVar[bool] = contextvars.ContextVar("mutebot_db_txn", default=False)


class Database:
    """One SQLite connection (WAL, foreign keys, busy timeout) shared by the whole process.

    SQLite allows one writer; an asyncio lock serialises transactions so that statements of
    different coroutines never interleave inside someone else's BEGIN ... COMMIT.
    """

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str) -> Database:
        path = Path(path)
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(str(path), isolation_level=None)
        conn.row_factory = aiosqlite.Row
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA busy_timeout=5000")
        await conn.execute("PRAGMA synchronous=NORMAL")
        return cls(conn, path)

    async def close(self) -> None:
        await self._conn.close()

    @asynccontextmanager
    async def _held(self) -> AsyncIterator[None]:
        token = object()
        if _holder.get() is not None:
            yield
            return
        async with self._lock:
            reset = _holder.set(token)
            try:
                yield
            finally:
                _holder.reset(reset)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on error; re-entrant within one task."""
        if _in_transaction.get():
            yield self
            return
        async with self._held():
            await self._conn.execute("BEGIN IMMEDIATE")
            marker = _in_transaction.set(True)
            try:
                yield self
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            else:
                await self._conn.execute("COMMIT")
            finally:
                _in_transaction.reset(marker)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the last row id (inserts) or the changed row count."""
        async with self._held():
            cursor = await self._conn.execute(sql, params)
            try:
                return cursor.lastrowid if sql.lstrip()[:6].upper() == "INSERT" and cursor.lastrowid else (
                    cursor.rowcount
                )
            finally:
                await cursor.close()

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        async with self._held():
            await self._conn.executemany(sql, rows)

    async def fetchone(self, sql: str, params: Params = ()) -> aiosqlite.Row | None:
        async with self._held():
            cursor = await self._conn.execute(sql, params)
            try:
                row: aiosqlite.Row | None = await cursor.fetchone()
                return row
            finally:
                await cursor.close()

    async def fetchall(self, sql: str, params: Params = ()) -> list[aiosqlite.Row]:
        async with self._held():
            cursor = await self._conn.execute(sql, params)
            try:
                return list(await cursor.fetchall())
            finally:
                await cursor.close()

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    async def ping(self) -> bool:
        return bool(await self.fetchval("SELECT 1") == 1)

    # -- migrations ---------------------------------------------------------------------------

    async def schema_version(self) -> int:
        exists = await self.fetchval(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        )
        if not exists:
            return 0
        return int(await self.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))

    async def migrate(self, migrations: Sequence[Migration] | None = None) -> list[Migration]:
        """Apply pending migrations, each in its own transaction; returns the ones applied."""
        migrations = bundled_migrations() if migrations is None else list(migrations)
        known = migrations[-1].version if migrations else 0
        async with self._held():
            await self._conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            current = await self.schema_version()
            if current > known:
                raise SchemaTooNewError(
                    f"the database {self.path} has schema version {current}, but this mutebot knows only "
                    f"up to {known}; upgrade mutebot (or use a backup made before the upgrade)"
                )
            applied: list[Migration] = []
            for migration in migrations:
                if migration.version <= current:
                    continue
                async with self.transaction():
                    for statement in _split_sql(migration.sql):
                        await self._conn.execute(statement)
                    await self._conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                        (migration.version, migration.name, time.time()),
                    )
                log.info("applied migration %04d_%s", migration.version, migration.name)
                applied.append(migration)
            return applied


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements, so that each runs inside our own transaction
    (executescript would COMMIT on its own)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        buffer += line
        if buffer.strip().endswith(";") and sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements

