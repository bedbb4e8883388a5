"""ThrowawayPostgres: a PostgreSQL cluster in a temporary directory on 127.0.0.1, for tests and benchmarks.

It uses the server of Debian's `postgresql` package (or whatever `initdb` is on PATH), started with durability
off (nothing in it outlives the run). PostgreSQL refuses to run as root, so under root the cluster belongs to
the `postgres` user the package creates, and its commands run through `runuser`.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from itertools import count
from pathlib import Path

import asyncpg

from bot.sandbox.ports import free_port

USER = "mutebot"
SERVER_USER = "postgres"  # who owns the cluster when we are root


def server_binaries() -> Path | None:
    """The folder with initdb and pg_ctl: from PATH, else the newest under /usr/lib/postgresql; None if absent."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    return Path(candidates[-1]).parent if candidates else None


def unavailable_reason() -> str | None:
    """Why a throwaway cluster cannot be started here, in a few words; None when it can."""
    if server_binaries() is None:
        return "no PostgreSQL server is installed (initdb not found; Debian's package is `postgresql`)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root, and there is no `{SERVER_USER}` user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root, and there is no `runuser` to start the server as another user"
    return None


class ThrowawayPostgres:
    """`start()`, then `await new_database()` for an empty database's URL as often as needed; `stop()`."""

    def __init__(self) -> None:
        self.port = 0
        self._root: Path | None = None
        self._names = count(1)
        self._bin = server_binaries()

    @property
    def admin_url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str) -> None:
        if self._bin is None:
            raise RuntimeError(unavailable_reason() or "no PostgreSQL server")
        argv = [str(self._bin / command[0]), *command[1:]]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", SERVER_USER, "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise RuntimeError(f"{command[0]} failed ({result.returncode}): {result.stderr.strip() or result.stdout}")

    def start(self) -> ThrowawayPostgres:
        reason = unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
        self._root = Path(tempfile.mkdtemp(prefix="mutebot-pg-"))
        if os.geteuid() == 0:
            server = pwd.getpwnam(SERVER_USER)
            os.chown(self._root, server.pw_uid, server.pw_gid)
        data = self._root / "data"
        self._run("initdb", "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
        self.port = free_port()
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off"
                   " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "start", "-D", str(data), "-w", "-t", "30", "-l", str(self._root / "server.log"),
                  "-o", options)
        return self

    async def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = f"mutebot_{os.getpid()}_{next(self._names)}"
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)

    def stop(self) -> None:
        if self._root is None:
            return
        try:
            self._run("pg_ctl", "stop", "-D", str(self._root / "data"), "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
