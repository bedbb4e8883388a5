"""Foundation: configuration, migrations, the token vault, log redaction and the CLI."""

from __future__ import annotations

import io
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings, read_environment
from bot.logs import redact, setup_logging
from bot.store import AccountStore, Database, Migration, SchemaTooNewError, bundled_migrations
from bot.vault import TokenVault

KEY_A = TokenVault.generate_key()
KEY_B = TokenVault.generate_key()
FULL_ENV = {
    "DISCORD_TOKEN": "discord-token",
    "X_CLIENT_ID": "client",
    "PUBLIC_BASE_URL": "https://bot.example/",
    "TOKEN_ENCRYPTION_KEY": KEY_A,
}


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", ""), "HOME": str(cwd)}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"WEB_PORT": "eighty", "LOG_LEVEL": "loud", "X_AUTH": "oauth3"}, "check")
    text = caught.value.render()
    names = ("DISCORD_TOKEN", "X_CLIENT_ID", "PUBLIC_BASE_URL", "TOKEN_ENCRYPTION_KEY", "WEB_PORT", "LOG_LEVEL")
    for name in (*names, "X_AUTH"):
        assert name in text


def test_valid_configuration_and_defaults() -> None:
    settings = load_settings(FULL_ENV, "run")
    assert settings.redirect_uri == "https://bot.example/oauth/callback"
    assert settings.discord_api_base == "https://discord.com/api/v10"
    assert settings.web_port == 8080 and settings.x_auth == "oauth2"
    assert "discord-token" not in repr(settings)
    assert KEY_A not in repr(settings)


def test_bad_key_is_named_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**FULL_ENV, "TOKEN_ENCRYPTION_KEY": f"{KEY_A},not-a-key"}, "run")
    assert "key 2 of 2" in caught.value.render()
    assert "not-a-key" not in caught.value.render()


def test_oauth1_needs_consumer_credentials_not_client_id() -> None:
    env = {k: v for k, v in FULL_ENV.items() if k != "X_CLIENT_ID"} | {"X_AUTH": "oauth1"}
    with pytest.raises(ConfigError) as caught:
        load_settings(env, "check")
    assert [p.split(":")[0] for p in caught.value.problems] == ["X_CONSUMER_KEY", "X_CONSUMER_SECRET"]


def test_environment_wins_over_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WEB_PORT=9000\nLOG_LEVEL=DEBUG\n")
    merged = read_environment({"WEB_PORT": "9100"}, tmp_path / ".env")
    assert merged["WEB_PORT"] == "9100" and merged["LOG_LEVEL"] == "DEBUG"


def test_check_in_an_empty_directory_exits_2_naming_the_variables(tmp_path: Path) -> None:
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 2
    for name in ("DISCORD_TOKEN", "X_CLIENT_ID", "PUBLIC_BASE_URL", "TOKEN_ENCRYPTION_KEY"):
        assert name in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_check_reads_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in FULL_ENV.items()))
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "discord-token" not in result.stdout


def test_migrate_with_only_database_path_then_again_does_nothing(tmp_path: Path) -> None:
    db_path = tmp_path / "data" / "bot.sqlite3"
    first = run_cli("migrate", cwd=tmp_path, env={"DATABASE_PATH": str(db_path)})
    assert first.returncode == 0, first.stderr
    assert "applied 0001_initial" in first.stdout
    second = run_cli("migrate", cwd=tmp_path, env={"DATABASE_PATH": str(db_path)})
    assert second.returncode == 0 and "up to date" in second.stdout
    tables = {r[0] for r in sqlite3.connect(db_path).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"linked_accounts", "oauth_states", "mute_lists", "mute_list_entries", "subscriptions", "actions",
            "audit_log", "cached_mutes", "schema_migrations"} <= tables


def test_keygen_prints_a_usable_key(tmp_path: Path) -> None:
    result = run_cli("keygen", cwd=tmp_path)
    assert result.returncode == 0
    TokenVault([result.stdout.strip()])


async def test_database_settings_and_newer_schema_refused(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "x.sqlite3")
    try:
        assert await db.fetchval("PRAGMA journal_mode") == "wal"
        assert await db.fetchval("PRAGMA foreign_keys") == 1
        assert await db.fetchval("PRAGMA busy_timeout") == 5000
        applied = await db.migrate()
        assert [m.version for m in applied] == [m.version for m in bundled_migrations()]
        assert await db.migrate() == []
        await db.execute("INSERT INTO schema_migrations VALUES (9999, 'future', 0)")
        with pytest.raises(SchemaTooNewError, match="9999"):
            await db.migrate()
    finally:
        await db.close()


