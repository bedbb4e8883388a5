-- Pile-on capture (issue 16): evidence on list entries, captures waiting for Add or Cancel, protected accounts
-- and each server's moderation log channel.

-- The post an entry was captured from, and from which of its sources (`author,replied,quoted,reposted,liked`).
ALTER TABLE mute_list_entries ADD COLUMN evidence_url TEXT;
ALTER TABLE mute_list_entries ADD COLUMN evidence_sources TEXT;

-- A preview waiting for its moderator's Add or Cancel; it lives 15 minutes (expires_at), across restarts.
CREATE TABLE captures (
    id                INTEGER PRIMARY KEY,
    guild_id          INTEGER NOT NULL,
    list_id           INTEGER NOT NULL REFERENCES mute_lists (id) ON DELETE CASCADE,
    moderator_id      INTEGER NOT NULL,
    post_id           TEXT NOT NULL,
    post_url          TEXT NOT NULL,
    reason            TEXT,
    status            TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'added', 'cancelled')),
    created_at        REAL NOT NULL,
    expires_at        REAL NOT NULL
);
CREATE INDEX captures_expiry ON captures (expires_at);

-- The accounts a capture would add (exclusions already taken out), with the sources each came from.
CREATE TABLE capture_accounts (
    capture_id        INTEGER NOT NULL REFERENCES captures (id) ON DELETE CASCADE,
    x_user_id         TEXT NOT NULL,
    username          TEXT NOT NULL,
    sources           TEXT NOT NULL,
    position          INTEGER NOT NULL,
    PRIMARY KEY (capture_id, x_user_id)
);

-- Accounts no list of the server may hold.
CREATE TABLE protected_accounts (
    guild_id          INTEGER NOT NULL,
    x_user_id         TEXT NOT NULL,
    username          TEXT NOT NULL,
    added_by          INTEGER NOT NULL,
    added_at          REAL NOT NULL,
    PRIMARY KEY (guild_id, x_user_id)
);

-- Where a server's list changes are announced; failing is 1 once mutebot was refused there (told once).
CREATE TABLE modlog_channels (
    guild_id          INTEGER PRIMARY KEY,
    channel_id        INTEGER NOT NULL,
    set_by            INTEGER NOT NULL,
    set_at            REAL NOT NULL,
    failing           INTEGER NOT NULL DEFAULT 0
);
