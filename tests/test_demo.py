"""`mutebot demo` as a newcomer runs it: every step, exit 0."""

from __future__ import annotations

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
                 "[██████████] 100%", "now mutes @user46", "X account unlinked"):
        assert seen in out, seen
    assert "Traceback" not in out + result.stderr
