"""`mutebot check`'s judgements: each mistake an operator makes is named, with what to do instead."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from bot.config import ConfigError, Purpose, Settings, listen_problem, load_settings
from bot.vault import TokenVault

KEY_A = TokenVault.generate_key()
KEY_B = TokenVault.generate_key()
FULL_ENV = {
    "DISCORD_TOKEN": "discord-token",
    "X_CLIENT_ID": "client",
    "PUBLIC_BASE_URL": "https://bot.example/",
    "TOKEN_ENCRYPTION_KEY": KEY_A,
}


def problems(env: dict[str, str], purpose: Purpose = "check") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings({**FULL_ENV, **env}, purpose)
    return caught.value.problems


def settings(env: dict[str, str], purpose: Purpose = "check") -> Settings:
    return load_settings({**FULL_ENV, **env}, purpose)


@pytest.mark.parametrize("url", ["http://host/oauth/callback", "https://host.example/bot/oauth/callback/"])
def test_public_base_url_must_not_be_the_redirect_uri(url: str) -> None:
    assert problems({"PUBLIC_BASE_URL": url}) == [
        "PUBLIC_BASE_URL: give the base URL without /oauth/callback; "
        "the redirect URI is PUBLIC_BASE_URL + /oauth/callback"
    ]


def test_public_base_url_may_have_a_path() -> None:
    assert settings({"PUBLIC_BASE_URL": "https://host.example/mutebot/"}).redirect_uri == (
        "https://host.example/mutebot/oauth/callback"
    )


@pytest.mark.parametrize(("url", "scheme"), [("http://", "http"), ("https://:8080", "https")])
def test_a_url_without_a_host_says_so(url: str, scheme: str) -> None:
    assert problems({"PUBLIC_BASE_URL": url}) == [
        f"PUBLIC_BASE_URL: has no host name after {scheme}://; give the whole URL, e.g. {scheme}://host.example"
    ]


def test_a_url_with_another_scheme_names_the_schemes() -> None:
    assert problems({"DISCORD_GATEWAY_URL": "https://gateway.discord.gg"}) == [
        "DISCORD_GATEWAY_URL: must be a URL starting with ws:// or wss://"
    ]


def test_choices_are_read_in_any_case() -> None:
    assert settings({"X_AUTH": "OAuth2", "LOG_LEVEL": "debug"}).x_auth == "oauth2"
    assert settings({"LOG_LEVEL": "debug"}).log_level == "DEBUG"
    oauth1 = settings({"X_AUTH": "OAUTH1", "X_MUTE_API": "V1.1", "X_CONSUMER_KEY": "k", "X_CONSUMER_SECRET": "s"})
    assert (oauth1.x_auth, oauth1.x_mute_api) == ("oauth1", "v1.1")
    assert problems({"X_AUTH": "OAuth3"}) == ["X_AUTH: must be `oauth2` or `oauth1`"]


@pytest.mark.parametrize(("keys", "expected"), [
    (f"{KEY_A},{KEY_B},", "TOKEN_ENCRYPTION_KEY: key 3 is empty (a trailing comma?)"),
    (f",{KEY_A}", "TOKEN_ENCRYPTION_KEY: key 1 is empty (a leading comma?)"),
    (f"{KEY_A},,{KEY_B}", "TOKEN_ENCRYPTION_KEY: key 2 is empty (two commas in a row?)"),
])
def test_an_empty_key_is_called_empty(keys: str, expected: str) -> None:
    assert problems({"TOKEN_ENCRYPTION_KEY": keys}) == [expected]


def test_a_wrong_key_still_says_which_of_how_many() -> None:
    [problem] = problems({"TOKEN_ENCRYPTION_KEY": f"{KEY_A}, {KEY_B},nonsense"})
    assert problem.startswith("TOKEN_ENCRYPTION_KEY: key 3 of 3 is not a Fernet key")


def test_database_path_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "mutebot.sqlite3"
    for purpose in ("check", "run"):
        assert problems({"DATABASE_PATH": str(path)}, purpose) == [
            f"DATABASE_PATH: the directory {path.parent} does not exist; create it, or correct the path"
        ]
    # migrate is the step that makes a database, directory and all
    assert settings({"DATABASE_PATH": str(path)}, "migrate").database_path == path
    assert not path.parent.exists()


def test_database_path_naming_a_directory_is_refused(tmp_path: Path) -> None:
    for purpose in ("check", "migrate"):
        [problem] = problems({"DATABASE_PATH": str(tmp_path)}, purpose)
        assert problem.startswith(f"DATABASE_PATH: {tmp_path} is a directory")


def test_database_path_in_an_existing_directory_is_accepted(tmp_path: Path) -> None:
    assert settings({"DATABASE_PATH": str(tmp_path / "new.sqlite3")}, "run").database_path == tmp_path / "new.sqlite3"


def test_metrics_port_is_optional_and_validated() -> None:
    assert settings({}).metrics_port is None
    assert settings({"METRICS_PORT": "9108"}).metrics_port == 9108
    assert problems({"METRICS_PORT": "metrics"}) == [
        "METRICS_PORT: must be a port number between 1 and 65535 (or unset, for no metrics)"
    ]
    assert problems({"METRICS_PORT": "70000"}) == [
        "METRICS_PORT: must be a port number between 1 and 65535 (or unset, for no metrics)"
    ]
    assert problems({"METRICS_PORT": "8080"}) == [
        "METRICS_PORT: must differ from WEB_PORT (8080); metrics have a port of their own"
    ]


def test_listen_problem_names_a_taken_port_and_passes_a_free_one() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert listen_problem("127.0.0.1", port) == "address already in use"
    assert listen_problem("127.0.0.1", port) is None
    assert listen_problem("no-such-host.invalid", 8080) is not None


def test_every_variable_read_is_in_env_example_and_the_readme() -> None:
    root = Path(__file__).resolve().parents[1]
    source = (root / "bot" / "config.py").read_text()
    read = set(re.findall(r'(?:get|required)\("([A-Z_]+)"', source))
    assert {"DISCORD_TOKEN", "METRICS_PORT", "WEB_PORT"} <= read
    example = set(re.findall(r"^([A-Z_]+)=", (root / ".env.example").read_text(), re.MULTILINE))
    readme = set(re.findall(r"`([A-Z][A-Z_]+)`", (root / "README.md").read_text()))
    assert read - example == set(), "missing from .env.example"
    assert read - readme == set(), "missing from the README's configuration table"


def test_shards_unset_means_discords_recommendation_all_here() -> None:
    unset = settings({})
    assert (unset.shard_count, unset.shard_ids) == (None, None)
    assert unset.shards_shown == "all, as many as Discord recommends"


def test_shard_count_alone_runs_every_shard_here_and_ids_pick_some() -> None:
    assert settings({"SHARD_COUNT": "4"}).shards_shown == "0, 1, 2, 3 of 4"
    picked = settings({"SHARD_COUNT": "4", "SHARD_IDS": " 3, 1 "})
    assert (picked.shard_count, picked.shard_ids) == (4, (1, 3))


@pytest.mark.parametrize(("env", "problem"), [
    ({"SHARD_COUNT": "0"}, "SHARD_COUNT: must be a whole number of shards, 1 or more (or unset: Discord's "
                           "recommended count)"),
    ({"SHARD_COUNT": "two"}, "SHARD_COUNT: must be a whole number of shards, 1 or more (or unset: Discord's "
                             "recommended count)"),
    ({"SHARD_IDS": "0"}, "SHARD_IDS: needs SHARD_COUNT, the number of shards across every process"),
    ({"SHARD_COUNT": "2", "SHARD_IDS": "0-1"}, "SHARD_IDS: must be shard numbers separated by commas, e.g. 0,1"),
    ({"SHARD_COUNT": "2", "SHARD_IDS": "0,,1"}, "SHARD_IDS: must be shard numbers separated by commas, e.g. 0,1"),
    ({"SHARD_COUNT": "2", "SHARD_IDS": "1,2"},
     "SHARD_IDS: shard 2 does not exist with SHARD_COUNT=2; shards are numbered 0 to 1"),
    ({"SHARD_COUNT": "2", "SHARD_IDS": "1,1"}, "SHARD_IDS: names a shard twice"),
])
def test_shard_mistakes_name_their_variable(env: dict[str, str], problem: str) -> None:
    assert problems(env) == [problem]
