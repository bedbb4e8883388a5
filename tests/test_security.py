"""Security and integrity (issue 14): each test here failed on the code before its fix.

Link binding, what a relink forgets, tokens no key decrypts, refresh racing relink, revocation, the web server's
limits, log redaction and the database file's permissions.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import stat
import string
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

import httpx
from cryptography.fernet import Fernet, MultiFernet
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from bot.accounts import AccountService
from bot.cli import _rotate_keys
from bot.logs import RedactingFilter, setup_logging
from bot.sandbox.harness import Sandbox
from bot.sandbox.members import Member, Reply
from bot.sandbox.postgres import ThrowawayPostgres
from bot.store import AccountStore, Database, Stores
from bot.vault import TokenVault
from bot.web import SECURITY_HEADERS, WebServer, build_app
from bot.x_client import XClient
from tests.helpers import until

NO_GRANTS = {"access": 0, "refresh": 0, "oauth1": 0}


def description(reply: Reply) -> str:
    return str(reply.embeds[0].get("description", "")) if reply.embeds else reply.text


async def link_url(member: Member) -> str:
    before = len(await member.dms())
    await member.slash("link")
    dms = await member.dms()
    assert len(dms) > before, "/link sent no DM"
    return Sandbox.link_url(dms[-1])


# -- 1. a link is finished only in the browser that opened it --------------------------------------------------


async def test_a_link_url_finished_in_another_browser_links_nothing(sandbox: Sandbox) -> None:
    mallory = sandbox.member("mallory")
    url = await link_url(mallory)
    assert url.startswith(f"{sandbox.public_base_url}/oauth/start?")
    async with httpx.AsyncClient(timeout=10) as mallorys_browser, httpx.AsyncClient(timeout=10) as victims_browser:
        opened = await mallorys_browser.get(url)
        assert opened.status_code == 302
        cookie = opened.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/oauth/" in cookie
        x_page = opened.headers["location"]
        assert x_page.startswith(f"{sandbox.x.base_url}/i/oauth2/authorize?")
        # The start page, forwarded after Mallory opened it, is refused in any other browser.
        forwarded = await victims_browser.get(url)
        assert forwarded.status_code == 400 and "another browser" in forwarded.text
        # "Verify your account here": Mallory hands X's page to her victim, who approves as user7.
        refused = await sandbox.authorize(x_page, "user7", browser=victims_browser)
        assert refused.status_code == 400
        assert "different browser" in refused.text
        assert refused.headers["Cache-Control"] == "no-store"
        # And the refusal spent the state: Mallory cannot finish it with her own cookie either.
        code = parse_qs(urlsplit(str(refused.url)).query)["code"][0]
        state = parse_qs(urlsplit(x_page).query)["state"][0]
        late = await mallorys_browser.get(f"{sandbox.public_base_url}/oauth/callback",
                                          params={"state": state, "code": code})
        assert late.status_code == 400
    assert "not linked" in description(await mallory.slash("status"))

    # The member who opens her own link and finishes it in the same browser is linked, and told to whom.
    alice = sandbox.member("alice")
    async with httpx.AsyncClient(timeout=10) as browser:
        page = await sandbox.authorize(await link_url(alice), "user8", browser=browser)
        assert page.status_code == 200
        assert "@user8" in page.text and "alice" in page.text
        # A button's address forwarded before anyone opened it links whoever opens it first: the page says
        # whose Discord account it is, and where a person who is not alice revokes it.
        assert "If alice is not you" in page.text and "x.com/settings/connected_apps" in page.text
        assert not [c for c in browser.cookies.jar if c.name.startswith("mutebot_link")]  # the callback cleared it
    assert "@user8" in description(await alice.slash("status"))


async def test_a_forged_link_cookie_is_refused(sandbox: Sandbox, alice: Member) -> None:
    url = await link_url(alice)
    async with httpx.AsyncClient(timeout=10) as browser:
        opened = await browser.get(url)
        [cookie] = [c for c in browser.cookies.jar if c.name.startswith("mutebot_link")]
        nonce, _, signature = str(cookie.value).partition(".")
        browser.cookies.set(cookie.name, f"{nonce}.{'0' * len(signature)}", domain=cookie.domain, path=cookie.path)
        refused = await sandbox.authorize(opened.headers["location"], "user3", browser=browser)
    assert refused.status_code == 400 and "different browser" in refused.text
    assert "not linked" in description(await alice.slash("status"))


# -- 2. another X account: what mutebot knew about the old one goes ---------------------------------------------


async def test_relinking_another_x_account_forgets_the_old_accounts_list_mutes(
    sandbox: Sandbox, alice: Member, mod: Member
) -> None:
    await sandbox.link(mod, "user9")
    await sandbox.link(alice, "user1")
    await mod.slash("mutelist create", name="spam")
    for target in ("user10", "user11"):
        await mod.slash("mutelist add", name="spam", username=target)
    await alice.slash("mutelist subscribe", name="spam")
    await alice.wait_for_dm(lambda m: bool(m.embeds) and str(m.embeds[0].get("title", "")).startswith("Finished"))
    assert set(sandbox.x.mutes_of("user1")) == {sandbox.x.user("user10").id, sandbox.x.user("user11").id}

    sandbox.x.seed_mutes("user2", ["user10"])  # her other X account mutes user10 by itself
    await sandbox.link(alice, "user2")
    # The subscription stays, and is applied afresh to the new account: user11 is muted there too.
    user11 = sandbox.x.user("user11").id

    async def applied() -> bool:
        return user11 in sandbox.x.mutes_of("user2")

    await until(applied, what="the subscribed list to reach the new X account")
    reply = await alice.slash("mutelist unsubscribe", name="spam", undo=True)
    assert "Unmuting **1**" in description(reply)
    await alice.wait_for_dm(lambda m: bool(m.embeds) and m.embeds[0]["title"] == "Finished: Undoing the list `spam`")
    # user10 was the new account's own mute, not the list's: it stays.
    assert sandbox.x.mutes_of("user2") == [sandbox.x.user("user10").id]
    # The old account was left as it was (mutebot no longer acts for it).
    assert len(sandbox.x.mutes_of("user1")) == 2


async def work_waiting_for_a_relink(sandbox: Sandbox, alice: Member, mod: Member) -> None:
    """alice on user1 follows `spam` (user10), unmutes user10 by hand, then applies `more` (user13) after X stopped
    accepting user1's link: the job waits, paused, for a relink, with user13's mute pending and nothing in flight."""
    await sandbox.link(mod, "user9")
    await sandbox.link(alice, "user1")
    for name, target in (("spam", "user10"), ("more", "user13")):
        await mod.slash("mutelist create", name=name)
        await mod.slash("mutelist add", name=name, username=target)
    await alice.slash("mutelist subscribe", name="spam")
    subscribed = "Finished: Subscribing to the list `spam`"
    await alice.wait_for_dm(lambda m: bool(m.embeds) and m.embeds[0]["title"] == subscribed)
    assert (await alice.slash("unmute", username="user10")).embeds[0]["title"] == "Unmuted on X"
    assert sandbox.x.mutes_of("user1") == []  # kept unmuted: mutebot remembers user1 unmuted it by hand

    sandbox.x.revoke_user("user1")  # the member revoked mutebot on X
    await alice.slash("mutelist apply", name="more")
    assert sandbox.bot is not None
    db = sandbox.bot.services.db

    async def paused() -> bool:
        return await db.fetchval(
            "SELECT count(*) FROM jobs WHERE discord_user_id = ? AND title = ? AND status = 'paused'",
            (alice.id, "Applying the list `more`")) == 1

    await until(paused, what="the job to wait for a relink")
    assert await db.fetchval("SELECT status FROM actions WHERE discord_user_id = ? AND x_user_id = ?",
                             (alice.id, sandbox.x.user("user13").id)) == "pending"


async def test_relinking_another_x_account_drops_the_old_accounts_choices_and_queued_work(
    sandbox: Sandbox, alice: Member, mod: Member
) -> None:
    await work_waiting_for_a_relink(sandbox, alice, mod)
    assert sandbox.bot is not None
    db = sandbox.bot.services.db
    await sandbox.link(alice, "user2")
    # The old account's queued work is cancelled, and its job ends now, with its summary (not at the next start).
    await alice.wait_for_dm(lambda m: bool(m.embeds) and m.embeds[0]["title"] == "Cancelled: Applying the list `more`")
    assert [tuple(r) for r in await db.fetchall(
        "SELECT status, outcome FROM actions WHERE discord_user_id = ? AND x_user_id = ?",
        (alice.id, sandbox.x.user("user13").id),
    )] == [("cancelled", "you linked another X account")]
    # user1's own choice (user10 unmuted by hand) is not user2's: the subscription, applied afresh, mutes it there.
    user10 = sandbox.x.user("user10").id

    async def muted_on_the_new_account() -> bool:
        return user10 in sandbox.x.mutes_of("user2")

    await until(muted_on_the_new_account, what="spam's user10 to be muted on the new X account")
    assert sandbox.x.mutes_of("user2") == [user10]  # and user13, queued for user1, never reached user2


async def test_unlink_while_work_waits_for_a_relink_ends_it_and_forgets_the_choices(
    sandbox: Sandbox, alice: Member, mod: Member
) -> None:
    await work_waiting_for_a_relink(sandbox, alice, mod)
    assert sandbox.bot is not None
    db = sandbox.bot.services.db
    assert (await alice.slash("unlink")).embeds[0]["title"] == "X account unlinked"
    await alice.wait_for_dm(lambda m: bool(m.embeds) and m.embeds[0]["title"] == "Cancelled: Applying the list `more`")
    assert [tuple(r) for r in await db.fetchall(
        "SELECT status, outcome FROM actions WHERE discord_user_id = ? AND x_user_id = ?",
        (alice.id, sandbox.x.user("user13").id),
    )] == [("cancelled", "unlinked")]
    # Linked again, even to the same X account, she starts afresh: her subscription mutes user10 again.
    await sandbox.link(alice, "user1")
    user10 = sandbox.x.user("user10").id

    async def muted_again() -> bool:
        return user10 in sandbox.x.mutes_of("user1")

    await until(muted_again, what="spam's user10 to be muted again")
    assert sandbox.x.mutes_of("user1") == [user10]


# -- 3. a stored token that no configured key decrypts ----------------------------------------------------------


async def test_a_token_no_key_decrypts_means_relink_not_an_incident(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = setup_logging("INFO", logging.StreamHandler(stream))
    try:
        async with Sandbox(tmp_path) as sandbox:
            alice, mod = sandbox.member("alice"), sandbox.member("mod", moderator=True)
            await sandbox.link(mod, "user9")
            await sandbox.link(alice, "user1")
            await mod.slash("mutelist create", name="spam")
            await alice.slash("mutelist subscribe", name="spam")
            await alice.wait_for_dm(lambda m: bool(m.embeds) and "Finished" in str(m.embeds[0].get("title")))

            # The operator replaces TOKEN_ENCRYPTION_KEY without keeping the old key, and restarts.
            sandbox.key = TokenVault.generate_key()
            await sandbox.stop_bot()
            await sandbox.start_bot()
            assert sandbox.bot is not None
            db = sandbox.bot.services.db

            relinked = await sandbox.link(mod, "user9")  # relinking over an unreadable link works
            assert relinked.status_code == 200
            # X was never asked to revoke what nobody can read: the page says that, not that X did not answer.
            assert "could not ask X" in relinked.text and "did not confirm" not in relinked.text
            assert "x.com/settings/connected_apps" in relinked.text
            added = await mod.slash("mutelist add", name="spam", username="user12")
            assert "Added to `spam`" in str(added.embeds)
            # The queue reaches alice's action, cannot unseal her token: it pauses her work, asking for a relink.
            await alice.wait_for_dm(lambda m: "/link" in m.text)

            async def settled() -> bool:
                return await db.fetchval("SELECT count(*) FROM actions WHERE status = 'in_flight'") == 0

            await until(settled, what="no action left in flight")
            assert await db.fetchval(
                "SELECT count(*) FROM actions WHERE discord_user_id = ? AND status = 'pending'", (alice.id,)
            ) == 1
            muted = await alice.slash("mute", username="user2")
            assert "relink" in description(muted) and "/link" in description(muted)
            assert "incident" not in description(muted)
            status = await alice.slash("status")
            assert "/link" in description(status)

            unlinked = await alice.slash("unlink")
            words = description(unlinked)
            assert unlinked.ephemeral and "incident" not in words
            assert "could not ask X" in words and "did not confirm" not in words
            assert "x.com/settings/connected_apps" in words
            await sandbox.link(alice, "user1")
            again = await alice.slash("mute", username="user2")
            assert again.embeds[0]["title"] == "Muted on X"
    finally:
        logging.getLogger().removeHandler(handler)
    logs = stream.getvalue()
    assert "Traceback" not in logs, logs[-3000:]


async def test_rotate_keys_while_a_refresh_is_in_flight_keeps_the_link(sandbox: Sandbox, alice: Member) -> None:
    """The README's rotation, with `rotate-keys` landing while a refresh waits for X: X has already spent the old
    refresh token, so the refresh's write must land although rotation re-encrypted the row meanwhile."""
    await sandbox.link(alice, "user1")
    old, new = sandbox.key, TokenVault.generate_key()
    sandbox.key = f"{new},{old}"  # steps 1 and 2: the new key first, the old one after it, and a restart
    await sandbox.stop_bot()
    await sandbox.start_bot()

    sandbox.x.expire_access_tokens()
    refreshes, token_calls = sandbox.x.token_refreshes, sandbox.x.calls["POST /2/oauth2/token"]
    sandbox.x.endpoint_latency["POST /2/oauth2/token"] = 3.0
    muting = asyncio.create_task(alice.slash("mute", username="user3"))

    async def refreshing() -> bool:
        return sandbox.x.calls["POST /2/oauth2/token"] > token_calls

    await until(refreshing, what="the refresh to reach X")
    assert await _rotate_keys(sandbox.settings()) == 0  # step 3, while the bot runs
    assert not muting.done(), "the refresh was over before the rotation: this test proved nothing"
    reply = await muting
    sandbox.x.endpoint_latency.clear()
    assert reply.embeds and reply.embeds[0].get("title") == "Muted on X", reply.embeds
    assert sandbox.x.token_refreshes == refreshes + 1

    sandbox.key = new  # step 4: the old key goes, and a restart
    await sandbox.stop_bot()
    await sandbox.start_bot()
    again = await alice.slash("mute", username="user4")
    assert again.embeds and again.embeds[0].get("title") == "Muted on X", again.embeds
    assert {sandbox.x.user("user3").id, sandbox.x.user("user4").id} <= set(sandbox.x.mutes_of("user1"))
    assert not [m for m in await alice.dms() if "/link" in m.text]  # never asked to relink


