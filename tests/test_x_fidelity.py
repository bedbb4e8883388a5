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

from bot.sandbox.x_emulator import XEmulator
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
