"""QueueStore: the only SQL on `actions` and `jobs` (and the queue's pause in `meta`).

An action is one mute or unmute to send for a member; a job is a batch of them that the member watches.
A job's pause is kept as a machine-readable `pause_kind` (and `pause_until`); the words are the renderer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.store.database import Batch, Database, Pending, Row
from bot.store.meta import MetaStore

FINISHED = ("done", "skipped", "failed", "cancelled")
PAUSE_USAGE_CAP = "usage_cap"
PAUSE_RELINK = "relink"
_PAUSED_KEY = "queue_paused_until"
# How many of a member's waiting actions a /status counts on the event loop (an index range, well under a
# millisecond); past it, the exact count is read through a thread.
PEEK_COUNT_LIMIT = 1000
_WAITING = "FROM actions WHERE discord_user_id = ? AND status IN ('pending', 'in_flight')"  # a member's waiting work


@dataclass(frozen=True)
class QueuedTarget:
    x_user_id: str
    username: str


@dataclass(frozen=True)
class ActionRow:
    id: int
    kind: str
    x_user_id: str
    username: str
    cause: str
    list_id: int | None
    job_id: int | None
    attempts: int


@dataclass(frozen=True)
class CancelledUnmute:
    x_user_id: str
    list_id: int | None
    job_id: int | None


@dataclass(frozen=True)
class DueMember:
    member_id: int
    x_user_id: str
    kind: str
    not_before: float


@dataclass(frozen=True)
class JobRow:
    id: int
    member_id: int
    title: str
    status: str
    total: int
    already_muted: int
    kept_unmuted: int
    pause_kind: str | None
    pause_until: float | None
    channel_id: int | None
    message_id: int | None


@dataclass(frozen=True)
class JobCounts:
    by_status: dict[str, int]
    failures: list[tuple[str, str]]
    unmuting: bool


def _action(row: Row) -> ActionRow:
    return ActionRow(int(row["id"]), str(row["kind"]), str(row["x_user_id"]), str(row["username"]),
                     str(row["cause"]), row["list_id"], row["job_id"], int(row["attempts"]))


class QueueStore:
    def __init__(self, db: Database, meta: MetaStore) -> None:
        self.db = db
        self.meta = meta

    # -- enqueueing ---------------------------------------------------------------------------------------

    async def create_job(
        self, member_id: int, *, guild_id: int | None, list_id: int | None, title: str, total: int,
        already_muted: int, kept_unmuted: int, channel_id: int | None, message_id: int | None, now: float,
    ) -> int:
        rows = await self.db.returning(
            "INSERT INTO jobs (discord_user_id, guild_id, list_id, title, total, status, progress_channel_id,"
            " progress_message_id, created_at, already_muted, kept_unmuted)"
            " VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?) RETURNING id",
            (member_id, guild_id, list_id, title, total, channel_id, message_id, now, already_muted, kept_unmuted),
        )
        return int(rows[0]["id"])

    def enqueue(
        self, batch: Batch, member_id: int, kind: str, targets: Sequence[QueuedTarget], *, cause: str,
        list_id: int | None, job_id: int | None, now: float,
    ) -> None:
        batch.executemany(
            "INSERT INTO actions (discord_user_id, kind, x_user_id, username, cause, list_id, job_id, status,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
            [(member_id, kind, t.x_user_id, t.username, cause, list_id, job_id, now, now) for t in targets],
        )

    async def cancel_for_list(
        self, list_id: int, *, outcome: str, now: float, member: int | None = None, target: str | None = None,
        kind: str | None = None,
    ) -> tuple[int, list[int]]:
        """Cancel a list's pending actions (optionally only one member's, one target's, one kind's);
        returns (how many, the jobs touched: they may now be over)."""
        where = "status = 'pending' AND list_id = ?"
        params: list[object] = [list_id]
        for column, value in (("discord_user_id", member), ("x_user_id", target), ("kind", kind)):
            if value is not None:
                where += f" AND {column} = ?"
                params.append(value)
        rows = await self.db.returning(
            f"UPDATE actions SET status = 'cancelled', outcome = ?, updated_at = ? WHERE {where}"  # noqa: S608
            " RETURNING job_id",
            (outcome, now, *params),
        )
        jobs = sorted({int(r["job_id"]) for r in rows if r["job_id"] is not None})
        return len(rows), jobs

    def cancel_pending_for(self, batch: Batch, member_id: int, x_user_id: str, kind: str, *, outcome: str,
                           now: float) -> None:
        """The member's pending actions of this kind on one account, whatever queued them (a later choice of the
        member's own wins: a plain /mute cancels the unmute its timed mute's end queued)."""
        batch.execute(
            "UPDATE actions SET status = 'cancelled', outcome = ?, updated_at = ?"
            " WHERE discord_user_id = ? AND x_user_id = ? AND kind = ? AND status = 'pending'",
            (outcome, now, member_id, x_user_id, kind),
        )

    async def cancel_unmutes_of_list(
        self, member_id: int, list_id: int, *, outcome: str, now: float
    ) -> list[CancelledUnmute]:
        """Cancel the member's pending list-caused unmutes of accounts this list now holds (in the caller's
        transaction, after the entries were written)."""
        rows = await self.db.returning(
            "UPDATE actions SET status = 'cancelled', outcome = ?, updated_at = ? WHERE discord_user_id = ?"
            " AND kind = 'unmute' AND cause = 'list' AND status = 'pending'"
            " AND x_user_id IN (SELECT x_user_id FROM mute_list_entries WHERE list_id = ?)"
            " RETURNING x_user_id, list_id, job_id",
            (outcome, now, member_id, list_id),
        )
        return [CancelledUnmute(str(r["x_user_id"]), r["list_id"], r["job_id"]) for r in rows]

    async def cancel_mutes_for_guild(
        self, guild_id: int, *, outcome: str, now: float, member: int | None = None
    ) -> tuple[int, list[int]]:
        """Cancel the pending mutes the server's lists queued (for everyone, or one member); returns (how
        many, the jobs touched). Unmutes already queued still go out: nothing is left half undone."""
        if member is None:
            rows = await self.db.returning(
                "UPDATE actions SET status = 'cancelled', outcome = ?, updated_at = ? WHERE status = 'pending'"
                " AND kind = 'mute' AND list_id IN (SELECT id FROM mute_lists WHERE guild_id = ?) RETURNING job_id",
                (outcome, now, guild_id),
            )
        else:
            rows = await self.db.returning(
                "UPDATE actions SET status = 'cancelled', outcome = ?, updated_at = ? WHERE status = 'pending'"
                " AND kind = 'mute' AND discord_user_id = ?"
                " AND list_id IN (SELECT id FROM mute_lists WHERE guild_id = ?) RETURNING job_id",
                (outcome, now, member, guild_id),
            )
        return len(rows), sorted({int(r["job_id"]) for r in rows if r["job_id"] is not None})

    def cancel_for_member(self, batch: Batch, member_id: int, *, outcome: str, now: float) -> None:
        """Everything the member has queued, in flight or not (they unlinked)."""
        batch.execute(
            "UPDATE actions SET status = 'cancelled', outcome = ?, updated_at = ?"
            " WHERE discord_user_id = ? AND status IN ('pending', 'in_flight')",
            (outcome, now, member_id),
        )

    # -- reading the queue --------------------------------------------------------------------------------

    async def pending_count(self, member_id: int) -> int:
        """Counted on the loop's own connection up to PEEK_COUNT_LIMIT index entries (a /status in a busy burst
        then waits for no thread, which the loop's load can keep from the GIL for milliseconds); a member with
        more waiting is counted in full through a thread."""
        capped = await self.db.peek(
            f"SELECT count(*) FROM (SELECT 1 {_WAITING} LIMIT ?) AS capped",  # noqa: S608
            (member_id, PEEK_COUNT_LIMIT + 1),
        )
        count = int(capped[0][0])
        if count <= PEEK_COUNT_LIMIT:
            return count
        return int(await self.db.fetchval(f"SELECT count(*) {_WAITING}", (member_id,)) or 0)

    async def pending_by_kind(self, member_id: int) -> dict[str, int]:
        rows = await self.db.fetchall(f"SELECT kind, count(*) AS n {_WAITING} GROUP BY kind", (member_id,))
        return {str(r["kind"]): int(r["n"]) for r in rows}

    async def unmutes_in_flight(self, member_id: int) -> set[str]:
        """Targets an unmute is being sent for right now (too late to cancel)."""
        return {str(r["x_user_id"]) for r in await self.db.fetchall(
            "SELECT x_user_id FROM actions WHERE discord_user_id = ? AND kind = 'unmute' AND status = 'in_flight'",
            (member_id,),
        )}

    async def queued_mutes(self, member_id: int) -> set[str]:
        """Targets a mute is already queued (or in flight) for."""
        return {str(r["x_user_id"]) for r in await self.db.fetchall(
            "SELECT x_user_id FROM actions WHERE discord_user_id = ? AND kind = 'mute'"
            " AND status IN ('pending', 'in_flight')",
            (member_id,),
        )}

    async def due_members(self) -> list[DueMember]:
        """Members with pending work and a usable link, per kind, with their earliest not-before."""
        rows = await self.db.fetchall(
            "SELECT a.discord_user_id, la.x_user_id, a.kind, min(a.not_before) AS not_before FROM actions a"
            " JOIN linked_accounts la ON la.discord_user_id = a.discord_user_id AND la.needs_relink = 0"
            " WHERE a.status = 'pending' GROUP BY a.discord_user_id, la.x_user_id, a.kind"
        )
        return [DueMember(int(r["discord_user_id"]), str(r["x_user_id"]), str(r["kind"]), float(r["not_before"]))
                for r in rows]

    # -- one action's life ----------------------------------------------------------------------------------

    async def claim_next(self, member_id: int, now: float, kinds: Sequence[str], lease_until: float,
                         claimant: str) -> ActionRow | None:
        """The member's oldest due action of these kinds, claimed for `claimant` until `lease_until`, in one
        statement committed before the request: a crash from here on means "send again", never "forget".
        Processes claiming at once each get a different action: on PostgreSQL one skips the row another is
        claiming (FOR UPDATE SKIP LOCKED) rather than waiting for it and finding it taken; SQLite has one
        writer. `attempts` is the count before this one."""
        marks = ",".join("?" * len(kinds))
        rows = await self.db.returning(
            "UPDATE actions SET status = 'in_flight', attempts = attempts + 1, updated_at = ?, lease_until = ?,"  # noqa: S608
            " claimed_by = ? WHERE id = (SELECT id FROM actions WHERE status = 'pending' AND discord_user_id = ?"
            f" AND not_before <= ? AND kind IN ({marks}) ORDER BY id LIMIT 1{self.db.dialect.skip_locked})"
            " RETURNING id, kind, x_user_id, username, cause, list_id, job_id, attempts - 1 AS attempts",
            (now, lease_until, claimant, member_id, now, *kinds),
        )
        return _action(rows[0]) if rows else None

    def finish(self, batch: Batch, action_id: int, status: str, outcome: str, now: float) -> None:
        """An action's end, unless it already ended (cancelled meanwhile: that stays)."""
        batch.execute(
            "UPDATE actions SET status = ?, outcome = ?, updated_at = ? WHERE id = ?"
            " AND status IN ('pending', 'in_flight')",
            (status, outcome[:300], now, action_id),
        )

    async def settle_claimed(self, action_id: int, status: str, outcome: str, now: float) -> bool:
        """The end of a send, in the caller's transaction; False when the action was no longer in flight
        (cancelled while it was being sent), so that nothing else of it is recorded."""
        return await self.db.execute(
            "UPDATE actions SET status = ?, outcome = ?, updated_at = ? WHERE id = ? AND status = 'in_flight'",
            (status, outcome[:300], now, action_id),
        ) == 1

    async def skip_claimed(self, action_id: int, outcome: str, now: float) -> bool:
        """A claimed action not to be sent after all, in the caller's transaction; False when it was cancelled
        meanwhile."""
        return await self.db.execute(
            "UPDATE actions SET status = 'skipped', outcome = ?, updated_at = ? WHERE id = ?"
            " AND status = 'in_flight'",
            (outcome[:300], now, action_id),
        ) == 1

    async def release(self, action_id: int, *, not_before: float, refund: bool, now: float) -> None:
        """Back to pending (to be sent again at `not_before`); a refund gives the attempt back."""
        await self.db.execute(
            "UPDATE actions SET status = 'pending', not_before = ?, updated_at = ?,"
            " attempts = attempts - ? WHERE id = ? AND status = 'in_flight'",
            (not_before, now, 1 if refund else 0, action_id),
        )

    async def recover(self, now: float, *, every_claim: bool, claimant: str | None = None) -> int:
        """What was in flight goes back to pending: every claim (a lone process after its own crash), or only
        those whose lease ran out (their process died; on a database several processes share) and those of
        `claimant` (this process's own, abandoned when its worker started again)."""
        if every_claim:
            return await self.db.execute(
                "UPDATE actions SET status = 'pending', updated_at = ? WHERE status = 'in_flight'", (now,)
            )
        return await self.db.execute(
            "UPDATE actions SET status = 'pending', updated_at = ? WHERE status = 'in_flight'"
            " AND (lease_until < ? OR claimed_by = ?)",
            (now, now, claimant or ""),
        )

    # -- jobs -----------------------------------------------------------------------------------------------

    async def pause_all(self, kind: str, until: float | None) -> list[int]:
        rows = await self.db.returning(
            "UPDATE jobs SET status = 'paused', pause_kind = ?, pause_until = ? WHERE status IN ('running', 'paused')"
            " RETURNING id",
            (kind, until),
        )
        return [int(r["id"]) for r in rows]

    async def resume_all(self, kind: str) -> list[int]:
        rows = await self.db.returning(
            "UPDATE jobs SET status = 'running', pause_kind = NULL, pause_until = NULL"
            " WHERE status = 'paused' AND pause_kind = ? RETURNING id",
            (kind,),
        )
        return [int(r["id"]) for r in rows]

    async def pause_member(self, member_id: int, kind: str) -> list[int]:
        rows = await self.db.returning(
            "UPDATE jobs SET status = 'paused', pause_kind = ?, pause_until = NULL"
            " WHERE discord_user_id = ? AND status = 'running' RETURNING id",
            (kind, member_id),
        )
        return [int(r["id"]) for r in rows]

    def resume_job(self, batch: Batch, job_id: int) -> None:
        """A job that made progress is running again, unless the whole queue waits for the usage cap."""
        batch.execute(
            "UPDATE jobs SET status = 'running', pause_kind = NULL, pause_until = NULL WHERE id = ?"
            " AND status = 'paused' AND (pause_kind IS NULL OR pause_kind != ?)",
            (job_id, PAUSE_USAGE_CAP),
        )

    def finish_job_if_done(self, batch: Batch, job_id: int, status: str, now: float) -> Pending[int]:
        """Close the job when nothing of it is left to send. A job any of whose actions was cancelled
        (list deleted, unsubscribed) ends as cancelled, whichever send happened to finish it."""
        return batch.execute(
            "UPDATE jobs SET finished_at = ?, summary_owed_at = ?, pause_kind = NULL, pause_until = NULL,"
            " status = CASE WHEN EXISTS"
            " (SELECT 1 FROM actions WHERE job_id = ? AND status = 'cancelled') THEN 'cancelled' ELSE ? END"
            " WHERE id = ? AND status IN ('running', 'paused') AND NOT EXISTS"
            " (SELECT 1 FROM actions WHERE job_id = ? AND status IN ('pending', 'in_flight'))",
            (now, now, job_id, status, job_id, job_id),
        )

    async def summary_delivered(self, job_id: int) -> None:
        """The job's summary reached Discord (or Discord will never take it): nothing is owed any more."""
        await self.db.execute("UPDATE jobs SET summary_owed_at = NULL WHERE id = ?", (job_id,))

    async def claim_owed_summaries(self, now: float, owed_since: float) -> list[int]:
        """Closed jobs whose summary has been owed since `owed_since` or before, claimed for this process by
        moving their mark to `now` (so that another process looking at the same moment does not send them too)."""
        rows = await self.db.returning(
            "UPDATE jobs SET summary_owed_at = ? WHERE summary_owed_at IS NOT NULL AND summary_owed_at <= ?"
            " RETURNING id",
            (now, owed_since),
        )
        return sorted(int(r["id"]) for r in rows)

    async def open_jobs_with_nothing_left(self, member_id: int | None = None) -> list[int]:
        """Jobs (of one member, when given) still running or paused although none of their actions is pending or
        in flight."""
        whose, params = ("", ()) if member_id is None else (" AND discord_user_id = ?", (member_id,))
        return [int(r["id"]) for r in await self.db.fetchall(
            f"SELECT id FROM jobs j WHERE status IN ('running', 'paused'){whose} AND NOT EXISTS"  # noqa: S608
            " (SELECT 1 FROM actions a WHERE a.job_id = j.id AND a.status IN ('pending', 'in_flight'))"
            " ORDER BY id",
            params,
        )]

    async def job(self, job_id: int) -> JobRow | None:
        row = await self.db.fetchone(
            "SELECT id, discord_user_id, title, status, total, already_muted, kept_unmuted, pause_kind, pause_until,"
            " progress_channel_id, progress_message_id FROM jobs WHERE id = ?",
            (job_id,),
        )
        if row is None:
            return None
        return JobRow(int(row["id"]), int(row["discord_user_id"]), str(row["title"]), str(row["status"]),
                      int(row["total"]), int(row["already_muted"]), int(row["kept_unmuted"]), row["pause_kind"],
                      row["pause_until"], row["progress_channel_id"], row["progress_message_id"])

    async def job_counts(self, job_id: int, failures: int = 50) -> JobCounts:
        rows = await self.db.fetchall(
            "SELECT status, kind, count(*) AS n FROM actions WHERE job_id = ? GROUP BY status, kind", (job_id,)
        )
        by_status: dict[str, int] = {}
        for r in rows:
            by_status[str(r["status"])] = by_status.get(str(r["status"]), 0) + int(r["n"])
        unmuting = any(r["kind"] == "unmute" for r in rows)
        failed = [] if not by_status.get("failed") else [
            (str(r["username"] or r["x_user_id"]), str(r["outcome"] or "")) for r in await self.db.fetchall(
                "SELECT username, x_user_id, outcome FROM actions WHERE job_id = ? AND status = 'failed'"
                " ORDER BY id LIMIT ?",
                (job_id, failures),
            )
        ]
        return JobCounts(by_status, failed, unmuting)

    # -- the queue-wide pause (X's usage cap) -----------------------------------------------------------------

    async def paused_until(self) -> float:
        value = await self.meta.get(_PAUSED_KEY)
        return float(value) if value else 0.0

    async def set_paused_until(self, until: float | None) -> None:
        if until is None:
            await self.meta.delete(_PAUSED_KEY)
        else:
            await self.meta.set(_PAUSED_KEY, str(until))

    # -- retention --------------------------------------------------------------------------------------------

    async def purge_finished(self, before: float) -> int:
        """Finished jobs (with their actions) and finished stray actions older than `before`."""
        async with self.db.batch() as batch:
            jobs = batch.execute(
                "DELETE FROM jobs WHERE status IN ('done', 'cancelled') AND finished_at < ?", (before,)
            )
            actions = batch.execute(
                "DELETE FROM actions WHERE status IN ('done', 'skipped', 'failed', 'cancelled') AND updated_at < ?"
                " AND (job_id IS NULL OR job_id NOT IN (SELECT id FROM jobs WHERE status IN ('running', 'paused')))",
                (before,),
            )
        return jobs.value + actions.value

    # -- metrics ----------------------------------------------------------------------------------------------

    async def action_counts(self) -> dict[str, int]:
        """How many actions the table holds in each status (bot/metrics.py reads it at each scrape)."""
        rows = await self.db.fetchall("SELECT status, count(*) AS n FROM actions GROUP BY status")
        return {str(r["status"]): int(r["n"]) for r in rows}
