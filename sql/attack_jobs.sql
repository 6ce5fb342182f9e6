-- Attacks on the job handler by roles that are not superusers: locking the
-- job tables, forging or taking over another role's jobs and runs, learning
-- or squatting job names, flooding the queue past the caps, and runs of
-- owners that lost their rights or no longer exist.  Each must fail, and a
-- refused run must say why.  (Uses sql/include/helpers.sql and the caps
-- in test/singleton.conf: job_max_timeout 1h, job_role_max_queued 20.)
CREATE ROLE aj_victim LOGIN;
CREATE ROLE aj_mallory LOGIN;
\i sql/include/helpers.sql
-- sqlstate_of without job and run ids, which depend on the suites before
CREATE FUNCTION aj_err(q text) RETURNS text LANGUAGE sql AS
$$ SELECT regexp_replace(sqlstate_of(q), '(job run|job) [0-9]+', '\1 N', 'g') $$;
GRANT EXECUTE ON FUNCTION aj_err(text) TO PUBLIC;
SET ROLE aj_victim;
SELECT singleton_job_create('nightly', 'SELECT 1', max_attempts => 3) AS vjob \gset
SELECT singleton_job_execute(:vjob) AS vrun \gset
SELECT status FROM singleton_job_wait(:vrun, '60 seconds');
RESET ROLE;

-- 1. No role can lock the job tables or their rows: not ACCESS EXCLUSIVE
-- (which froze the launcher and pg_dump), nor any mode a write privilege
-- allows, nor row locks.  Reading stays possible.
SET ROLE aj_mallory;
SELECT aj_err('LOCK TABLE singleton_job IN ACCESS EXCLUSIVE MODE');
SELECT aj_err('LOCK TABLE singleton_job_run IN ACCESS EXCLUSIVE MODE');
SELECT aj_err('LOCK TABLE singleton_job IN ROW EXCLUSIVE MODE');
SELECT aj_err('LOCK TABLE singleton_job_run IN SHARE MODE');
SELECT aj_err('SELECT * FROM singleton_job FOR UPDATE');
SELECT aj_err('SELECT * FROM singleton_job_run FOR KEY SHARE');
SELECT aj_err('TRUNCATE singleton_job_run');
SELECT aj_err('DELETE FROM singleton_job');
SELECT aj_err($$INSERT INTO singleton_job (name, command) VALUES ('x', 'SELECT 1')$$);
SELECT aj_err($$UPDATE singleton_job SET enabled = false$$);
SELECT aj_err('LOCK TABLE singleton_job IN ACCESS SHARE MODE');

-- 2. The internal write functions are callable, but only on jobs the caller
-- may manage: another role's job looks absent, and stays as it was.
SELECT aj_err(format($$SELECT _singleton_job_modify(%s, 'SELECT 2', NULL, NULL, NULL)$$, :vjob));
SELECT aj_err(format('SELECT singleton_job_update(%s, enabled => false)', :vjob));
SELECT _singleton_job_remove(:vjob) IS NULL AS not_removed;
SELECT aj_err(format('SELECT _singleton_run_queue(%s)', :vjob));
SELECT aj_err(format('SELECT _singleton_run_cancel(%s)', :vrun));
RESET ROLE;
SELECT command, enabled, owner, owner_name FROM singleton_job WHERE id = :vjob;
SELECT count(*) AS victim_runs FROM singleton_job_run WHERE job_id = :vjob;

-- 3. Job names are per owner: another role's names neither collide nor leak.
SET ROLE aj_mallory;
SELECT singleton_job_create('nightly', 'SELECT 2') AS mjob \gset
SELECT aj_err($$SELECT singleton_job_create('nightly', 'SELECT 3')$$);
SELECT id = :mjob AS own_job, command FROM singleton_job_get('nightly');
RESET ROLE;
SET ROLE aj_victim;
SELECT id = :vjob AS own_job, command FROM singleton_job_get('nightly');
RESET ROLE;
-- a superuser acts for both: by name it must say which
SELECT aj_err($$SELECT singleton_job_get('nightly')$$);

