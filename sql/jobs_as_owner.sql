-- The job handler and the execution handler.  The test server runs the
-- worker in this database (singleton.database = contrib_regression).
\i sql/include/helpers.sql
CREATE ROLE singleton_job_alice LOGIN;
CREATE ROLE singleton_job_bob LOGIN;
CREATE ROLE singleton_job_nologin;
CREATE TABLE job_secret (v text);
INSERT INTO job_secret VALUES ('top secret');

SELECT singleton_health()->'worker'->'database' AS database,
       singleton_health()->'worker'->'max_workers' AS max_workers;

-- create, get, update
SET ROLE singleton_job_alice;
SELECT singleton_job_create('refresh', $$SELECT singleton_set('refreshed', '"fresh"')$$) AS job \gset
SELECT name, command, owner, timeout, max_attempts, enabled FROM singleton_job_get(:job);
SELECT id = :job AS same_job FROM singleton_job_get('refresh');
SELECT command, timeout, max_attempts, enabled
FROM singleton_job_update(:job, timeout => '1 minute', max_attempts => 2);
SELECT updated_at >= created_at AS updated FROM singleton_job_get(:job);

-- a job refreshes a registry value; this session sees it after the wait
SELECT singleton_get('refreshed') IS NULL AS not_yet;
SELECT singleton_job_execute(:job) AS run \gset
SELECT status, attempt, result, error, worker_pid IS NOT NULL AS had_worker,
       queued_at <= started_at AND started_at <= finished_at AS ordered
FROM singleton_job_wait(:run, '60 seconds');
SELECT singleton_get('refreshed');
-- the job ran as its owner, so the entry is alice's
SELECT owner FROM singleton_entries WHERE name = 'refreshed';
SELECT status FROM singleton_job_status(:run);
-- finished runs cannot be stopped
SELECT singleton_job_stop(:run);

-- failures record SQLSTATE and message; retries are new attempts
SELECT singleton_job_create('fails', 'SELECT 1 / 0', max_attempts => 3) AS fjob \gset
SELECT singleton_job_execute(:fjob) AS frun \gset
SELECT wait_until(format($$SELECT count(*) = 3 FROM singleton_job_run WHERE job_id = %s AND status = 'failed'$$, :fjob));
SELECT attempt, status, error FROM singleton_job_run WHERE job_id = :fjob ORDER BY id;

-- a job cannot do what its owner cannot
SELECT singleton_job_create('steal', 'SELECT * FROM job_secret') AS sjob \gset
SELECT singleton_job_execute(:sjob) AS srun \gset
SELECT status, error FROM singleton_job_wait(:srun, '60 seconds');
SELECT singleton_job_create('escalate', 'SET ROLE postgres') AS ejob \gset
SELECT singleton_job_execute(:ejob) AS erun \gset
SELECT status, error FROM singleton_job_wait(:erun, '60 seconds');

-- the worker's bookkeeping never runs what the owner defined as superuser:
-- a job that puts its own clock_timestamp() ahead of pg_catalog gains nothing
RESET ROLE;
CREATE SCHEMA job_trap AUTHORIZATION singleton_job_alice;
SET ROLE singleton_job_alice;
CREATE FUNCTION job_trap.clock_timestamp() RETURNS timestamptz LANGUAGE sql AS
$$ ALTER ROLE singleton_job_alice SUPERUSER; SELECT now() $$;
SELECT singleton_job_create('trap', 'SET search_path = job_trap, pg_catalog; SELECT 1') AS tjob \gset
SELECT singleton_job_execute(:tjob) AS trun \gset
SELECT status, error FROM singleton_job_wait(:trun, '60 seconds');
RESET ROLE;
SELECT rolsuper AS alice_became_superuser FROM pg_roles WHERE rolname = 'singleton_job_alice';
SET ROLE singleton_job_alice;

-- a command cannot end its own transaction: the run fails, nothing is skipped
SELECT singleton_job_create('commits', 'SELECT 1; COMMIT; SELECT 2') AS cjob \gset
SELECT singleton_job_execute(:cjob) AS crun \gset
SELECT status, error FROM singleton_job_wait(:crun, '60 seconds');

-- waiting needs read committed: a fixed snapshot would never see the end
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT sqlstate_of(format('SELECT singleton_job_wait(%s)', :crun));
COMMIT;

-- waiting in the transaction that queued the run would wait forever
SELECT sqlstate_of(format('SELECT singleton_job_wait(singleton_job_execute(%s))', :job));

