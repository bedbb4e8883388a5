"""The `mutebot` command line: run, migrate, migrate-to, keygen, rotate-keys, sync-commands, check, sandbox, demo."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import bot
from bot.config import (
    DEFAULTS,
    ConfigError,
    Purpose,
    Settings,
    StartupError,
    database_url_problem,
    listen_problem,
    load_settings,
    read_environment,
)
from bot.logs import setup_logging
from bot.secrets import redact_url
from bot.store import AccountStore, Database, SchemaTooNewError
from bot.store.database import DatabaseOpenError
from bot.vault import TokenVault, VaultError

EXIT_CONFIG = 2


def _settings(purpose: Purpose) -> Settings:
    settings = load_settings(read_environment(), purpose)
    setup_logging(settings.log_level)
    return settings


async def _migrate(settings: Settings) -> int:
    db = await Database.open(settings.database)
    try:
        applied = await db.migrate()
        version = await db.schema_version()
    finally:
        await db.close()
    if applied:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied)
        print(f"{settings.database_shown}: applied {names}; schema version {version}")
    else:
        print(f"{settings.database_shown}: schema is up to date (version {version})")
    return 0


async def _migrate_to(settings: Settings, url: str) -> int:
    from bot.replies import counted
    from bot.store.transfer import SchemasDifferError, TargetNotEmptyError, copy_into_empty

    shown = redact_url(url)
    source = await Database.open(str(settings.database_path))
    try:
        await source.migrate()  # what `mutebot run` would do first: both at the same schema
        target = await Database.open(url)
        try:
            await target.migrate()
            copied = await copy_into_empty(source, target)
        finally:
            await target.close()
    except (TargetNotEmptyError, SchemasDifferError) as exc:
        print(f"mutebot migrate-to: {shown}: {exc}; nothing was copied", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        await source.close()
    print(f"copied {counted(copied.rows, 'row')} of {counted(copied.tables, 'table')} from {settings.database_path} "
          f"to {shown}; set DATABASE_URL to it to run there")
    return 0


async def _rotate_keys(settings: Settings) -> int:
    vault = TokenVault(settings.token_encryption_keys)
    db = await Database.open(settings.database)
    try:
        await db.migrate()
        changed = await vault.rotate(AccountStore(db))
    finally:
        await db.close()
    from bot.replies import counted

    print(f"re-encrypted {counted(changed, 'stored secret')} under the first key of TOKEN_ENCRYPTION_KEY")
    return 0


def _check() -> int:
    from bot.replies import counted

    settings = load_settings(read_environment(), "check")
    print("configuration OK")
    print(f"  database:      {settings.database_shown}")
    print(f"  redirect URI:  {settings.redirect_uri}  (register it in your X app)")
    mute_api = f", mute API {settings.x_mute_api}" if settings.x_auth == "oauth1" else ""
    print(f"  X auth:        {settings.x_auth}{mute_api}")
    print(f"  web server:    http://{settings.web_host}:{settings.web_port}")
    print(f"  encryption:    {counted(len(settings.token_encryption_keys), 'key')}")
    metrics = f"http://{settings.web_host}:{settings.metrics_port}/metrics" if settings.metrics_port else "off"
    print(f"  metrics:       {metrics}")
    print(f"  shards:        {settings.shards_shown}")
    return 0


SANDBOX_REDIRECT_URI = "http://127.0.0.1:8080/oauth/callback"  # `mutebot run`'s callback with the default WEB_PORT

# Each command's one line: its entry in `mutebot --help` and the description of `mutebot COMMAND --help`.
COMMANDS = {
    "run": "run the bot: the Discord connection, the OAuth callback web server and the action-queue worker; "
           "applies pending migrations first",
    "migrate": "apply pending migrations to the database (DATABASE_URL, else DATABASE_PATH) and exit",
    "migrate-to": "copy every table of the SQLite database at DATABASE_PATH into an empty PostgreSQL database, "
                  "in one transaction (both are migrated first; a target holding data is refused)",
    "keygen": "print a fresh key for TOKEN_ENCRYPTION_KEY",
    "rotate-keys": "re-encrypt every stored token under the first key of TOKEN_ENCRYPTION_KEY",
    "sync-commands": "push the slash commands to Discord now, globally or to one guild",
    "check": "validate the configuration and print every problem at once; exit 0 when usable, 2 when not",
    "sandbox": "serve the bundled X API emulator on a local port, for trying the bot without X",
    "demo": "the whole member and moderator journey against the bundled X emulator and Discord stand-in, "
            "printed step by step; needs no credentials",
}
CONFIGURATION = (
    "Configuration comes from environment variables, also read from .env in the working directory (the environment "
    "wins); `mutebot check` validates it, and the README's Configuration section lists every variable."
)


def _reads(*names: str) -> str:
    """An epilog naming the variables a command reads, with their defaults."""
    named = ", ".join(f"{name} (default: {DEFAULTS[name]})" if name in DEFAULTS else name for name in names)
    return f"Reads {named} from the environment, also from .env in the working directory (the environment wins)."
SANDBOX_EPILOG = (
    "Point the bot at it with X_API_BASE=http://HOST:PORT and X_AUTHORIZE_URL=http://HOST:PORT/i/oauth2/authorize. "
    "The authorization page lets a person choose the account to approve as; adding login=USERNAME to its URL "
    "approves as that account at once, deny=1 denies. Runs until interrupted."
)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's defaults in every option's help, except where there is no default to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mutebot", description=bot.__doc__, epilog=CONFIGURATION, formatter_class=_HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"mutebot {bot.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, epilog: str | None = CONFIGURATION) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=COMMANDS[name], description=COMMANDS[name], epilog=epilog,
                              formatter_class=_HelpFormatter)

    command("run")
    command("migrate", epilog=_reads("DATABASE_URL", "DATABASE_PATH"))
    migrate_to = command("migrate-to", epilog=_reads("DATABASE_PATH"))
    migrate_to.add_argument("url", metavar="DATABASE_URL",
                            help="the PostgreSQL database to copy into, postgresql://user:password@host:port/dbname")
    command("keygen", epilog=None)
    command("rotate-keys", epilog=_reads("DATABASE_URL", "DATABASE_PATH", "TOKEN_ENCRYPTION_KEY"))
    sync = command("sync-commands", epilog=_reads("DISCORD_TOKEN", "DISCORD_API_BASE", "DISCORD_GATEWAY_URL"))
    sync.add_argument("--guild", type=int, metavar="ID",
                      help="push to this guild only (its commands update at once); without it, globally")
    command("check")
    sandbox = command("sandbox", epilog=SANDBOX_EPILOG)
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sandbox.add_argument("--port", type=int, default=8400, help="port to listen on")
    sandbox.add_argument("--users", type=int, default=50, help="how many accounts to seed, named user1 … userN")
    sandbox.add_argument("--window-seconds", type=float, default=900.0, metavar="SECONDS",
                         help="length of every rate-limit window; X's limits per window stay as X has them")
    sandbox.add_argument("--client-id", default="mutebot-sandbox", metavar="ID",
                         help="the OAuth 2.0 client id to register: the bot's X_CLIENT_ID")
    sandbox.add_argument("--client-secret", default=None, metavar="SECRET",
                         help="make the client confidential with this secret: the bot's X_CLIENT_SECRET "
                              "(default: a public client)")
    sandbox.add_argument("--redirect-uri", action="append", default=None, metavar="URI",
                         help="a redirect URI the client may use, as the bot's PUBLIC_BASE_URL + /oauth/callback; "
                              "repeat for several; any other is refused, as X does "
                              f"(default: {SANDBOX_REDIRECT_URI})")
    demo = command("demo", epilog=None)
    demo.add_argument("--keep-running", action="store_true",
                      help="after the journey, leave the emulator and the stand-in up to try by hand")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_CONFIG
    except StartupError as exc:
        print(f"mutebot: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (SchemaTooNewError, DatabaseOpenError) as exc:  # run, migrate, rotate-keys: where the database opens
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
    if command == "migrate-to":
        settings = _settings("migrate")
        problems = [p for p in (database_url_problem(args.url),) if p]
        if not settings.database_path.is_file():  # opening a mistyped path would create an empty database
            problems.append(f"DATABASE_PATH: there is no database at {settings.database_path}; set DATABASE_PATH "
                            "to the bot's database file")
        if problems:
            raise ConfigError([p.replace("DATABASE_URL:", "migrate-to DATABASE_URL:", 1) for p in problems])
        return asyncio.run(_migrate_to(settings, args.url))
    if command == "rotate-keys":
        settings = _settings("rotate-keys")
        # Opening a mistyped path would create an empty database and report "re-encrypted 0".
        if settings.database_url is None and not settings.database_path.is_file():
            print(f"mutebot rotate-keys: DATABASE_PATH: there is no database at {settings.database_path}; "
                  "set DATABASE_PATH to the bot's database file", file=sys.stderr)
            return EXIT_CONFIG
        return asyncio.run(_rotate_keys(settings))
    if command == "sandbox":
        from bot.sandbox.x_emulator import run_sandbox

        if args.users < 1 or args.window_seconds <= 0:
            print("mutebot sandbox: --users must be at least 1 and --window-seconds positive", file=sys.stderr)
            return EXIT_CONFIG
        if problem := listen_problem(args.host, args.port):
            option = "--host" if problem.startswith(args.host) else "--port"
            print(f"mutebot sandbox: {option}: cannot listen on {args.host}:{args.port} ({problem}); "
                  + ("give an address of this machine with --host" if option == "--host" else
                     "stop what uses that port, or choose another with --port"), file=sys.stderr)
            return EXIT_CONFIG
        return run_sandbox(
            host=args.host,
            port=args.port,
            users=args.users,
            window_seconds=args.window_seconds,
            client_id=args.client_id,
            client_secret=args.client_secret,
            redirect_uris=args.redirect_uri or [SANDBOX_REDIRECT_URI],
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