-- 4. Administrator caps on attempts and timeout; superusers are exempt.
SET ROLE aj_mallory;
SELECT aj_err($$SELECT singleton_job_create('many', 'SELECT 1', max_attempts => 11)$$);
SELECT aj_err($$SELECT singleton_job_create('long', 'SELECT 1', '2 hours')$$);
SELECT aj_err(format('SELECT singleton_job_update(%s, max_attempts => 11)', :mjob));
SELECT aj_err(format('SELECT singleton_job_update(%s, timeout => %L)', :mjob, '61 minutes'));
SELECT max_attempts, timeout FROM singleton_job_update(:mjob, max_attempts => 10, timeout => '1 hour');
RESET ROLE;
SELECT singleton_job_create('admin_many', 'SELECT 1', '2 hours', 50) > 0 AS superuser_exempt;

-- 5. A role may have at most singleton.job_role_max_queued runs waiting.
SET ROLE aj_mallory;
BEGIN;
SELECT count(singleton_job_execute(:mjob)) AS queued FROM generate_series(1, 20);
\set VERBOSITY default
SELECT singleton_job_execute(:mjob);
\set VERBOSITY terse
ROLLBACK;
RESET ROLE;

-- 6. A run whose owner can no longer log in, has expired or lost CONNECT is
-- refused before any worker starts, with the reason, and is not retried
-- (max_attempts is 3).  Creating a job in that state is refused too.
SET ROLE aj_victim;
SELECT singleton_job_create('lost', 'SELECT 1', max_attempts => 3) AS ljob \gset
RESET ROLE;
ALTER ROLE aj_victim VALID UNTIL '2000-01-01';
SELECT singleton_job_execute(:ljob) AS r \gset
SELECT status, split_part(error, ' (', 1) AS error FROM singleton_job_wait(:r, '60 seconds');
SET ROLE aj_victim;
SELECT aj_err($$SELECT singleton_job_create('expired', 'SELECT 1')$$) ~ '^42501: role "aj_victim" is no longer valid' AS create_refused;
RESET ROLE;
ALTER ROLE aj_victim VALID UNTIL 'infinity';
ALTER ROLE aj_victim NOLOGIN;
SELECT singleton_job_execute(:ljob) AS r \gset
SELECT status, error FROM singleton_job_wait(:r, '60 seconds');
ALTER ROLE aj_victim LOGIN;
REVOKE CONNECT ON DATABASE contrib_regression FROM PUBLIC;
SELECT singleton_job_execute(:ljob) AS r \gset
SELECT status, error FROM singleton_job_wait(:r, '60 seconds');
SET ROLE aj_victim;
SELECT aj_err($$SELECT singleton_job_create('noconnect', 'SELECT 1')$$);
RESET ROLE;
GRANT CONNECT ON DATABASE contrib_regression TO PUBLIC;
SELECT string_agg(attempt || ':' || status, ' ' ORDER BY id) AS runs
FROM singleton_job_run WHERE job_id = :ljob;
-- with its rights back, the job runs again
SELECT singleton_job_execute(:ljob) AS r \gset
SELECT status FROM singleton_job_wait(:r, '60 seconds');

-- A role that allows no connections (CONNECTION LIMIT 0) runs nothing.
ALTER ROLE aj_victim CONNECTION LIMIT 0;
SELECT singleton_job_execute(:ljob) AS r \gset
SELECT status, error FROM singleton_job_wait(:r, '60 seconds');
ALTER ROLE aj_victim CONNECTION LIMIT -1;

