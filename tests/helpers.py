"""Helpers the end-to-end tests share."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from bot.sandbox.polling import until

__all__ = ["at_rest", "until"]


async def at_rest(directory: Path, database_url: str | None, *, prefix: str = "mutebot.sqlite3") -> bytes:
    """Everything the database holds: the SQLite files in `directory` (checkpoint first), or on PostgreSQL every
    value of every row of every table (bytes as stored, the rest as text)."""
    if database_url is None:
        return b"".join(p.read_bytes() for p in directory.iterdir() if p.name.startswith(prefix))
    conn = await asyncpg.connect(database_url)
    try:
        held: list[bytes] = []
        tables = await conn.fetch("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        assert tables, "the database has no tables"
        for table in tables:
            for row in await conn.fetch(f'SELECT * FROM "{table[0]}"'):  # noqa: S608 - names from the catalogue
                held += [v if isinstance(v, bytes) else str(v).encode() for v in row.values()]
        return b"\n".join(held)
    finally:
        await conn.close()
