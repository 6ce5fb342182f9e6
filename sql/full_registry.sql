-- A full registry (singleton.memory_limit = 4MB in the test configuration).
\i sql/include/helpers.sql
SELECT singleton_set('keep', '"precious"');
CREATE SEQUENCE full_factory_runs;

-- fill it with large values, then with small ones, until nothing fits
DO $$
DECLARE
    i int := 0;
    j int := 0;
BEGIN
    LOOP
        BEGIN
            PERFORM singleton_set('fill_' || i, to_jsonb(repeat('x', 20000)));
            i := i + 1;
        EXCEPTION WHEN SQLSTATE '53200' THEN
            EXIT;
        END;
    END LOOP;
    LOOP
        BEGIN
            PERFORM singleton_set('small_' || j, to_jsonb(repeat('x', 100)));
            j := j + 1;
        EXCEPTION WHEN SQLSTATE '53200' THEN
            EXIT;
        END;
    END LOOP;
    RAISE NOTICE 'large values stored: %', i > 5;
END $$;

-- every write that needs memory is refused with 53200 and changes nothing
SELECT sqlstate_of($$SELECT singleton_set('one_more', to_jsonb(repeat('x', 20000)))$$);
SELECT sqlstate_of($$SELECT singleton_set('keep', to_jsonb(repeat('y', 20000)))$$);
SELECT singleton_get('keep');
SELECT singleton_has('one_more');
-- a factory is not run when there is no room for its entry
SELECT sqlstate_of($$SELECT singleton_get('made', 'SELECT nextval(''full_factory_runs'')')$$);
SELECT last_value, is_called FROM full_factory_runs;
SELECT h->>'status' AS status, h->'registry_full' AS full FROM singleton_health() h;

-- the message as a user sees it
DO $$
DECLARE
    msg text;
    hint text;
BEGIN
    PERFORM singleton_set('one_more', to_jsonb(repeat('x', 20000)));
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
    RAISE NOTICE '%: % (hint: %)', SQLSTATE, msg, hint;
END $$;

-- deleting makes room again
SELECT singleton_clear() > 5 AS cleared;
SELECT h->'registry_full' AS full FROM singleton_health() h;
SELECT singleton_set('one_more', to_jsonb(repeat('x', 20000)));
SELECT length(singleton_get('one_more') #>> '{}');
SELECT singleton_get('made', 'SELECT nextval(''full_factory_runs'')');
SELECT singleton_clear();
SELECT (singleton_health()->>'memory_used_bytes')::bigint AS used;
DROP SEQUENCE full_factory_runs;
