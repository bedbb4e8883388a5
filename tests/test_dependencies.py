"""What pyproject.toml declares: every third-party module the code imports, and floors past known advisories."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
OURS = {"bot", "cogs", "migrations"}

# Versions with a published advisory the floors must exclude (issue 14, item 13; pyproject.toml says which).
VULNERABLE = [
    ("aiohttp", "3.12.13"), ("aiohttp", "3.14.2"),
    ("cryptography", "44.0.0"), ("cryptography", "49.0.0"),
    ("authlib", "1.6.11"), ("authlib", "1.5.2"),
]


def _project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        project: dict[str, object] = tomllib.load(f)["project"]
    return project


def _requirements(group: str | None) -> dict[str, Requirement]:
    project = _project()
    if group is None:
        listed = project["dependencies"]
    else:
        extras = project["optional-dependencies"]
        assert isinstance(extras, dict)
        listed = extras[group]
    assert isinstance(listed, list)
    return {canonicalize_name(r.name): r for r in map(Requirement, listed)}


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """Top-level modules imported (at module level, inside functions) by one source file."""
    at_top: set[str] = set()
    lazily: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            (at_top if node.col_offset == 0 else lazily).add(name.split(".")[0])
    return at_top, lazily


def _distributions(module: str) -> set[str]:
    found = importlib.metadata.packages_distributions().get(module)
    assert found, f"{module} is imported but no installed distribution provides it"
    return {canonicalize_name(d) for d in found}


def _third_party(modules: set[str]) -> set[str]:
    return {m for m in modules if m not in sys.stdlib_module_names and m not in OURS}


@pytest.mark.parametrize(("name", "version"), VULNERABLE)
def test_the_floors_exclude_versions_with_known_advisories(name: str, version: str) -> None:
    requirement = _requirements(None)[canonicalize_name(name)]
    assert version not in requirement.specifier, f"{requirement} still allows {name} {version}"
    installed = importlib.metadata.version(name)
    assert installed in requirement.specifier, f"the installed {name} {installed} is outside {requirement}"


def test_every_third_party_module_the_code_imports_is_declared() -> None:
    runtime = set(_requirements(None))
    dev = set(_requirements("dev"))
    undeclared: list[str] = []
    for path in sorted([*ROOT.glob("bot/**/*.py"), *ROOT.glob("cogs/**/*.py")]):
        at_top, lazily = _imports(path)
        # A module-level import is needed to run; a lazy one (the stand-ins' request checks) may be a test tool.
        for module in sorted(_third_party(at_top)):
            if not _distributions(module) & runtime:
                undeclared.append(f"{path.relative_to(ROOT)}: {module} (not in dependencies)")
        for module in sorted(_third_party(lazily)):
            if not _distributions(module) & (runtime | dev):
                undeclared.append(f"{path.relative_to(ROOT)}: {module} (in neither dependencies nor dev)")
    assert not undeclared, "\n".join(undeclared)
