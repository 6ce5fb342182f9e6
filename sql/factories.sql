-- singleton_get(name, factory) in one session; races are in specs/ and t/.
\i sql/include/helpers.sql
CREATE SEQUENCE factory_runs;

-- the factory runs once; later calls return the stored value
SELECT singleton_get('f1', 'SELECT nextval(''factory_runs'')');
SELECT singleton_get('f1', 'SELECT nextval(''factory_runs'')');
SELECT singleton_get('f1');
SELECT last_value FROM factory_runs;
SELECT name, type, state, creator_pid, factory_ms >= 0 AS timed, access_count
FROM singleton_entries WHERE name = 'f1';

-- results become jsonb as to_jsonb would make them
SELECT singleton_get('c_text', $$SELECT 'abc'::text$$) AS text,
       singleton_get('c_json', $$SELECT '{"a": 1}'::json$$) AS json,
       singleton_get('c_jsonb', $$SELECT '[1, {"b": null}]'::jsonb$$) AS jsonb,
       singleton_get('c_null', 'SELECT NULL') AS null;
SELECT singleton_get('c_record', $$SELECT row(1, 'x')$$) AS record,
       singleton_get('c_array', 'SELECT ARRAY[1, 2]') AS array,
       singleton_get('c_bool', 'SELECT true') AS bool,
       singleton_get('c_date', $$SELECT '2020-01-02'::date$$) AS date,
       singleton_get('c_numeric', 'SELECT 1.50::numeric') AS numeric;
SELECT name, type FROM singleton_entries WHERE name LIKE 'c\_%' ORDER BY name;

-- type and private apply to the created entry
SELECT singleton_get('typed', 'SELECT 1', 'config', true);
SELECT type, private FROM singleton_entries WHERE name = 'typed';

-- shape errors and factory errors: nothing is stored, nothing is cached
SELECT sqlstate_of($$SELECT singleton_get('bad', 'SELECT 1 WHERE false')$$);
SELECT sqlstate_of($$SELECT singleton_get('bad', 'SELECT generate_series(1, 2)')$$);
SELECT sqlstate_of($$SELECT singleton_get('bad', 'SELECT 1, 2')$$);
SELECT sqlstate_of($$SELECT singleton_get('bad', 'SELECT FROM (SELECT 1) s')$$);
SELECT sqlstate_of($$SELECT singleton_get('bad', 'SELECT 1 / 0')$$);
SELECT sqlstate_of($$SELECT singleton_get('bad', 'SELEKT 1')$$);
SELECT sqlstate_of($$SELECT singleton_get('bad', 'CREATE TEMP TABLE factory_made_this ()')$$);
SELECT sqlstate_of($$SELECT singleton_get('bad', 'SELECT * FROM no_such_table')$$);
SET singleton.max_value_size = 100;
SELECT sqlstate_of($$SELECT singleton_get('bad', 'SELECT repeat(''x'', 200)')$$);
RESET singleton.max_value_size;
SELECT sqlstate_of($$SELECT singleton_get('', 'SELECT 1')$$);
SELECT sqlstate_of($$SELECT singleton_get(NULL, 'SELECT 1')$$);
SELECT sqlstate_of($$SELECT singleton_get('bad', NULL)$$);
SELECT sqlstate_of($$SELECT singleton_get('bad', '  ')$$);
SELECT sqlstate_of($$SELECT singleton_get('bad', 'SELECT 1', '')$$);
SELECT count(*) AS leftovers FROM singleton_entries WHERE name = 'bad' OR state <> 'ready';
SELECT singleton_get('bad', 'SELECT 5');

-- messages as a user sees them
\set VERBOSITY default
SELECT singleton_get('shape', 'SELECT 1 WHERE false');
SELECT singleton_get('shape', 'SELECT generate_series(1, 2)');
\set VERBOSITY terse

-- a failure inside a caught subtransaction still drops the claim
DO $$
BEGIN
    PERFORM singleton_get('sub', 'SELECT 1 / 0');
