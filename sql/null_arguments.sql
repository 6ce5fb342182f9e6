-- One rule for NULL arguments across the SQL API: a NULL for a required
-- argument (one without a DEFAULT) raises 22004 naming the argument and
-- changes nothing; a NULL for an optional argument means its default.
-- (sqlstate_of comes from the errors test.)
\i sql/include/helpers.sql
\set VERBOSITY terse

-- what exists before, and must still exist unchanged after, the failed calls
SELECT singleton_set('n_keep', '"kept"', 'label');
SELECT singleton_incr('n_count', 5);

-- registry: required arguments
SELECT sqlstate_of($$SELECT singleton_set(NULL, '1')$$);
SELECT sqlstate_of($$SELECT singleton_set('n_new', NULL)$$);
SELECT sqlstate_of($$SELECT singleton_set('n_keep', NULL)$$);
SELECT sqlstate_of($$SELECT singleton_get(NULL)$$);
SELECT sqlstate_of($$SELECT singleton_get(NULL, 'SELECT 1')$$);
SELECT sqlstate_of($$SELECT singleton_get('n_new', NULL)$$);
SELECT sqlstate_of($$SELECT singleton_has(NULL)$$);
SELECT sqlstate_of($$SELECT singleton_exists(NULL)$$);
SELECT sqlstate_of($$SELECT singleton_delete(NULL)$$);
SELECT sqlstate_of($$SELECT singleton_incr(NULL)$$);
SELECT sqlstate_of($$SELECT singleton_incr(NULL, 1)$$);
SELECT sqlstate_of($$SELECT singleton_incr(NULL, NULL)$$);
-- nothing changed
SELECT name, type, private FROM singleton_entries WHERE name LIKE 'n\_%' ORDER BY name;
SELECT singleton_get('n_keep') AS n_keep, singleton_get('n_count') AS n_count;

-- registry: a NULL optional argument means its default
SELECT singleton_set('n_set', '[1]', NULL, NULL);
SELECT singleton_get('n_fac', 'SELECT 42', NULL, NULL);
SELECT name, type, private FROM singleton_entries WHERE name IN ('n_set', 'n_fac') ORDER BY name;
SELECT singleton_incr('n_count', NULL) AS delta_null, singleton_incr('n_count') AS delta_default;
SELECT singleton_incr('n_new_counter', NULL) AS created_with_default;
SELECT type FROM singleton_entries WHERE name = 'n_new_counter';

-- rate limiter: required arguments, and nothing spent
SELECT sqlstate_of($$SELECT * FROM singleton_rate_limit(NULL, 4, 2, '1 second')$$);
SELECT sqlstate_of($$SELECT * FROM singleton_rate_limit('n_rl', NULL, 2, '1 second')$$);
SELECT sqlstate_of($$SELECT * FROM singleton_rate_limit('n_rl', 4, NULL, '1 second')$$);
SELECT sqlstate_of($$SELECT * FROM singleton_rate_limit('n_rl', 4, 2, NULL)$$);
SELECT allowed, "limit", remaining FROM singleton_rate_limit('n_rl', 4, 2, '1 second', 0);
-- a NULL quantity takes one token, as the default does
SELECT allowed, remaining FROM singleton_rate_limit('n_rl', 4, 2, '1 second', NULL);
SELECT allowed, remaining FROM singleton_rate_limit('n_rl', 4, 2, '1 second');

-- the message as a user sees it
\set VERBOSITY default
SELECT singleton_delete(NULL);
SELECT * FROM singleton_rate_limit('n_rl', 4, 2, NULL);
\set VERBOSITY terse

-- jobs: required arguments
SELECT singleton_job_create('n_job', 'SELECT 1') AS njob \gset
SELECT sqlstate_of($$SELECT singleton_job_create(NULL, 'SELECT 1')$$);
SELECT sqlstate_of($$SELECT singleton_job_create('n_other', NULL)$$);
SELECT sqlstate_of($$SELECT singleton_job_get(NULL::bigint)$$);
SELECT sqlstate_of($$SELECT singleton_job_get(NULL::text)$$);
SELECT sqlstate_of($$SELECT singleton_job_update(NULL, enabled => false)$$);
SELECT sqlstate_of($$SELECT singleton_job_delete(NULL)$$);
SELECT sqlstate_of($$SELECT singleton_job_execute(NULL)$$);
SELECT sqlstate_of($$SELECT singleton_job_stop(NULL)$$);
SELECT sqlstate_of($$SELECT singleton_job_status(NULL)$$);
SELECT sqlstate_of($$SELECT singleton_job_wait(NULL)$$);
-- nothing changed: the job is still there, enabled, never run
SELECT name, command, timeout, max_attempts, enabled FROM singleton_job ORDER BY id;
SELECT count(*) AS runs FROM singleton_job_run;

-- jobs: a NULL optional argument means its default
SELECT singleton_job_create('n_defaults', 'SELECT 2', NULL, NULL) AS ndjob \gset
SELECT name, timeout, max_attempts FROM singleton_job_get(:ndjob);
-- for singleton_job_update the default, NULL, leaves a setting as it is
SELECT name, command, timeout, max_attempts, enabled
FROM singleton_job_update(:ndjob, NULL, NULL, NULL, NULL);
-- for singleton_job_wait it is no timeout
SELECT singleton_job_execute(:njob) AS nrun \gset
SET statement_timeout = '60s';
SELECT status, result FROM singleton_job_wait(:nrun, NULL);
RESET statement_timeout;
SELECT singleton_job_delete(:njob) AS deleted, singleton_job_delete(:ndjob) AS deleted;

-- no function of the API with arguments is STRICT any more (only internal ones)
SELECT p.oid::regprocedure AS strict_function
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'singleton'
WHERE p.proisstrict AND p.pronargs > 0
ORDER BY 1::text;

-- clean up (the limiter key goes by itself once its bucket is full again)
SELECT singleton_delete(name) FROM singleton_entries WHERE name LIKE 'n\_%' ORDER BY name;
SELECT count(*) FROM singleton_rate_limit('n_sweep', 4, 2, '1 second', 0);

-- CREATE EXTENSION installs 1.1; an existing 1.0 updates to it
SELECT extversion FROM pg_extension WHERE extname = 'singleton';
CREATE DATABASE singleton_null_upgrade;
\c singleton_null_upgrade
\set VERBOSITY terse
CREATE EXTENSION singleton VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'singleton';
SELECT singleton_has(NULL) IS NULL AS null_result_in_1_0;
ALTER EXTENSION singleton UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'singleton';
SELECT singleton_has(NULL);
SELECT singleton_incr('n_upgraded', NULL);
SELECT singleton_delete('n_upgraded');
SELECT count(*) AS strict_api_functions
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'singleton'
WHERE p.proisstrict AND p.pronargs > 0 AND p.proname NOT LIKE '\_%';
\c contrib_regression
DROP DATABASE singleton_null_upgrade;