async def test_rotation_leaves_the_tokens_a_refresh_wrote_after_rotation_read_them(
    postgresql: ThrowawayPostgres,
) -> None:
    """On PostgreSQL, rotation's read takes no row locks: a refresh by the running bot can land between the read and
    rotation's write, which must not put the spent pair back. (SQLite's rotation holds the file's write lock from
    its first read, so there this cannot happen.)"""
    url = await postgresql.new_database()
    old, new = TokenVault.generate_key(), TokenVault.generate_key()
    running = TokenVault([new, old])  # the bot, restarted with NEW,OLD (the README's step 2)
    db = await Database.open(url)
    try:
        await db.migrate()
        async with db.batch() as batch:
            version = AccountStore(db).save(
                batch, 1, x_user_id="42", x_username="alice", x_name="", x_avatar_url=None, auth_kind="oauth2",
                access_token=TokenVault([old]).encrypt("spent-access"),
                refresh_token=TokenVault([old]).encrypt("spent-refresh"), token_secret=None, scopes="",
                expires_at=None, now=0.0,
            )

        def refresh_meanwhile() -> None:
            async def write() -> None:
                other = await Database.open(url)  # the running bot's own connection
                try:
                    assert await AccountStore(other).replace_tokens(
                        1, expected_version=version, access_token=running.encrypt("fresh-access"),
                        refresh_token=running.encrypt("fresh-refresh"), expires_at=None, now=1.0,
                    ) is not None
                finally:
                    await other.close()

            asyncio.run(write())

        rotations = 0

        def rotate(value: bytes) -> bytes:  # called between rotation's read and its write
            nonlocal rotations
            rotations += 1
            if rotations == 1:
                thread = threading.Thread(target=refresh_meanwhile)
                thread.start()
                thread.join(30)
                assert not thread.is_alive(), "the refresh waited for the rotation"
            return MultiFernet([Fernet(new), Fernet(old)]).rotate(value)

        assert await AccountStore(db).reencrypt(rotate) == 0  # that row changed meanwhile: left as written
        row = await AccountStore(db).link(1, fresh=True)
        assert row is not None
        assert TokenVault([new]).decrypt(row.access_token).reveal() == "fresh-access"
        assert row.refresh_token is not None
        assert TokenVault([new]).decrypt(row.refresh_token).reveal() == "fresh-refresh"
    finally:
        await db.close()


