"""The `mutebot` command line: run, migrate, keygen, rotate-keys, sync-commands, check, sandbox, demo."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from bot.config import ConfigError, Purpose, Settings, load_settings, read_environment
from bot.logs import setup_logging
from bot.storage import Database, SchemaTooNewError
from bot.vault import TokenVault, VaultError

EXIT_CONFIG = 2


def _settings(purpose: Purpose) -> Settings:
    settings = load_settings(read_environment(), purpose)
    setup_logging(settings.log_level)
    return settings


async def _migrate(settings: Settings) -> int:
    db = await Database.open(settings.database_path)
    try:
        applied = await db.migrate()
        version = await db.schema_version()
    finally:
        await db.close()
    if applied:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied)
        print(f"{settings.database_path}: applied {names}; schema version {version}")
    else:
        print(f"{settings.database_path}: schema is up to date (version {version})")
    return 0


async def _rotate_keys(settings: Settings) -> int:
    vault = TokenVault(settings.token_encryption_keys)
    db = await Database.open(settings.database_path)
    try:
        await db.migrate()
        changed = await vault.rotate(db)
    finally:
        await db.close()
    print(f"re-encrypted {changed} stored secret(s) under the first key of TOKEN_ENCRYPTION_KEY")
    return 0


def _check() -> int:
    settings = load_settings(read_environment(), "check")
    print("configuration OK")
    print(f"  database:      {settings.database_path}")
    print(f"  redirect URI:  {settings.redirect_uri}  (register it in your X app)")
    mute_api = f", mute API {settings.x_mute_api}" if settings.x_auth == "oauth1" else ""
    print(f"  X auth:        {settings.x_auth}{mute_api}")
    print(f"  web server:    http://{settings.web_host}:{settings.web_port}")
    print(f"  encryption:    {len(settings.token_encryption_keys)} key(s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mutebot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", help="run the bot, the OAuth callback web server and the queue worker")
    sub.add_parser("migrate", help="apply pending migrations to DATABASE_PATH and exit")
    sub.add_parser("keygen", help="print a fresh key for TOKEN_ENCRYPTION_KEY")
    sub.add_parser("rotate-keys", help="re-encrypt every stored token under the first key")
    sync = sub.add_parser("sync-commands", help="push the slash commands to Discord now")
    sync.add_argument("--guild", type=int, metavar="ID", help="sync to one guild instead of globally")
    sub.add_parser("check", help="validate the configuration; exit 0 when usable, 2 when not")
    sandbox = sub.add_parser("sandbox", help="serve the bundled X API emulator")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8400)
    sandbox.add_argument("--users", type=int, default=50)
    sandbox.add_argument("--window-seconds", type=float, default=900.0)
    sandbox.add_argument("--client-id", default="mutebot-sandbox")
    sandbox.add_argument("--client-secret", default=None)
    sandbox.add_argument("--redirect-uri", action="append", default=None, metavar="URI")
    demo = sub.add_parser("demo", help="the whole journey against the bundled emulator and stand-in")
    demo.add_argument("--keep-running", action="store_true", help="leave the emulator and stand-in up")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_CONFIG
    except SchemaTooNewError as exc:
        print(f"mutebot: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except VaultError as exc:
        print(f"mutebot: TOKEN_ENCRYPTION_KEY: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    command: str = args.command
    if command == "keygen":
        print(TokenVault.generate_key())
        return 0
    if command == "check":
        return _check()
    if command == "migrate":
        return asyncio.run(_migrate(_settings("migrate")))
    if command == "rotate-keys":
        settings = _settings("rotate-keys")
        # Opening a mistyped path would create an empty database and report "re-encrypted 0".
        if not settings.database_path.is_file():
            print(f"mutebot rotate-keys: DATABASE_PATH: there is no database at {settings.database_path}; "
                  "set DATABASE_PATH to the bot's database file", file=sys.stderr)
            return EXIT_CONFIG
        return asyncio.run(_rotate_keys(settings))
    if command == "sandbox":
        from bot.sandbox.x_emulator import run_sandbox

        if args.users < 1 or args.window_seconds <= 0:
            print("mutebot sandbox: --users must be at least 1 and --window-seconds positive", file=sys.stderr)
            return EXIT_CONFIG
        return run_sandbox(
            host=args.host,
            port=args.port,
            users=args.users,
            window_seconds=args.window_seconds,
            client_id=args.client_id,
            client_secret=args.client_secret,
            redirect_uris=args.redirect_uri or ["http://127.0.0.1:8080/oauth/callback"],
        )
    if command == "run":
        from bot.runtime import run_bot

        return run_bot(_settings("run"))
    if command == "sync-commands":
        from bot.runtime import sync_commands

        return sync_commands(_settings("sync-commands"), guild_id=args.guild)
    if command == "demo":
        from bot.demo import run_demo

        return run_demo(keep_running=args.keep_running)
    raise AssertionError(command)
