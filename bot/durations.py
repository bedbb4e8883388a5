"""Durations as members type them for a timed mute: `30m`, `12h`, `7d`, `2w`, or combined as `1d12h`."""

from __future__ import annotations

import re

from bot.errors import MutebotError

UNITS = {"m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
MIN_SECONDS = 60
MAX_SECONDS = 365 * 86_400
MAX_INPUT = 40
_WHOLE = re.compile(r"(?:[0-9]{1,6}[mhdw])+")  # ASCII digits: \d (and int()) also take "５" or "٥"
_PART = re.compile(r"([0-9]{1,6})([mhdw])")
_NAMES = {"m": ("minute", "minutes"), "h": ("hour", "hours"), "d": ("day", "days"), "w": ("week", "weeks")}
HOW = ("Write a number and a unit: m (minutes), h (hours), d (days) or w (weeks), for example `30m`, `12h`, "
       "`7d`, `2w`, or combined as `1d12h`; from 1 minute to 365 days.")


class InvalidDuration(MutebotError):
    def __init__(self, problem: str) -> None:
        super().__init__(f"{problem} {HOW} Nothing was changed.")


def parse_duration(text: str) -> int:
    """Seconds; InvalidDuration (with words for the member) for anything else."""
    compact = re.sub(r"\s+", "", text).lower()
    if not compact:
        raise InvalidDuration("The duration is empty.")
    if len(compact) > MAX_INPUT or not _WHOLE.fullmatch(compact):
        shown = text.strip()[:MAX_INPUT].replace("`", "'")
        raise InvalidDuration(f"`{shown}` is not a duration mutebot understands.")
    units = [unit for _, unit in _PART.findall(compact)]
    if len(set(units)) != len(units):
        raise InvalidDuration("Each unit may appear once.")
    seconds = sum(int(number) * UNITS[unit] for number, unit in _PART.findall(compact))
    if seconds < MIN_SECONDS:
        raise InvalidDuration("A timed mute lasts at least 1 minute.")
    if seconds > MAX_SECONDS:
        raise InvalidDuration("A timed mute lasts at most 365 days.")
    return seconds


def describe_duration(seconds: int) -> str:
    """`1 day 12 hours`: the largest units first, weeks only when whole."""
    parts: list[str] = []
    left = seconds
    for unit in ("w", "d", "h", "m"):
        count, left = divmod(left, UNITS[unit])
        if count:
            singular, plural = _NAMES[unit]
            parts.append(f"{count} {singular if count == 1 else plural}")
    return " ".join(parts) or "0 minutes"