# -- 5. a refresh racing a relink ---------------------------------------------------------------------------------


async def test_a_refresh_racing_a_relink_in_another_process_keeps_the_new_token(
    sandbox: Sandbox, alice: Member
) -> None:
    await sandbox.link(alice, "user1")
    assert sandbox.bot is not None
    settings = sandbox.settings()
    # A second mutebot process on the same database: its own store, X client and per-member locks.
    stores = await Stores.open(settings.database)
    x = XClient(settings.x_api_base, consumer_key=settings.x_consumer_key,
                consumer_secret=settings.x_consumer_secret)
    other = AccountService(settings, stores, TokenVault(settings.token_encryption_keys), x)
    try:
        start = await other.start_link(alice.id, sandbox.guild_id)
        state = parse_qs(urlsplit(start.url).query)["state"][0]
        opened = await other.open_link(state, {})
        assert opened.cookie_value is not None
        approved = await sandbox.http.get(f"{opened.url}&login=user2")
        code = parse_qs(urlsplit(approved.headers["location"]).query)["code"][0]

        # This process refreshes alice's expired token, slowly; the other one relinks her meanwhile.
        sandbox.x.expire_access_tokens()
        token_calls = sandbox.x.calls["POST /2/oauth2/token"]
        sandbox.x.endpoint_latency["POST /2/oauth2/token"] = 1.0
        muting = asyncio.create_task(alice.slash("mute", username="user3"))

        async def refreshing() -> bool:
            return sandbox.x.calls["POST /2/oauth2/token"] > token_calls

        await until(refreshing, what="the refresh to reach X")
        # The relink's own exchange is quick; its revoking of the old tokens slow, so the refresh lands first.
        sandbox.x.endpoint_latency = {"POST /2/oauth2/revoke": 2.0}
        linked = await other.complete_oauth2(state, code, {opened.cookie_name: opened.cookie_value})
        assert linked.user.username == "user2"
        await muting
        sandbox.x.endpoint_latency.clear()
    finally:
        await other.aclose()
        await x.aclose()
        await stores.db.close()
    # The refresh's write did not land over the relink: the stored token is user2's.
    reply = await alice.slash("mute", username="user4")
    assert reply.embeds and reply.embeds[0].get("title") == "Muted on X", reply.embeds
    assert sandbox.x.user("user4").id in sandbox.x.mutes_of("user2")
    assert sandbox.x.user("user4").id not in sandbox.x.mutes_of("user1")


