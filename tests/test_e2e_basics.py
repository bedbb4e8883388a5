"""End to end through real discord.py: start-up, /status, linking, resume after a dropped socket."""

from __future__ import annotations

from pathlib import Path

from bot.sandbox.harness import Sandbox
from bot.sandbox.members import Member
from tests.conftest import BACKEND


async def test_status_when_not_linked_says_how(alice: Member) -> None:
    reply = await alice.slash("status")
    assert reply.ephemeral
    assert "not linked" in reply.embeds[0]["description"] and "/link" in reply.embeds[0]["description"]


async def test_link_then_status_shows_the_account(sandbox: Sandbox, alice: Member) -> None:
    page = await sandbox.link(alice, "user7")
    assert "Linked @user7" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    confirmation = (await alice.dms())[-1]
    assert confirmation.embeds[0]["title"] == "X account linked"
    reply = await alice.slash("status")
    embed = reply.embeds[0]
    assert "@user7" in embed["description"] and "https://x.com/user7" in embed["description"]
    assert embed.get("thumbnail", {}).get("url")


async def test_gateway_drop_resumes_and_keeps_answering(sandbox: Sandbox, alice: Member) -> None:
    await sandbox.discord.drop_gateway()
    reply = await alice.slash("status")
    assert "not linked" in reply.embeds[0]["description"]
    assert sandbox.discord.resumes >= 1


async def test_a_broken_cog_does_not_stop_the_others(tmp_path: Path) -> None:
    async with Sandbox(tmp_path, extensions=("tests.broken_cog", "cogs.linking", "cogs.muting")) as sandbox:
        assert sandbox.bot is not None and "tests.broken_cog" in sandbox.bot.failed_extensions
        reply = await sandbox.member("carol").slash("status")
        assert "not linked" in reply.embeds[0]["description"]


async def test_commands_sync_only_when_changed(tmp_path: Path) -> None:
    async with Sandbox(tmp_path) as sandbox:
        writes = sandbox.discord.command_writes
        assert writes == 1
        await sandbox.stop_bot()
        await sandbox.start_bot()
        assert sandbox.discord.command_writes == writes
        names = {c["name"] for c in sandbox.discord.commands[None]}
        assert {"link", "unlink", "status", "mute", "unmute", "mutes"} <= names


async def test_healthz(sandbox: Sandbox) -> None:
    response = await sandbox.http.get(f"{sandbox.public_base_url}/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


async def test_the_bot_runs_on_the_backend_the_suite_was_asked_for(sandbox: Sandbox) -> None:
    # MUTEBOT_TEST_BACKEND=postgresql (make test's second run, CI) must really put every sandbox on PostgreSQL.
    assert sandbox.bot is not None
    db = sandbox.bot.services.db
    assert db.dialect.name == BACKEND
    assert (sandbox.database_url is not None) == (BACKEND == "postgresql")
    assert await db.ping()
