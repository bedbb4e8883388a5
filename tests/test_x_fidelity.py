"""The X emulator against X itself: recorded real responses replayed, and X's OpenAPI spec for inputs and outputs."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema
import pytest
from authlib.integrations.httpx_client import AsyncOAuth1Client

from bot.sandbox.x_emulator import RATE_LIMITS, XEmulator
from tests.xrecorded import Exchange, load_exchanges, load_openapi, shape_mismatches, x_api_dir

EXCHANGES = load_exchanges()
SPEC = load_openapi()
RATE_HEADERS = ("x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset")


def _users_in(value: Any) -> list[dict[str, Any]]:
    """User objects anywhere in a recorded body."""
    if isinstance(value, dict):
        found = [value] if {"id", "username"} <= set(value) else []
        return found + [u for v in value.values() for u in _users_in(v)]
    if isinstance(value, list):
        return [u for v in value for u in _users_in(v)]
    return []


def test_cassettes_were_found() -> None:
    assert len(EXCHANGES) >= 7
    assert {e.method for e in EXCHANGES} == {"GET", "POST", "DELETE"}


@pytest.mark.parametrize("cassette", sorted({e.cassette for e in EXCHANGES}))
async def test_recorded_exchange_replays_alike(cassette: str) -> None:
    exchanges = [e for e in EXCHANGES if e.cassette == cassette]
    emu = XEmulator(users=3)
    # Recorded accounts become emulator accounts with the same usernames; their ids map onto ours.
    id_map: dict[str, str] = {}
    for ex in exchanges:
        for user in _users_in(ex.body):
            if user["id"] not in id_map:
                id_map[user["id"]] = emu.add_user(user["username"], user.get("name")).id
    acting = emu.user("user1").id
    for ex in exchanges:
        for recorded_id in re.findall(r"\d{5,}", ex.path + (ex.request_body or "")):
            if recorded_id not in id_map:
                id_map[recorded_id] = emu.add_user(f"rec{recorded_id[-8:]}").id
        if m := re.match(r"/2/users/(\d+)/", ex.path):
            acting = id_map[m[1]]
        if ex.path == "/2/users/me":
            acting = id_map[ex.body["data"]["id"]]
    token = emu.issue_token(emu.user_by_id(acting).username)

    def mapped(text: str) -> str:
        for recorded_id, ours in id_map.items():
            text = text.replace(recorded_id, ours)
        return text

    await emu.start()
    try:
        async with httpx.AsyncClient(base_url=emu.base_url) as http:
            for ex in exchanges:
                url = mapped(ex.path) + (f"?{ex.query}" if ex.query else "")
                body = mapped(ex.request_body) if ex.request_body else None
                headers = {"Authorization": f"Bearer {token['access_token']}"}
                if body is not None:
                    headers["Content-Type"] = "application/json"
                resp = await http.request(ex.method, url, content=body, headers=headers)
                _assert_alike(ex, resp)
    finally:
        await emu.stop()


def _assert_alike(ex: Exchange, resp: httpx.Response) -> None:
    assert resp.status_code == ex.status, ex.name
    assert resp.headers["content-type"] == ex.headers["content-type"], ex.name
    problems = shape_mismatches(ex.body, resp.json())
    assert not problems, f"{ex.name}: {problems}"
    for header in RATE_HEADERS:
        if header in ex.headers:
            assert resp.headers.get(header, "").isdigit(), f"{ex.name}: {header}"


# ---------------------------------------------------------------- the OpenAPI spec


def _operation(operation_id: str) -> dict[str, Any]:
    for methods in SPEC["paths"].values():
        for op in methods.values():
            if isinstance(op, dict) and op.get("operationId") == operation_id:
                return op
    raise KeyError(operation_id)


def _parameter(operation_id: str, name: str) -> dict[str, Any]:
    for param in _operation(operation_id)["parameters"]:
        if "$ref" in param:
            param = SPEC["components"]["parameters"][param["$ref"].rsplit("/", 1)[1]]
        if param["name"] == name:
            return param
    raise KeyError(name)


def _components() -> dict[str, Any]:
    components = copy.deepcopy(SPEC["components"])
    # Spec 2.167 renames tweet_count to post_count (as it renames tweet.fields to post.fields); X's user objects
    # and the mutes reference pages still say tweet_count, which the emulator follows.
    metrics = components["schemas"]["UserPublicMetrics"]
    metrics["required"] = ["tweet_count" if r == "post_count" else r for r in metrics["required"]]
    return components


COMPONENTS = _components()


def _validator(operation_id: str) -> jsonschema.Draft7Validator:
    ref = _operation(operation_id)["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    return jsonschema.Draft7Validator({"$ref": ref, "components": COMPONENTS})


@pytest.fixture
async def emu() -> AsyncIterator[XEmulator]:
    emulator = XEmulator(users=12)
    emulator.seed_mutes("user1", [f"user{i}" for i in range(2, 12)])
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def http(emu: XEmulator) -> AsyncIterator[httpx.AsyncClient]:
    token = emu.issue_token("user1")
    async with httpx.AsyncClient(
        base_url=emu.base_url, headers={"Authorization": f"Bearer {token['access_token']}"}
    ) as client:
        yield client


def _enum(operation_id: str, name: str) -> list[str]:
    values: list[str] = _parameter(operation_id, name)["schema"]["items"]["enum"]
    return values


async def test_responses_validate_against_spec(emu: XEmulator, http: httpx.AsyncClient) -> None:
    me = emu.user("user1").id
    fields = {
        "user.fields": ",".join(_enum("getUsersMuting", "user.fields")),
        "expansions": "pinned_tweet_id",
        "tweet.fields": "created_at,author_id,lang,public_metrics",
    }
    new_fields = {**fields, "expansions": "pinned_post_id", "post.fields": "created_at", "tweet.fields": None}
    new_fields = {k: v for k, v in new_fields.items() if v is not None}
    checks: list[tuple[str, httpx.Response]] = [
        ("getUsersMe", await http.get("/2/users/me", params=fields)),
        ("getUsersByUsername", await http.get("/2/users/by/username/user3", params=fields)),
        ("getUsersByUsername", await http.get("/2/users/by/username/user3", params=new_fields)),
        ("getUsersByUsername", await http.get("/2/users/by/username/ghost")),
        ("getUsersByUsernames", await http.get("/2/users/by", params={"usernames": "user3,ghost,user6", **fields})),
        ("getUsersMuting", await http.get(f"/2/users/{me}/muting", params={"max_results": 4, **fields})),
        ("getUsersMuting", await http.get(f"/2/users/{me}/muting")),
        ("muteUser", await http.post(f"/2/users/{me}/muting", json={"target_user_id": emu.user("user12").id})),
        ("unmuteUser", await http.delete(f"/2/users/{me}/muting/{emu.user('user12').id}")),
    ]
    for operation_id, resp in checks:
        assert resp.status_code == 200, (operation_id, resp.text)
        errors = sorted(str(e.message) for e in _validator(operation_id).iter_errors(resp.json()))
        assert not errors, (operation_id, resp.json(), errors)
    assert not _validator("getUsersMe").is_valid({"data": {"id": 5}})  # the $refs really resolve
    muting = checks[5][1].json()
    assert muting["meta"]["next_token"]
    assert muting["includes"]["tweets"]


async def test_empty_muting_page_validates(emu: XEmulator, http: httpx.AsyncClient) -> None:
    token = emu.issue_token("user12")
    resp = await http.get(f"/2/users/{emu.user('user12').id}/muting",
                          headers={"Authorization": f"Bearer {token['access_token']}"})
    assert resp.json() == {"meta": {"result_count": 0}}
    assert not list(_validator("getUsersMuting").iter_errors(resp.json()))


async def test_max_results_bounds_follow_spec(emu: XEmulator, http: httpx.AsyncClient) -> None:
    schema = _parameter("getUsersMuting", "max_results")["schema"]
    me = emu.user("user1").id
    lo, hi = schema["minimum"], schema["maximum"]
    for value in (lo - 1, lo, schema["default"], hi, hi + 1):
        resp = await http.get(f"/2/users/{me}/muting", params={"max_results": value})
        valid = jsonschema.Draft7Validator(schema).is_valid(value)
        assert (resp.status_code == 200) == valid, value
    default = await http.get(f"/2/users/{me}/muting")
    assert default.json()["meta"]["result_count"] == min(schema["default"], 10)


async def test_parameter_enums_and_patterns_follow_spec(emu: XEmulator, http: httpx.AsyncClient) -> None:
    for name, path in (("user.fields", "/2/users/me"), ("expansions", "/2/users/me"),
                       ("post.fields", "/2/users/by/username/user1")):
        for value in _enum("getUsersMe", name):
            resp = await http.get(path, params={name: value})
            assert resp.status_code == 200, (name, value, resp.text)
    username = _parameter("getUsersByUsername", "username")["schema"]
    for candidate in ("user1", "a" * 15, "a" * 16, "bad-name", "x_y_Z_9"):
        resp = await http.get(f"/2/users/by/username/{candidate}")
        matches = re.fullmatch(username["pattern"].strip("^$"), candidate) is not None
        assert (resp.status_code == 200) == matches, candidate
    usernames = _parameter("getUsersByUsernames", "usernames")["schema"]
    at_max = ",".join(f"n{i}" for i in range(usernames["maxItems"]))
    over = at_max + ",extra"
    assert (await http.get("/2/users/by", params={"usernames": at_max})).status_code == 200
    assert (await http.get("/2/users/by", params={"usernames": over})).status_code == 400
    user_id = SPEC["components"]["schemas"]["UserId"]["pattern"]
    mute = SPEC["components"]["schemas"]["MuteUserRequest"]
    me = emu.user("user1").id
    for body in ({"target_user_id": emu.user("user12").id}, {"target_user_id": "12ab"}, {}):
        resp = await http.post(f"/2/users/{me}/muting", content=json.dumps(body),
                               headers={"Content-Type": "application/json"})
        valid = jsonschema.Draft7Validator(mute).is_valid(body)
        assert (resp.status_code == 200) == valid, body
    assert user_id == "^[0-9]{1,19}$"
    assert (await http.get("/2/users/abc/muting")).status_code == 400


async def test_error_bodies_have_spec_problem_shape(emu: XEmulator, http: httpx.AsyncClient) -> None:
    problem = jsonschema.Draft7Validator({"$ref": "#/components/schemas/Problem", "components": COMPONENTS})
    missing = (await http.get("/2/users/by/username/ghost")).json()
    assert not list(problem.iter_errors(missing["errors"][0]))
    invalid = (await http.get(f"/2/users/{emu.user('user1').id}/muting", params={"max_results": 0})).json()
    top = {k: v for k, v in invalid.items() if k != "errors"}
    assert not list(problem.iter_errors(top))


def _key_mismatches(documented: Any, emulated: Any, where: str = "$") -> list[str]:
    """Key sets of nested objects; values may be null where the docs show an example value."""
    if not (isinstance(documented, dict) and isinstance(emulated, dict)):
        return []
    problems = [f"{where}: {sorted(set(documented) ^ set(emulated))}"] if set(documented) != set(emulated) else []
    return problems + [p for k in set(documented) & set(emulated)
                       for p in _key_mismatches(documented[k], emulated[k], f"{where}.{k}")]


async def test_v11_user_object_matches_reference_example() -> None:
    page = (x_api_dir() / "docs" / "v1.1-mutes-users-create.txt").read_text()
    documented = json.loads(page.split("```", 2)[1])
    emu = XEmulator(users=3)  # user3 has a pinned post, which the v1.1 object carries as `status`
    token, secret = emu.issue_oauth1_token("user1")
    await emu.start()
    try:
        async with AsyncOAuth1Client(emu.consumer_key, emu.consumer_secret, token=token,
                                     token_secret=secret) as client:
            resp = await client.post(f"{emu.base_url}/1.1/mutes/users/create.json", data={"screen_name": "user3"})
    finally:
        await emu.stop()
    assert resp.status_code == 200
    body = resp.json()
    assert not _key_mismatches(documented, body)
    for key in ("id", "followers_count", "protected", "muting", "id_str", "created_at"):
        assert type(body[key]) is type(documented[key]), key
    assert body["muting"] is True


# ---------------------------------------------------------------- posts (issue 16)

LIKE_SCOPES = "tweet.read users.read like.read mute.read mute.write offline.access"


def _post_components() -> dict[str, Any]:
    components = copy.deepcopy(COMPONENTS)
    # Spec 2.167 renames retweet_count to repost_count; X's post objects still say retweet_count.
    metrics = components["schemas"]["PostPublicMetrics"]
    metrics["required"] = ["retweet_count" if r == "repost_count" else r for r in metrics["required"]]
    return components


POST_COMPONENTS = _post_components()


def _post_validator(operation_id: str) -> jsonschema.Draft7Validator:
    ref = _operation(operation_id)["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    return jsonschema.Draft7Validator({"$ref": ref, "components": POST_COMPONENTS})


async def test_post_responses_validate_against_spec(emu: XEmulator) -> None:
    pile = emu.seed_post("user2", repliers=[f"r{i}" for i in range(15)], quoters=[f"q{i}" for i in range(12)],
                         reposters=[f"p{i}" for i in range(5)], likers=[f"l{i}" for i in range(7)])
    gone = emu.add_post("user3")
    emu.delete_post(gone.id)
    token = emu.issue_token("user1", LIKE_SCOPES)
    fields = {"expansions": "author_id", "post.fields": "created_at,conversation_id,public_metrics,lang",
              "user.fields": "profile_image_url,protected"}
    async with httpx.AsyncClient(base_url=emu.base_url,
                                 headers={"Authorization": f"Bearer {token['access_token']}"}) as http:
        search = {"query": f"conversation_id:{pile.id}", "max_results": 10, **fields}
        first = await http.get("/2/tweets/search/recent", params=search)
        second = await http.get("/2/tweets/search/recent",
                                params={**search, "next_token": first.json()["meta"]["next_token"]})
        quotes = await http.get(f"/2/tweets/{pile.id}/quote_tweets", params={"max_results": 10, **fields})
        checks: list[tuple[str, httpx.Response]] = [
            ("getPostsById", await http.get(f"/2/tweets/{pile.id}", params=fields)),
            ("getPostsById", await http.get(f"/2/tweets/{pile.id}")),
            ("getPostsById", await http.get(f"/2/tweets/{gone.id}", params=fields)),
            ("getPostsById", await http.get("/2/tweets/99")),
            ("searchPostsRecent", first),
            ("searchPostsRecent", second),
            ("searchPostsRecent", await http.get("/2/tweets/search/recent", params={"query": "conversation_id:5"})),
            ("getPostsQuotedPosts", quotes),
            ("getPostsQuotedPosts", await http.get(f"/2/tweets/{pile.id}/quote_tweets",
                                                   params={"pagination_token": quotes.json()["meta"]["next_token"]})),
            ("getPostsRepostedBy", await http.get(f"/2/tweets/{pile.id}/retweeted_by",
                                                  params={"max_results": 2, "user.fields": "created_at"})),
            ("getPostsLikingUsers", await http.get(f"/2/tweets/{pile.id}/liking_users")),
            ("getPostsLikingUsers", await http.get(f"/2/tweets/{gone.id}/liking_users")),
        ]
        for operation_id, resp in checks:
            assert resp.status_code == 200, (operation_id, resp.text)
            errors = sorted(str(e.message) for e in _post_validator(operation_id).iter_errors(resp.json()))
            assert not errors, (operation_id, resp.json(), errors)
        post = checks[0][1].json()
        assert post["data"]["author_id"] == emu.user("user2").id
        assert post["includes"]["users"][0]["username"] == "user2"
        assert set(checks[1][1].json()["data"]) == {"id", "text", "edit_history_tweet_ids"}  # X's defaults
        assert checks[2][1].json()["errors"][0]["title"] == "Not Found Error"
        # 16 posts in the conversation (the post and its 15 replies), 10 a page
        assert first.json()["meta"]["result_count"] == 10 and second.json()["meta"]["result_count"] == 6
        assert "next_token" not in second.json()["meta"]
        assert checks[6][1].json() == {"meta": {"result_count": 0}}
        assert [u["username"] for u in checks[9][1].json()["data"]] == ["p4", "p3"]  # newest first
        problem = jsonschema.Draft7Validator({"$ref": "#/components/schemas/Problem", "components": COMPONENTS})
        assert not list(problem.iter_errors(checks[2][1].json()["errors"][0]))


async def test_post_parameters_follow_spec(emu: XEmulator, http: httpx.AsyncClient) -> None:
    pile = emu.seed_post("user2", repliers=["r1"])
    for operation_id, path in (("searchPostsRecent", "/2/tweets/search/recent"),
                               ("getPostsQuotedPosts", f"/2/tweets/{pile.id}/quote_tweets"),
                               ("getPostsRepostedBy", f"/2/tweets/{pile.id}/retweeted_by"),
                               ("getPostsLikingUsers", f"/2/tweets/{pile.id}/liking_users")):
        schema = _parameter(operation_id, "max_results")["schema"]
        for value in (schema["minimum"] - 1, schema["minimum"], schema["default"], schema["maximum"],
                      schema["maximum"] + 1):
            resp = await http.get(path, params={"max_results": value, "query": f"conversation_id:{pile.id}"})
            valid = jsonschema.Draft7Validator(schema).is_valid(value)
            assert (resp.status_code == 200) == valid, (operation_id, value, resp.text)
    for value in _enum("getPostsById", "expansions"):
        if value in ("author_id", "in_reply_to_user_id", "referenced_posts", "edit_history_post_ids"):
            resp = await http.get(f"/2/tweets/{pile.id}", params={"expansions": value})
            assert resp.status_code == 200, (value, resp.text)
    for value in _enum("getPostsById", "post.fields"):
        resp = await http.get(f"/2/tweets/{pile.id}", params={"post.fields": value})
        assert resp.status_code == 200, (value, resp.text)
    post_id = SPEC["components"]["schemas"]["PostId"]["pattern"]
    assert post_id == "^[0-9]{1,19}$"
    assert (await http.get("/2/tweets/12ab")).status_code == 400
    assert (await http.get("/2/tweets/search/recent")).status_code == 400  # query is required
    week_ago = (await http.get("/2/tweets/search/recent", params={
        "query": "conversation_id:1", "start_time": "2001-01-01T00:00:00Z"}))
    assert week_ago.status_code == 400 and "on or after" in week_ago.text


def _common_problem() -> dict[str, Any]:
    """What every problem the spec lists (`Problem`'s oneOf) shares: the fields all of them require and the
    properties all of them define, as they define them; only `type` is any string. X answers a missing scope and
    a used-up window with RFC 7807's `about:blank` (its 403 and 429 bodies), a type the spec's list leaves out."""
    variants = [COMPONENTS["schemas"][v["$ref"].rsplit("/", 1)[1]] for v in COMPONENTS["schemas"]["Problem"]["oneOf"]]
    required = set.intersection(*(set(v["required"]) for v in variants))
    shared = set.intersection(*(set(v["properties"]) for v in variants))
    properties = {name: variants[0]["properties"][name] for name in shared if name != "type"}
    for name in properties:  # the variants agree on each shared property but the type's enum
        assert all(v["properties"][name] == properties[name] for v in variants), name
    return {"type": "object", "required": sorted(required), "properties": {**properties, "type": {"type": "string"}}}


async def test_post_error_responses_validate_against_spec(emu: XEmulator) -> None:
    pile = emu.seed_post("user2", repliers=["r1"], likers=["l1"])
    problem = jsonschema.Draft7Validator({"$ref": "#/components/schemas/Problem", "components": COMPONENTS})
    invalid = jsonschema.Draft7Validator({"$ref": "#/components/schemas/InvalidRequestProblem",
                                          "components": COMPONENTS})
    common = _common_problem()
    assert {"type", "title", "detail"} <= set(common["required"]) and "status" in common["properties"]
    shared = jsonschema.Draft7Validator(common)
    ids = {"getPostsById": "/2/tweets/{}", "getPostsQuotedPosts": "/2/tweets/{}/quote_tweets",
           "getPostsRepostedBy": "/2/tweets/{}/retweeted_by", "getPostsLikingUsers": "/2/tweets/{}/liking_users"}
    token = emu.issue_token("user1", LIKE_SCOPES)
    async with httpx.AsyncClient(base_url=emu.base_url,
                                 headers={"Authorization": f"Bearer {token['access_token']}"}) as http:
        refused: list[tuple[str, str, httpx.Response]] = [
            (operation_id, "id", await http.get(path.format("12ab"))) for operation_id, path in ids.items()
        ]
        refused.append(("searchPostsRecent", "query", await http.get("/2/tweets/search/recent")))
        for operation_id, path in [*ids.items(), ("searchPostsRecent", "/2/tweets/search/recent")]:
            if operation_id == "getPostsById":
                continue
            over = _parameter(operation_id, "max_results")["schema"]["maximum"] + 1
            resp = await http.get(path.format(pile.id), params={"max_results": over,
                                                                "query": f"conversation_id:{pile.id}"})
            refused.append((operation_id, "max_results", resp))
        for operation_id, parameter, resp in refused:
            assert resp.status_code == 400, (operation_id, parameter, resp.text)
            assert resp.headers["content-type"] == "application/json; charset=utf-8"
            body = resp.json()
            top = {k: v for k, v in body.items() if k != "errors"}
            errors = sorted(str(e.message) for e in problem.iter_errors(top))
            assert not errors, (operation_id, parameter, body, errors)
            assert invalid.is_valid(top), (operation_id, parameter, body)  # the one of the spec's problems it is
            assert [list(e["parameters"]) for e in body["errors"]] == [[parameter]], (operation_id, body)
            assert all(isinstance(e["message"], str) and e["message"] for e in body["errors"])
        # The spec's own list refuses X's about:blank, so the 403 and 429 below are held to what all its problems share.
        assert not problem.is_valid({"title": "Forbidden", "detail": "Forbidden", "type": "about:blank"})

        without_likes = emu.issue_token("user1", "tweet.read users.read mute.read")
        other = {"Authorization": f"Bearer {without_likes['access_token']}"}
        forbidden = await http.get(f"/2/tweets/{pile.id}/liking_users", headers=other)
        assert (await http.get(f"/2/tweets/{pile.id}/retweeted_by", headers=other)).status_code == 200
        # The window's calls, those above included (X counts a refused call too), until X refuses the next.
        for _ in range(RATE_LIMITS["GET /2/tweets/:id/liking_users"] + 1):
            limited = await http.get(f"/2/tweets/{pile.id}/liking_users")
            if limited.status_code != 200:
                break
        assert limited.headers["x-rate-limit-remaining"] == "0"
        assert limited.headers["x-rate-limit-reset"].isdigit()
    for status, resp in ((403, forbidden), (429, limited)):
        assert resp.status_code == status, resp.text
        assert resp.headers["content-type"] == "application/json; charset=utf-8"
        body = resp.json()
        errors = sorted(str(e.message) for e in shared.iter_errors(body))
        assert not errors, (status, body, errors)
        assert body["status"] == status and body["type"] == "about:blank"
