-- How many mutes each member's cache holds, kept by triggers, so a /mutes page flip of a 100,000-mute
-- account reads one row instead of counting 100,000 index entries.

ALTER TABLE mute_cache_state ADD COLUMN total INTEGER NOT NULL DEFAULT 0;
UPDATE mute_cache_state SET total = (
    SELECT count(*) FROM cached_mutes c WHERE c.discord_user_id = mute_cache_state.discord_user_id);

CREATE TRIGGER cached_mutes_counted_in AFTER INSERT ON cached_mutes BEGIN
    UPDATE mute_cache_state SET total = total + 1 WHERE discord_user_id = NEW.discord_user_id;
END;

CREATE TRIGGER cached_mutes_counted_out AFTER DELETE ON cached_mutes BEGIN
    UPDATE mute_cache_state SET total = total - 1 WHERE discord_user_id = OLD.discord_user_id;
END;
