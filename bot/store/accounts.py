"""AccountStore: the only SQL on `linked_accounts` and `oauth_states`, with an in-process cache of links."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from bot.store.database import Batch, Database, Pending, Row

CACHE_SIZE = 4096  # linked accounts kept in memory (ciphertext only); the rest are read on demand
CACHE_TTL = 60.0  # bounds how stale a link changed by another process can look here


@dataclass(frozen=True)
class LinkRow:
    """A linked account as stored: tokens still encrypted."""

    member_id: int
    x_user_id: str
    x_username: str
    x_name: str
    x_avatar_url: str | None
    auth_kind: str
    access_token: bytes
    refresh_token: bytes | None
    token_secret: bytes | None
    scopes: str
    expires_at: float | None
    needs_relink: bool
    linked_at: float
    token_version: int  # changes with every new token pair, not with key rotation: what a refresh's write checks


@dataclass(frozen=True)
class StateRow:
    member_id: int
    guild_id: int | None
    auth_kind: str
    verifier: bytes
    expires_at: float
    used_at: float | None
    browser_hash: str | None  # set when the start page bound the state to one browser
    member_name: str


_LINK_COLUMNS = (
    "discord_user_id, x_user_id, x_username, x_name, x_avatar_url, auth_kind, access_token, refresh_token,"
    " token_secret, scopes, expires_at, needs_relink, linked_at, token_version"
)


def _link(row: Row) -> LinkRow:
    return LinkRow(
        int(row["discord_user_id"]), str(row["x_user_id"]), str(row["x_username"]), str(row["x_name"]),
        row["x_avatar_url"], str(row["auth_kind"]), bytes(row["access_token"]),
        None if row["refresh_token"] is None else bytes(row["refresh_token"]),
        None if row["token_secret"] is None else bytes(row["token_secret"]), str(row["scopes"]),
        None if row["expires_at"] is None else float(row["expires_at"]), bool(row["needs_relink"]),
        float(row["linked_at"]), int(row["token_version"]),
    )


def _new_version() -> int:
    """A token pair's version: random (63 bits, a positive BIGINT), so one never comes back after an unlink."""
    return secrets.randbits(63)


