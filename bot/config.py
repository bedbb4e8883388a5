"""Configuration from the environment and `.env`, validated all at once (names fixed by INTERFACE.md)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from dotenv import dotenv_values

from bot.secrets import Secret, redact_url

Purpose = Literal["run", "migrate", "rotate-keys", "sync-commands", "check"]

DEFAULTS: dict[str, str] = {
    "DISCORD_API_BASE": "https://discord.com/api/v10",
    "DISCORD_GATEWAY_URL": "wss://gateway.discord.gg/",
    "X_API_BASE": "https://api.x.com",
    "X_AUTHORIZE_URL": "https://x.com/i/oauth2/authorize",
    "WEB_HOST": "127.0.0.1",
    "WEB_PORT": "8080",
    "DATABASE_PATH": "mutebot.sqlite3",
    "LOG_LEVEL": "INFO",
    "X_AUTH": "oauth2",
    "X_MUTE_API": "v2",
}

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(Exception):
    """Every configuration problem found, each naming its variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems

    def render(self) -> str:
        lines = ["mutebot: the configuration is not usable:"]
        lines += [f"  - {problem}" for problem in self.problems]
        lines.append("See .env.example and the README's configuration table.")
        return "\n".join(lines)


class StartupError(Exception):
    """Something the configuration asks for that this machine cannot give now (a port in use): one line that
    names the variable or option to change; the command exits 2."""


def listen_problem(host: str, port: int) -> str | None:
    """Why a server could not listen on `host`:`port` now, in a few words ("address already in use"); None
    when it can. Binds as asyncio's servers do (SO_REUSEADDR), so only a port that is really taken is refused."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"{host} is not an address of this machine ({exc.strerror})"
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            if os.name == "posix":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                return (exc.strerror or str(exc)).lower()
    return None


@dataclass(frozen=True)
class Settings:
    """Validated configuration. Secrets are wrapped so that no `repr` shows them."""

    discord_token: Secret | None = None
    discord_api_base: str = DEFAULTS["DISCORD_API_BASE"]
    discord_gateway_url: str = DEFAULTS["DISCORD_GATEWAY_URL"]
    x_client_id: str | None = None
    x_client_secret: Secret | None = None
    x_api_base: str = DEFAULTS["X_API_BASE"]
    x_authorize_url: str = DEFAULTS["X_AUTHORIZE_URL"]
    public_base_url: str | None = None
    web_host: str = DEFAULTS["WEB_HOST"]
    web_port: int = 8080
    database_path: Path = Path(DEFAULTS["DATABASE_PATH"])
    token_encryption_keys: tuple[Secret, ...] = field(default=())
    log_level: str = "INFO"
    x_auth: Literal["oauth2", "oauth1"] = "oauth2"
    x_consumer_key: str | None = None
    x_consumer_secret: Secret | None = None
    x_mute_api: Literal["v2", "v1.1"] = "v2"
    metrics_port: int | None = None
    database_url: Secret | None = None  # PostgreSQL instead of the file at database_path; may hold a password
    shard_count: int | None = None  # None: Discord's recommended count (GET /gateway/bot)
    shard_ids: tuple[int, ...] | None = None  # None: every shard of shard_count, in this process

    @property
    def shards_shown(self) -> str:
        """The shards this process runs, fit to print."""
        if self.shard_count is None:
            return "all, as many as Discord recommends"
        ids = self.shard_ids if self.shard_ids is not None else tuple(range(self.shard_count))
        return f"{', '.join(map(str, ids))} of {self.shard_count}"

    @property
    def database(self) -> str:
        """What `Database.open` takes: the PostgreSQL URL when there is one, else the SQLite file."""
        return self.database_url.reveal() if self.database_url else str(self.database_path)

    @property
    def database_shown(self) -> str:
        """The same, fit to print: a URL's password is left out."""
        return str(self.database_path) if self.database_url is None else redact_url(self.database_url.reveal())

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_base_url or ''}/oauth/callback"


def read_environment(environ: Mapping[str, str] | None = None, dotenv: Path | None = None) -> dict[str, str]:
    """The process environment over `.env` in the working directory: the environment wins."""
    path = dotenv if dotenv is not None else Path.cwd() / ".env"
    merged: dict[str, str] = {}
    if path.is_file():
        merged.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    merged.update(os.environ if environ is None else environ)
    return merged


