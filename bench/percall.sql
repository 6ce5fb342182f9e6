-- Per-call cost inside one query.  Loaded by scripts/bench; the caller sets
-- psql variables calls and reps.  Prints one line per variant:
--   variant|best_seconds
-- Repetitions are interleaved (every variant once per round) so background
-- load hits all variants alike; the best of the rounds is kept.
\set ON_ERROR_STOP on
\set QUIET on
SET work_mem = '256MB';        -- keep generate_series' tuplestore in memory
SET bench.calls = :calls;
SET bench.reps = :reps;

CREATE TEMP TABLE percall_variant (ord int, variant text, query text);
INSERT INTO percall_variant VALUES
    (1, 'bare',              'SELECT count(x) FROM generate_series(1, %s) AS x'),
    (2, 'singleton_get',     'SELECT count(singleton_get(''k1'')) FROM generate_series(1, %s) AS x'),
    (3, 'table_get_sql',     'SELECT count(table_get_sql(''k1'')) FROM generate_series(1, %s) AS x'),
    (4, 'table_get_plpgsql', 'SELECT count(table_get_plpgsql(''k1'')) FROM generate_series(1, %s) AS x');

CREATE TEMP TABLE percall_time (variant text, round int, seconds float8, rows bigint);

DO $$
DECLARE
    calls int := current_setting('bench.calls')::int;
    reps  int := current_setting('bench.reps')::int;
    v     record;
    t0    timestamptz;
    n     bigint;
BEGIN
    FOR r IN 1 .. reps LOOP
        FOR v IN SELECT * FROM percall_variant ORDER BY ord LOOP
            t0 := clock_timestamp();
            EXECUTE format(v.query, calls) INTO n;
            INSERT INTO percall_time
            VALUES (v.variant, r, extract(epoch FROM clock_timestamp() - t0), n);
        END LOOP;
    END LOOP;
END
$$;

-- Every call must have produced a non-null value, or the test measured nothing.
SELECT variant || '|' || min(seconds)
FROM percall_time JOIN percall_variant USING (variant)
WHERE rows = current_setting('bench.calls')::bigint
GROUP BY variant, ord
ORDER BY ord;
