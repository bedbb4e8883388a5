"""The store: every SQL statement of mutebot, one owner module per group of tables.

| module | tables |
| --- | --- |
| `accounts` | linked_accounts, oauth_states |
| `mutes` | cached_mutes, mute_cache_state, manual_choices |
| `lists` | mute_lists, mute_list_entries, subscriptions, list_mutes, audit_log |
| `queue` | actions, jobs |
| `rate_limits` | rate_limits |
| `directory` | x_users, x_user_misses |
| `timers` | mute_timers |
| `captures` | captures, capture_accounts |
| `moderation` | protected_accounts, modlog_channels |
| `meta` | meta |

`transfer` copies every table, unchanged, from SQLite into an empty PostgreSQL database (`mutebot migrate-to`): the
one module that touches tables it does not own. `database` holds the connections, transactions, write batches,
dialect and migrations. Services call
typed methods here and never write SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.store.accounts import AccountStore
from bot.store.captures import CaptureStore
from bot.store.database import Batch, Database, Migration, SchemaTooNewError, bundled_migrations
from bot.store.directory import DirectoryStore
from bot.store.lists import ListStore
from bot.store.meta import MetaStore
from bot.store.moderation import ModerationStore
from bot.store.mutes import MuteStore
from bot.store.queue import QueueStore
from bot.store.rate_limits import RateLimitStore
from bot.store.timers import MuteTimer, TimerStore

__all__ = [
    "AccountStore", "Batch", "CaptureStore", "Database", "DirectoryStore", "ListStore", "MetaStore", "Migration",
    "ModerationStore", "MuteStore",
    "MuteTimer", "QueueStore", "RateLimitStore", "SchemaTooNewError", "Stores", "TimerStore", "bundled_migrations",
]


@dataclass(frozen=True)
class Stores:
    db: Database
    accounts: AccountStore
    mutes: MuteStore
    lists: ListStore
    queue: QueueStore
    directory: DirectoryStore
    meta: MetaStore
    timers: TimerStore
    captures: CaptureStore
    moderation: ModerationStore
    rate_limits: RateLimitStore

    @classmethod
    def over(cls, db: Database) -> Stores:
        meta = MetaStore(db)
        return cls(db, AccountStore(db), MuteStore(db), ListStore(db), QueueStore(db, meta), DirectoryStore(db), meta,
                   TimerStore(db), CaptureStore(db), ModerationStore(db), RateLimitStore(db))

    @classmethod
    async def open(cls, path: Path | str) -> Stores:
        return cls.over(await Database.open(path))
