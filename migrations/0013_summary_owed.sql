-- A job's summary is owed from the moment the job closes (in the same write) until Discord has taken it: a
-- process killed in between leaves the mark, and the next start sends the summary (on a shared database,
-- another process once the mark is older than the action lease). Jobs closed before this migration owe nothing.
-- DOUBLE PRECISION is a floating-point column to SQLite and PostgreSQL alike: one file for both.

ALTER TABLE jobs ADD COLUMN summary_owed_at DOUBLE PRECISION;
CREATE INDEX jobs_summary_owed ON jobs (summary_owed_at) WHERE summary_owed_at IS NOT NULL;
