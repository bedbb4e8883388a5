"""The test data vendored under tests/data: present, described, and loud when missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.xrecorded import DATA_DIR, discord_api_dir, load_discord_openapi, load_exchanges, load_openapi, x_api_dir


def test_data_lives_inside_the_repository() -> None:
    repository = Path(__file__).resolve().parents[1]
    for folder in (x_api_dir(), discord_api_dir()):
        assert folder.is_relative_to(repository)
        assert (folder / "openapi.json").is_file()
        assert "where it came from" in (folder / "SOURCES.md").read_text()


def test_every_data_folder_says_where_it_came_from() -> None:
    folders = [p for p in DATA_DIR.iterdir() if p.is_dir()]
    assert folders
    assert [p.name for p in folders if not (p / "SOURCES.md").is_file()] == []


def test_specs_load() -> None:
    assert load_openapi()["info"]["version"] == "2.167"
    discord = load_discord_openapi()
    assert discord["info"]["title"] == "Discord HTTP API (Preview)"
    assert "/interactions/{interaction_id}/{interaction_token}/callback" in discord["paths"]


def test_an_empty_recordings_folder_fails_instead_of_testing_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no recorded X responses"):
        load_exchanges(tmp_path)
