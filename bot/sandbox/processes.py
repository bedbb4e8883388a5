"""`mutebot run` in a subprocess, for tests and benchmarks with several bot processes on one database."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path


class BotProcess:
    """One `mutebot run` (`python -m bot run`) in a subprocess; its stderr kept in a file for when a check fails."""

    def __init__(self, name: str, env: dict[str, str], cwd: Path) -> None:
        self.name, self.env, self.cwd = name, env, cwd
        self.log = cwd / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", env=self.env, cwd=str(self.cwd),
                stdout=asyncio.subprocess.DEVNULL, stderr=log,
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def kill(self) -> None:
        """SIGKILL: no shutdown of any kind, as when a machine dies."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def stop(self, timeout: float = 15) -> None:
        """SIGTERM, as an operator stops it; SIGKILL if it has not exited after `timeout` seconds."""
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                await self.process.wait()
        except TimeoutError:
            await self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
