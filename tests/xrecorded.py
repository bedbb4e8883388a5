"""Loads the vendored test data under tests/data: recorded X responses (vcrpy cassettes) and the OpenAPI specs."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

# Part of the repository (see each folder's SOURCES.md), so the tests need nothing outside it.
DATA_DIR = Path(__file__).resolve().parent / "data"


def x_api_dir() -> Path:
    return DATA_DIR / "x-api"


def discord_api_dir() -> Path:
    return DATA_DIR / "discord-api"


@dataclass(frozen=True)
class Exchange:
    """One recorded request and X's answer to it."""

    cassette: str
    index: int
    method: str
    path: str
    query: str
    request_body: str | None
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def name(self) -> str:
        return f"{self.cassette}#{self.index} {self.method} {self.path}"


def _text(raw: Any) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bytes):
        # vcrpy keeps gzip bodies as !!binary; some cassettes already hold the decoded text.
        return (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()
    return str(raw)


def load_exchanges(folder: Path | None = None) -> list[Exchange]:
    """Every interaction of every cassette, in recorded order."""
    folder = folder or x_api_dir() / "recorded"
    paths = sorted(folder.glob("*.yaml"))
    if not paths:  # an empty parametrization would pass silently
        raise FileNotFoundError(f"no recorded X responses (*.yaml) in {folder}")
    out: list[Exchange] = []
    for path in paths:
        cassette = yaml.safe_load(path.read_text())
        for i, item in enumerate(cassette["interactions"]):
            req, resp = item["request"], item["response"]
            url = urlsplit(req["uri"])
            body = req.get("body")
            text = _text(resp["body"].get("string"))
            headers = {k.lower(): v[0] if isinstance(v, list) else str(v) for k, v in resp["headers"].items()}
            out.append(Exchange(
                cassette=path.stem, index=i, method=req["method"], path=url.path, query=url.query,
                request_body=_text(body), status=resp["status"]["code"], headers=headers,
                body=json.loads(text) if text else None,
            ))
    return out


def load_openapi() -> dict[str, Any]:
    """X's OpenAPI spec."""
    spec: dict[str, Any] = json.loads((x_api_dir() / "openapi.json").read_text())
    return spec


def load_discord_openapi() -> dict[str, Any]:
    """Discord's OpenAPI spec."""
    spec: dict[str, Any] = json.loads((discord_api_dir() / "openapi.json").read_text())
    return spec


def shape_mismatches(recorded: Any, emulated: Any, where: str = "$") -> list[str]:
    """Differences in JSON structure: dict key sets, value types, and the shapes of list elements."""
    if isinstance(recorded, dict):
        if not isinstance(emulated, dict):
            return [f"{where}: object expected, got {type(emulated).__name__}"]
        problems = []
        if set(recorded) != set(emulated):
            problems.append(f"{where}: keys {sorted(recorded)} != {sorted(emulated)}")
        for key in set(recorded) & set(emulated):
            problems += shape_mismatches(recorded[key], emulated[key], f"{where}.{key}")
        return problems
    if isinstance(recorded, list):
        if not isinstance(emulated, list):
            return [f"{where}: array expected, got {type(emulated).__name__}"]
        if recorded and not emulated:
            return [f"{where}: empty array where X had elements"]
        return [p for item in emulated for p in shape_mismatches(recorded[0], item, f"{where}[]")]
    if type(recorded) is not type(emulated):
        return [f"{where}: {type(recorded).__name__} expected, got {type(emulated).__name__}"]
    return []
