-- PostgreSQL's version of 0004_mute_totals.sql: the same kept total, its triggers written in PL/pgSQL.

ALTER TABLE mute_cache_state ADD COLUMN total BIGINT NOT NULL DEFAULT 0;
UPDATE mute_cache_state SET total = (
    SELECT count(*) FROM cached_mutes c WHERE c.discord_user_id = mute_cache_state.discord_user_id);

CREATE FUNCTION cached_mutes_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE mute_cache_state SET total = total + 1 WHERE discord_user_id = NEW.discord_user_id;
    ELSE
        UPDATE mute_cache_state SET total = total - 1 WHERE discord_user_id = OLD.discord_user_id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER cached_mutes_counted_in AFTER INSERT ON cached_mutes
    FOR EACH ROW EXECUTE FUNCTION cached_mutes_count();

CREATE TRIGGER cached_mutes_counted_out AFTER DELETE ON cached_mutes
    FOR EACH ROW EXECUTE FUNCTION cached_mutes_count();
