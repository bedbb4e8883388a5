"""Packaging and the sandbox command line, as a newcomer meets them."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import signal
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from bot.sandbox.harness import free_port

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_the_migrations_and_the_console_script(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v", "-w", str(tmp_path),
         str(ROOT)],
        check=True, capture_output=True, text=True, timeout=120,
    )
    # e.g. setuptools' "`project.license` as a TOML table is deprecated" banner
    assert "deprecated" not in built.stdout + built.stderr
    wheel = next(tmp_path.glob("mutebot-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert "migrations/0001_initial.sql" in names
    assert "bot/py.typed" in names
    # every module of the engine and the cogs, so that a new package is not left out of `pip install .`
    sources = {p.relative_to(ROOT).as_posix() for folder in ("bot", "cogs", "migrations")
               for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".sql") and "__pycache__" not in p.parts}
    assert sources - names == set()
    assert "mutebot = bot.cli:main" in entry_points
    assert "License-Expression: MIT" in metadata.splitlines()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    requires = {line.split(":", 1)[1].split("<")[0].split(">")[0].strip()
                for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line}
    assert {"aiohttp", "yarl"} <= requires  # imported directly, so declared directly


async def test_sandbox_command_serves_an_oauth_flow_a_person_can_follow(tmp_path: Path) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "sandbox", "--port", str(port), "--users", "3", cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        banner = await asyncio.wait_for(_banner_up_to(process.stdout, "A pile-on post"), timeout=20)
        base = f"http://127.0.0.1:{port}"
        assert base in banner[0]
        seeded = re.fullmatch(r"A pile-on post to try /mutelist capture on: https://x\.com/(\w+)/status/(\d+)",
                              banner[-1])
        assert seeded is not None, banner
        author, post_id = seeded.groups()
        redirect = "http://127.0.0.1:8080/oauth/callback"
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        async with httpx.AsyncClient(base_url=base) as http:
            chooser = await http.get("/i/oauth2/authorize", params={
                "response_type": "code", "client_id": "mutebot-sandbox", "redirect_uri": redirect,
                "scope": "tweet.read users.read like.read mute.read mute.write offline.access", "state": "s1",
                "code_challenge": challenge, "code_challenge_method": "S256"})
            assert chooser.status_code == 200
            assert "user3" in chooser.text
            approved = await http.get(str(chooser.url) + "&login=user1")
            assert approved.status_code == 302
            code = parse_qs(urlsplit(approved.headers["location"]).query)["code"][0]
            token = await http.post("/2/oauth2/token", data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
                "client_id": "mutebot-sandbox", "code_verifier": verifier})
            access = token.json()["access_token"]
            me = (await http.get("/2/users/me", headers={"Authorization": f"Bearer {access}"})).json()["data"]
            muted = await http.post(f"/2/users/{me['id']}/muting", headers={"Authorization": f"Bearer {access}"},
                                    json={"target_user_id": str(int(me["id"]) + 1)})
            assert muted.json() == {"data": {"muting": True}}
            assert muted.headers["x-rate-limit-remaining"] == "49"
            # The pile-on the banner names is there to capture: the post, and its likers (crowd41 to crowd80 of
            # seed_pile_on), newest first.
            bearer = {"Authorization": f"Bearer {access}"}
            post = await http.get(f"/2/tweets/{post_id}", params={"expansions": "author_id"}, headers=bearer)
            assert post.status_code == 200, post.text
            assert post.json()["data"]["id"] == post_id
            assert post.json()["includes"]["users"][0]["username"] == author
            likers = await http.get(f"/2/tweets/{post_id}/liking_users", headers=bearer)
            assert likers.status_code == 200, likers.text
            assert [u["username"] for u in likers.json()["data"]] == [f"crowd{i}" for i in range(80, 40, -1)]
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _banner_up_to(stdout: asyncio.StreamReader, start: str) -> list[str]:
    """The lines `mutebot sandbox` prints, up to the first that begins with `start`; failing at the banner's
    last line ("Rate-limit windows last ...") when none does."""
    lines: list[str] = []
    while not lines or not lines[-1].startswith(start):
        line = (await stdout.readline()).decode().rstrip("\n")
        assert line and not line.startswith("Rate-limit windows"), f"no line beginning {start!r} in {lines}"
        lines.append(line)
    return lines


def test_sandbox_refuses_nonsense_options(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "bot", "sandbox", "--users", "0"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert "--users" in result.stderr
