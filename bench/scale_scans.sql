-- Scale section: whole-registry scans in a loop for :seconds seconds, beside
-- the singleton_set clients of scale_set.sql; prints scans|<rounds>
\set ON_ERROR_STOP on
\set QUIET on
SET bench.seconds = :seconds;
DO $$
DECLARE
    k int := 0;
BEGIN
    WHILE clock_timestamp() < now() + make_interval(secs => current_setting('bench.seconds')::float8) LOOP
        PERFORM singleton_stats();
        PERFORM count(*) FROM singleton_entries;
        k := k + 1;
    END LOOP;
    RAISE NOTICE 'scans|%', k;
END
$$;
