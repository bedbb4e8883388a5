"""Helpers the end-to-end tests share."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg


async def until(check: Callable[[], bool | Awaitable[bool]], *, timeout: float = 15, what: str = "the condition"
                ) -> None:
    """Wait for `check` (plain or async) to hold, polling; fail naming `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


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
