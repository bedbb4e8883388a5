"""`mutebot demo` as a newcomer runs it: every step, exit 0."""

from __future__ import annotations

import asyncio
import json
import shlex
import signal
import subprocess
import sys
from pathlib import Path


def test_demo_runs_the_whole_journey(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "bot", "demo"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, check=False, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "✓ every step behaved as expected" in out
    for seen in ("Linked @user1", "Muted on X", "Page 2 of 3", "Import finished", "line 63: `not valid!`",
                 "[██████████] 100%", "now mutes @user46", "Capture preview: 11 accounts to add",
                 "1 linked by members of this server", "presses [Add]", "Capture added", "X account unlinked"):
        assert seen in out, seen
    assert "Traceback" not in out + result.stderr
    # Printed as Discord shows it: a code span's contents literally, so an escape there would show here too.
    assert "line 64: `nobody_known` — " in out and "`spam`" in out
    assert "\\_" not in out


async def test_keep_running_prints_commands_that_work_as_printed(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "demo", "--keep-running", cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = b""
        while b"Still running" not in line:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=90)
            assert line, "the demo ended without staying up"
        commands = [(await asyncio.wait_for(process.stdout.readline(), timeout=10)).decode() for _ in range(3)]
        answers = []
        for command in commands:
            assert command.startswith("  curl -s "), command
            # Run exactly what was printed, as a shell would split it.
            done = await asyncio.create_subprocess_exec(*shlex.split(command), stdout=asyncio.subprocess.PIPE)
            out, _ = await asyncio.wait_for(done.communicate(), timeout=20)
            assert done.returncode == 0, command
            answers.append(json.loads(out))
        me, muted, health = answers
        assert me["data"]["username"] == "user1"
        assert muted["data"]["muting"] is True
        assert health["status"] == "ok"
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    assert b"Traceback" not in stderr