async def test_a_failing_migration_leaves_nothing_behind(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "x.sqlite3")
    try:
        broken = [Migration(1, "ok", "CREATE TABLE a (x INTEGER);"),
                  Migration(2, "bad", "CREATE TABLE b (x INTEGER);\nINSERT INTO nowhere VALUES (1);")]
        with pytest.raises(sqlite3.OperationalError):
            await db.migrate(broken)
        assert await db.schema_version() == 1
        assert await db.fetchval("SELECT count(*) FROM sqlite_master WHERE name = 'b'") == 0
    finally:
        await db.close()


async def test_transactions_roll_back_and_nest(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "x.sqlite3")
    try:
        await db.migrate()
        with pytest.raises(RuntimeError):  # noqa: PT012 - the nesting is what is tested
            async with db.transaction():
                await db.execute("INSERT INTO meta VALUES ('a', '1')")
                async with db.transaction():
                    await db.execute("INSERT INTO meta VALUES ('b', '2')")
                raise RuntimeError("boom")
        assert await db.fetchval("SELECT count(*) FROM meta") == 0
    finally:
        await db.close()


async def test_tokens_never_stored_or_logged_in_plaintext_and_survive_rotation(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = setup_logging("DEBUG", logging.StreamHandler(stream))
    access, refresh = "AAAAplaintext-access-token-1234", "RRRRplaintext-refresh-token-5678"
    db_path = tmp_path / "vault.sqlite3"
    db = await Database.open(db_path)
    try:
        await db.migrate()
        vault = TokenVault([KEY_A])
        await db.execute(
            "INSERT INTO linked_accounts (discord_user_id, x_user_id, x_username, auth_kind, access_token,"
            " refresh_token, linked_at, updated_at) VALUES (1, '42', 'alice', 'oauth2', ?, ?, 0, 0)",
            (vault.encrypt(access), vault.encrypt(refresh)),
        )
        logging.getLogger("mutebot.test").info("Authorization: Bearer %s then refresh_token=%s", access, refresh)
        logging.getLogger("mutebot.test").info("body %s", {"access_token": access, "code": "abc123code"})
        await db.execute("PRAGMA wal_checkpoint(FULL)")
        rotated = TokenVault([KEY_B, KEY_A])
        assert await rotated.rotate(AccountStore(db)) == 2
        only_new = TokenVault([KEY_B])
        row = await db.fetchone("SELECT access_token, refresh_token FROM linked_accounts")
        assert row is not None
        assert only_new.decrypt(row["access_token"]).reveal() == access
        assert only_new.decrypt(row["refresh_token"]).reveal() == refresh
        await db.execute("PRAGMA wal_checkpoint(FULL)")
    finally:
        await db.close()
        logging.getLogger().removeHandler(handler)
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("vault.sqlite3"))
    for secret in (access, refresh):
        assert secret.encode() not in raw
        assert secret not in stream.getvalue()
    assert "abc123code" not in stream.getvalue()
    assert "[redacted]" in stream.getvalue()
    assert "Key" not in repr(only_new) and KEY_B not in repr(only_new)


@pytest.mark.parametrize(
    "text",
    [
        "GET /oauth/callback?state=s3cr3tstate&code=c0de-value",
        "refresh_token=abc.def-ghi",
        "Authorization: Bearer eyJhbGciOi.abc",
        '{"access_token": "tok-123-456", "token_type": "bearer"}',
        "grant_type=authorization_code&code_verifier=verifierverifier",
        "PATCH https://discord.com/api/v10/webhooks/1100/aW50ZXJhY3Rpb246MTIz/messages/@original",
        "POST /api/v10/interactions/1574/aW50ZXJhY3Rpb246MTIz/callback?with_response=true",
    ],
)
def test_redaction_patterns(text: str) -> None:
    cleaned = redact(text)
    for secret in ("s3cr3tstate", "c0de-value", "abc.def-ghi", "eyJhbGciOi.abc", "tok-123-456", "verifierverifier",
                   "aW50ZXJhY3Rpb246MTIz"):
        assert secret not in cleaned
