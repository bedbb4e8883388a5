"""Durations as members type them for a timed mute: `30m`, `12h`, `7d`, `2w`, or combined as `1d12h`."""

from __future__ import annotations

import re

from bot.errors import InvalidDuration as InvalidDuration

UNITS = {"m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
MIN_SECONDS = 60
MAX_SECONDS = 365 * 86_400
MAX_INPUT = 40
_WHOLE = re.compile(r"(?:[0-9]{1,6}[mhdw])+")  # ASCII digits: \d (and int()) also take "５" or "٥"
_PART = re.compile(r"([0-9]{1,6})([mhdw])")
_NAMES = {"m": ("minute", "minutes"), "h": ("hour", "hours"), "d": ("day", "days"), "w": ("week", "weeks")}


def parse_duration(text: str) -> int:
    """Seconds; InvalidDuration (with words for the member) for anything else."""
    compact = re.sub(r"\s+", "", text).lower()
    if not compact:
        raise InvalidDuration("empty")
    if len(compact) > MAX_INPUT or not _WHOLE.fullmatch(compact):
        raise InvalidDuration("unknown", text.strip()[:MAX_INPUT])
    units = [unit for _, unit in _PART.findall(compact)]
    if len(set(units)) != len(units):
        raise InvalidDuration("repeated_unit")
    seconds = sum(int(number) * UNITS[unit] for number, unit in _PART.findall(compact))
    if seconds < MIN_SECONDS:
        raise InvalidDuration("too_short")
    if seconds > MAX_SECONDS:
        raise InvalidDuration("too_long")
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