-- the run history is the owner's, and may only be cancelled, not forged
SELECT singleton_job_create('held', 'SELECT 1') AS hjob \gset
SELECT enabled FROM singleton_job_update(:hjob, enabled => false);
RESET ROLE;
INSERT INTO singleton_job_run (job_id) VALUES (:hjob) RETURNING id AS hrun \gset
SET ROLE singleton_job_alice;
SELECT sqlstate_of(format($$UPDATE singleton_job_run SET status = 'succeeded' WHERE id = %s$$, :hrun));
SELECT sqlstate_of(format($$UPDATE singleton_job_run SET status = 'failed' WHERE id = %s$$, :run));
SELECT status FROM singleton_job_status(:run);
SELECT sqlstate_of(format($$UPDATE singleton_job SET owner = 'postgres' WHERE id = %s$$, :job));
SELECT sqlstate_of(format($$INSERT INTO singleton_job_run (job_id, status) VALUES (%s, 'running')$$, :job));
SELECT sqlstate_of(format($$INSERT INTO singleton_job_run (job_id) VALUES (%s)$$, :hjob));
SELECT sqlstate_of(format($$DELETE FROM singleton_job_run WHERE id = %s$$, :run));
RESET ROLE;

-- another role sees none of it
SET ROLE singleton_job_bob;
SELECT count(*) AS jobs_visible FROM singleton_job;
SELECT count(*) AS runs_visible FROM singleton_job_run;
SELECT sqlstate_of(format('SELECT singleton_job_get(%s)', :job));
SELECT sqlstate_of($$SELECT singleton_job_get('refresh')$$);
SELECT sqlstate_of(format('SELECT singleton_job_execute(%s)', :job));
SELECT sqlstate_of(format('SELECT singleton_job_update(%s, command => %L)', :job, 'SELECT 1'));
SELECT sqlstate_of(format('SELECT singleton_job_status(%s)', :run));
SELECT sqlstate_of(format('SELECT singleton_job_stop(%s)', :run));
SELECT singleton_job_delete(:job) AS deleted_other;
SELECT sqlstate_of(format($$INSERT INTO singleton_job_run (job_id) VALUES (%s)$$, :job));
SELECT (singleton_stats()->'jobs'->>'succeeded')::int AS bob_sees_succeeded;
RESET ROLE;
SET ROLE singleton_job_alice;
SELECT command FROM singleton_job_get(:job);
RESET ROLE;
-- a role with BYPASSRLS sees the rows but still cannot change them
CREATE ROLE singleton_job_bypass LOGIN BYPASSRLS;
GRANT SELECT ON job_secret TO singleton_job_bypass;
SET ROLE singleton_job_bypass;
SELECT sqlstate_of(format($$UPDATE singleton_job SET command = 'SELECT 2' WHERE id = %s$$, :job));
SELECT sqlstate_of(format($$INSERT INTO singleton_job_run (job_id) VALUES (%s)$$, :job));
SELECT sqlstate_of(format($$UPDATE singleton_job_run SET status = 'cancelled' WHERE id = %s$$, :hrun));
SELECT sqlstate_of(format($$DELETE FROM singleton_job WHERE id = %s$$, :job));
RESET ROLE;
SELECT command, status FROM singleton_job_get(:job), singleton_job_status(:hrun);
-- superusers see every job
SELECT count(*) AS all_jobs FROM singleton_job;

-- stopping a queued run: a disabled job's runs wait in the queue
SET ROLE singleton_job_alice;
SELECT singleton_job_create('queued_only', 'SELECT 1') AS qjob \gset
-- queued and disabled in one transaction, so the launcher never sees it runnable
BEGIN;
SELECT singleton_job_execute(:qjob) AS qrun \gset
SELECT enabled FROM singleton_job_update(:qjob, enabled => false);
COMMIT;
SELECT sqlstate_of(format('SELECT singleton_job_execute(%s)', :qjob));
SELECT singleton_job_stop(:qrun) AS stopped, singleton_job_stop(:qrun) AS again;
SELECT status, started_at IS NULL AS never_started FROM singleton_job_status(:qrun);

-- stopping a running run cancels it within a second and rolls it back
SELECT singleton_job_create('slow', $$SELECT singleton_set('slow_started', 'true'); INSERT INTO slow_effects VALUES (1); SELECT pg_sleep(60)$$) AS slowjob \gset
RESET ROLE;
CREATE TABLE slow_effects (v int);
GRANT SELECT, INSERT ON slow_effects TO singleton_job_alice;
SET ROLE singleton_job_alice;
SELECT singleton_job_execute(:slowjob) AS slowrun \gset
SELECT wait_until($$SELECT singleton_has('slow_started')$$);
SELECT singleton_job_stop(:slowrun);
SELECT status, finished_at - started_at < interval '1 minute' AS early
FROM singleton_job_wait(:slowrun, '60 seconds');
SELECT wait_until(format($$SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'singleton job run' AND query LIKE '%%pg_sleep(60)%%')$$));
SELECT count(*) AS effects_kept FROM slow_effects;

-- deleting a job stops its active runs and removes its history
SELECT singleton_job_execute(:slowjob) AS slowrun2 \gset
SELECT wait_until(format('SELECT status = %L FROM singleton_job_status(%s)', 'running', :slowrun2));
SELECT singleton_job_delete(:slowjob) AS deleted, singleton_job_delete(:slowjob) AS again;
SELECT count(*) AS runs_left FROM singleton_job_run WHERE job_id = :slowjob;
SELECT wait_until($$SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'singleton job run')$$);