EXCEPTION WHEN division_by_zero THEN
    RAISE NOTICE 'caught: %', SQLERRM;
END $$;
SELECT count(*) AS left_behind FROM singleton_entries WHERE name = 'sub';
SELECT singleton_get('sub', 'SELECT 2');

-- a value created in a transaction that rolls back stays
BEGIN;
SELECT singleton_get('in_tx', 'SELECT 3');
ROLLBACK;
SELECT singleton_get('in_tx');

-- recursion is an error, not a deadlock
SELECT sqlstate_of($$SELECT singleton_get('r1', $q$SELECT singleton_get('r1', 'SELECT 1')$q$)$$);
SELECT sqlstate_of($$SELECT singleton_get('r2', $q$SELECT singleton_get('r3', $r$SELECT singleton_get('r2', 'SELECT 1')$r$)$q$)$$);
SELECT count(*) AS left_behind FROM singleton_entries WHERE name IN ('r1', 'r2', 'r3');
-- nesting different names is fine
SELECT singleton_get('outer', $$SELECT singleton_get('inner', 'SELECT 2')::int + 1$$);
SELECT singleton_get('inner');

-- set on an initializing name wins; the creator returns what was set
SELECT singleton_get('set_wins', $$SELECT 'factory' FROM (SELECT singleton_set('set_wins', '"from set"')) s$$);
SELECT singleton_get('set_wins');
-- delete of an initializing name by a role with the creator's privileges
-- abandons the flight: the factory's call returns its value, nothing is
-- stored (see attack-squatting.spec for other roles and waiters)
SELECT singleton_get('del_init', $q$SELECT singleton_delete('del_init')$q$) AS factory_value;
-- incr on an initializing name is refused with 55006
SELECT sqlstate_of($$SELECT singleton_get('incr_init', $q$SELECT singleton_incr('incr_init')$q$)$$);
SELECT count(*) AS left_behind FROM singleton_entries WHERE name IN ('del_init', 'incr_init');
-- while initializing, plain reads see nothing and the entry shows its creator
SELECT singleton_get('peek', $$SELECT jsonb_build_object(
    'get', singleton_get('peek'),
    'has', singleton_has('peek'),
    'state', (SELECT state FROM singleton_entries WHERE name = 'peek'),
    'mine', (SELECT creator_pid = pg_backend_pid() FROM singleton_entries WHERE name = 'peek'))$$);

-- factory counters
CREATE TEMP TABLE s0 AS SELECT singleton_stats() s;
SELECT singleton_get('counted', 'SELECT 1');
SELECT singleton_get('counted', 'SELECT 1');
SELECT sqlstate_of($$SELECT singleton_get('counted_bad', 'SELECT 1 / 0')$$);
SELECT k, (n.s->>k)::bigint - (o.s->>k)::bigint AS delta
FROM s0 o, (SELECT singleton_stats() s) n,
     unnest(ARRAY['factory_runs', 'factory_failures', 'factory_waits', 'gets', 'hits', 'misses']) k
ORDER BY k;
SELECT singleton_stats() ? 'factory_wait_ms' AS has_wait_ms;

-- the factory runs as the calling role
CREATE ROLE singleton_factory_user;
CREATE TABLE factory_secret (v int);
INSERT INTO factory_secret VALUES (42);
GRANT EXECUTE ON FUNCTION sqlstate_of(text) TO singleton_factory_user;
SET ROLE singleton_factory_user;
SELECT sqlstate_of($$SELECT singleton_get('stolen', 'SELECT v FROM factory_secret')$$);
SELECT singleton_get('whoami', 'SELECT current_user');
RESET ROLE;
SELECT singleton_has('stolen');
DROP TABLE factory_secret;

SELECT singleton_clear();
REVOKE EXECUTE ON FUNCTION sqlstate_of(text) FROM singleton_factory_user;
DROP ROLE singleton_factory_user;
DROP SEQUENCE factory_runs;
