-- PostgreSQL's version of 0010_action_leases.sql: the lease's end in DOUBLE PRECISION (REAL has 4 bytes there).

ALTER TABLE actions ADD COLUMN lease_until DOUBLE PRECISION NOT NULL DEFAULT 0;
CREATE INDEX actions_leases ON actions (status, lease_until);
