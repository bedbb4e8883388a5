"""The X client against the emulator over real loopback HTTP: operations, errors, limits, retries, lookups."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from bot.directory import UserDirectory
from bot.sandbox.x_emulator import XEmulator
from bot.secrets import Secret
from bot.store import Database, DirectoryStore
from bot.usernames import InvalidUsername, normalize_username
from bot.x_client import (
    UserAuth,
    XCall,
    XClient,
    XForbidden,
    XInvalidRequest,
    XPostNotFound,
    XRateLimited,
    XUnauthorized,
    XUnavailable,
    XUsageCapped,
    XUserNotFound,
)
from tests.helpers import until
from tests.xrecorded import load_openapi


@pytest.fixture
async def emu() -> AsyncIterator[XEmulator]:
    emulator = XEmulator(users=120, window_seconds=900)
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def client(emu: XEmulator) -> AsyncIterator[XClient]:
    async with XClient(emu.base_url, timeout=2.0) as x:
        yield x


def auth_for(emu: XEmulator, username: str) -> UserAuth:
    token = emu.issue_token(username)
    return UserAuth(emu.user(username).id, Secret(token["access_token"]))


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("jack", "jack"), ("@Jack_1", "Jack_1"), ("  @jack  ", "jack"), ("https://x.com/jack", "jack"),
        ("https://X.com/Jack/", "Jack"), ("http://twitter.com/jack?lang=en", "jack"),
        ("https://mobile.twitter.com/jack", "jack"), ("x.com/jack", "jack"), ("https://www.x.com/jack#top", "jack"),
        ("twitter.com/jack/status/123", "jack"), ("a" * 15, "a" * 15),
    ],
)
def test_username_forms(typed: str, expected: str) -> None:
    assert normalize_username(typed) == expected


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("", "Type an X username"), ("@", "after the `@`"), ("a" * 16, "at most 15"), ("jack!", "letters, digits"),
        ("https://example.com/jack", "not an x.com"), ("https://x.com/", "no username"),
        ("https://x.com/home", "a page on X"), ("ftp://x.com/jack", "not an x.com"), ("ja ck", "letters, digits"),
    ],
)
def test_username_rejections_explain_why(typed: str, reason: str) -> None:
    with pytest.raises(InvalidUsername) as caught:
        normalize_username(typed)
    assert reason in caught.value.reason


async def test_me_lookup_mute_list_unmute(emu: XEmulator, client: XClient) -> None:
    auth = auth_for(emu, "user1")
    me = await client.me(auth)
    assert (me.id, me.username) == (emu.user("user1").id, "user1")
    target = await client.user_by_username(auth, "USER2")
    assert target.username == "user2"
    assert await client.mute(auth, target.id) is True
    page = await client.muting_page(auth)
    assert [u.id for u in page.users] == [target.id] and page.result_count == 1
    assert await client.unmute(auth, target.id) is False
    empty = await client.muting_page(auth)
    assert empty.users == [] and empty.result_count == 0 and empty.next_token is None


async def test_not_found_is_typed_for_single_and_batched_lookups(emu: XEmulator, client: XClient) -> None:
    auth = auth_for(emu, "user1")
    with pytest.raises(XUserNotFound) as caught:
        await client.user_by_username(auth, "nobody_here")
    assert caught.value.username == "nobody_here"
    result = await client.users_by_usernames(auth, ["user3", "nobody_here", "user4"])
    assert sorted(u.username for u in result.found) == ["user3", "user4"]
    assert result.not_found == ["nobody_here"]


async def test_invalid_unauthorized_forbidden(emu: XEmulator, client: XClient) -> None:
    auth = auth_for(emu, "user1")
    with pytest.raises(XInvalidRequest):
        await client.user_by_username(auth, "bad-name!")
    with pytest.raises(XUnauthorized):
        await client.me(UserAuth(auth.x_user_id, Secret("not-a-token")))
    other = UserAuth(emu.user("user2").id, auth.access_token)  # someone else's id with my token
    with pytest.raises(XForbidden):
        await client.mute(other, emu.user("user3").id)
    emu.revoke_user("user1")
    with pytest.raises(XUnauthorized):
        await client.me(auth)


async def test_rate_limit_is_tracked_and_typed(emu: XEmulator, client: XClient) -> None:
    auth = auth_for(emu, "user1")
    targets = [emu.user(f"user{i}").id for i in range(2, 53)]
    for target in targets[:50]:
        await client.mute(auth, target)
    state = client.rate_limits.get(auth.x_user_id, "muting.post")
    assert state is not None and state.limit == 50 and state.remaining == 0
    assert client.rate_limits.next_allowed_at(auth.x_user_id, "muting.post") == state.reset_at
    assert client.rate_limits.next_allowed_at(auth.x_user_id, "muting.delete") == 0.0
    with pytest.raises(XRateLimited) as caught:
        await client.mute(auth, targets[50])
    assert caught.value.reset_at == state.reset_at


async def test_usage_cap_is_not_a_rate_limit(emu: XEmulator, client: XClient) -> None:
    emu.usage_capped = True
    with pytest.raises(XUsageCapped):
        await client.me(auth_for(emu, "user1"))


async def test_retries_calls_that_cannot_double(emu: XEmulator) -> None:
    emu.error_rate = 1.0
    auth = auth_for(emu, "user1")
    async with XClient(emu.base_url, retries=2) as client:
        with pytest.raises(XUnavailable):
            await client.me(auth)
        assert emu.calls["GET /2/users/me"] == 3
        # Muting is "make it so" on X (a second POST of a muted account answers muting: true): retried as well.
        with pytest.raises(XUnavailable):
            await client.mute(auth, emu.user("user2").id)
        assert emu.calls["POST /2/users/:id/muting"] == 3


async def test_a_mute_that_x_answers_503_once_is_sent_again(emu: XEmulator, client: XClient) -> None:
    emu.fail_next["POST /2/users/:id/muting"] = 2
    auth = auth_for(emu, "user1")
    assert await client.mute(auth, emu.user("user2").id) is True
    assert emu.calls["POST /2/users/:id/muting"] == 3
    assert emu.mutes_of("user1") == [emu.user("user2").id]


async def test_a_mute_that_times_out_once_is_sent_again(emu: XEmulator) -> None:
    """A POST muting X did not answer in time is sent again: whether or not the first one landed, muting an
    account X already mutes answers `muting: true`, so the retry cannot double anything."""
    key = "POST /2/users/:id/muting"
    emu.endpoint_latency[key] = 1.0

    async def answer_at_once_after_the_first() -> None:
        await until(lambda: emu.calls[key] >= 1, what="the first POST muting")
        emu.endpoint_latency[key] = 0.0

    auth = auth_for(emu, "user1")
    async with XClient(emu.base_url, timeout=0.2, retries=2) as client:
        quicken = asyncio.create_task(answer_at_once_after_the_first())
        assert await client.mute(auth, emu.user("user2").id) is True
        await quicken
    assert emu.calls[key] == 2
    await until(lambda: emu.mutes_of("user1") == [emu.user("user2").id], what="the mute at X")


async def test_timeouts_become_unavailable(emu: XEmulator) -> None:
    emu.latency = 0.5
    async with XClient(emu.base_url, timeout=0.1, retries=1) as client:
        with pytest.raises(XUnavailable, match="in time"):
            await client.me(auth_for(emu, "user1"))


async def test_pages_of_137_mutes_each_once(emu: XEmulator, client: XClient) -> None:
    emu.seed_mutes("user1", [f"muted{i}" for i in range(137)])
    auth = auth_for(emu, "user1")
    seen: list[str] = []
    async for page in client.iter_muting(auth, max_results=20):
        seen += [u.username for u in page.users]
    assert len(seen) == 137 and len(set(seen)) == 137
    with pytest.raises(XInvalidRequest):
        await client.muting_page(auth, max_results=1001)


async def test_a_thousand_names_take_at_most_ten_lookups(emu: XEmulator, client: XClient, tmp_path: Path) -> None:
    names = [f"bulk{i}" for i in range(1000)]
    for name in names[:990]:
        emu.add_user(name)
    db = await Database.open(tmp_path / "d.sqlite3")
    try:
        await db.migrate()
        directory = UserDirectory(DirectoryStore(db), client)
        auth = auth_for(emu, "user1")
        result = await directory.resolve_many(auth, [*names, "BULK1"])
        assert len(result.found) == 990 and result.not_found == names[990:]
        assert emu.calls["GET /2/users/by"] == 10
        again = await directory.resolve_many(auth, names)
        assert len(again.found) == 990 and emu.calls["GET /2/users/by"] == 10  # all from the cache
        assert (await directory.resolve(auth, "Bulk5")).username == "bulk5"
        with pytest.raises(XUserNotFound):
            await directory.resolve(auth, names[-1])
        assert emu.calls["GET /2/users/by/username/:username"] == 0
    finally:
        await db.close()


RENAMED = {"tweet.fields": "post.fields", "pinned_tweet_id": "pinned_post_id"}


def _spec_parameters(spec: dict[str, Any], path: str, method: str) -> dict[str, dict[str, Any]]:
    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = spec
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            node = target
        return node

    params = [resolve(p) for p in spec["paths"][path][method].get("parameters", [])]
    return {p["name"]: {**p, "schema": resolve(p.get("schema", {}))} for p in params if p.get("in") == "query"}


async def test_client_requests_validate_against_openapi(emu: XEmulator) -> None:
    spec = load_openapi()
    sent: list[XCall] = []
    auth = auth_for(emu, "user1")
    async with XClient(emu.base_url) as client:
        client.observers.append(sent.append)
        await client.me(auth)
        await client.user_by_username(auth, "user2")
        await client.users_by_usernames(auth, ["user2", "user3"])
        await client.muting_page(auth, max_results=1000, pagination_token=None, expansions=["pinned_tweet_id"],
                                 tweet_fields=["created_at"])
    routes = {"/2/users/me": "/2/users/me", "/2/users/by": "/2/users/by"}
    checked = 0
    for call in sent:
        url = httpx.URL(call.url)
        path = url.path
        spec_path = routes.get(path) or ("/2/users/by/username/{username}" if "/by/username/" in path
                                         else "/2/users/{id}/muting")
        params = _spec_parameters(spec, spec_path, "get")
        for name, value in url.params.multi_items():
            # The mutes docs (and X today) use the older names that spec 2.167 renamed; see tests/data/x-api/SOURCES.md.
            name = RENAMED.get(name, name)
            value = ",".join(RENAMED.get(v, v) for v in value.split(","))
            assert name in params, f"{name} is not a parameter of {spec_path}"
            schema = params[name]["schema"]
            if schema.get("type") == "array":
                jsonschema.validate(value.split(","), schema)
            elif schema.get("type") == "integer":
                jsonschema.validate(int(value), schema)
            else:
                jsonschema.validate(value, schema)
            checked += 1
    assert checked >= 7


LIKE_SCOPES = "tweet.read users.read like.read mute.read mute.write offline.access"


async def test_post_and_who_took_part_page_by_page(emu: XEmulator, client: XClient) -> None:
    pile = emu.seed_post("user2", repliers=[f"r{i}" for i in range(130)], quoters=[f"q{i}" for i in range(12)],
                         reposters=[f"p{i}" for i in range(150)], likers=["l1", "l2"])
    token = emu.issue_token("user1", LIKE_SCOPES)
    auth = UserAuth(emu.user("user1").id, Secret(token["access_token"]))
    post = await client.post(auth, pile.id)
    assert post.author is not None and post.author.username == "user2" and post.conversation_id == pile.id
    assert post.created_at is not None and abs(post.created_at - pile.created_at) < 1
    first = await client.search_recent(auth, f"conversation_id:{pile.id}")
    assert len(first.posts) == 100 and first.next_token and first.posts[0].author is not None
    second = await client.search_recent(auth, f"conversation_id:{pile.id}", next_token=first.next_token)
    assert len(second.posts) == 31 and second.next_token is None  # the post itself is in its conversation
    assert {p.author.username for p in first.posts + second.posts if p.author} == {f"r{i}" for i in range(130)} | {
        "user2"}
    quotes = await client.quote_posts(auth, pile.id)
    assert [p.author.username for p in quotes.posts if p.author][:2] == ["q11", "q10"]
    reposters = await client.reposted_by(auth, pile.id)
    assert len(reposters.users) == 100 and reposters.next_token is None  # X keeps the 100 most recent
    assert reposters.users[0].username == "p149"
    half = await client.reposted_by(auth, pile.id, max_results=60)
    rest = await client.reposted_by(auth, pile.id, max_results=60, pagination_token=half.next_token)
    assert len(half.users) + len(rest.users) == 100 and rest.next_token is None
    assert [u.username for u in (await client.liking_users(auth, pile.id)).users] == ["l2", "l1"]
    assert emu.calls["GET /2/tweets/:id"] == 1 and emu.calls["GET /2/tweets/search/recent"] == 2


async def test_missing_deleted_and_hidden_posts_are_typed(emu: XEmulator, client: XClient) -> None:
    auth = auth_for(emu, "user1")
    gone = emu.add_post("user2")
    emu.delete_post(gone.id)
    hidden = emu.add_post("user10")  # user10 is a protected account
    for post_id in ("123", gone.id):
        with pytest.raises(XPostNotFound) as missing:
            await client.post(auth, post_id)
        assert not missing.value.hidden
    with pytest.raises(XPostNotFound) as refused:
        await client.post(auth, hidden.id)
    assert refused.value.hidden
    with pytest.raises(XPostNotFound):
        await client.reposted_by(auth, gone.id)
    with pytest.raises(XInvalidRequest):
        await client.post(auth, "12ab")


async def test_likers_need_the_like_read_scope(emu: XEmulator, client: XClient) -> None:
    pile = emu.seed_post("user2", likers=["l1"])
    token = emu.issue_token("user1", "tweet.read users.read mute.read mute.write offline.access")  # as before
    auth = UserAuth(emu.user("user1").id, Secret(token["access_token"]))
    with pytest.raises(XForbidden):
        await client.liking_users(auth, pile.id)


async def test_post_endpoints_have_xs_limits(emu: XEmulator, client: XClient) -> None:
    pile = emu.seed_post("user2", likers=["l1"])
    auth = auth_for(emu, "user1")
    for _ in range(75):
        await client.reposted_by(auth, pile.id)
    with pytest.raises(XRateLimited):
        await client.reposted_by(auth, pile.id)
    state = client.rate_limits.get(auth.x_user_id, "tweets/:id/retweeted_by")
    assert state is not None and state.limit == 75 and state.remaining == 0
    assert client.rate_limits.next_allowed_at(auth.x_user_id, "tweets/:id/retweeted_by") > 0
    await client.quote_posts(auth, pile.id)  # each endpoint has its own window
    limits = {"tweets/:id": 900, "tweets/search/recent": 300, "tweets/:id/quote_tweets": 75}
    await client.post(auth, pile.id)
    await client.search_recent(auth, f"conversation_id:{pile.id}")
    for endpoint, limit in limits.items():
        seen = client.rate_limits.get(auth.x_user_id, endpoint)
        assert seen is not None and seen.limit == limit, endpoint


async def test_post_requests_validate_against_openapi(emu: XEmulator) -> None:
    spec = load_openapi()
    pile = emu.seed_post("user2", repliers=["r1"], likers=["l1"])
    sent: list[XCall] = []
    token = emu.issue_token("user1", LIKE_SCOPES)
    auth = UserAuth(emu.user("user1").id, Secret(token["access_token"]))
    async with XClient(emu.base_url) as client:
        client.observers.append(sent.append)
        await client.post(auth, pile.id)
        await client.search_recent(auth, f"conversation_id:{pile.id}")
        await client.quote_posts(auth, pile.id)
        await client.reposted_by(auth, pile.id)
        await client.liking_users(auth, pile.id)
    checked = 0
    for call in sent:
        url = httpx.URL(call.url)
        spec_path = url.path.replace(pile.id, "{id}")
        params = _spec_parameters(spec, spec_path, "get")
        for name, value in url.params.multi_items():
            assert name in params, f"{name} is not a parameter of {spec_path}"
            schema = params[name]["schema"]
            if schema.get("type") == "array":
                jsonschema.validate(value.split(","), schema)
            elif schema.get("type") == "integer":
                jsonschema.validate(int(value), schema)
            else:
                jsonschema.validate(value, schema)
            checked += 1
    assert len(sent) == 5 and checked >= 13
