-- The schema the mission needs. Tokens and PKCE verifiers are stored only as Fernet ciphertext (BLOB).
-- Times are Unix seconds (REAL). Discord ids are INTEGER, X ids TEXT (X sends them as strings).

CREATE TABLE linked_accounts (
    discord_user_id   INTEGER PRIMARY KEY,
    x_user_id         TEXT NOT NULL,
    x_username        TEXT NOT NULL,
    x_name            TEXT NOT NULL DEFAULT '',
    x_avatar_url      TEXT,
    auth_kind         TEXT NOT NULL CHECK (auth_kind IN ('oauth2', 'oauth1')),
    access_token      BLOB NOT NULL,
    refresh_token     BLOB,
    token_secret      BLOB,
    scopes            TEXT NOT NULL DEFAULT '',
    expires_at        REAL,
    needs_relink      INTEGER NOT NULL DEFAULT 0,
    linked_at         REAL NOT NULL,
    updated_at        REAL NOT NULL
);
CREATE INDEX linked_accounts_x_user ON linked_accounts (x_user_id);

-- Pending authorisations: the state is kept only as a SHA-256 hash, the verifier encrypted.
CREATE TABLE oauth_states (
    state_hash        TEXT PRIMARY KEY,
    discord_user_id   INTEGER NOT NULL,
    guild_id          INTEGER,
    auth_kind         TEXT NOT NULL CHECK (auth_kind IN ('oauth2', 'oauth1')),
    verifier          BLOB NOT NULL,
    created_at        REAL NOT NULL,
    expires_at        REAL NOT NULL,
    used_at           REAL
);
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);

CREATE TABLE mute_lists (
    id                INTEGER PRIMARY KEY,
    guild_id          INTEGER NOT NULL,
    name              TEXT NOT NULL COLLATE NOCASE,
    description       TEXT NOT NULL DEFAULT '',
    created_by        INTEGER NOT NULL,
    created_at        REAL NOT NULL,
    UNIQUE (guild_id, name)
);

CREATE TABLE mute_list_entries (
    list_id           INTEGER NOT NULL REFERENCES mute_lists (id) ON DELETE CASCADE,
    x_user_id         TEXT NOT NULL,
    username          TEXT NOT NULL,
    reason            TEXT,
    added_by          INTEGER NOT NULL,
    added_at          REAL NOT NULL,
    PRIMARY KEY (list_id, x_user_id)
);

CREATE TABLE subscriptions (
    list_id           INTEGER NOT NULL REFERENCES mute_lists (id) ON DELETE CASCADE,
    discord_user_id   INTEGER NOT NULL,
    subscribed_at     REAL NOT NULL,
    PRIMARY KEY (list_id, discord_user_id)
);
CREATE INDEX subscriptions_member ON subscriptions (discord_user_id);

-- Why a member's account is muted by a list: one row per (member, target, list).
CREATE TABLE list_mutes (
    discord_user_id   INTEGER NOT NULL,
    x_user_id         TEXT NOT NULL,
    list_id           INTEGER NOT NULL REFERENCES mute_lists (id) ON DELETE CASCADE,
    muted_at          REAL NOT NULL,
    PRIMARY KEY (discord_user_id, x_user_id, list_id)
);

-- What a member did by hand: 'muted' is never undone by a list, 'unmuted' is never re-applied by one.
CREATE TABLE manual_choices (
    discord_user_id   INTEGER NOT NULL,
    x_user_id         TEXT NOT NULL,
    choice            TEXT NOT NULL CHECK (choice IN ('muted', 'unmuted')),
    at                REAL NOT NULL,
    PRIMARY KEY (discord_user_id, x_user_id)
);

-- A batch of queued actions the member watches: its progress message is edited in place.
CREATE TABLE jobs (
    id                INTEGER PRIMARY KEY,
    discord_user_id   INTEGER NOT NULL,
    guild_id          INTEGER,
    list_id           INTEGER REFERENCES mute_lists (id) ON DELETE SET NULL,
    title             TEXT NOT NULL,
    total             INTEGER NOT NULL DEFAULT 0,
    status            TEXT NOT NULL DEFAULT 'running'
                      CHECK (status IN ('running', 'paused', 'done', 'cancelled')),
    progress_channel_id INTEGER,
    progress_message_id INTEGER,
    progress_at       REAL NOT NULL DEFAULT 0,
    created_at        REAL NOT NULL,
    finished_at       REAL
);
CREATE INDEX jobs_member ON jobs (discord_user_id, status);

CREATE TABLE actions (
    id                INTEGER PRIMARY KEY,
    discord_user_id   INTEGER NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('mute', 'unmute')),
    x_user_id         TEXT NOT NULL,
    username          TEXT NOT NULL DEFAULT '',
    cause             TEXT NOT NULL CHECK (cause IN ('list', 'manual')),
    list_id           INTEGER REFERENCES mute_lists (id) ON DELETE SET NULL,
    job_id            INTEGER REFERENCES jobs (id) ON DELETE CASCADE,
    status            TEXT NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'in_flight', 'done', 'skipped', 'failed', 'cancelled')),
    outcome           TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    not_before        REAL NOT NULL DEFAULT 0,
    created_at        REAL NOT NULL,
    updated_at        REAL NOT NULL
);
CREATE INDEX actions_queue ON actions (status, discord_user_id, id);
CREATE INDEX actions_job ON actions (job_id, status);

CREATE TABLE audit_log (
    id                INTEGER PRIMARY KEY,
    guild_id          INTEGER,
    actor_id          INTEGER NOT NULL,
    action            TEXT NOT NULL,
    list_id           INTEGER,
    detail            TEXT NOT NULL DEFAULT '',
    at                REAL NOT NULL
);
CREATE INDEX audit_log_guild ON audit_log (guild_id, at);

-- A member's mutes as last fetched from X (or updated by /mute and /unmute); position orders them
-- newest first, as X lists them.
CREATE TABLE cached_mutes (
    discord_user_id   INTEGER NOT NULL,
    x_user_id         TEXT NOT NULL,
    username          TEXT NOT NULL,
    name              TEXT NOT NULL DEFAULT '',
    position          INTEGER NOT NULL,
    PRIMARY KEY (discord_user_id, x_user_id)
);
CREATE INDEX cached_mutes_order ON cached_mutes (discord_user_id, position);

CREATE TABLE mute_cache_state (
    discord_user_id   INTEGER PRIMARY KEY,
    fetched_at        REAL NOT NULL
);

-- Username lookups: X bills them per user, so answers are kept for a while.
CREATE TABLE x_users (
    x_user_id         TEXT PRIMARY KEY,
    username          TEXT NOT NULL,
    username_lower    TEXT NOT NULL,
    name              TEXT NOT NULL DEFAULT '',
    profile_image_url TEXT,
    fetched_at        REAL NOT NULL
);
CREATE INDEX x_users_username ON x_users (username_lower);

CREATE TABLE x_user_misses (
    username_lower    TEXT PRIMARY KEY,
    fetched_at        REAL NOT NULL
);

-- The last x-rate-limit-* headers seen per (X user, endpoint).
CREATE TABLE rate_limits (
    x_user_id         TEXT NOT NULL,
    endpoint          TEXT NOT NULL,
    limit_total       INTEGER NOT NULL,
    remaining         INTEGER NOT NULL,
    reset_at          REAL NOT NULL,
    PRIMARY KEY (x_user_id, endpoint)
);

CREATE TABLE meta (
    key               TEXT PRIMARY KEY,
    value             TEXT NOT NULL
);
