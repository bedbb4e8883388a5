"""Copying a whole SQLite database into an empty PostgreSQL one (`mutebot migrate-to`), table by table.

The one place that reads and writes every table without being its owner: it copies rows as they are, so it knows
no table's meaning, only the two schemas, which the same migrations made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.store.database import Database

_NOT_COPIED = ("schema_migrations",)  # each database records its own migrations


class TargetNotEmptyError(Exception):
    """The target already holds rows: copying would mix two bots' data."""

    def __init__(self, table: str, rows: int) -> None:
        super().__init__(f"it already holds data ({rows} rows in {table}); migrate-to copies only into an empty "
                         "database")
        self.table = table
        self.rows = rows


class SchemasDifferError(Exception):
    """The two databases do not have the same tables and columns (they should, after migrating both)."""


@dataclass(frozen=True)
class Copied:
    tables: int
    rows: int


async def _sqlite_tables(source: Database) -> dict[str, list[str]]:
    """Every table of the SQLite source with its columns, parents before the tables that refer to them."""
    names = [str(r["name"]) for r in await source.fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid")
        if str(r["name"]) not in _NOT_COPIED]
    columns = {name: [str(c["name"]) for c in await source.fetchall(f'PRAGMA table_info("{name}")')]
               for name in names}
    parents = {name: {str(f["table"]) for f in await source.fetchall(f'PRAGMA foreign_key_list("{name}")')}
               for name in names}
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and parents[n] <= set(ordered) | {n}]
        if not ready:
            raise SchemasDifferError("the source's foreign keys go round in a circle")
        ordered += ready
    return {name: columns[name] for name in ordered}


async def _postgres_columns(target: Database) -> dict[str, dict[str, str]]:
    rows = await target.fetchall(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema()"
    )
    found: dict[str, dict[str, str]] = {}
    for r in rows:
        found.setdefault(str(r["table_name"]), {})[str(r["column_name"])] = str(r["data_type"])
    return found


def _convert(value: Any, data_type: str) -> Any:
    """SQLite's loosely typed value as the PostgreSQL column takes it (asyncpg is strict about types)."""
    if value is None:
        return None
    if data_type in ("bigint", "integer", "smallint"):
        return int(value)
    if data_type in ("double precision", "real", "numeric"):
        return float(value)
    if data_type == "bytea":
        return bytes(value) if not isinstance(value, str) else value.encode()
    if data_type == "boolean":
        return bool(value)
    return value if isinstance(value, str) else str(value)


async def copy_into_empty(source: Database, target: Database) -> Copied:
    """Copy every row of `source` (SQLite, migrated) into `target` (PostgreSQL, migrated, empty), in one
    transaction; identity columns then continue after the highest id copied."""
    tables = await _sqlite_tables(source)
    target_columns = await _postgres_columns(target)
    for table, columns in tables.items():
        if table not in target_columns or set(columns) != set(target_columns[table]):
            raise SchemasDifferError(f"the table {table} differs between the two databases")
    for table in tables:
        held = int(await target.fetchval(f'SELECT count(*) FROM "{table}"') or 0)  # noqa: S608
        if held:
            raise TargetNotEmptyError(table, held)
    identities = [(str(r["table_name"]), str(r["column_name"])) for r in await target.fetchall(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
    ) if str(r["table_name"]) in tables]
    copied = 0
    async with target.batch() as batch:
        for table, columns in tables.items():
            types = [target_columns[table][c] for c in columns]
            rows = await source.fetchall(f'SELECT * FROM "{table}"')  # noqa: S608
            if not rows:
                continue
            names = ", ".join(f'"{c}"' for c in columns)
            marks = ", ".join("?" * len(columns))
            batch.executemany(
                f'INSERT INTO "{table}" ({names}) VALUES ({marks})',  # noqa: S608
                [tuple(_convert(row[c], t) for c, t in zip(columns, types, strict=True)) for row in rows],
            )
            copied += len(rows)
        for table, column in identities:
            batch.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"  # noqa: S608
                f' COALESCE((SELECT max("{column}") FROM "{table}"), 0) + 1, false)'
            )
    return Copied(len(tables), copied)
