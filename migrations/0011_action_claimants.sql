-- Which process run claimed an in-flight action (a random id per `mutebot run`): a process that starts again takes
-- back only its own claims and those whose lease ran out, never the live claims of another process on the database.

ALTER TABLE actions ADD COLUMN claimed_by TEXT;