-- A command is at most 1 MB, and a role has at most
-- singleton.job_role_max_jobs jobs (20 in this suite's configuration).
SET ROLE aj_mallory;
SELECT aj_err(format('SELECT singleton_job_create(%L, %L)', 'huge', 'SELECT 1' || repeat(' ', 1048576)));
SELECT count(singleton_job_create('filler' || i, 'SELECT 1')) FROM generate_series(1, 19) i;
\set VERBOSITY default
SELECT singleton_job_create('one_too_many', 'SELECT 1');
\set VERBOSITY terse
RESET ROLE;

-- 7. A job whose owner was dropped is disabled with the reason at its next
-- run, never retried, and never starts a worker again.
CREATE ROLE aj_gone LOGIN;
SET ROLE aj_gone;
SELECT singleton_job_create('orphan', 'SELECT 1', max_attempts => 3) AS ojob \gset
RESET ROLE;
DROP ROLE aj_gone;
SELECT singleton_job_execute(:ojob) AS r \gset
SELECT status, error FROM singleton_job_wait(:r, '60 seconds');
SELECT enabled, disabled_reason FROM singleton_job WHERE id = :ojob;
SELECT count(*) AS orphan_runs FROM singleton_job_run WHERE job_id = :ojob;
SELECT aj_err(format('SELECT singleton_job_execute(%s)', :ojob));

-- 8. Identity, not just the OID: a job whose owner OID now names another
-- role (a dropped owner's OID reused, as after a dump and restore) never
-- runs as that role, even when that role enables it again.
SET ROLE aj_victim;
SELECT singleton_job_create('adopted', 'SELECT current_user') AS ajob \gset
RESET ROLE;
UPDATE singleton_job SET owner = 'aj_mallory' WHERE id = :ajob;
SELECT singleton_job_execute(:ajob) AS r \gset
SELECT status, error FROM singleton_job_wait(:r, '60 seconds');
SET ROLE aj_mallory;
SELECT enabled FROM singleton_job_update(:ajob, enabled => true);
SELECT singleton_job_execute(:ajob) AS r \gset
SELECT status, error FROM singleton_job_wait(:r, '60 seconds');
RESET ROLE;
SELECT enabled, owner, owner_name FROM singleton_job WHERE id = :ajob;
SELECT count(*) FILTER (WHERE status = 'succeeded') AS ran_as_other FROM singleton_job_run WHERE job_id = :ajob;

-- 9. A database updated from 1.0 is protected the same way: PUBLIC keeps
-- only SELECT, and existing jobs learn their owner's name (a job whose
-- owner was already dropped keeps the OID's digits, which match no role).
CREATE DATABASE aj_upgrade;
\c aj_upgrade
SET client_min_messages = warning;
CREATE EXTENSION singleton VERSION '1.0';
RESET client_min_messages;
INSERT INTO singleton_job (name, command, owner) VALUES ('old', 'SELECT 1', 'aj_victim');
INSERT INTO singleton_job (name, command, owner) VALUES ('older', 'SELECT 1', 999999::oid::regrole);
ALTER EXTENSION singleton UPDATE;
SELECT name, owner_name FROM singleton_job ORDER BY id;
SELECT t AS "table", p AS privilege_of_public
FROM unnest(ARRAY['singleton_job', 'singleton_job_run']) t,
     unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p
WHERE has_table_privilege('aj_mallory', t, p)
   OR (p IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES') AND has_any_column_privilege('aj_mallory', t, p))
ORDER BY 1, 2;
\c contrib_regression
DROP DATABASE aj_upgrade;
-- the same as a fresh install
SELECT t AS "table", p AS privilege_of_public
FROM unnest(ARRAY['singleton_job', 'singleton_job_run']) t,
     unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p
WHERE has_table_privilege('aj_mallory', t, p)
   OR (p IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES') AND has_any_column_privilege('aj_mallory', t, p))
ORDER BY 1, 2;

-- clean up
SELECT wait_until($$SELECT NOT EXISTS (SELECT 1 FROM singleton_job_run WHERE status IN ('queued', 'running'))$$);
DELETE FROM singleton_job;
DROP FUNCTION aj_err(text);
DROP ROLE aj_victim, aj_mallory;
