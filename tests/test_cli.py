"""The command line as an operator meets it: quiet start-up, --version, help texts."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from bot.logs import VoiceNoticeFilter


def python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60,
                          check=False)


def test_importing_the_bot_and_making_a_client_prints_nothing(tmp_path: Path) -> None:
    # discord.Client() is where discord.py logs its voice notices (seen once a handler is installed, as
    # `mutebot run` does); authlib warns when its httpx part is first imported.
    code = (
        "import logging; logging.basicConfig()\n"
        "import bot.runtime, discord, authlib.integrations.httpx_client\n"
        "discord.Client(intents=discord.Intents.default())\n"
        "from authlib.deprecate import deprecate\n"
        "deprecate('something else')\n"  # authlib's other warnings still reach the operator
    )
    result = python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "sys:1: AuthlibDeprecationWarning: something else\n"


def test_the_voice_filter_drops_exactly_the_voice_notices() -> None:
    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("discord.client", logging.WARNING, __file__, 1, message, None, None)

    voice = VoiceNoticeFilter()
    assert not voice.filter(record("PyNaCl is not installed, voice will NOT be supported"))
    assert not voice.filter(record("davey is not installed, voice will NOT be supported"))
    assert voice.filter(record("Shard ID None has stopped responding to the gateway."))
    assert any(isinstance(f, VoiceNoticeFilter) for f in logging.getLogger("discord.client").filters)
