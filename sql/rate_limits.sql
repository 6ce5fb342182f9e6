-- The registry's own limiter (singleton.rate_limit) and per-key limiters.
\i sql/include/helpers.sql

-- registry limiter: 100 operations per second, a true sliding window
ALTER SYSTEM SET singleton.rate_limit = 100;
SELECT pg_reload_conf();
SELECT pg_sleep(0.3);
SHOW singleton.rate_limit;
SELECT singleton_reset();
SELECT singleton_set('rl', '1');
SELECT singleton_reset();
CREATE SEQUENCE rl_factory_runs;

-- a burst of 300 (a few milliseconds, far inside one second) admits exactly
-- 100, then every kind of operation is refused in its own way
DO $$
DECLARE
    admitted int := 0;
    refused int := 0;
    i int;
    st text;
BEGIN
    FOR i IN 1..300 LOOP
        BEGIN
            PERFORM singleton_get('rl');
            admitted := admitted + 1;
        EXCEPTION WHEN SQLSTATE '53400' THEN
            refused := refused + 1;
        END;
    END LOOP;
    RAISE NOTICE 'admitted %, refused %', admitted, refused;
    RAISE NOTICE 'get: %', sqlstate_of($q$SELECT singleton_get('rl')$q$);
    RAISE NOTICE 'set: %', sqlstate_of($q$SELECT singleton_set('rl', '2')$q$);
    RAISE NOTICE 'incr: %', sqlstate_of($q$SELECT singleton_incr('rl')$q$);
    RAISE NOTICE 'factory get: %', sqlstate_of($q$SELECT singleton_get('rl_made', 'SELECT nextval(''rl_factory_runs'')')$q$);
    RAISE NOTICE 'has: %, exists: %', singleton_has('rl'), singleton_exists('rl');
    RAISE NOTICE 'delete: %', singleton_delete('rl');
    RAISE NOTICE 'clear: %, reset_all: %', singleton_clear(), singleton_reset_all();
    RAISE NOTICE 'rate_limited_count: %', singleton_stats()->'rate_limited_count';
END $$;
-- the factory never ran
SELECT is_called FROM rl_factory_runs;

-- reset lets operations through again and zeroes the count
SELECT singleton_reset();
SELECT singleton_get('rl'), singleton_has('rl');
SELECT singleton_stats()->'rate_limited_count' AS rate_limited_count;

-- 0 turns the limiter off
ALTER SYSTEM SET singleton.rate_limit = 0;
SELECT pg_reload_conf();
SELECT pg_sleep(0.3);
SHOW singleton.rate_limit;
DO $$
DECLARE
    i int;
BEGIN
    FOR i IN 1..5000 LOOP
        PERFORM singleton_get('rl');
    END LOOP;
    RAISE NOTICE 'all 5000 admitted';
END $$;
ALTER SYSTEM RESET singleton.rate_limit;
SELECT pg_reload_conf();
SELECT sqlstate_of($$SET singleton.rate_limit = 5$$);
SELECT singleton_delete('rl');
DROP SEQUENCE rl_factory_runs;

-- per-key limiter: burst 2, 10 per 1000 seconds (one token every 100 s, so
-- the time the test itself takes does not show in the windows)
SELECT allowed, "limit", remaining, retry_after, reset_after
FROM singleton_rate_limit('k1', 2, 10, '1000 seconds');
SELECT allowed, "limit", remaining, retry_after IS NULL AS no_retry,
       reset_after BETWEEN '150 s' AND '200 s' AS reset_ok
FROM singleton_rate_limit('k1', 2, 10, '1000 seconds');
SELECT allowed, remaining, reset_after BETWEEN '250 s' AND '300 s' AS reset_ok
FROM singleton_rate_limit('k1', 2, 10, '1000 seconds');
-- the bucket is empty: refused, told how long to wait
SELECT allowed, remaining, retry_after BETWEEN '50 s' AND '100 s' AS retry_ok,
       reset_after BETWEEN '250 s' AND '300 s' AS reset_ok
FROM singleton_rate_limit('k1', 2, 10, '1000 seconds');
-- quantity 0 only inspects
SELECT allowed, remaining FROM singleton_rate_limit('k1', 2, 10, '1000 seconds', 0);
-- once retry_after has passed, one more is allowed (20 a second, no burst:
-- polled, however long the machine takes)
CREATE FUNCTION rl_allowed_again(k text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT allowed FROM singleton_rate_limit(k, 0, 20, '1 second')) THEN
        RETURN false;           -- the first call is always allowed
    END IF;
    FOR i IN 1..3000 LOOP
        IF (SELECT allowed FROM singleton_rate_limit(k, 0, 20, '1 second')) THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN false;
END $$;
SELECT allowed AS first FROM singleton_rate_limit('k1w', 0, 20, '1 second');
SELECT rl_allowed_again('k1w') AS allowed_after_retry;

