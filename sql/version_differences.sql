-- Behaviour that differs between PostgreSQL majors.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS singleton;
RESET client_min_messages;
-- 17 and later have infinite intervals: the limiter refuses them as a
-- period (22023) rather than computing with them; before 17 there is no
-- such interval to pass (its input is already an error).
CREATE FUNCTION vd_error(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT CASE WHEN current_setting('server_version_num')::int >= 170000
            THEN vd_error($$SELECT * FROM singleton_rate_limit('vd.k', 1, 1, 'infinity')$$)
                 || ' / ' || vd_error($$SELECT * FROM singleton_rate_limit('vd.k', 1, 1, '-infinity')$$)
            ELSE '22023: period must be finite / 22023: period must be finite'
       END AS infinite_period;
SELECT (singleton_stats()->'rate_limiter'->>'keys')::int AS keys_made;
DROP FUNCTION vd_error(text);
