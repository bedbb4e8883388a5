"""The project's own files: `make clean`, the dev tools' version ranges, and mypy's configuration."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = ("bot", "cogs", "bench", "migrations", "tests")
# Specifiers that stop below some version; `~=1.4` means `>=1.4,<2`.
UPPER = ("<", "<=", "==", "~=", "===")


def pyproject(text: str | None = None) -> dict[str, Any]:
    return tomllib.loads(text if text is not None else (ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_make_clean_removes_what_builds_and_tools_leave_and_nothing_else(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    made = [".venv", "build", "dist", "mutebot.egg-info", ".mypy_cache", ".ruff_cache", ".pytest_cache"]
    kept = ["bot/__init__.py", "tests/test_x.py", ".env", "mutebot.sqlite3", "README.md", "LICENSE"]
    for name in made:
        (tmp_path / name).mkdir()
        (tmp_path / name / "leftover").write_text("")
    for name in kept:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    # Only PATH: under `make test VENV=...` the MAKEFLAGS in our environment would hand that VENV, the suite's
    # own virtual environment, to this `make clean`.
    result = subprocess.run(["make", "clean"], cwd=tmp_path, env={"PATH": os.environ.get("PATH", "")},
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"Makefile", *(k.split("/")[0] for k in kept)})


def dev_requirements_without_upper_bound(config: dict[str, Any]) -> list[str]:
    dev = config["project"]["optional-dependencies"]["dev"]
    assert dev, "no dev requirements"
    return [line for line in dev
            if not any(spec.operator in UPPER for spec in Requirement(line).specifier)]


def test_every_dev_tool_has_an_upper_bound() -> None:
    # A new major (or, for ruff and mypy, minor) version may fail the suite on a fresh machine by itself.
    assert dev_requirements_without_upper_bound(pyproject()) == []


def test_the_upper_bound_check_sees_a_floor_alone() -> None:
    config = pyproject('[project.optional-dependencies]\ndev = ["pytest>=9.2", "ruff~=0.17.6", "mypy>=2.4,<2.5"]')
    assert dev_requirements_without_upper_bound(config) == ["pytest>=9.2"]


def override_problems(config: dict[str, Any]) -> list[str]:
    """Why each `[[tool.mypy.overrides]]` section could be stale or reported unused: its pattern names no
    module that exists, or it names our own code (mypy reports an override for a package a run does not check,
    such as `cogs.*` under `mypy bot`, as an unused section: our code is configured in [tool.mypy] itself)."""
    problems = []
    for section in config["tool"]["mypy"].get("overrides", []):
        modules = section["module"]
        for pattern in [modules] if isinstance(modules, str) else modules:
            name = pattern.removesuffix(".*")
            if "*" in name:
                problems.append(f"{pattern}: a wildcard this test does not understand")
            elif name.split(".")[0] in FIRST_PARTY:
                problems.append(f"{pattern}: our own code; set it in [tool.mypy]")
            elif importlib.util.find_spec(name.split(".")[0]) is None or importlib.util.find_spec(name) is None:
                problems.append(f"{pattern}: no such module is installed")
    return problems


def test_every_mypy_override_names_a_module_that_exists() -> None:
    assert override_problems(pyproject()) == []


@pytest.mark.parametrize(("pattern", "problem"), [
    ("not_a_module_at_all.*", "no such module is installed"),
    ("cogs.*", "our own code; set it in [tool.mypy]"),
])
def test_the_override_check_sees_a_stale_section(pattern: str, problem: str) -> None:
    config = pyproject(f'[tool.mypy]\n[[tool.mypy.overrides]]\nmodule = ["{pattern}"]\nstrict = true\n')
    assert override_problems(config) == [f"{pattern}: {problem}"]


def test_mypy_is_strict_on_all_of_our_code() -> None:
    mypy = pyproject()["tool"]["mypy"]
    assert mypy.get("strict") is True  # bot/ and cogs/ (CONTRIBUTING), and bench/ with them
    assert mypy.get("warn_unused_configs") is True  # so a section that matches nothing is reported
    loosened = [s["module"] for s in mypy.get("overrides", [])
                if any(key != "module" and key != "ignore_missing_imports" for key in s)]
    assert loosened == []
