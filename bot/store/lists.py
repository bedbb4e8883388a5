"""ListStore: the only SQL on `mute_lists`, `mute_list_entries`, `subscriptions`, `list_mutes` and `audit_log`.

`list_mutes` records why a member's account is muted by a list: one row per (member, target, list).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from bot.store.database import Batch, Database, Row

CHUNK = 500


class DuplicateListName(Exception):
    """The server already has a list of that name (names ignore case)."""

    def __init__(self, existing: str) -> None:
        super().__init__(existing)
        self.existing = existing


@dataclass(frozen=True)
class MuteList:
    id: int
    guild_id: int
    name: str
    description: str
    created_by: int
    created_at: float


@dataclass(frozen=True)
class ListEntry:
    x_user_id: str
    username: str
    reason: str | None
    added_by: int
    added_at: float
    evidence_url: str | None = None  # the post it was captured from
    evidence_sources: tuple[str, ...] = ()  # how it took part: author, replied, quoted, reposted, liked


@dataclass(frozen=True)
class ListSummary:
    mute_list: MuteList
    entries: int
    subscribers: int


@dataclass(frozen=True)
class ListMute:
    """An account a list muted for a member, with the best name known for it."""

    x_user_id: str
    username: str


def _list(row: Row) -> MuteList:
    return MuteList(int(row["id"]), int(row["guild_id"]), row["name"], row["description"], int(row["created_by"]),
                    float(row["created_at"]))


def _entry(row: Row) -> ListEntry:
    sources = row["evidence_sources"]
    return ListEntry(row["x_user_id"], row["username"], row["reason"], int(row["added_by"]), float(row["added_at"]),
                     row["evidence_url"], tuple(sources.split(",")) if sources else ())


_LIST_COLUMNS = "id, guild_id, name, description, created_by, created_at"
_ENTRY_COLUMNS = "x_user_id, username, reason, added_by, added_at, evidence_url, evidence_sources"

# The one rule on "another list still holds it for this member": another list muted it for them, or a
# list they subscribe to (other than this one) has it as an entry.
_HELD_ELSEWHERE = (
    "SELECT 1 FROM list_mutes WHERE discord_user_id = ? AND x_user_id = ? AND list_id != ?"
    " UNION ALL SELECT 1 FROM subscriptions s JOIN mute_list_entries e ON e.list_id = s.list_id"
    " WHERE s.discord_user_id = ? AND e.x_user_id = ? AND s.list_id != ?"
)


@dataclass(frozen=True)
class ListReason:
    """One list that holds an account for a member, for /why."""

    list_id: int
    guild_id: int
    list_name: str
    added_by: int
    added_at: float
    reason: str | None
    following: bool  # the member subscribes to the list
    muted_it: bool  # the list's entry is what muted it for the member
    evidence_url: str | None = None
    evidence_sources: tuple[str, ...] = ()


class ListStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- lists --------------------------------------------------------------------------------------------

    async def by_name(self, guild_id: int, name: str) -> MuteList | None:
        row = await self.db.fetchone(
            f"SELECT {_LIST_COLUMNS} FROM mute_lists WHERE guild_id = ? AND lower(name) = lower(?)",  # noqa: S608
            (guild_id, name),
        )
        return None if row is None else _list(row)

    async def by_id(self, guild_id: int, list_id: int) -> MuteList | None:
        row = await self.db.fetchone(
            f"SELECT {_LIST_COLUMNS} FROM mute_lists WHERE guild_id = ? AND id = ?", (guild_id, list_id)  # noqa: S608
        )
        return None if row is None else _list(row)

    async def names(self, guild_id: int, typed: str, limit: int) -> list[str]:
        needle = typed.strip().lower().replace("%", "").replace("_", r"\_")
        rows = await self.db.fetchall(
            "SELECT name FROM mute_lists WHERE guild_id = ? AND lower(name) LIKE ? ESCAPE '\\'"
            " ORDER BY lower(name) NOT LIKE ? ESCAPE '\\', lower(name) LIMIT ?",
            (guild_id, f"%{needle}%", f"{needle}%", limit),
        )
        return [str(r["name"]) for r in rows]

    async def summaries(self, guild_id: int) -> list[ListSummary]:
        rows = await self.db.fetchall(
            f"SELECT {_LIST_COLUMNS}, (SELECT count(*) FROM mute_list_entries e WHERE e.list_id = l.id) AS entries,"  # noqa: S608
            " (SELECT count(*) FROM subscriptions s WHERE s.list_id = l.id) AS subscribers"
            " FROM mute_lists l WHERE l.guild_id = ? ORDER BY lower(l.name)",
            (guild_id,),
        )
        return [ListSummary(_list(r), int(r["entries"]), int(r["subscribers"])) for r in rows]

    async def create(self, guild_id: int, name: str, description: str, actor: int, now: float) -> int:
        """Insert a list and its audit line together; DuplicateListName names the list already there."""
        try:
            async with self.db.transaction() as batch:
                rows = await self.db.returning(
                    "INSERT INTO mute_lists (guild_id, name, description, created_by, created_at)"
                    " VALUES (?, ?, ?, ?, ?) RETURNING id",
                    (guild_id, name, description, actor, now),
                )
                list_id = int(rows[0]["id"])
                self.audit(batch, guild_id, actor, "create", list_id, now, name=name, description=description)
        except self.db.dialect.integrity_errors:  # the name is taken (names ignore case)
            existing = await self.by_name(guild_id, name)
            raise DuplicateListName(existing.name if existing else name) from None
        return list_id

    def delete(self, batch: Batch, list_id: int) -> None:
        """The list with its entries, subscriptions and list-caused mute records (ON DELETE CASCADE)."""
        batch.execute("DELETE FROM mute_lists WHERE id = ?", (list_id,))

    # -- entries ------------------------------------------------------------------------------------------

    async def entry_count(self, list_id: int) -> int:
        return int(await self.db.fetchval("SELECT count(*) FROM mute_list_entries WHERE list_id = ?", (list_id,)))

    async def entries_page(self, list_id: int, offset: int, limit: int) -> list[ListEntry]:
        rows = await self.db.fetchall(
            f"SELECT {_ENTRY_COLUMNS} FROM mute_list_entries WHERE list_id = ?"  # noqa: S608
            " ORDER BY lower(username), x_user_id LIMIT ? OFFSET ?",
            (list_id, limit, offset),
        )
        return [_entry(r) for r in rows]

    async def entries(self, list_id: int) -> list[ListEntry]:
        rows = await self.db.fetchall(
            f"SELECT {_ENTRY_COLUMNS} FROM mute_list_entries WHERE list_id = ? ORDER BY added_at, x_user_id",  # noqa: S608
            (list_id,),
        )
        return [_entry(r) for r in rows]

    async def entry_ids(self, list_id: int) -> set[str]:
        return {str(r["x_user_id"]) for r in await self.db.fetchall(
            "SELECT x_user_id FROM mute_list_entries WHERE list_id = ?", (list_id,)
        )}

    async def entry(self, list_id: int, *, x_user_id: str | None = None, username: str | None = None) -> (
        ListEntry | None
    ):
        if x_user_id is not None:
            row = await self.db.fetchone(
                f"SELECT {_ENTRY_COLUMNS} FROM mute_list_entries WHERE list_id = ? AND x_user_id = ?",  # noqa: S608
                (list_id, x_user_id),
            )
        else:
            row = await self.db.fetchone(
                f"SELECT {_ENTRY_COLUMNS} FROM mute_list_entries WHERE list_id = ?"  # noqa: S608
                " AND lower(username) = lower(?)",
                (list_id, username or ""),
            )
        return None if row is None else _entry(row)

    def add_entries(
        self, batch: Batch, list_id: int, entries: Sequence[tuple[str, str]], reason: str | None, actor: int,
        now: float,
    ) -> None:
        """(x user id, username) pairs; ones already on the list stay as they are."""
        batch.executemany(
            "INSERT INTO mute_list_entries (list_id, x_user_id, username, reason, added_by, added_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(list_id, x_id, username, reason, actor, now) for x_id, username in entries],
        )

    def add_captured(
        self, batch: Batch, list_id: int, entries: Sequence[tuple[str, str, Sequence[str]]], reason: str | None,
        actor: int, now: float, evidence_url: str,
    ) -> None:
        """(x user id, username, sources) from a capture, each with the post as its evidence; ones already on the
        list stay as they are."""
        batch.executemany(
            "INSERT INTO mute_list_entries (list_id, x_user_id, username, reason, added_by, added_at, evidence_url,"
            " evidence_sources) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(list_id, x_id, username, reason, actor, now, evidence_url, ",".join(sources))
             for x_id, username, sources in entries],
        )

    async def guild_entries(self, guild_id: int, x_user_id: str) -> list[tuple[int, str]]:
        """(list id, list name) of every list of the server that holds this account."""
        rows = await self.db.fetchall(
            "SELECT l.id, l.name FROM mute_list_entries e JOIN mute_lists l ON l.id = e.list_id"
            " WHERE l.guild_id = ? AND e.x_user_id = ? ORDER BY l.id",
            (guild_id, x_user_id),
        )
        return [(int(r["id"]), str(r["name"])) for r in rows]

    def set_reason(self, batch: Batch, list_id: int, x_user_id: str, reason: str) -> None:
        batch.execute("UPDATE mute_list_entries SET reason = ? WHERE list_id = ? AND x_user_id = ?",
                      (reason, list_id, x_user_id))

    def remove_entry(self, batch: Batch, list_id: int, x_user_id: str) -> None:
        batch.execute("DELETE FROM mute_list_entries WHERE list_id = ? AND x_user_id = ?", (list_id, x_user_id))

    # -- subscriptions ------------------------------------------------------------------------------------

    async def subscribers(self, list_id: int) -> list[int]:
        return [int(r["discord_user_id"]) for r in await self.db.fetchall(
            "SELECT discord_user_id FROM subscriptions WHERE list_id = ? ORDER BY subscribed_at", (list_id,)
        )]

    async def servers_followed(self) -> set[int]:
        """The servers whose lists someone subscribes to."""
        return {int(r["guild_id"]) for r in await self.db.fetchall(
            "SELECT DISTINCT l.guild_id FROM mute_lists l JOIN subscriptions s ON s.list_id = l.id"
        )}

    async def is_subscribed(self, list_id: int, member_id: int) -> bool:
        return bool(await self.db.fetchval(
            "SELECT 1 FROM subscriptions WHERE list_id = ? AND discord_user_id = ?", (list_id, member_id)
        ))

    async def subscribe(self, list_id: int, member_id: int, now: float) -> bool:
        """True when the member was not subscribed before."""
        return await self.db.execute(
            "INSERT INTO subscriptions (list_id, discord_user_id, subscribed_at) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (list_id, member_id, now),
        ) == 1

    def unsubscribe(self, batch: Batch, list_id: int, member_id: int) -> None:
        batch.execute("DELETE FROM subscriptions WHERE list_id = ? AND discord_user_id = ?", (list_id, member_id))

    def end_subscriptions(self, batch: Batch, guild_id: int, member_id: int | None = None) -> None:
        """Every subscription to the server's lists (mutebot was removed from it), or one member's (they left)."""
        if member_id is None:
            batch.execute("DELETE FROM subscriptions WHERE list_id IN (SELECT id FROM mute_lists WHERE guild_id = ?)",
                          (guild_id,))
        else:
            batch.execute(
                "DELETE FROM subscriptions WHERE discord_user_id = ?"
                " AND list_id IN (SELECT id FROM mute_lists WHERE guild_id = ?)",
                (member_id, guild_id),
            )

    # -- why a list muted something for a member ----------------------------------------------------------

    def record_list_mute(self, batch: Batch, member_id: int, x_user_id: str, list_id: int, now: float) -> None:
        """Only while the list exists: a mute sent after its list was deleted has no list to blame."""
        batch.execute(
            "INSERT INTO list_mutes (discord_user_id, x_user_id, list_id, muted_at)"
            " SELECT ?, ?, id, ? FROM mute_lists WHERE id = ? ON CONFLICT DO NOTHING",
            (member_id, x_user_id, now, list_id),
        )

    def hand_over(self, batch: Batch, member_id: int, x_user_id: str, list_id: int) -> None:
        """This list no longer holds the account for the member, but it stays muted: each other list they
        subscribe to that holds it becomes the reason in its place (so that list's own removal later
        unmutes it), and this list stops being one."""
        batch.execute(
            "INSERT INTO list_mutes (discord_user_id, x_user_id, list_id, muted_at)"
            " SELECT lm.discord_user_id, lm.x_user_id, s.list_id, lm.muted_at FROM list_mutes lm"
            " JOIN subscriptions s ON s.discord_user_id = lm.discord_user_id AND s.list_id != lm.list_id"
            " JOIN mute_list_entries e ON e.list_id = s.list_id AND e.x_user_id = lm.x_user_id"
            " WHERE lm.discord_user_id = ? AND lm.x_user_id = ? AND lm.list_id = ? ON CONFLICT DO NOTHING",
            (member_id, x_user_id, list_id),
        )
        batch.execute("DELETE FROM list_mutes WHERE discord_user_id = ? AND x_user_id = ? AND list_id = ?",
                      (member_id, x_user_id, list_id))

    def forget_list_mutes(self, batch: Batch, member_id: int, x_user_id: str) -> None:
        """Unmuted: no list is the reason for a mute any longer."""
        batch.execute("DELETE FROM list_mutes WHERE discord_user_id = ? AND x_user_id = ?", (member_id, x_user_id))

    def forget_member_list_mutes(self, batch: Batch, member_id: int) -> None:
        """Every list-caused mute record of the member: they were about an X account no longer linked."""
        batch.execute("DELETE FROM list_mutes WHERE discord_user_id = ?", (member_id,))

    async def subscribed_entries(self, member_id: int) -> list[tuple[int, ListEntry]]:
        """(list id, entry) for every entry of every list the member subscribes to, oldest subscription first."""
        rows = await self.db.fetchall(
            "SELECT s.list_id, e.x_user_id, e.username, e.reason, e.added_by, e.added_at, e.evidence_url,"
            " e.evidence_sources FROM subscriptions s"
            " JOIN mute_list_entries e ON e.list_id = s.list_id WHERE s.discord_user_id = ?"
            " ORDER BY s.subscribed_at, s.list_id, e.added_at, e.x_user_id",
            (member_id,),
        )
        return [(int(r["list_id"]), _entry(r)) for r in rows]

    async def held_elsewhere(self, member_id: int, x_user_id: str, list_id: int | None) -> bool:
        """Another list still holds this account for the member (see _HELD_ELSEWHERE)."""
        other = -1 if list_id is None else list_id
        return bool(await self.db.fetchval(
            f"{_HELD_ELSEWHERE} LIMIT 1", (member_id, x_user_id, other, member_id, x_user_id, other)
        ))

    async def reasons(self, member_id: int, x_user_id: str) -> list[ListReason]:
        """Every list that holds this account for the member: lists they follow that hold the entry, and lists
        that muted it for them; in any server, oldest entry first."""
        rows = await self.db.fetchall(
            "SELECT l.id, l.guild_id, l.name, e.added_by, e.added_at, e.reason, e.evidence_url, e.evidence_sources,"
            " EXISTS (SELECT 1 FROM subscriptions s WHERE s.list_id = l.id AND s.discord_user_id = ?) AS following,"
            " EXISTS (SELECT 1 FROM list_mutes lm WHERE lm.list_id = l.id AND lm.discord_user_id = ?"
            "  AND lm.x_user_id = e.x_user_id) AS muted_it"
            " FROM mute_list_entries e JOIN mute_lists l ON l.id = e.list_id WHERE e.x_user_id = ?"
            " AND (EXISTS (SELECT 1 FROM subscriptions s WHERE s.list_id = l.id AND s.discord_user_id = ?)"
            "  OR EXISTS (SELECT 1 FROM list_mutes lm WHERE lm.list_id = l.id AND lm.discord_user_id = ?"
            "  AND lm.x_user_id = e.x_user_id))"
            " ORDER BY e.added_at, l.id",
            (member_id, member_id, x_user_id, member_id, member_id),
        )
        return [ListReason(int(r["id"]), int(r["guild_id"]), str(r["name"]), int(r["added_by"]), float(r["added_at"]),
                           r["reason"], bool(r["following"]), bool(r["muted_it"]), r["evidence_url"],
                           tuple(r["evidence_sources"].split(",")) if r["evidence_sources"] else ()) for r in rows]

    async def list_muted(self, member_id: int, x_user_id: str, list_id: int) -> bool:
        return bool(await self.db.fetchval(
            "SELECT 1 FROM list_mutes WHERE discord_user_id = ? AND x_user_id = ? AND list_id = ?",
            (member_id, x_user_id, list_id),
        ))

    async def muted_by(self, member_id: int, list_id: int) -> list[ListMute]:
        """What this list muted for the member, oldest first (names from the entry, else the directory)."""
        rows = await self.db.fetchall(
            "SELECT lm.x_user_id, coalesce(e.username, u.username, '') AS username FROM list_mutes lm"
            " LEFT JOIN mute_list_entries e ON e.list_id = lm.list_id AND e.x_user_id = lm.x_user_id"
            " LEFT JOIN x_users u ON u.x_user_id = lm.x_user_id"
            " WHERE lm.discord_user_id = ? AND lm.list_id = ? ORDER BY lm.muted_at",
            (member_id, list_id),
        )
        return [ListMute(str(r["x_user_id"]), str(r["username"])) for r in rows]

    # -- the audit trail ----------------------------------------------------------------------------------

    def audit(
        self, batch: Batch, guild_id: int, actor: int, action: str, list_id: int | None, now: float,
        **detail: object,
    ) -> None:
        batch.execute(
            "INSERT INTO audit_log (guild_id, actor_id, action, list_id, detail, at) VALUES (?, ?, ?, ?, ?, ?)",
            (guild_id, actor, action, list_id, json.dumps(detail, sort_keys=True), now),
        )

    async def purge_audit(self, before: float) -> int:
        """Retention: audit lines older than the horizon go."""
        return await self.db.execute("DELETE FROM audit_log WHERE at < ?", (before,))
