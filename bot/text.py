"""Two helpers for words shown in Discord, with no imports, so that any module may use them: a name in a code
span and a count with its noun (bot/replies.py re-exports both)."""

from __future__ import annotations


def code_span(text: str) -> str:
    """`text` in a Discord code span, shown exactly as it is.

    Discord shows everything between backticks literally, escapes included (`escape_markdown` there would show
    its backslashes), so nothing is escaped; only a backtick, which would end the span, becomes ˋ (U+02CB), which
    looks the same, and a line break, which a name never means, a space.
    """
    shown = text.replace("`", "\u02cb").replace("\r", " ").replace("\n", " ")
    return "`" + (shown or " ") + "`"


def counted(count: int, singular: str, plural: str | None = None, *, bold: bool = False) -> str:
    """`1 account`, `2 accounts` (`**2** accounts` with `bold`): a count with the word that fits it."""
    number = f"**{count}**" if bold else str(count)
    return f"{number} {singular if count == 1 else plural or singular + 's'}"
