-- A refresh's write, and key rotation's, land only if the link still holds the tokens they read. Compared on
-- `token_version`, which every new token pair changes (a random number, so a link deleted and made again never
-- repeats one) and key rotation leaves as it is (it re-encrypts the same tokens), rather than on the ciphertext,
-- which rotation changes.
-- BIGINT is a 64-bit integer on PostgreSQL and an INTEGER on SQLite: one file for both.

ALTER TABLE linked_accounts ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;
