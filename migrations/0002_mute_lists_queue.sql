-- What a job's summary needs beyond its own actions, and why a job waits; indexes for list-wide queries.

ALTER TABLE jobs ADD COLUMN already_muted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN kept_unmuted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN pause_reason TEXT;

CREATE INDEX actions_list ON actions (list_id, status);
CREATE INDEX list_mutes_list ON list_mutes (list_id, discord_user_id);
CREATE INDEX list_mutes_member ON list_mutes (discord_user_id, x_user_id);
CREATE INDEX subscriptions_list ON subscriptions (list_id);