class AccountStore:
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self._clock = clock
        self._cache: OrderedDict[int, tuple[LinkRow | None, float]] = OrderedDict()
        self._epoch = 0  # bumped by every change: a read that raced a change is not cached

    # -- links ----------------------------------------------------------------------------------------

    async def link(self, member_id: int, *, fresh: bool = False) -> LinkRow | None:
        """The member's link, from the cache when it is there (one query otherwise)."""
        now = self._clock()
        if not fresh:
            held = self._cache.get(member_id)
            if held is not None and held[1] > now:
                self._cache.move_to_end(member_id)
                return held[0]
        epoch = self._epoch
        rows = await self.db.peek(  # one row by its primary key: on the loop, no thread hand-off
            f"SELECT {_LINK_COLUMNS} FROM linked_accounts WHERE discord_user_id = ?",  # noqa: S608
            (member_id,),
        )
        found = _link(rows[0]) if rows else None
        if epoch == self._epoch:
            self._cache[member_id] = (found, now + CACHE_TTL)
            self._cache.move_to_end(member_id)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return found

    def _changed(self, batch: Batch, member_id: int | None) -> None:
        self._forget(member_id)
        batch.on_commit(lambda: self._forget(member_id))

    def _forget(self, member_id: int | None) -> None:
        self._epoch += 1
        if member_id is None:
            self._cache.clear()
        else:
            self._cache.pop(member_id, None)

    def save(
        self, batch: Batch, member_id: int, *, x_user_id: str, x_username: str, x_name: str,
        x_avatar_url: str | None, auth_kind: str, access_token: bytes, refresh_token: bytes | None,
        token_secret: bytes | None, scopes: str, expires_at: float | None, now: float,
    ) -> int:
        """Create or replace the member's link (a relink replaces every credential and clears needs_relink);
        returns the new tokens' version."""
        version = _new_version()
        batch.execute(
            "INSERT INTO linked_accounts (discord_user_id, x_user_id, x_username, x_name, x_avatar_url, auth_kind,"
            " access_token, refresh_token, token_secret, scopes, expires_at, needs_relink, linked_at, updated_at,"
            " token_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?) ON CONFLICT (discord_user_id)"
            " DO UPDATE SET x_user_id = excluded.x_user_id, x_username = excluded.x_username,"
            " x_name = excluded.x_name, x_avatar_url = excluded.x_avatar_url, auth_kind = excluded.auth_kind,"
            " access_token = excluded.access_token, refresh_token = excluded.refresh_token,"
            " token_secret = excluded.token_secret, scopes = excluded.scopes, expires_at = excluded.expires_at,"
            " needs_relink = 0, linked_at = excluded.linked_at, updated_at = excluded.updated_at,"
            " token_version = excluded.token_version",
            (member_id, x_user_id, x_username, x_name, x_avatar_url, auth_kind, access_token, refresh_token,
             token_secret, scopes, expires_at, now, now, version),
        )
        self._changed(batch, member_id)
        return version

    async def replace_tokens(
        self, member_id: int, *, expected_version: int, access_token: bytes, refresh_token: bytes | None,
        expires_at: float | None, now: float,
    ) -> int | None:
        """A refresh's new pair lands only if the row still holds the pair that was refreshed (its version: key
        rotation meanwhile re-encrypted that same pair, and does not count); the new version, or None."""
        version = _new_version()
        async with self.db.batch() as batch:
            changed = batch.execute(
                "UPDATE linked_accounts SET access_token = ?, refresh_token = ?, expires_at = ?, updated_at = ?,"
                " token_version = ? WHERE discord_user_id = ? AND token_version = ?",
                (access_token, refresh_token, expires_at, now, version, member_id, expected_version),
            )
            self._changed(batch, member_id)
        return version if changed.value == 1 else None

    async def mark_relink(self, member_id: int, now: float, *, expected_version: int | None = None) -> bool:
        """True when this call was the one that flagged it (so the member is told once). With `expected_version`,
        only while the row still holds those tokens: a relink meanwhile is not flagged for the old link's
        failure."""
        async with self.db.batch() as batch:
            if expected_version is None:
                changed = batch.execute(
                    "UPDATE linked_accounts SET needs_relink = 1, updated_at = ?"
                    " WHERE discord_user_id = ? AND needs_relink = 0",
                    (now, member_id),
                )
            else:
                changed = batch.execute(
                    "UPDATE linked_accounts SET needs_relink = 1, updated_at = ?"
                    " WHERE discord_user_id = ? AND needs_relink = 0 AND token_version = ?",
                    (now, member_id, expected_version),
                )
            self._changed(batch, member_id)
        return changed.value == 1

    def delete(self, batch: Batch, member_id: int) -> None:
        batch.execute("DELETE FROM linked_accounts WHERE discord_user_id = ?", (member_id,))
        self._changed(batch, member_id)

    async def linked_members(self, member_ids: list[int]) -> dict[int, str]:
        """member id -> X user id, for those of `member_ids` with a usable link."""
        found: dict[int, str] = {}
        for start in range(0, len(member_ids), 500):
            chunk = member_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in await self.db.fetchall(
                f"SELECT discord_user_id, x_user_id FROM linked_accounts WHERE discord_user_id IN ({marks})",  # noqa: S608
                chunk,
            ):
                found[int(row["discord_user_id"])] = str(row["x_user_id"])
        return found

    async def members_linked_to(self, x_user_ids: list[str]) -> dict[str, list[int]]:
        """X user id -> the members whose linked account it is, for those of `x_user_ids` that are linked."""
        found: dict[str, list[int]] = {}
        for start in range(0, len(x_user_ids), 500):
            chunk = x_user_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in await self.db.fetchall(
                f"SELECT discord_user_id, x_user_id FROM linked_accounts WHERE x_user_id IN ({marks})",  # noqa: S608
                chunk,
            ):
                found.setdefault(str(row["x_user_id"]), []).append(int(row["discord_user_id"]))
        return found

    # -- pending authorisations --------------------------------------------------------------------------

    async def add_state(
        self, state_hash: str, member_id: int, guild_id: int | None, auth_kind: str, verifier: bytes,
        now: float, expires_at: float, *, member_name: str = "",
    ) -> None:
        await self.db.execute(
            "INSERT INTO oauth_states (state_hash, discord_user_id, guild_id, auth_kind, verifier, created_at,"
            " expires_at, member_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (state_hash, member_id, guild_id, auth_kind, verifier, now, expires_at, member_name),
        )

    async def state(self, state_hash: str) -> StateRow | None:
        row = await self.db.fetchone(
            "SELECT discord_user_id, guild_id, auth_kind, verifier, expires_at, used_at, browser_hash, member_name"
            " FROM oauth_states WHERE state_hash = ?",
            (state_hash,),
        )
        if row is None:
            return None
        return StateRow(int(row["discord_user_id"]), row["guild_id"], str(row["auth_kind"]), bytes(row["verifier"]),
                        float(row["expires_at"]), row["used_at"], row["browser_hash"], str(row["member_name"]))

    async def bind_browser(self, state_hash: str, browser_hash: str) -> bool:
        """Tie an unused state to one browser: True for exactly one caller."""
        return await self.db.execute(
            "UPDATE oauth_states SET browser_hash = ? WHERE state_hash = ? AND browser_hash IS NULL"
            " AND used_at IS NULL",
            (browser_hash, state_hash),
        ) == 1

    async def claim_state(self, state_hash: str, now: float) -> bool:
        """Spend a state: True for exactly one caller."""
        return await self.db.execute(
            "UPDATE oauth_states SET used_at = ? WHERE state_hash = ? AND used_at IS NULL", (now, state_hash)
        ) == 1

    async def purge_states(self, before: float) -> int:
        return await self.db.execute("DELETE FROM oauth_states WHERE expires_at < ?", (before,))

    # -- key rotation ------------------------------------------------------------------------------------

    async def reencrypt(self, rotate: Callable[[bytes], bytes]) -> int:
        """Re-encrypt every stored secret with `rotate`, in one transaction; returns how many changed. A row
        whose tokens a running bot replaced after this read it (a refresh, a relink; PostgreSQL reads take no
        row locks) is left as that bot wrote it, under its first key: its version (or verifier) no longer
        matches."""
        written: list[tuple[Pending[int], int]] = []
        async with self.db.transaction() as batch:
            for row in await self.db.fetchall(
                "SELECT discord_user_id, token_version, access_token, refresh_token, token_secret"
                " FROM linked_accounts"
            ):
                values = [None if row[c] is None else rotate(bytes(row[c]))
                          for c in ("access_token", "refresh_token", "token_secret")]
                written.append((batch.execute(
                    "UPDATE linked_accounts SET access_token = ?, refresh_token = ?, token_secret = ?"
                    " WHERE discord_user_id = ? AND token_version = ?",
                    (*values, row["discord_user_id"], row["token_version"]),
                ), sum(1 for v in values if v is not None)))
            for row in await self.db.fetchall("SELECT state_hash, verifier FROM oauth_states"):
                written.append((batch.execute(
                    "UPDATE oauth_states SET verifier = ? WHERE state_hash = ? AND verifier = ?",
                    (rotate(bytes(row["verifier"])), row["state_hash"], row["verifier"]),
                ), 1))
            self._changed(batch, None)
        return sum(secrets_in_row for changed, secrets_in_row in written if changed.value == 1)