-- a quantity above the limit is never allowed, and no retry helps
SELECT allowed, "limit", retry_after FROM singleton_rate_limit('k2', 2, 10, '1 second', 4);
-- a quantity equal to the limit empties a fresh bucket at once
SELECT allowed, remaining, reset_after FROM singleton_rate_limit('k2', 2, 10, '1 second', 3);

-- exact arithmetic: three per second drains to exactly one second
SELECT allowed, remaining, reset_after FROM singleton_rate_limit('k3', 2, 3, '1 second', 3);
-- high rates: a million per second, a burst of 1000
SELECT allowed, "limit", remaining, reset_after
FROM singleton_rate_limit('k4', 999, 1000000, '1 second', 1000);
SELECT allowed, retry_after IS NULL AS no_retry, remaining <= 1000 AS remaining_ok
FROM singleton_rate_limit('k4', 999, 1000000, '1 second', 1001);

-- keys are per database and independent of registry names
SELECT singleton_has('k1') AS registry_has_k1;

-- arguments are checked; nothing changes on error
SELECT sqlstate_of($$SELECT * FROM singleton_rate_limit('e', 1, 0, '1 second')$$);
SELECT sqlstate_of($$SELECT * FROM singleton_rate_limit('e', 1, -5, '1 second')$$);
SELECT sqlstate_of($$SELECT * FROM singleton_rate_limit('e', 1, 10, '0 seconds')$$);
SELECT sqlstate_of($$SELECT * FROM singleton_rate_limit('e', 1, 10, '-1 second')$$);
SELECT sqlstate_of($$SELECT * FROM singleton_rate_limit('e', -1, 10, '1 second')$$);
SELECT sqlstate_of($$SELECT * FROM singleton_rate_limit('e', 1, 10, '1 second', -1)$$);
SELECT sqlstate_of($$SELECT * FROM singleton_rate_limit(NULL, 1, 10, '1 second')$$);
SELECT sqlstate_of($$SELECT * FROM singleton_rate_limit('e', NULL, 10, '1 second')$$);
SELECT sqlstate_of($$SELECT * FROM singleton_rate_limit('e', 1, NULL, '1 second')$$);
SELECT sqlstate_of($$SELECT * FROM singleton_rate_limit('e', 1, 10, NULL)$$);
SELECT sqlstate_of($$SELECT * FROM singleton_rate_limit('', 1, 10, '1 second')$$);
SELECT sqlstate_of($$SELECT * FROM singleton_rate_limit(repeat('k', 256), 1, 10, '1 second')$$);
SELECT sqlstate_of($$SELECT * FROM singleton_rate_limit('e', 2147483647, 10, '1 second')$$);
\set VERBOSITY default
SELECT * FROM singleton_rate_limit('e', 1, 0, '1 second');
\set VERBOSITY terse

-- extreme values never crash
SELECT allowed, "limit", remaining
FROM singleton_rate_limit('x1', 2147483646, 2147483647, '1 microsecond', 2147483647);
SELECT allowed, remaining FROM singleton_rate_limit('x2', 0, 1, '178000000 years');
SELECT allowed, retry_after > '100 years' AS far
FROM singleton_rate_limit('x2', 0, 1, '178000000 years');
SELECT allowed, remaining FROM singleton_rate_limit('x3', 2147483646, 1, '1000000 years', 2147483647);
SELECT allowed FROM singleton_rate_limit('x4', 0, 2147483647, '1 microsecond');

-- idle keys are forgotten once their bucket is full again
SELECT (singleton_stats()->'rate_limiter'->>'keys')::int > 0 AS keys_kept;
SELECT allowed FROM singleton_rate_limit('idle', 5, 100, '1 second');
-- its bucket fills again within milliseconds; an inspection then drops it
SELECT wait_until($$SELECT remaining = 6 FROM singleton_rate_limit('idle', 5, 100, '1 second', 0)$$) AS refilled;
SELECT count(*) FROM singleton_rate_limit('k1', 2, 10, '1000 seconds', 0);
-- a sweep (at most once a second, by any call) drops every key whose
-- bucket has refilled: only the long-lived ones stay
SELECT wait_until($$SELECT (SELECT count(*) FROM singleton_rate_limit('probe', 5, 1, '1 hour', 0)) = 1
                   AND (singleton_stats()->'rate_limiter'->>'keys')::int <= 3$$) AS swept;
SELECT allowed FROM singleton_rate_limit('fresh', 5, 1, '1 hour');
SELECT singleton_stats()->'rate_limiter'->'keys' AS keys_left;
SELECT (s->'rate_limiter'->>'allowed')::int > 0 AS allowed_counted,
       (s->'rate_limiter'->>'refused')::int > 0 AS refused_counted
FROM singleton_stats() s;
