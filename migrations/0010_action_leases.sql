-- A claimed action's lease: until when the process that claimed it may still be sending it. On a database several
-- processes share (PostgreSQL), an in-flight action whose lease ran out belongs to a process that died, and any
-- other process takes it over; a lone SQLite process takes back all of its own at start, as before.

ALTER TABLE actions ADD COLUMN lease_until REAL NOT NULL DEFAULT 0;
CREATE INDEX actions_leases ON actions (status, lease_until);
