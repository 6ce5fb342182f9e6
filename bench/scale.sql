-- Scale section, one registry size.  Loaded by scripts/bench in the
-- database "scale" (its own registry namespace, so clearing it leaves the
-- other sections' keys alone) with the registry of that database empty; the
-- caller sets the psql variables entries, repeat_x, calls and reps.  Fills
-- entries names s.1 .. s.<entries>, then prints key|value lines:
--   fill_s, count             the fill and the entries it left
--   <variant>|best_seconds    the per-call variants, as in percall.sql
--   stats_s, entries_view_s   singleton_stats() and count(*) FROM singleton_entries
--   stats_summary_s           singleton_stats_summary()
-- Every timing is the best of reps rounds, the rounds interleaved.
\set ON_ERROR_STOP on
\set QUIET on
SET work_mem = '256MB';        -- keep generate_series' tuplestore in memory
SET bench.calls = :calls;
SET bench.reps = :reps;
SET bench.entries = :entries;

SELECT clock_timestamp() AS t0 \gset
SELECT count(singleton_set('s.' || i, to_jsonb(repeat('x', :repeat_x))))
FROM generate_series(1, :entries) AS i \gset
SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) AS fill_s \gset

CREATE TEMP TABLE scale_variant (ord int, variant text, query text);
-- %1$s: calls, %2$s: entries.  Spread reads take the names in turn (every
-- name is read calls / entries times); their bare expression builds the
-- same names without the lookup.
INSERT INTO scale_variant VALUES
    (1, 'bare',          'SELECT count(x) FROM generate_series(1, %1$s) AS x'),
    (2, 'get_hot',       'SELECT count(singleton_get(''s.1'')) FROM generate_series(1, %1$s) AS x'),
    (3, 'bare_spread',   'SELECT count(''s.'' || (x %% %2$s + 1)) FROM generate_series(1, %1$s) AS x'),
    (4, 'get_spread',    'SELECT count(singleton_get(''s.'' || (x %% %2$s + 1))) FROM generate_series(1, %1$s) AS x'),
    (5, 'stats',         'SELECT count(*) FROM (SELECT singleton_stats() AS s OFFSET 0) x WHERE (s->>''total_singletons'')::bigint = %2$s'),
    (6, 'entries_view',  'SELECT count(*) FROM singleton_entries'),
    (7, 'stats_summary', 'SELECT count(*) FROM (SELECT singleton_stats_summary() AS s OFFSET 0) x WHERE (s->>''instance_entries'')::bigint >= %2$s');

CREATE TEMP TABLE scale_time (variant text, round int, seconds float8, rows bigint);

DO $$
DECLARE
    calls   int := current_setting('bench.calls')::int;
    reps    int := current_setting('bench.reps')::int;
    entries int := current_setting('bench.entries')::int;
    v       record;
    t0      timestamptz;
    n       bigint;
BEGIN
    FOR r IN 1 .. reps LOOP
        FOR v IN SELECT * FROM scale_variant ORDER BY ord LOOP
            t0 := clock_timestamp();
            EXECUTE format(v.query, calls, entries) INTO n;
            INSERT INTO scale_time
            VALUES (v.variant, r, extract(epoch FROM clock_timestamp() - t0), n);
        END LOOP;
    END LOOP;
END
$$;

-- A variant counts only if it saw what it should: every call a non-null
-- value, the stats and the view every entry.
SELECT 'fill_s|' || :fill_s
UNION ALL SELECT 'count|' || :count
UNION ALL
(SELECT variant || '|' || min(seconds)
 FROM scale_time JOIN scale_variant USING (variant)
 WHERE rows = CASE WHEN variant IN ('stats', 'stats_summary') THEN 1
                   WHEN variant = 'entries_view' THEN current_setting('bench.entries')::bigint
                   ELSE current_setting('bench.calls')::bigint END
 GROUP BY variant, ord
 ORDER BY ord);
