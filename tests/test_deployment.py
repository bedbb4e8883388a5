"""The deployment files, checked without Docker: the image's entrypoint and health check against what the package
provides, and the compose file and systemd unit against the image."""

from __future__ import annotations

import configparser
import http.server
import importlib.metadata
import json
import os
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from bot.cli import build_parser
from bot.config import load_settings
from bot.sandbox.harness import free_port
from bot.vault import TokenVault

ROOT = Path(__file__).resolve().parents[1]
EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 - inside a container, so that a published port reaches the server


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined and comments dropped."""
    joined, pending = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends in a continuation"
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in joined]


def only(name: str) -> str:
    [value] = [args for instruction, args in instructions() if instruction == name]
    return value


def env() -> dict[str, str]:
    out: dict[str, str] = {}
    for instruction, args in instructions():
        if instruction == "ENV":
            out.update(part.split("=", 1) for part in shlex.split(args))
    return out


def healthcheck_command() -> list[str]:
    args = only("HEALTHCHECK")
    options, _, command = args.partition("CMD ")
    assert "--timeout=" in options
    argv: list[str] = json.loads(command)  # exec form: no shell in the way
    return argv


def test_the_image_is_slim_python_3_11_and_runs_as_a_user() -> None:
    [(first, base)] = instructions()[:1]
    assert (first, base) == ("FROM", "python:3.11-slim")
    steps = [instruction for instruction, _ in instructions()]
    user = only("USER")
    assert user not in ("root", "0")
    assert steps.index("USER") > max(i for i, step in enumerate(steps) if step == "RUN")  # nothing runs as root after
    assert f"useradd --system --uid 10001 --user-group --home-dir /data --no-create-home {user}" in only("RUN")


def test_the_database_is_on_the_data_volume() -> None:
    assert env()["DATABASE_PATH"] == "/data/mutebot.sqlite3"
    assert only("VOLUME") in ("/data", '["/data"]')
    # owned by the bot's user before it becomes a volume, so a fresh named volume is writable
    assert f"chown {only('USER')}:{only('USER')} /data" in only("RUN")
    steps = [instruction for instruction, _ in instructions()]
    assert steps.index("RUN") < steps.index("VOLUME")


def test_the_image_copies_everything_pip_install_needs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {package.split(".")[0] for package in project["tool"]["setuptools"]["packages"]}
    needed |= {"pyproject.toml", project["project"]["readme"], *project["project"]["license-files"]}
    copied: set[str] = set()
    for instruction, args in instructions():
        if instruction == "COPY":
            *sources, _destination = args.split()
            copied |= set(sources)
    assert needed <= copied
    assert all((ROOT / source).exists() for source in copied)
    assert ".env" not in copied
    assert "pip install ." in only("RUN")


def test_the_entrypoint_is_the_packages_console_script_running_the_bot() -> None:
    command = json.loads(only("ENTRYPOINT")) + json.loads(only("CMD"))
    assert command == ["mutebot", "run"]
    [script] = importlib.metadata.entry_points(group="console_scripts", name="mutebot")
    assert script.value == "bot.cli:main"
    assert (Path(sys.executable).parent / "mutebot").is_file()  # what `pip install` put on PATH
    assert build_parser().parse_args(command[1:]).command == "run"


def test_the_server_listens_where_the_published_port_reaches_it() -> None:
    assert env()["WEB_HOST"] == EVERY_INTERFACE
    assert only("EXPOSE") == env()["WEB_PORT"] == "8080"


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        body = json.dumps({"status": "ok" if self.status == 200 else "unavailable"}).encode()
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[_Health]]]:
    handler = type("Health", (_Health,), {"status": 200, "paths": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def run_healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    argv = healthcheck_command()
    assert argv[0] == "python"  # the image's interpreter; here, this one
    return subprocess.run([sys.executable, *argv[1:]], env={**os.environ, "WEB_PORT": str(port)},
                          capture_output=True, text=True, timeout=30, check=False)


def test_the_healthcheck_passes_while_healthz_answers_200(health_server: tuple[int, type[_Health]]) -> None:
    port, handler = health_server
    result = run_healthcheck(port)
    assert result.returncode == 0, result.stderr
    assert handler.paths == ["/healthz"]


def test_the_healthcheck_fails_when_healthz_answers_503(health_server: tuple[int, type[_Health]]) -> None:
    port, handler = health_server
    handler.status = 503
    result = run_healthcheck(port)
    assert result.returncode == 1
    assert "HTTP Error 503" in result.stderr


def test_the_healthcheck_fails_when_nothing_answers() -> None:
    assert run_healthcheck(free_port()).returncode == 1


def test_compose_uses_the_image_with_its_volume_and_the_environment() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    # `docker compose up` starts the services outside any profile: this one alone, on SQLite.
    [default] = [name for name, service in compose["services"].items() if "profiles" not in service]
    assert default == "mutebot"
    service = compose["services"]["mutebot"]
    assert service["build"] == "."
    assert service["env_file"] == ".env"
    assert service["environment"]["DATABASE_PATH"] == env()["DATABASE_PATH"]
    assert service["environment"]["WEB_HOST"] == EVERY_INTERFACE
    port = service["environment"]["WEB_PORT"]
    assert service["ports"] == [f"127.0.0.1:{port}:{port}"]
    [volume] = service["volumes"]
    name, mount = volume.split(":")
    assert mount == "/data" and name in compose["volumes"]


def test_compose_postgresql_profile_runs_every_shard_once_across_two_processes_on_one_database() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = {name: s for name, s in compose["services"].items() if s.get("profiles") == ["postgresql"]}
    postgres = services.pop("postgres")
    assert postgres["image"].startswith("postgres:")
    [data] = postgres["volumes"]
    assert data.split(":")[0] in compose["volumes"] and data.endswith(":/var/lib/postgresql/data")
    assert "pg_isready" in postgres["healthcheck"]["test"]
    user, database = postgres["environment"]["POSTGRES_USER"], postgres["environment"]["POSTGRES_DB"]
    assert len(services) == 2
    shards: list[int] = []
    counts: set[int | None] = set()
    published: set[str] = set()
    for name, service in services.items():
        assert service["image"] == compose["services"]["mutebot"]["image"] and service["env_file"] == ".env"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        environment = {key: str(value) for key, value in service["environment"].items()}
        url = environment["DATABASE_URL"].replace("${POSTGRES_PASSWORD:-}", "secret")
        assert url == f"postgresql://{user}:secret@postgres:5432/{database}", name
        # What `mutebot check` would say of it, with the rest of a configuration from .env.
        settings = load_settings({"DISCORD_TOKEN": "t", "X_CLIENT_ID": "c", "PUBLIC_BASE_URL": "https://b.example",
                                  "TOKEN_ENCRYPTION_KEY": TokenVault.generate_key(), **environment,
                                  "DATABASE_URL": url}, "check")
        assert settings.shard_ids is not None and settings.web_host == EVERY_INTERFACE
        shards += settings.shard_ids
        counts.add(settings.shard_count)
        [port] = service["ports"]
        assert port.startswith("127.0.0.1:") and port.endswith(f":{settings.web_port}")
        published.add(port.split(":")[1])
    [count] = counts
    assert sorted(shards) == list(range(count or 0)) and count == 4  # every shard, each in one process
    assert len(published) == 2
    assert sum(1 for s in services.values() if "build" in s) == 1  # the image is built once


def test_the_systemd_unit_runs_the_bot_where_dotenv_is_read() -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((ROOT / "deploy" / "mutebot.service").read_text())
    service = unit["Service"]
    workdir = service["WorkingDirectory"]
    assert service["ExecStart"] == f"{workdir}/.venv/bin/mutebot run"
    assert service["EnvironmentFile"].startswith("-")  # optional
    assert service["RestartPreventExitStatus"] == "2"  # a configuration problem: restarting will not fix it
    assert workdir in service["ReadWritePaths"].split()
    assert unit["Install"]["WantedBy"] == "multi-user.target"
