-- Timed mutes: when mutebot unmutes an account it muted for a member with a duration.
-- One row per (member, X account); a plain /mute or /unmute deletes it, and firing deletes it in the same
-- transaction that queues the unmute, so a timer fires once even across restarts and processes.

CREATE TABLE mute_timers (
    discord_user_id   INTEGER NOT NULL,
    x_user_id         TEXT NOT NULL,
    username          TEXT NOT NULL DEFAULT '',
    ends_at           REAL NOT NULL,
    created_at        REAL NOT NULL,
    PRIMARY KEY (discord_user_id, x_user_id)
);
CREATE INDEX mute_timers_due ON mute_timers (ends_at);
