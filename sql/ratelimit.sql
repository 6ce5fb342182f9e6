-- The registry's own limiter (singleton.rate_limit) and per-key limiters.

-- registry limiter: 1000 operations per second, a true sliding window
ALTER SYSTEM SET singleton.rate_limit = 1000;
SELECT pg_reload_conf();
SELECT pg_sleep(0.3);
SHOW singleton.rate_limit;
SELECT singleton_reset();
SELECT singleton_set('rl', '1');
SELECT singleton_reset();
CREATE SEQUENCE rl_factory_runs;

-- a burst of 5000 inside one second admits exactly 1000, then every kind of
-- operation is refused in its own way
DO $$
DECLARE
    admitted int := 0;
    refused int := 0;
    i int;
    st text;
BEGIN
    FOR i IN 1..5000 LOOP
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

-- per-key limiter: burst 2, 10 per second (one token every 100 ms)
SELECT allowed, "limit", remaining, retry_after, reset_after
FROM singleton_rate_limit('k1', 2, 10, '1 second');
SELECT allowed, "limit", remaining, retry_after IS NULL AS no_retry,
       reset_after BETWEEN '150 ms' AND '200 ms' AS reset_ok
FROM singleton_rate_limit('k1', 2, 10, '1 second');
SELECT allowed, remaining, reset_after BETWEEN '250 ms' AND '300 ms' AS reset_ok
FROM singleton_rate_limit('k1', 2, 10, '1 second');
-- the bucket is empty: refused, told how long to wait
SELECT allowed, remaining, retry_after BETWEEN '50 ms' AND '100 ms' AS retry_ok,
       reset_after BETWEEN '250 ms' AND '300 ms' AS reset_ok
FROM singleton_rate_limit('k1', 2, 10, '1 second');
-- quantity 0 only inspects
SELECT allowed, remaining FROM singleton_rate_limit('k1', 2, 10, '1 second', 0);
-- after retry_after one more is allowed
SELECT pg_sleep(0.11);
SELECT allowed, remaining FROM singleton_rate_limit('k1', 2, 10, '1 second');
SELECT allowed FROM singleton_rate_limit('k1', 2, 10, '1 second');

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
SELECT pg_sleep(0.05);
SELECT allowed, remaining FROM singleton_rate_limit('idle', 5, 100, '1 second', 0);
SELECT count(*) FROM singleton_rate_limit('k1', 2, 10, '1 second', 0);
SELECT pg_sleep(1.1);
-- the next call sweeps every key whose bucket has refilled
SELECT allowed FROM singleton_rate_limit('fresh', 5, 1, '1 hour');
SELECT singleton_stats()->'rate_limiter'->'keys' AS keys_left;
SELECT (s->'rate_limiter'->>'allowed')::int > 0 AS allowed_counted,
       (s->'rate_limiter'->>'refused')::int > 0 AS refused_counted
FROM singleton_stats() s;
