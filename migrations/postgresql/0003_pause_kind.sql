-- PostgreSQL's version of 0003_pause_kind.sql: pause_until in DOUBLE PRECISION (PostgreSQL's REAL has 4 bytes,
-- too few for Unix seconds); the rest as there.

ALTER TABLE jobs ADD COLUMN pause_kind TEXT;
ALTER TABLE jobs ADD COLUMN pause_until DOUBLE PRECISION;
UPDATE jobs SET pause_kind = CASE WHEN pause_reason LIKE '%usage cap%' THEN 'usage_cap' ELSE 'relink' END
    WHERE pause_reason IS NOT NULL;
UPDATE jobs SET pause_reason = NULL;

CREATE INDEX jobs_finished ON jobs (status, finished_at);
CREATE INDEX actions_finished ON actions (status, updated_at);
CREATE INDEX actions_member ON actions (discord_user_id, status, kind);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX x_users_fetched ON x_users (fetched_at);
CREATE INDEX x_user_misses_fetched ON x_user_misses (fetched_at);
