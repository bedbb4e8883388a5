-- PostgreSQL's version of 0007_timed_mutes.sql: Discord ids in BIGINT, times in DOUBLE PRECISION.

CREATE TABLE mute_timers (
    discord_user_id   BIGINT NOT NULL,
    x_user_id         TEXT NOT NULL,
    username          TEXT NOT NULL DEFAULT '',
    ends_at           DOUBLE PRECISION NOT NULL,
    created_at        DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (discord_user_id, x_user_id)
);
CREATE INDEX mute_timers_due ON mute_timers (ends_at);