def _url(problems: list[str], name: str, value: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        problems.append(f"{name}: must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
    elif not parts.hostname:
        problems.append(f"{name}: has no host name after {parts.scheme}://; give the whole URL, "
                        f"e.g. {parts.scheme}://host.example")
    return value


def _key_problem(index: int, count: int, key: str) -> str | None:
    """What is wrong with key `index` (1-based) of `count`, without echoing it; None when it is a Fernet key."""
    if not key:
        where = "a trailing comma" if index == count else "a leading comma" if index == 1 else "two commas in a row"
        return f"TOKEN_ENCRYPTION_KEY: key {index} is empty ({where}?)"
    try:
        Fernet(key.encode())
    except (ValueError, TypeError):
        return (
            f"TOKEN_ENCRYPTION_KEY: key {index} of {count} is not a Fernet key "
            "(32 url-safe base64-encoded bytes; `mutebot keygen` prints one)"
        )
    return None


def _database_path_problem(path: Path, *, may_create_directory: bool) -> str | None:
    """A mistyped DATABASE_PATH would otherwise become a fresh, empty database somewhere unexpected."""
    if path.is_dir():
        return f"DATABASE_PATH: {path} is a directory; name a file in it, e.g. {path / DEFAULTS['DATABASE_PATH']}"
    if not may_create_directory and not path.parent.is_dir():
        return f"DATABASE_PATH: the directory {path.parent} does not exist; create it, or correct the path"
    return None


def database_url_problem(url: str) -> str | None:
    """What is wrong with a DATABASE_URL, without echoing it (it may hold a password)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "DATABASE_URL: is not a URL (a port that is not a number, or a stray bracket?)"
    if parts.scheme not in ("postgresql", "postgres"):
        return ("DATABASE_URL: must be a PostgreSQL URL, postgresql://user:password@host:port/dbname "
                "(unset it to use the SQLite file at DATABASE_PATH)")
    if not parts.hostname and "host=" not in parts.query:
        return "DATABASE_URL: names no host; give postgresql://user:password@host:port/dbname"
    if not parts.path.strip("/"):
        return "DATABASE_URL: names no database; end it with /dbname"
    return None


def _shards(
    problems: list[str], raw_count: str | None, raw_ids: str | None
) -> tuple[int | None, tuple[int, ...] | None]:
    """SHARD_COUNT and SHARD_IDS, each problem naming its variable."""
    count: int | None = None
    if raw_count is not None:
        if not raw_count.isdigit() or int(raw_count) < 1:
            problems.append("SHARD_COUNT: must be a whole number of shards, 1 or more (or unset: Discord's "
                            "recommended count)")
        else:
            count = int(raw_count)
    if raw_ids is None:
        return count, None
    parts = [part.strip() for part in raw_ids.split(",")]
    if not all(part.isdigit() for part in parts):
        problems.append("SHARD_IDS: must be shard numbers separated by commas, e.g. 0,1")
        return count, None
    ids = tuple(int(part) for part in parts)
    if raw_count is None:
        problems.append("SHARD_IDS: needs SHARD_COUNT, the number of shards across every process")
    elif count is not None and (outside := [i for i in ids if i >= count]):
        problems.append(f"SHARD_IDS: shard {outside[0]} does not exist with SHARD_COUNT={count}; shards are "
                        f"numbered 0 to {count - 1}")
    if len(set(ids)) != len(ids):
        problems.append("SHARD_IDS: names a shard twice")
    return count, tuple(sorted(set(ids)))


def load_settings(env: Mapping[str, str], purpose: Purpose = "check") -> Settings:
    """Validate `env` for `purpose`; raise ConfigError listing every problem at once."""
    problems: list[str] = []

    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or DEFAULTS.get(name)

    def required(name: str, why: str) -> str | None:
        value = get(name)
        if value is None:
            problems.append(f"{name}: required {why}")
        return value

    needs_everything = purpose in ("run", "check")
    # Choices are read in any case, as LOG_LEVEL is.
    x_auth = (get("X_AUTH") or "oauth2").lower()
    if x_auth not in ("oauth2", "oauth1"):
        problems.append("X_AUTH: must be `oauth2` or `oauth1`")
        x_auth = "oauth2"
    x_mute_api = (get("X_MUTE_API") or "v2").lower()
    if x_mute_api not in ("v2", "v1.1"):
        problems.append("X_MUTE_API: must be `v2` or `v1.1`")
        x_mute_api = "v2"

    discord_token = required("DISCORD_TOKEN", "to connect to Discord") if needs_everything else get(
        "DISCORD_TOKEN"
    )
    if purpose == "sync-commands" and discord_token is None:
        problems.append("DISCORD_TOKEN: required to push commands to Discord")

    x_client_id = get("X_CLIENT_ID")
    if needs_everything and x_auth == "oauth2" and x_client_id is None:
        problems.append("X_CLIENT_ID: required with X_AUTH=oauth2 (the OAuth 2.0 client id of your X app)")
    consumer_key, consumer_secret = get("X_CONSUMER_KEY"), get("X_CONSUMER_SECRET")
    if needs_everything and x_auth == "oauth1":
        if consumer_key is None:
            problems.append("X_CONSUMER_KEY: required with X_AUTH=oauth1")
        if consumer_secret is None:
            problems.append("X_CONSUMER_SECRET: required with X_AUTH=oauth1")

    public_base_url = get("PUBLIC_BASE_URL")
    if public_base_url is None:
        if needs_everything:
            problems.append("PUBLIC_BASE_URL: required; the OAuth redirect URI is PUBLIC_BASE_URL/oauth/callback")
    else:
        public_base_url = _url(problems, "PUBLIC_BASE_URL", public_base_url.rstrip("/"), ("http", "https"))
        if urlsplit(public_base_url).query or urlsplit(public_base_url).fragment:
            problems.append("PUBLIC_BASE_URL: must not carry a query or fragment")
        if urlsplit(public_base_url).path.endswith("/oauth/callback"):
            problems.append(
                "PUBLIC_BASE_URL: give the base URL without /oauth/callback; "
                "the redirect URI is PUBLIC_BASE_URL + /oauth/callback"
            )

    keys: tuple[Secret, ...] = ()
    raw_keys = get("TOKEN_ENCRYPTION_KEY")
    if raw_keys is None:
        if needs_everything or purpose == "rotate-keys":
            problems.append("TOKEN_ENCRYPTION_KEY: required; create one with `mutebot keygen`")
    else:
        parts = [part.strip() for part in raw_keys.split(",")]
        problems += [p for i, part in enumerate(parts, start=1) if (p := _key_problem(i, len(parts), part))]
        keys = tuple(Secret(part) for part in parts)

    database_path = Path(get("DATABASE_PATH") or DEFAULTS["DATABASE_PATH"])
    database_url = get("DATABASE_URL")
    if database_url is not None and (url_problem := database_url_problem(database_url)):
        problems.append(url_problem)
    # `migrate` may create the directory (it is the step that makes a database); the long-running bot may not.
    if database_url is None and purpose in ("run", "check", "migrate") and (
        database_problem := _database_path_problem(database_path, may_create_directory=purpose == "migrate")
    ):
        problems.append(database_problem)

    web_port = 8080
    raw_port = get("WEB_PORT") or "8080"
    if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
        problems.append("WEB_PORT: must be a port number between 1 and 65535")
    else:
        web_port = int(raw_port)

    metrics_port: int | None = None
    raw_metrics_port = get("METRICS_PORT")
    if raw_metrics_port is not None:
        if not raw_metrics_port.isdigit() or not 0 < int(raw_metrics_port) < 65536:
            problems.append("METRICS_PORT: must be a port number between 1 and 65535 (or unset, for no metrics)")
        elif int(raw_metrics_port) == web_port:
            problems.append(f"METRICS_PORT: must differ from WEB_PORT ({web_port}); metrics have a port of their own")
        else:
            metrics_port = int(raw_metrics_port)

    shard_count, shard_ids = _shards(problems, get("SHARD_COUNT"), get("SHARD_IDS"))

    log_level = (get("LOG_LEVEL") or "INFO").upper()
    if log_level not in LOG_LEVELS:
        problems.append(f"LOG_LEVEL: must be one of {', '.join(LOG_LEVELS)}")
        log_level = "INFO"

    discord_api_base = _url(problems, "DISCORD_API_BASE", get("DISCORD_API_BASE") or "", ("http", "https"))
    gateway = _url(problems, "DISCORD_GATEWAY_URL", get("DISCORD_GATEWAY_URL") or "", ("ws", "wss"))
    x_api_base = _url(problems, "X_API_BASE", get("X_API_BASE") or "", ("http", "https"))
    x_authorize_url = _url(problems, "X_AUTHORIZE_URL", get("X_AUTHORIZE_URL") or "", ("http", "https"))

    if problems:
        raise ConfigError(problems)

    client_secret = get("X_CLIENT_SECRET")
    return Settings(
        discord_token=Secret(discord_token) if discord_token else None,
        discord_api_base=discord_api_base.rstrip("/"),
        discord_gateway_url=gateway,
        x_client_id=x_client_id,
        x_client_secret=Secret(client_secret) if client_secret else None,
        x_api_base=x_api_base.rstrip("/"),
        x_authorize_url=x_authorize_url,
        public_base_url=public_base_url,
        web_host=get("WEB_HOST") or "127.0.0.1",
        web_port=web_port,
        database_path=database_path,
        token_encryption_keys=keys,
        log_level=log_level,
        x_auth="oauth1" if x_auth == "oauth1" else "oauth2",
        x_consumer_key=consumer_key,
        x_consumer_secret=Secret(consumer_secret) if consumer_secret else None,
        x_mute_api="v1.1" if x_mute_api == "v1.1" else "v2",
        metrics_port=metrics_port,
        database_url=Secret(database_url) if database_url else None,
        shard_count=shard_count,
        shard_ids=shard_ids,
    )