# -- 6. revocation ------------------------------------------------------------------------------------------------


async def test_unlink_and_relink_revoke_the_refresh_token_too(sandbox: Sandbox, alice: Member) -> None:
    await sandbox.link(alice, "user1")
    assert sandbox.x.live_grants("user1") == {"access": 1, "refresh": 1, "oauth1": 0}
    await sandbox.link(alice, "user2")
    assert sandbox.x.live_grants("user1") == NO_GRANTS
    reply = await alice.slash("unlink")
    assert sandbox.x.live_grants("user2") == NO_GRANTS
    assert "revoked" in description(reply)
    assert "did not confirm" not in description(reply)


async def test_unlink_says_so_when_x_did_not_confirm_the_revoke(sandbox: Sandbox, alice: Member) -> None:
    await sandbox.link(alice, "user1")
    sandbox.x.error_rate = 1.0
    reply = await alice.slash("unlink")
    sandbox.x.error_rate = 0.0
    words = description(reply)
    assert "did not confirm" in words and "x.com/settings/connected_apps" in words
    assert "not linked" in description(await alice.slash("status"))  # forgotten here all the same


async def test_a_relink_says_so_when_x_did_not_confirm_revoking_the_old_access(
    sandbox: Sandbox, alice: Member
) -> None:
    await sandbox.link(alice, "user1")
    sandbox.x.fail_next["POST /2/oauth2/revoke"] = 2  # the old refresh token's revoke and the old access token's
    page = await sandbox.link(alice, "user2")
    assert "@user2" in page.text and "It replaces @user1" in page.text
    assert "X did not confirm revoking" in page.text and "x.com/settings/connected_apps" in page.text
    assert "could not ask X" not in page.text
    assert sandbox.x.live_grants("user1") == {"access": 1, "refresh": 1, "oauth1": 0}  # X really still has them


