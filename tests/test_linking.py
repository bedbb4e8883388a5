"""Account linking end to end: the callback's refusals, DMs closed, refresh under load, revocation, secrecy."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.logs import setup_logging
from bot.sandbox.harness import Sandbox
from bot.sandbox.members import Member
from tests.helpers import at_rest


async def start_link(sandbox: Sandbox, member: Member) -> str:
    await member.slash("link")
    return sandbox.link_url((await member.dms())[-1])


async def test_link_reply_points_to_dms_and_the_dm_has_an_expiring_button(sandbox: Sandbox, alice: Member) -> None:
    reply = await alice.slash("link")
    assert reply.ephemeral and "DM" in reply.text and "<t:" in reply.text
    dm = (await alice.dms())[-1]
    start = sandbox.link_url(dm)
    assert start.startswith(f"{sandbox.public_base_url}/oauth/start?state=")  # ours: it binds the browser
    opened = await sandbox.http.get(start)
    assert opened.status_code == 302 and opened.headers["Cache-Control"] == "no-store"
    url = opened.headers["location"]
    assert url.startswith(f"{sandbox.x.base_url}/i/oauth2/authorize?")
    assert "code_challenge_method=S256" in url and "code_verifier" not in url
    assert "mute.write" in url and "offline.access" in url
    assert "<t:" in dm.embeds[0]["description"]


async def test_replayed_callback_made_up_state_and_denial_answer_400(sandbox: Sandbox, alice: Member) -> None:
    url = await start_link(sandbox, alice)
    first = await sandbox.authorize(url, "user3")
    assert first.status_code == 200
    replay = await sandbox.http.get(str(first.url))
    assert replay.status_code == 400 and "already used" in replay.text
    made_up = await sandbox.http.get(f"{sandbox.public_base_url}/oauth/callback?state=madeup&code=abc")
    assert made_up.status_code == 400 and "unknown" in made_up.text
    denied = await sandbox.authorize(await start_link(sandbox, alice), None, deny=True)
    assert denied.status_code == 400 and "cancelled" in denied.text
    assert denied.headers["Cache-Control"] == "no-store"
    account = await sandbox.bot.services.accounts.account(alice.id) if sandbox.bot else None
    assert account is not None and account.x_username == "user3"  # the denial changed nothing


def heading(page: str) -> str:
    return page.split("<h1>", 1)[1].split("</h1>", 1)[0]


async def test_one_reason_has_one_heading_whichever_step_finds_it(sandbox: Sandbox, alice: Member) -> None:
    """A used link replayed at the callback with its code, with an error, and at the start page: one reason,
    one text, one heading. And no page speaks of a 'state'."""
    url = await start_link(sandbox, alice)
    first = await sandbox.authorize(url, "user3")
    assert first.status_code == 200
    state = parse_qs(urlsplit(str(first.url)).query)["state"][0]
    base = sandbox.public_base_url
    pages = [await sandbox.http.get(str(first.url)),
             await sandbox.http.get(f"{base}/oauth/callback", params={"state": state, "error": "access_denied"}),
             await sandbox.http.get(f"{base}/oauth/start", params={"state": state})]
    assert [p.status_code for p in pages] == [400, 400, 400]
    assert {heading(p.text) for p in pages} == {"Link already used"}
    assert len({p.text for p in pages}) == 1

    made_up = [await sandbox.http.get(f"{base}/oauth/callback", params={"state": "madeup", "code": "abc"}),
               await sandbox.http.get(f"{base}/oauth/callback", params={"state": "madeup", "error": "x"}),
               await sandbox.http.get(f"{base}/oauth/start", params={"state": "madeup"})]
    assert {heading(p.text) for p in made_up} == {"Link not recognised"}

    incomplete = [await sandbox.http.get(f"{base}/oauth/callback"),
                  await sandbox.http.get(f"{base}/oauth/callback", params={"state": "madeup"}),
                  await sandbox.http.get(f"{base}/oauth/start")]
    assert {heading(p.text) for p in incomplete} == {"Link incomplete"}
    for response in pages + made_up + incomplete:
        assert "state" not in response.text.split("<body>", 1)[1].lower(), response.text


@pytest.mark.parametrize(
    "query",
    ["", "?state=", "?code=x", "?error=access_denied", "?state=%00%ff&code=%", "?state=a&state=b&code=c",
     "?oauth_token=nope&oauth_verifier=x", "?error=server_error&state=zzz", "?state=" + "a" * 5000 + "&code=1"],
)
async def test_callback_never_answers_500(sandbox: Sandbox, query: str) -> None:
    response = await sandbox.http.get(f"{sandbox.public_base_url}/oauth/callback{query}")
    assert response.status_code == 400
    assert "<script" not in response.text and response.headers["Content-Type"].startswith("text/html")


async def test_expired_state_is_refused(sandbox: Sandbox, alice: Member) -> None:
    url = await start_link(sandbox, alice)
    assert sandbox.bot is not None
    await sandbox.bot.services.db.execute("UPDATE oauth_states SET expires_at = 0")
    response = await sandbox.authorize(url, "user3")
    assert response.status_code == 400 and "expired" in response.text


async def test_closed_dms_get_the_link_ephemerally(sandbox: Sandbox, alice: Member) -> None:
    sandbox.discord.refuse_dms(alice.id)
    reply = await alice.slash("link")
    assert reply.ephemeral and "DMs are closed" in reply.text
    url = next(b["url"] for b in reply.buttons if b.get("url"))
    assert (await sandbox.authorize(url, "user4")).status_code == 200


async def test_concurrent_calls_after_expiry_refresh_once(sandbox: Sandbox, alice: Member) -> None:
    await sandbox.link(alice, "user1")
    sandbox.x.expire_access_tokens()
    refreshes = sandbox.x.token_refreshes
    replies = await asyncio.gather(*(alice.slash("mute", username=f"user{i}") for i in range(2, 22)))
    assert all(r.embeds and r.embeds[0]["title"] == "Muted on X" for r in replies), [r.embeds for r in replies]
    assert sandbox.x.token_refreshes == refreshes + 1
    assert len(sandbox.x.mutes_of("user1")) == 20


async def test_revoked_grant_asks_to_link_again(sandbox: Sandbox, alice: Member) -> None:
    await sandbox.link(alice, "user1")
    sandbox.x.revoke_user("user1")
    reply = await alice.slash("mute", username="user2")
    assert "/link" in reply.embeds[0]["description"]
    dm = await alice.wait_for_dm(lambda m: "/link" in m.text)
    assert "reconnect" in dm.text
    status = await alice.slash("status")
    assert "/link" in status.embeds[0]["description"]
    await sandbox.link(alice, "user1")  # relinking clears it
    assert (await alice.slash("mute", username="user2")).embeds[0]["title"] == "Muted on X"


async def test_relink_revokes_the_old_token_and_unlink_forgets(sandbox: Sandbox, alice: Member) -> None:
    await sandbox.link(alice, "user1")
    await sandbox.link(alice, "user2")
    assert sandbox.x.calls["POST /2/oauth2/revoke"] == 2  # the old refresh token and the old access token
    reply = await alice.slash("unlink")
    assert "unlinked" in reply.embeds[0]["title"]
    assert sandbox.x.calls["POST /2/oauth2/revoke"] == 4
    assert "not linked" in (await alice.slash("status")).embeds[0]["description"]
    not_linked = await alice.slash("unlink")
    assert not_linked.ephemeral and not_linked.embeds[0]["title"] == "No X account linked"
    assert "nothing to unlink" in not_linked.embeds[0]["description"]


async def test_no_token_in_database_or_logs(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = setup_logging("DEBUG", logging.StreamHandler(stream))
    try:
        async with Sandbox(tmp_path) as sandbox:
            alice = sandbox.member("alice")
            await sandbox.link(alice, "user1")
            sandbox.x.expire_access_tokens()
            await alice.slash("mute", username="user2")  # forces a refresh: a second pair of tokens
            tokens = list(sandbox.x._access) + list(sandbox.x._refresh)
            assert len(tokens) >= 4
            interaction_tokens = [record.token for record in sandbox.discord.interactions.values()]
            assert interaction_tokens
            await sandbox.stop_bot()
    finally:
        logging.getLogger().removeHandler(handler)
    raw = await at_rest(tmp_path, sandbox.database_url)
    logs = stream.getvalue()
    assert "linked X account" in logs
    for token in tokens:
        assert token.encode() not in raw
        assert token not in logs
    assert "/webhooks/" in logs  # discord.py logged its requests at DEBUG, with the tokens redacted
    for token in interaction_tokens:
        assert token not in logs


async def test_token_endpoint_outage_is_reported_and_recovers(sandbox: Sandbox, alice: Member) -> None:
    await sandbox.link(alice, "user1")
    sandbox.x.expire_access_tokens()
    sandbox.x.error_rate = 1.0
    reply = await alice.slash("mute", username="user2")
    assert "not answering" in reply.embeds[0]["description"]
    sandbox.x.error_rate = 0.0
    reply = await alice.slash("mute", username="user2")
    assert reply.embeds[0]["title"] == "Muted on X"


async def test_a_failed_code_exchange_answers_400_and_links_nothing(sandbox: Sandbox, alice: Member) -> None:
    url = await start_link(sandbox, alice)
    state = parse_qs(urlsplit(url).query)["state"][0]
    assert (await sandbox.http.get(url)).status_code == 302  # opened in this browser: its cookie is set
    response = await sandbox.http.get(f"{sandbox.public_base_url}/oauth/callback",
                                      params={"state": state, "code": "made-up-code"})
    assert response.status_code == 400
    assert "did not accept" in response.text
    assert "not linked" in (await alice.slash("status")).embeds[0]["description"]
