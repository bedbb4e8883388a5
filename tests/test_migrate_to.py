"""`mutebot migrate-to`: a bot's SQLite data moved into PostgreSQL, and the bot carrying on there as before."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from bot.sandbox.harness import Sandbox
from bot.sandbox.members import Attachment
from bot.sandbox.postgres import ThrowawayPostgres
from tests.test_cli import mutebot


async def test_migrate_to_copies_everything_and_the_bot_carries_on_on_postgresql(
    tmp_path: Path, postgresql: ThrowawayPostgres,
) -> None:
    url = await postgresql.new_database()
    async with Sandbox(tmp_path, on_sqlite=True) as sandbox:
        mod, alice = sandbox.member("mod", moderator=True), sandbox.member("alice")
        await sandbox.link(mod, "user1")
        await sandbox.link(alice, "user2")
        await alice.slash("mute", username="user5")
        await mod.slash("mutelist create", name="spam")
        await mod.slash("mutelist import", name="spam", file=Attachment("l.txt", b"user7\nuser8\n"))
        await sandbox.stop_bot()
        env = {"DATABASE_PATH": str(tmp_path / "mutebot.sqlite3")}

        refused = mutebot("migrate-to", "mysql://root:hunter2@db/m", cwd=tmp_path, env=env)
        assert refused.returncode == 2
        assert "  - migrate-to DATABASE_URL: must be a PostgreSQL URL" in refused.stderr
        assert "hunter2" not in refused.stderr
        missing = mutebot("migrate-to", url, cwd=tmp_path, env={"DATABASE_PATH": str(tmp_path / "nope.sqlite3")})
        assert missing.returncode == 2 and "DATABASE_PATH: there is no database at" in missing.stderr
        assert not (tmp_path / "nope.sqlite3").exists()

        copied = mutebot("migrate-to", url, cwd=tmp_path, env=env)
        assert copied.returncode == 0, copied.stderr
        assert copied.stdout.startswith("copied ") and " rows of " in copied.stdout
        again = mutebot("migrate-to", url, cwd=tmp_path, env=env)
        assert again.returncode == 2
        assert "it already holds data" in again.stderr and "nothing was copied" in again.stderr

        # The same bot, now on PostgreSQL: the links, the mutes, the lists are all there, and new rows get ids
        # after the copied ones.
        sandbox.database_url = url
        await sandbox.start_bot()
        status = await alice.slash("status")
        assert "@user2" in status.embeds[0]["description"]
        mutes = await alice.slash("mutes")
        assert "@user5" in str(mutes.embeds)
        shown = await alice.slash("mutelist show", name="spam")
        assert "@user7" in str(shown.embeds) and "@user8" in str(shown.embeds)
        created = await mod.slash("mutelist create", name="more")
        assert created.embeds[0]["title"] == "Mute list created", created.embeds
        await alice.slash("mutelist apply", name="spam")
        await alice.wait_for_dm(lambda m: bool(m.embeds) and str(m.embeds[0].get("title", "")).startswith("Finished"))
        assert set(sandbox.x.mutes_of("user2")) >= {sandbox.x.user(n).id for n in ("user5", "user7", "user8")}
    connection = await asyncpg.connect(url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM mute_lists") == 2
    finally:
        await connection.close()