async def test_oauth1_unlink_invalidates_the_token_at_x(tmp_path: Path) -> None:
    async with Sandbox(tmp_path, env={"X_AUTH": "oauth1"}) as sandbox:
        alice = sandbox.member("alice")
        await sandbox.link(alice, "user1")
        assert sandbox.x.live_grants("user1")["oauth1"] == 1
        await sandbox.link(alice, "user2")  # a relink invalidates the old account's token
        assert sandbox.x.live_grants("user1")["oauth1"] == 0
        reply = await alice.slash("unlink")
        assert sandbox.x.live_grants("user2")["oauth1"] == 0
        assert sandbox.x.calls["POST /1.1/oauth/invalidate_token"] == 2
        assert "revoked" in description(reply) and "did not confirm" not in description(reply)


# -- 10. the web server's limits ------------------------------------------------------------------------------------


async def raw_request(port: int, head: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def test_a_client_trickling_its_request_head_is_cut_off(sandbox: Sandbox) -> None:
    assert sandbox.bot is not None
    services = sandbox.bot.services
    server = WebServer(build_app(services.db, services.accounts), "127.0.0.1", 0, head_timeout=0.5)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        started, answer, closed = time.monotonic(), b"", False
        for _ in range(40):  # one byte every 0.1 s, for up to 4 s: the head never ends
            try:
                writer.write(b"a")
                await writer.drain()
                answer = await asyncio.wait_for(reader.read(100), 0.1)
            except TimeoutError:
                continue
            except ConnectionError:
                closed = True
                break
            if answer == b"":
                closed = True
                break
        writer.close()
        assert closed, "the server waited for the trickled head"
        assert time.monotonic() - started < 2.0
        # A client that sends its head at once, on the same server, is answered.
        healthy = await raw_request(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert healthy.startswith(b"HTTP/1.1 200")
    finally:
        await server.stop()


async def test_refusals_are_our_pages_with_the_security_headers_and_no_versions(sandbox: Sandbox) -> None:
    base = sandbox.public_base_url
    missing = await sandbox.http.get(f"{base}/nope")
    wrong_method = await sandbox.http.post(f"{base}/oauth/callback")
    too_big = await sandbox.http.post(f"{base}/oauth/callback", content=b"x" * 100_000)
    health = await sandbox.http.get(f"{base}/healthz")
    callback = await sandbox.http.get(f"{base}/oauth/callback?state=madeup&code=x")
    for response, status in ((missing, 404), (wrong_method, 405), (too_big, 413), (callback, 400)):
        assert response.status_code == status, response.text
        assert response.headers["Content-Type"].startswith("text/html")
        assert "<h1>" in response.text and "aiohttp" not in response.text
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (status, name)
    for response in (missing, wrong_method, too_big, health, callback):
        server = response.headers.get("Server", "")
        assert not re.search(r"\d|aiohttp|python", server, re.IGNORECASE), server
    assert health.headers["X-Content-Type-Options"] == "nosniff"

    # Heads aiohttp refuses before any handler (a header line over the limit, too many headers): our 400 too.
    port = urlsplit(base).port
    assert port is not None
    for head in (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n",
                 b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n"):
        answer = (await raw_request(port, head)).decode(errors="replace")
        status_line, _, rest = answer.partition("\r\n")
        assert re.match(r"HTTP/1\.[01] 400 ", status_line), status_line
        headers = rest.lower()
        assert "content-security-policy: default-src 'none'" in headers and "x-frame-options: deny" in headers
        assert "server: mutebot" in headers and "aiohttp" not in headers
        assert "<h1>Bad request</h1>" in answer


# -- 11. log redaction, as a property ---------------------------------------------------------------------------

TOKEN_ALPHABET = string.ascii_letters + string.digits + "-._~+/="
SECRET_KEYS = ("access_token", "refresh_token", "code", "code_verifier", "client_secret", "token", "oauth_token",
               "oauth_token_secret", "oauth_verifier", "oauth_signature", "oauth_nonce", "state", "token_secret",
               "access_token_secret", "consumer_secret", "id_token")
SECRET = "QQSECRETQQ"  # where the secret goes in a context, before it is encoded the way that context encodes it


def _contexts(key: str) -> list[tuple[str, Callable[[str], str]]]:
    """(a template with SECRET in it, how that context encodes the secret) for each way a secret reaches a log."""
    same = str
    return [
        (f"GET /oauth/callback?{key}={SECRET}&lang=en", lambda s: quote(s, safe="")),
        (f"grant_type=refresh_token&{key}={SECRET}&client_id=mutebot", quote_plus),
        (json.dumps({key: SECRET, "expires_in": 7200}), same),
        (json.dumps({key: SECRET}, separators=(",", ":")), same),
        (json.dumps(json.dumps({"body": {key: SECRET}})), same),  # JSON quoted inside JSON
        (repr({key: SECRET, "scope": "mute.read"}), same),
        (f"{key}={SECRET!r}", same),  # a keyword argument's repr
        (f'Authorization: OAuth oauth_consumer_key="ck", {key}="{SECRET}", oauth_version="1.0"',
         lambda s: quote(s, safe="")),
        (f"Authorization: Bearer {SECRET}", same),
        # a query inside a URL-encoded form value: the secret encoded in the query, then once more with the URL
        ("redirect=" + quote(f"https://bot.example/oauth/callback?{key}=", safe="") + SECRET + quote("&x=1", safe=""),
         lambda s: quote(quote(s, safe=""), safe="")),
    ]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Found by this test: "Bearer" took the key after it for its token, so the key's own pattern missed the value.
@example(secret="00000000", key="access_token", which=6, before="BEARER", after="")
@given(
    secret=st.text(TOKEN_ALPHABET, min_size=8, max_size=64),
    key=st.sampled_from(SECRET_KEYS),
    which=st.integers(0, 9),
    before=st.text(string.printable.replace("\x0b", "").replace("\x0c", ""), max_size=40),
    after=st.text(string.printable.replace("\x0b", "").replace("\x0c", ""), max_size=40),
)
def test_no_secret_survives_in_any_log_line(secret: str, key: str, which: int, before: str, after: str) -> None:
    template, encode = _contexts(key)[which]
    assert SECRET in template
    line = f"{before} {template.replace(SECRET, encode(secret))} {after}"
    forms = {secret, quote(secret, safe=""), quote_plus(secret), quote(quote(secret, safe=""), safe="")}
    around = f"{before} {template} {after} [redacted]"
    assume(not any(form in around for form in forms))  # the secret must not already be part of the text around it
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("mutebot.redaction-property")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("request failed: %s", line)
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert "request failed" in written
    for form in forms:
        assert form not in written, (line, written)


# -- 12. the database file is its owner's alone ---------------------------------------------------------------------


async def test_the_database_and_its_wal_and_shm_are_created_owner_only(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # a usual umask, which would leave new files readable by everyone
    try:
        async with Sandbox(tmp_path, on_sqlite=True) as sandbox:  # the SQLite files themselves
            await sandbox.link(sandbox.member("alice"), "user1")  # a write: the -wal and -shm files exist now
            files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()
                     if p.name.startswith("mutebot.sqlite3")}
    finally:
        os.umask(previous)
    assert set(files) == {"mutebot.sqlite3", "mutebot.sqlite3-wal", "mutebot.sqlite3-shm"}
    assert files == dict.fromkeys(files, 0o600), {name: oct(mode) for name, mode in files.items()}
