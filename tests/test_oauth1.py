"""OAuth 1.0a linking and mutes through both the v2 and the v1.1 endpoints, end to end."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth1Client

from bot.sandbox.harness import Sandbox
from bot.sandbox.x_emulator import XEmulator
from tests.helpers import at_rest


@pytest.fixture(params=["v2", "v1.1"])
async def oauth1_sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with Sandbox(tmp_path, env={"X_AUTH": "oauth1", "X_MUTE_API": request.param}) as sandbox:
        yield sandbox


def listed(embeds: list[dict[str, object]]) -> list[str]:
    return re.findall(r"\[@(\w+)\]", str(embeds[0]["description"]))


async def test_link_mute_unmute_and_browse(oauth1_sandbox: Sandbox) -> None:
    sandbox = oauth1_sandbox
    alice = sandbox.member("alice")
    await alice.slash("link")
    url = sandbox.link_url((await alice.dms())[-1])
    assert url.startswith(f"{sandbox.public_base_url}/oauth/start?state=")
    opened = await sandbox.http.get(url)
    assert opened.headers["location"].startswith(f"{sandbox.x.base_url}/oauth/authorize?oauth_token=")
    page = await sandbox.authorize(url, "user1")
    assert page.status_code == 200
    assert "Linked @user1" in page.text and "alice" in page.text
    replay = await sandbox.http.get(str(page.url))
    assert replay.status_code == 400

    v11 = sandbox.settings().x_mute_api == "v1.1"
    lookups = sandbox.x.calls["GET /2/users/by/username/:username"]
    reply = await alice.slash("mute", username="https://x.com/user2")
    assert reply.embeds[0]["title"] == "Muted on X"
    assert "@user2" in reply.embeds[0]["description"]
    assert sandbox.x.mutes_of("user1") == [sandbox.x.user("user2").id]
    if v11:
        assert sandbox.x.calls["POST /1.1/mutes/users/create.json"] == 1
        assert sandbox.x.calls["GET /2/users/by/username/:username"] == lookups  # no separate lookup
    else:
        assert sandbox.x.calls["POST /2/users/:id/muting"] == 1

    reply = await alice.slash("unmute", username="@user2")
    assert reply.embeds[0]["title"] == "Unmuted on X"
    assert sandbox.x.mutes_of("user1") == []
    missing = await alice.slash("mute", username="nobody_here")
    assert "no X account called @nobody_here" in missing.embeds[0]["description"]

    sandbox.x.seed_mutes("user1", [f"target{i}" for i in range(137)])
    reply = await alice.slash("mutes")
    seen = listed(reply.embeds)
    while not {b["label"]: b["disabled"] for b in reply.buttons}["Next"]:
        reply = await reply.click("Next")
        seen += listed(reply.embeds)
    assert len(seen) == 137
    assert len(set(seen)) == 137
    status = await alice.slash("status")
    assert "@user1" in status.embeds[0]["description"]


async def test_denied_and_unknown_oauth1_callbacks(oauth1_sandbox: Sandbox) -> None:
    sandbox = oauth1_sandbox
    alice = sandbox.member("alice")
    await alice.slash("link")
    denied = await sandbox.authorize(sandbox.link_url((await alice.dms())[-1]), None, deny=True)
    assert denied.status_code == 400
    assert "cancelled" in denied.text
    made_up = await sandbox.http.get(f"{sandbox.public_base_url}/oauth/callback?oauth_token=abc&oauth_verifier=x")
    assert made_up.status_code == 400


async def test_oauth1_tokens_are_encrypted_at_rest(oauth1_sandbox: Sandbox) -> None:
    sandbox = oauth1_sandbox
    await sandbox.link(sandbox.member("alice"), "user3")
    assert sandbox.bot is not None
    if sandbox.database_url is None:
        await sandbox.bot.services.db.execute("PRAGMA wal_checkpoint(FULL)")
    raw = await at_rest(sandbox.directory, sandbox.database_url)
    secrets = [value for token, cred in sandbox.x._oauth1.items() for value in (token, cred.secret)]
    assert secrets
    for value in secrets:
        assert value.encode() not in raw
    row = await sandbox.bot.services.db.fetchone("SELECT token_secret, auth_kind FROM linked_accounts")
    assert row is not None
    assert row["auth_kind"] == "oauth1"
    assert row["token_secret"].startswith(b"gAAAAA")  # Fernet ciphertext


async def test_list_apply_through_the_queue(oauth1_sandbox: Sandbox) -> None:
    sandbox = oauth1_sandbox
    mod, alice = sandbox.member("mod", moderator=True), sandbox.member("alice")
    await sandbox.link(mod, "user9")
    await sandbox.link(alice, "user2")
    await mod.slash("mutelist create", name="spam")
    for target in ("user10", "user11", "user12"):
        added = await mod.slash("mutelist add", name="spam", username=target)
        assert "Added to `spam`" in str(added.embeds)
    sandbox.x.seed_mutes("user2", ["user10"])
    await alice.slash("mutelist apply", name="spam")
    summary = await alice.wait_for_dm(lambda m: bool(m.embeds) and m.embeds[0]["title"].startswith("Finished"))
    assert "Muted **2** · already muted **1**" in summary.embeds[0]["description"]
    assert set(sandbox.x.mutes_of("user2")) == {sandbox.x.user(f"user{i}").id for i in (10, 11, 12)}
    v11 = sandbox.settings().x_mute_api == "v1.1"
    key = "POST /1.1/mutes/users/create.json" if v11 else "POST /2/users/:id/muting"
    assert sandbox.x.calls[key] == 2


async def test_an_oauth1_link_finished_in_another_browser_links_nothing(oauth1_sandbox: Sandbox) -> None:
    sandbox = oauth1_sandbox
    alice = sandbox.member("alice")
    await alice.slash("link")
    url = sandbox.link_url((await alice.dms())[-1])
    async with httpx.AsyncClient(timeout=10) as hers, httpx.AsyncClient(timeout=10) as another:
        opened = await hers.get(url)
        assert opened.status_code == 302
        refused = await sandbox.authorize(opened.headers["location"], "user1", browser=another)
    assert refused.status_code == 400 and "different browser" in refused.text
    assert "not linked" in str((await alice.slash("status")).embeds[0]["description"])


async def test_the_emulator_invalidates_oauth1_tokens_as_x_documents() -> None:
    # developer.x.com, "POST oauth/invalidate_token": user context with the token to end; 200 {"access_token": ...};
    # afterwards the token answers 401, code 89.
    async with XEmulator() as x:
        token, secret = x.issue_oauth1_token("user1")
        async with AsyncOAuth1Client(client_id=x.consumer_key, client_secret=x.consumer_secret, token=token,
                                     token_secret=secret) as client:
            first = await client.post(f"{x.base_url}/1.1/oauth/invalidate_token")
            assert first.status_code == 200 and first.json() == {"access_token": token}
            again = await client.post(f"{x.base_url}/1.1/oauth/invalidate_token")
            assert again.status_code == 401 and again.json()["errors"][0]["code"] == 89
        bearer = x.issue_token("user2")["access_token"]
        async with httpx.AsyncClient() as plain:
            refused = await plain.post(f"{x.base_url}/1.1/oauth/invalidate_token",
                                       headers={"Authorization": f"Bearer {bearer}"})
        assert refused.status_code == 403
    assert x.live_grants("user1")["oauth1"] == 0