-- bad input: clear errors, nothing changed
SELECT sqlstate_of($$SELECT singleton_job_create('', 'SELECT 1')$$);
SELECT sqlstate_of($$SELECT singleton_job_create(NULL, 'SELECT 1')$$);
SELECT sqlstate_of($$SELECT singleton_job_create('x', '  ')$$);
SELECT sqlstate_of($$SELECT singleton_job_create('x', NULL)$$);
SELECT sqlstate_of($$SELECT singleton_job_create('x', 'SELECT 1', '0 seconds')$$);
SELECT sqlstate_of($$SELECT singleton_job_create('x', 'SELECT 1', '-1 second')$$);
SELECT sqlstate_of($$SELECT singleton_job_create('x', 'SELECT 1', '100 microseconds')$$);
SELECT sqlstate_of($$SELECT singleton_job_create('x', 'SELECT 1', '25 days')$$);
SELECT sqlstate_of($$SELECT singleton_job_create('x', 'SELECT 1', NULL, 0)$$);
SELECT sqlstate_of($$SELECT singleton_job_create('refresh', 'SELECT 1')$$);
SELECT sqlstate_of(format('SELECT singleton_job_update(%s, timeout => %L)', :job, '0 seconds'));
SELECT sqlstate_of(format('SELECT singleton_job_update(%s, max_attempts => 0)', :job));
SELECT sqlstate_of(format('SELECT singleton_job_update(%s, command => %L)', :job, ''));
SELECT sqlstate_of('SELECT singleton_job_get(-1)');
SELECT sqlstate_of('SELECT singleton_job_update(-1, enabled => false)');
SELECT sqlstate_of('SELECT singleton_job_execute(-1)');
SELECT sqlstate_of('SELECT singleton_job_status(-1)');
SELECT sqlstate_of('SELECT singleton_job_stop(-1)');
SELECT sqlstate_of('SELECT singleton_job_wait(-1)');
SELECT sqlstate_of(format('SELECT singleton_job_wait(%s, %L)', :run, '-1 second'));
SELECT singleton_job_delete(-1) AS deleted_unknown;
SELECT count(*) AS alice_jobs FROM singleton_job;
RESET ROLE;
SET ROLE singleton_job_nologin;
SELECT sqlstate_of($$SELECT singleton_job_create('nologin', 'SELECT 1')$$);
RESET ROLE;

-- messages as a user sees them
\set VERBOSITY default
SET ROLE singleton_job_nologin;
SELECT singleton_job_create('nologin', 'SELECT 1');
RESET ROLE;
SELECT singleton_job_execute(:qjob);
SELECT singleton_job_get(-1);
\set VERBOSITY terse

-- a wait with a timeout returns the run as it is
SET ROLE singleton_job_alice;
SELECT singleton_job_create('sleep2', 'SELECT pg_sleep(2)') AS s2job \gset
SELECT singleton_job_execute(:s2job) AS s2run \gset
SELECT status IN ('queued', 'running') AS unfinished
FROM singleton_job_wait(:s2run, '100 ms');
RESET ROLE;

-- stats and health
SELECT jsonb_object_keys(singleton_stats()->'jobs') AS key ORDER BY 1;
SELECT (singleton_stats()->'jobs'->>'failed')::int >= 5 AS failures_counted,
       (singleton_stats()->'jobs'->>'mean_run_ms')::float8 > 0 AS mean_ok;
SELECT h->'worker'->'running' AS running, (h->'worker'->>'pid')::int > 0 AS has_pid
FROM singleton_health() h;
SELECT jsonb_object_keys(singleton_health()->'worker') AS key ORDER BY 1;

-- job functions work only in singleton.database
CREATE DATABASE singleton_jobs_elsewhere;
\c singleton_jobs_elsewhere
CREATE EXTENSION singleton;
\set VERBOSITY default
SELECT singleton_job_create('elsewhere', 'SELECT 1');
\set VERBOSITY terse
SELECT singleton_stats()->'jobs' AS jobs;
\c contrib_regression
DROP DATABASE singleton_jobs_elsewhere;

-- clean up (the run of the disabled job "held" would wait forever)
SELECT singleton_job_stop(:hrun);
SELECT wait_until($$SELECT NOT EXISTS (SELECT 1 FROM singleton_job_run WHERE status IN ('queued', 'running'))$$);
DELETE FROM singleton_job;
-- the entries its jobs made ('refreshed', 'slow_started'), at least
SELECT singleton_clear() >= 2 AS cleared;
REVOKE SELECT ON job_secret FROM singleton_job_bypass;
DROP TABLE job_secret, slow_effects;
DROP SCHEMA job_trap CASCADE;
DROP ROLE singleton_job_alice, singleton_job_bob, singleton_job_nologin, singleton_job_bypass;
