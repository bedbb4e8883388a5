"""Fixtures that start the X emulator, the Discord stand-in and the real bot for end-to-end tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.sandbox.harness import Sandbox
from bot.sandbox.members import Member

# Every end-to-end test also checks what the bot sends Discord, against Discord's vendored spec: required.
Sandbox.check_discord_requests = True


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with Sandbox(tmp_path) as running:
        yield running


@pytest.fixture
def alice(sandbox: Sandbox) -> Member:
    return sandbox.member("alice")


@pytest.fixture
def bob(sandbox: Sandbox) -> Member:
    return sandbox.member("bob")


@pytest.fixture
def mod(sandbox: Sandbox) -> Member:
    return sandbox.member("mod", moderator=True)
