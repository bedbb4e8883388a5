"""Behaviour of the X API emulator over real loopback HTTP: OAuth 2.0 PKCE, users, mutes, limits and knobs."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth1Client, AsyncOAuth2Client, OAuthError

from bot.sandbox.x_emulator import XEmulator

REDIRECT = "http://127.0.0.1:8080/oauth/callback"
SCOPES = "tweet.read users.read mute.read mute.write offline.access"
JSON = "application/json; charset=utf-8"


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def emu(clock: FakeClock) -> AsyncIterator[XEmulator]:
    emulator = XEmulator(users=10, clock=clock)
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def http(emu: XEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=emu.base_url) as client:
        yield client


def bearer(token: dict[str, Any] | str) -> dict[str, str]:
    value = token if isinstance(token, str) else token["access_token"]
    return {"Authorization": f"Bearer {value}"}


def oauth_client(emu: XEmulator, secret: str | None = None, redirect: str = REDIRECT) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=emu.client_id,
        client_secret=secret,
        redirect_uri=redirect,
        scope=SCOPES,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic" if secret else "none",
    )


async def authorize(emu: XEmulator, client: AsyncOAuth2Client, login: str = "user1") -> tuple[str, str]:
    """Runs the browser leg with login=; returns (callback URL, code verifier)."""
    verifier = generate_token(48)
    url, _state = client.create_authorization_url(
        f"{emu.base_url}/i/oauth2/authorize", code_verifier=verifier
    )
    async with httpx.AsyncClient() as browser:
        resp = await browser.get(url + f"&login={login}")
    assert resp.status_code == 302
    return resp.headers["location"], verifier


def code_of(callback: str) -> str:
    return parse_qs(urlsplit(callback).query)["code"][0]


async def test_pkce_flow_mute_list_unmute(emu: XEmulator, http: httpx.AsyncClient) -> None:
    async with oauth_client(emu) as client:
        callback, verifier = await authorize(emu, client, "User3")
        assert callback.startswith(REDIRECT + "?")
        token = await client.fetch_token(
            f"{emu.base_url}/2/oauth2/token", authorization_response=callback, code_verifier=verifier
        )
    assert token["token_type"] == "bearer"
    assert token["expires_in"] == 7200
    assert token["scope"] == SCOPES
    assert token["refresh_token"]

    me = await http.get("/2/users/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.headers["content-type"] == JSON
    me_id = me.json()["data"]["id"]
    assert me.json()["data"] == {"id": me_id, "name": "Sandbox User 3", "username": "user3"}
    target = emu.user("user5").id

    muted = await http.post(f"/2/users/{me_id}/muting", json={"target_user_id": target}, headers=bearer(token))
    assert muted.json() == {"data": {"muting": True}}
    assert emu.mutes_of("user3") == [target]
    listed = await http.get(f"/2/users/{me_id}/muting", headers=bearer(token))
    assert listed.json() == {
        "data": [{"id": target, "name": "Sandbox User 5", "username": "user5"}],
        "meta": {"result_count": 1},
    }
    unmuted = await http.delete(f"/2/users/{me_id}/muting/{target}", headers=bearer(token))
    assert unmuted.json() == {"data": {"muting": False}}
    assert emu.mutes_of("user3") == []
    assert emu.calls["POST /2/oauth2/token"] == 1
    assert emu.calls["POST /2/users/:id/muting"] == 1
    assert emu.calls["GET /2/users/:id/muting"] == 1
    assert emu.calls["DELETE /2/users/:source_user_id/muting/:target_user_id"] == 1
    assert emu.calls["GET /2/users/me"] == 1


async def test_code_is_single_use(emu: XEmulator, http: httpx.AsyncClient) -> None:
    async with oauth_client(emu) as client:
        callback, verifier = await authorize(emu, client)
        await client.fetch_token(f"{emu.base_url}/2/oauth2/token", authorization_response=callback,
                                 code_verifier=verifier)
    again = await http.post("/2/oauth2/token", data={
        "grant_type": "authorization_code", "code": code_of(callback), "redirect_uri": REDIRECT,
        "code_verifier": verifier, "client_id": emu.client_id})
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert again.headers["content-type"] == JSON


async def test_code_expires_after_30_seconds(emu: XEmulator, clock: FakeClock) -> None:
    async with oauth_client(emu) as client:
        callback, verifier = await authorize(emu, client)
        clock.now += 31
        with pytest.raises(OAuthError) as err:
            await client.fetch_token(f"{emu.base_url}/2/oauth2/token", authorization_response=callback,
                                     code_verifier=verifier)
    assert err.value.error == "invalid_grant"


async def test_wrong_verifier_and_wrong_redirect_refused(emu: XEmulator, http: httpx.AsyncClient) -> None:
    async with oauth_client(emu) as client:
        callback, _ = await authorize(emu, client)
        with pytest.raises(OAuthError) as err:
            await client.fetch_token(f"{emu.base_url}/2/oauth2/token", authorization_response=callback,
                                     code_verifier=generate_token(48))
        assert err.value.error == "invalid_grant"
        callback, verifier = await authorize(emu, client)
    resp = await http.post("/2/oauth2/token", data={
        "grant_type": "authorization_code", "code": code_of(callback), "redirect_uri": REDIRECT + "x",
        "code_verifier": verifier, "client_id": emu.client_id})
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_grant"


async def test_authorize_page_refusals_and_choices(emu: XEmulator, http: httpx.AsyncClient) -> None:
    query = {"response_type": "code", "client_id": emu.client_id, "redirect_uri": REDIRECT, "scope": SCOPES,
             "state": "st4te", "code_challenge": "x" * 43, "code_challenge_method": "S256"}
    page = await http.get("/i/oauth2/authorize", params=query)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "login=user1" in page.text
    assert "deny=1" in page.text
    for bad in ({"redirect_uri": "http://evil.example/cb"}, {"client_id": "someone-else"}):
        refused = await http.get("/i/oauth2/authorize", params={**query, **bad})
        assert refused.status_code == 400
        assert "location" not in refused.headers
        assert refused.headers["content-type"].startswith("text/html")
    denied = await http.get("/i/oauth2/authorize", params={**query, "deny": "1"})
    assert denied.status_code == 302
    assert parse_qs(urlsplit(denied.headers["location"]).query) == {"error": ["access_denied"], "state": ["st4te"]}


async def test_confidential_client_needs_basic_auth(clock: FakeClock) -> None:
    emu = XEmulator(users=3, client_secret="s3cret", clock=clock)
    await emu.start()
    try:
        async with oauth_client(emu, secret="s3cret") as client:
            callback, verifier = await authorize(emu, client)
            form = {"grant_type": "authorization_code", "code": code_of(callback), "redirect_uri": REDIRECT,
                    "code_verifier": verifier, "client_id": emu.client_id}
            async with httpx.AsyncClient(base_url=emu.base_url) as http:
                no_basic = await http.post("/2/oauth2/token", data=form)
                assert no_basic.status_code == 401
                assert no_basic.json()["error"] == "unauthorized_client"
                wrong = base64.b64encode(f"{emu.client_id}:nope".encode()).decode()
                bad = await http.post("/2/oauth2/token", data=form, headers={"Authorization": f"Basic {wrong}"})
                assert bad.status_code == 401
            callback, verifier = await authorize(emu, client)
            token = await client.fetch_token(f"{emu.base_url}/2/oauth2/token", authorization_response=callback,
                                             code_verifier=verifier)
        assert token["access_token"]
    finally:
        await emu.stop()


async def test_refresh_rotates_and_reuse_is_invalid_grant(emu: XEmulator, http: httpx.AsyncClient) -> None:
    first = emu.issue_token("user2")
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": emu.client_id}
    rotated = await http.post("/2/oauth2/token", data=form)
    assert rotated.status_code == 200
    body = rotated.json()
    assert set(body) == {"token_type", "expires_in", "access_token", "scope", "refresh_token"}
    assert body["refresh_token"] != first["refresh_token"]
    assert emu.token_refreshes == 1
    reused = await http.post("/2/oauth2/token", data=form)
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert reused.json()["error_description"]
    assert emu.token_refreshes == 1
    me = await http.get("/2/users/me", headers=bearer(body))
    assert me.json()["data"]["username"] == "user2"


async def test_no_refresh_token_without_offline_access(emu: XEmulator) -> None:
    token = emu.issue_token("user1", "tweet.read users.read mute.read")
    assert "refresh_token" not in token


async def test_revoke_endpoint_and_revoke_user(emu: XEmulator, http: httpx.AsyncClient) -> None:
    token = emu.issue_token("user1")
    resp = await http.post("/2/oauth2/revoke", data={
        "token": token["access_token"], "token_type_hint": "access_token", "client_id": emu.client_id})
    assert resp.status_code == 200
    assert resp.json() == {"revoked": True}
    assert emu.calls["POST /2/oauth2/revoke"] == 1
    assert (await http.get("/2/users/me", headers=bearer(token))).status_code == 401

    other = emu.issue_token("user4")
    emu.revoke_user("user4")
    denied = await http.get("/2/users/me", headers=bearer(other))
    assert denied.status_code == 401
    assert denied.json() == {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
    refresh = await http.post("/2/oauth2/token", data={
        "grant_type": "refresh_token", "refresh_token": other["refresh_token"], "client_id": emu.client_id})
    assert refresh.json()["error"] == "invalid_grant"


async def test_expired_access_token_is_401_and_refresh_still_works(
    emu: XEmulator, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    token = emu.issue_token("user1")
    emu.expire_access_tokens()
    resp = await http.get("/2/users/me", headers=bearer(token))
    assert resp.status_code == 401
    assert resp.headers["x-rate-limit-limit"] == "75"
    refreshed = await http.post("/2/oauth2/token", data={
        "grant_type": "refresh_token", "refresh_token": token["refresh_token"], "client_id": emu.client_id})
    fresh = refreshed.json()
    assert (await http.get("/2/users/me", headers=bearer(fresh))).status_code == 200
    clock.now += 7200
    assert (await http.get("/2/users/me", headers=bearer(fresh))).status_code == 401
    assert (await http.get("/2/users/me")).status_code == 401


async def test_other_users_id_is_forbidden_and_scopes_are_checked(emu: XEmulator, http: httpx.AsyncClient) -> None:
    token = emu.issue_token("user1")
    other, target = emu.user("user2").id, emu.user("user3").id
    for resp in (
        await http.get(f"/2/users/{other}/muting", headers=bearer(token)),
        await http.post(f"/2/users/{other}/muting", json={"target_user_id": target}, headers=bearer(token)),
        await http.delete(f"/2/users/{other}/muting/{target}", headers=bearer(token)),
    ):
        assert resp.status_code == 403
        assert resp.json()["title"] == "Forbidden"
        assert resp.json()["status"] == 403
        assert "x-rate-limit-remaining" in resp.headers
    read_only = emu.issue_token("user1", "tweet.read users.read mute.read")
    me = emu.user("user1").id
    write = await http.post(f"/2/users/{me}/muting", json={"target_user_id": target}, headers=bearer(read_only))
    assert write.status_code == 403
    no_read = emu.issue_token("user1", "tweet.read users.read")
    assert (await http.get(f"/2/users/{me}/muting", headers=bearer(no_read))).status_code == 403


async def test_bad_targets(emu: XEmulator, http: httpx.AsyncClient) -> None:
    token = emu.issue_token("user1")
    me = emu.user("user1").id
    for body in ({"target_user_id": "999"}, {"target_user_id": me}, {"target_user_id": "abc"}, {}):
        resp = await http.post(f"/2/users/{me}/muting", json=body, headers=bearer(token))
        assert resp.status_code == 400, body
        assert resp.json()["type"].endswith("/invalid-request")
        assert resp.json()["errors"][0]["parameters"].keys() == {"target_user_id"}
    assert emu.mutes_of("user1") == []


async def test_rate_limit_429_after_50_and_window_reset(
    emu: XEmulator, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    emu.window_seconds = 2.0
    token = emu.issue_token("user1")
    me = emu.user("user1").id
    targets = [emu.add_user(f"t{i}").id for i in range(51)]
    reset = str(int(clock.now + 2))
    for i, target in enumerate(targets[:50]):
        resp = await http.post(f"/2/users/{me}/muting", json={"target_user_id": target}, headers=bearer(token))
        assert resp.status_code == 200
        assert resp.headers["x-rate-limit-limit"] == "50"
        assert resp.headers["x-rate-limit-remaining"] == str(49 - i)
        assert resp.headers["x-rate-limit-reset"] == reset
    limited = await http.post(f"/2/users/{me}/muting", json={"target_user_id": targets[50]}, headers=bearer(token))
    assert limited.status_code == 429
    assert limited.json() == {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank",
                              "status": 429}
    assert limited.headers["x-rate-limit-remaining"] == "0"
    assert limited.headers["x-rate-limit-reset"] == reset
    assert emu.calls["429"] == 1
    assert len(emu.mutes_of("user1")) == 50
    # Another endpoint and another user have their own windows.
    assert (await http.get(f"/2/users/{me}/muting", headers=bearer(token))).status_code == 200
    clock.now += 2.0
    again = await http.post(f"/2/users/{me}/muting", json={"target_user_id": targets[50]}, headers=bearer(token))
    assert again.status_code == 200
    assert again.headers["x-rate-limit-remaining"] == "49"


async def test_real_clock_compressed_window() -> None:
    emu = XEmulator(users=2, window_seconds=0.3)
    await emu.start()
    try:
        token = emu.issue_token("user1")
        me = emu.user("user1").id
        async with httpx.AsyncClient(base_url=emu.base_url, headers=bearer(token)) as http:
            statuses = [(await http.get(f"/2/users/{me}/muting")).status_code for _ in range(16)]
            assert statuses == [200] * 15 + [429]
            time.sleep(0.35)  # noqa: ASYNC251 -- the emulator's window runs on the wall clock here
            assert (await http.get(f"/2/users/{me}/muting")).status_code == 200
    finally:
        await emu.stop()


async def test_pagination_over_137_mutes(emu: XEmulator, http: httpx.AsyncClient) -> None:
    emu.seed_mutes("user1", [f"muted{i}" for i in range(137)])
    token = emu.issue_token("user1")
    me = emu.user("user1").id
    seen: list[str] = []
    pages: list[dict[str, Any]] = []
    params: dict[str, Any] = {"max_results": 50}
    while True:
        resp = await http.get(f"/2/users/{me}/muting", params=params, headers=bearer(token))
        assert resp.status_code == 200
        page = resp.json()
        pages.append(page)
        seen += [u["id"] for u in page["data"]]
        assert page["meta"]["result_count"] == len(page["data"])
        if "next_token" not in page["meta"]:
            break
        params["pagination_token"] = page["meta"]["next_token"]
    assert [p["meta"]["result_count"] for p in pages] == [50, 50, 37]
    assert seen == emu.mutes_of("user1")
    assert len(set(seen)) == 137
    assert seen[0] == emu.user("muted136").id  # newest first
    assert "previous_token" not in pages[0]["meta"]
    back = await http.get(f"/2/users/{me}/muting", headers=bearer(token),
                          params={"max_results": 50, "pagination_token": pages[2]["meta"]["previous_token"]})
    assert back.json()["data"] == pages[1]["data"]


async def test_empty_page_and_max_results_bounds(emu: XEmulator, http: httpx.AsyncClient) -> None:
    token = emu.issue_token("user1")
    me = emu.user("user1").id
    empty = await http.get(f"/2/users/{me}/muting", headers=bearer(token))
    assert empty.json() == {"meta": {"result_count": 0}}
    for bad in ("0", "1001", "ten"):
        resp = await http.get(f"/2/users/{me}/muting", params={"max_results": bad}, headers=bearer(token))
        assert resp.status_code == 400
        body = resp.json()
        assert body["title"] == "Invalid Request"
        assert body["type"] == "https://api.x.com/2/problems/invalid-request"
        assert body["errors"][0]["parameters"] == {"max_results": [bad]}
    junk = await http.get(f"/2/users/{me}/muting", params={"pagination_token": "zz!"}, headers=bearer(token))
    assert junk.status_code == 400


async def test_user_lookups(emu: XEmulator, http: httpx.AsyncClient) -> None:
    token = emu.issue_token("user1")
    found = await http.get("/2/users/by/username/USER3", headers=bearer(token))
    assert found.json() == {"data": {"id": emu.user("user3").id, "name": "Sandbox User 3", "username": "user3"}}
    assert found.headers["x-rate-limit-limit"] == "900"
    missing = await http.get("/2/users/by/username/nobody_here", headers=bearer(token))
    assert missing.status_code == 200
    assert missing.json() == {"errors": [{
        "value": "nobody_here", "detail": "Could not find user with username: [nobody_here].",
        "title": "Not Found Error", "resource_type": "user", "parameter": "username", "resource_id": "nobody_here",
        "type": "https://api.x.com/2/problems/resource-not-found"}]}
    bad = await http.get("/2/users/by/username/not-valid", headers=bearer(token))
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["parameters"] == {"username": ["not-valid"]}

    many = await http.get("/2/users/by", params={"usernames": "user1,ghost,user2"}, headers=bearer(token))
    body = many.json()
    assert [u["username"] for u in body["data"]] == ["user1", "user2"]
    assert [e["value"] for e in body["errors"]] == ["ghost"]
    too_many = ",".join(f"user{i}" for i in range(101))
    assert (await http.get("/2/users/by", params={"usernames": too_many}, headers=bearer(token))).status_code == 400
    assert (await http.get("/2/users/by", params={"usernames": "a b"}, headers=bearer(token))).status_code == 400


async def test_fields_and_pinned_expansion(emu: XEmulator, http: httpx.AsyncClient) -> None:
    token = emu.issue_token("user1")
    resp = await http.get("/2/users/by/username/user3", headers=bearer(token), params={
        "user.fields": "created_at,public_metrics,protected", "expansions": "pinned_tweet_id",
        "tweet.fields": "created_at"})
    body = resp.json()
    user = body["data"]
    assert set(user) == {"id", "name", "username", "created_at", "public_metrics", "protected", "pinned_tweet_id"}
    assert set(user["public_metrics"]) >= {"followers_count", "following_count", "tweet_count", "listed_count"}
    tweet = body["includes"]["tweets"][0]
    assert tweet["id"] == user["pinned_tweet_id"]
    assert set(tweet) == {"id", "text", "edit_history_tweet_ids", "created_at"}
    bad = await http.get("/2/users/me", params={"user.fields": "shoe_size"}, headers=bearer(token))
    assert bad.status_code == 400


async def test_usage_cap_and_error_rate(emu: XEmulator, http: httpx.AsyncClient) -> None:
    token = emu.issue_token("user1")
    emu.usage_capped = True
    capped = await http.get("/2/users/me", headers=bearer(token))
    assert capped.status_code == 429
    assert capped.json()["type"].endswith("usage-capped")
    assert capped.json()["title"] == "UsageCapExceeded"
    assert "x-rate-limit-reset" in capped.headers
    assert emu.calls["429"] == 1
    emu.usage_capped = False
    emu.error_rate = 1.0
    failed = await http.get("/2/users/me", headers=bearer(token))
    assert failed.status_code == 503
    assert failed.headers["content-type"] == JSON
    assert failed.json()["status"] == 503
    assert "x-rate-limit-limit" in failed.headers
    emu.error_rate = 0.0
    assert (await http.get("/2/users/me", headers=bearer(token))).status_code == 200


async def test_latency_knob(emu: XEmulator, http: httpx.AsyncClient) -> None:
    emu.latency = 0.05
    started = time.perf_counter()
    await http.get("/2/users/me")
    assert time.perf_counter() - started >= 0.05


async def test_python_api(emu: XEmulator) -> None:
    assert emu.user("USER1").id == "1000000001"
    assert emu.user("user10").id == "1000000010"
    with pytest.raises(KeyError):
        emu.user("user11")
    added = emu.add_user("Someone", "Some One")
    assert added.id == "1000000011"
    with pytest.raises(ValueError, match="exists"):
        emu.add_user("someone")
    emu.seed_mutes("user1", ["user2", "brand_new"])
    assert emu.mutes_of("user1") == [emu.user("brand_new").id, emu.user("user2").id]
    assert XEmulator(users=3).user("user3").name == XEmulator(users=3).user("user3").name


# ---------------------------------------------------------------- OAuth 1.0a and v1.1


def oauth1_client(emu: XEmulator, **kwargs: Any) -> AsyncOAuth1Client:
    # Without force_include_body authlib's OAuth1 client silently sends JSON requests with an empty body.
    kwargs.setdefault("force_include_body", True)
    kwargs.setdefault("redirect_uri", REDIRECT)
    return AsyncOAuth1Client(client_id=emu.consumer_key, client_secret=emu.consumer_secret, **kwargs)


async def test_oauth1_three_legged_flow_and_signed_v2_calls(emu: XEmulator) -> None:
    async with oauth1_client(emu) as client:
        request_token = await client.fetch_request_token(f"{emu.base_url}/oauth/request_token")
        assert request_token["oauth_callback_confirmed"] == "true"
        url = client.create_authorization_url(f"{emu.base_url}/oauth/authorize")
        async with httpx.AsyncClient() as browser:
            page = await browser.get(url)
            assert page.status_code == 200
            assert "login=user1" in page.text
            approved = await browser.get(url + "&login=user2")
        assert approved.status_code == 302
        callback = approved.headers["location"]
        assert callback.startswith(REDIRECT + "?")
        client.parse_authorization_response(callback)
        token = await client.fetch_access_token(f"{emu.base_url}/oauth/access_token")
        me_id = emu.user("user2").id
        assert token["user_id"] == me_id
        assert token["screen_name"] == "user2"
        assert token["oauth_token"].startswith(me_id + "-")

        me = await client.get(f"{emu.base_url}/2/users/me")
        assert me.status_code == 200
        assert me.json()["data"]["username"] == "user2"
        target = emu.user("user7").id
        muted = await client.post(f"{emu.base_url}/2/users/{me_id}/muting", json={"target_user_id": target})
        assert muted.json() == {"data": {"muting": True}}
        listed = await client.get(f"{emu.base_url}/2/users/{me_id}/muting", params={"max_results": 5})
        assert listed.json()["data"][0]["id"] == target
    # The request token and verifier are spent.
    async with oauth1_client(emu, token=request_token["oauth_token"],
                             token_secret=request_token["oauth_token_secret"]) as again:
        again.parse_authorization_response(callback)
        with pytest.raises(OAuthError):
            await again.fetch_access_token(f"{emu.base_url}/oauth/access_token")


async def test_oauth1_deny_and_unapproved_callback(emu: XEmulator) -> None:
    async with oauth1_client(emu) as client:
        request_token = await client.fetch_request_token(f"{emu.base_url}/oauth/request_token")
        url = client.create_authorization_url(f"{emu.base_url}/oauth/authorize")
    async with httpx.AsyncClient() as browser:
        denied = await browser.get(url + "&deny=1")
    assert denied.status_code == 302
    assert parse_qs(urlsplit(denied.headers["location"]).query) == {"denied": [request_token["oauth_token"]]}
    async with oauth1_client(emu, redirect_uri="http://evil.example/cb") as bad:
        with pytest.raises(OAuthError):
            await bad.fetch_request_token(f"{emu.base_url}/oauth/request_token")


async def test_oauth1_bad_signature_refused(emu: XEmulator) -> None:
    async with AsyncOAuth1Client(client_id=emu.consumer_key, client_secret="wrong-secret",
                                 redirect_uri=REDIRECT) as forger:
        resp = await forger.post(f"{emu.base_url}/oauth/request_token")
    assert resp.status_code == 401
    assert resp.json() == {"errors": [{"code": 32, "message": "Could not authenticate you."}]}

    token, secret = emu.issue_oauth1_token("user1")
    async with oauth1_client(emu, token=token, token_secret="not-the-secret") as wrong_token_secret:
        v11 = await wrong_token_secret.get(f"{emu.base_url}/1.1/mutes/users/ids.json")
        v2 = await wrong_token_secret.get(f"{emu.base_url}/2/users/me")
    assert v11.status_code == 401
    assert v11.json() == {"errors": [{"code": 32, "message": "Could not authenticate you."}]}
    assert v2.status_code == 401
    assert v2.json()["title"] == "Unauthorized"
    async with oauth1_client(emu, token=token, token_secret=secret) as good:
        assert (await good.get(f"{emu.base_url}/2/users/me")).status_code == 200
    emu.revoke_user("user1")
    async with oauth1_client(emu, token=token, token_secret=secret) as revoked:
        gone = await revoked.get(f"{emu.base_url}/1.1/mutes/users/ids.json")
    assert gone.status_code == 401
    assert gone.json()["errors"][0]["code"] == 89


async def test_oauth1_replayed_nonce_refused(emu: XEmulator, http: httpx.AsyncClient) -> None:
    token, secret = emu.issue_oauth1_token("user1")
    async with oauth1_client(emu, token=token, token_secret=secret) as client:
        first = await client.get(f"{emu.base_url}/2/users/me")
    replay = await http.get("/2/users/me", headers={"Authorization": first.request.headers["Authorization"]})
    assert first.status_code == 200
    assert replay.status_code == 401


async def test_v11_mutes_create_destroy_and_cursors(emu: XEmulator) -> None:
    token, secret = emu.issue_oauth1_token("user1")
    base = f"{emu.base_url}/1.1/mutes/users"
    async with oauth1_client(emu, token=token, token_secret=secret) as client:
        created = await client.post(f"{base}/create.json", data={"screen_name": "user4"})
        assert created.status_code == 200
        user = created.json()
        assert user["muting"] is True
        assert user["id_str"] == emu.user("user4").id
        assert user["id"] == int(user["id_str"])
        assert user["screen_name"] == "user4"
        assert created.headers["x-rate-limit-limit"] == "50"
        by_id = await client.post(f"{base}/create.json", data={"user_id": emu.user("user5").id})
        assert by_id.json()["screen_name"] == "user5"
        assert (await client.post(f"{base}/create.json", data={"screen_name": "user1"})).status_code == 403
        assert (await client.post(f"{base}/create.json", data={"screen_name": "ghost"})).status_code == 404
        destroyed = await client.post(f"{base}/destroy.json", data={"screen_name": "user4"})
        assert destroyed.json()["muting"] is False
        not_muting = await client.post(f"{base}/destroy.json", data={"screen_name": "user4"})
        assert not_muting.status_code == 403
        assert not_muting.json()["errors"][0]["code"] == 272

        emu.seed_mutes("user1", [f"bulk{i}" for i in range(45)])
        expected = emu.mutes_of("user1")
        seen: list[int] = []
        cursor = -1
        pages = 0
        while cursor != 0:
            page = await client.get(f"{base}/list.json", params={"cursor": cursor, "count": 20})
            assert page.status_code == 200
            assert page.headers["x-rate-limit-limit"] == "15"
            body = page.json()
            assert set(body) == {"users", "next_cursor", "next_cursor_str", "previous_cursor", "previous_cursor_str"}
            assert body["next_cursor_str"] == str(body["next_cursor"])
            if pages == 0:
                assert body["previous_cursor"] == 0
            seen += [u["id"] for u in body["users"]]
            cursor = body["next_cursor"]
            pages += 1
        assert pages == 3
        assert [str(i) for i in seen] == expected
        ids = await client.get(f"{base}/ids.json", params={"cursor": -1, "count": 40})
        body = ids.json()
        assert body["ids"] == [int(i) for i in expected[:40]]
        rest = await client.get(f"{base}/ids.json", params={"cursor": body["next_cursor"], "stringify_ids": "true"})
        assert rest.json()["ids"] == expected[40:]
        assert rest.json()["next_cursor"] == 0
        back = await client.get(f"{base}/ids.json", params={"cursor": rest.json()["previous_cursor"], "count": 40})
        assert back.json()["ids"] == body["ids"]


async def test_v11_refuses_oauth2_tokens_and_limits_reads(emu: XEmulator, http: httpx.AsyncClient) -> None:
    bearer_only = await http.get("/1.1/mutes/users/ids.json", headers=bearer(emu.issue_token("user1")))
    assert bearer_only.status_code == 403
    token, secret = emu.issue_oauth1_token("user3")
    async with oauth1_client(emu, token=token, token_secret=secret) as client:
        statuses = [(await client.get(f"{emu.base_url}/1.1/mutes/users/ids.json")).status_code for _ in range(16)]
        assert statuses == [200] * 15 + [429]
        limited = await client.get(f"{emu.base_url}/1.1/mutes/users/ids.json")
    assert limited.json() == {"errors": [{"code": 88, "message": "Rate limit exceeded"}]}
    assert limited.headers["x-rate-limit-remaining"] == "0"


def test_sandbox_seeds_a_pile_on_and_prints_its_url() -> None:
    from bot.sandbox.x_emulator import _how_to, post_url, seed_pile_on

    emu = XEmulator(users=5)
    post = seed_pile_on(emu)
    text = _how_to(emu)
    assert f"A pile-on post to try /mutelist capture on: {post_url(emu, post)}" in text
    assert post_url(emu, post) == f"https://x.com/user2/status/{post.id}"
    replies = [p for p in emu.posts if p.in_reply_to_post_id == post.id]
    quotes = [p for p in emu.posts if p.quoted_post_id == post.id]
    assert (len(replies), len(quotes), len(post.reposted_by), len(post.liked_by)) == (30, 10, 20, 40)
    assert text.count("status/") == 1  # replies and quotes are not offered
