-- A link is finished only in the browser that opened it: the start page binds the state to a random nonce
-- (kept here as a SHA-256 hash, the nonce itself only in that browser's signed cookie). The member's Discord
-- name is kept with the state so the callback's page can say which Discord account was linked.

ALTER TABLE oauth_states ADD COLUMN browser_hash TEXT;
ALTER TABLE oauth_states ADD COLUMN member_name TEXT NOT NULL DEFAULT '';
