"""The README's reference stays complete: every slash command the bot registers, with each of its options (and
their choices), and every `mutebot` command with its options."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from bot.cli import build_parser
from bot.sandbox.harness import Sandbox

README = Path(__file__).resolve().parents[1] / "README.md"
CHAT_INPUT, SUB_COMMAND, SUB_COMMAND_GROUP = 1, 1, 2


def reference_rows() -> dict[str, str]:
    """The README's slash-command table: `/command sub` -> its options cell."""
    rows: dict[str, str] = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| `(/[a-z_ -]+)` \|([^|]*)\|", line)
        if match:
            assert match.group(1) not in rows, f"{match.group(1)} has two rows in the README's table"
            rows[match.group(1)] = match.group(2)
    assert rows, "README.md has no slash-command table (| `/command` | options | ...)"
    return rows


def leaves(command: dict[str, Any], prefix: str = "/") -> dict[str, list[dict[str, Any]]]:
    """`/command sub` -> its options, for a command as the bot registered it with Discord."""
    name = prefix + command["name"]
    options = command.get("options", [])
    groups = [o for o in options if o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)]
    if not groups:
        return {name: options}
    found: dict[str, list[dict[str, Any]]] = {}
    for sub in groups:
        found.update(leaves(sub, name + " "))
    return found


async def test_every_slash_command_and_option_is_in_the_readme_reference(sandbox: Sandbox) -> None:
    registered: dict[str, list[dict[str, Any]]] = {}
    for scope in sandbox.discord.commands.values():
        for command in scope:
            if command.get("type", CHAT_INPUT) == CHAT_INPUT:
                registered.update(leaves(command))
    assert "/mutelist create" in registered and "/link" in registered, registered.keys()
    rows = reference_rows()
    assert sorted(set(registered) - set(rows)) == [], "slash commands missing from the README's table"
    assert sorted(set(rows) - set(registered)) == [], "the README's table names commands the bot does not have"
    missing = []
    for name, options in registered.items():
        for option in options:
            if f"`{option['name']}`" not in rows[name]:
                missing.append(f"{name}: option {option['name']}")
            missing += [f"{name}: {option['name']}'s choice {choice['value']}" for choice in option.get("choices", [])
                        if f"`{choice['value']}`" not in rows[name]]
    assert missing == [], "options missing from the README's table"


def test_every_mutebot_command_and_option_is_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, command in sub.choices.items():
        if not re.search(rf"mutebot {re.escape(name)}(?![\w-])", text):
            missing.append(f"mutebot {name}")
        for action in command._actions:
            missing += [f"mutebot {name} {flag}" for flag in action.option_strings
                        if flag.startswith("--") and flag != "--help" and flag not in text]
    assert len(sub.choices) >= 9, sub.choices.keys()
    assert missing == [], "missing from README.md"
