/* singleton--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION singleton UPDATE TO '1.1'" to load this file. \quit

--
-- One rule for NULL arguments across the SQL API: a NULL for a required
-- argument (one without a DEFAULT) raises 22004 (null_value_not_allowed)
-- naming the argument and changes nothing; a NULL for an optional argument
-- (one with a DEFAULT) means its default.
--

-- C functions: they check their arguments themselves from 1.1 on.
ALTER FUNCTION @extschema@.singleton_get(text) CALLED ON NULL INPUT;
ALTER FUNCTION @extschema@.singleton_has(text) CALLED ON NULL INPUT;
ALTER FUNCTION @extschema@.singleton_exists(text) CALLED ON NULL INPUT;
ALTER FUNCTION @extschema@.singleton_delete(text) CALLED ON NULL INPUT;
ALTER FUNCTION @extschema@.singleton_incr(text, bigint) CALLED ON NULL INPUT;

-- Job functions: the bodies of 1.0 with the check added (create, get by
-- name, stop, delete and execute are replaced further down).
CREATE OR REPLACE FUNCTION @extschema@.singleton_job_get(job bigint)
RETURNS @extschema@.singleton_job
LANGUAGE plpgsql STABLE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j @extschema@.singleton_job;
BEGIN
    PERFORM @extschema@._singleton_job_database_check();
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'job must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO j FROM @extschema@.singleton_job WHERE id = $1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job % does not exist', $1 USING ERRCODE = '42704';
    END IF;
    RETURN j;
END $$;

CREATE OR REPLACE FUNCTION @extschema@.singleton_job_status(run bigint)
RETURNS @extschema@.singleton_job_run
LANGUAGE plpgsql STABLE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r @extschema@.singleton_job_run;
BEGIN
    PERFORM @extschema@._singleton_job_database_check();
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'run must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO r FROM @extschema@.singleton_job_run WHERE id = $1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job run % does not exist', $1 USING ERRCODE = '42704';
    END IF;
    RETURN r;
END $$;

-- singleton_job_update and singleton_job_wait already follow the rule: a
-- NULL job or run raises 22004, and their optional arguments default to NULL
-- ("leave as it is", "no timeout"); both are replaced further down.

--
-- Per-key limiter state that can be given back: one key by the role that
-- made it (or a role with its privileges), every key or one role's by an
-- administrator.
--
CREATE FUNCTION @extschema@.singleton_rate_limit_reset(key text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'singleton_rate_limit_reset'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.singleton_rate_limit_reset(text) IS
'forget one limiter key of the current database (its bucket is full again); true if it had state';

CREATE FUNCTION @extschema@.singleton_rate_limit_purge(role regrole DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'singleton_rate_limit_purge'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.singleton_rate_limit_purge(regrole) IS
'forget every limiter key of every database, or those one role made; returns how many';
REVOKE ALL ON FUNCTION @extschema@.singleton_rate_limit_purge(regrole) FROM PUBLIC;

--
-- Jobs: no role can lock the job tables or their rows, take over a job, or
-- starve other roles' runs.
--
-- PUBLIC may only read the tables (through row-level security); every
-- write goes through the _singleton_job_* / _singleton_run_* functions,
-- which check the caller against the job's owner and write as the bootstrap
-- superuser.  A table privilege such as DELETE would let any role take an
-- ACCESS EXCLUSIVE lock, and a column UPDATE privilege row locks, either of
-- which stalls the launcher and pg_dump.
REVOKE INSERT, UPDATE, DELETE ON @extschema@.singleton_job, @extschema@.singleton_job_run FROM PUBLIC;

-- The name the owner had when it made the job: a run starts only while the
-- role with that OID still has that name, so a job whose owner was dropped
-- is never run as another role that got the OID (after a dump and restore,
-- say).  Jobs of 1.0 whose owner is already gone keep its OID's digits,
-- which no role name matches.
ALTER TABLE @extschema@.singleton_job ADD COLUMN owner_name name;
UPDATE @extschema@.singleton_job SET owner_name = owner::text;
ALTER TABLE @extschema@.singleton_job ALTER COLUMN owner_name SET NOT NULL;
ALTER TABLE @extschema@.singleton_job ALTER COLUMN owner_name SET DEFAULT CURRENT_USER;
-- why the launcher disabled a job (its owner is gone); cleared on enabling
ALTER TABLE @extschema@.singleton_job ADD COLUMN disabled_reason text;

-- Job names are per owner, as in pg_cron: a role cannot learn another
-- role's job names from a duplicate-name error.
ALTER TABLE @extschema@.singleton_job DROP CONSTRAINT singleton_job_name_key;
ALTER TABLE @extschema@.singleton_job ADD CONSTRAINT singleton_job_owner_name_key UNIQUE (owner, name);

-- The settings of a job are validated in one place, the C functions behind
-- _singleton_job_insert and _singleton_job_modify; the table's CHECK
-- constraints of 1.0 stay only as a backstop for superusers' direct writes.
DROP FUNCTION @extschema@._singleton_job_check(text, interval, integer);
-- Queueing wakes the launcher, and the wait checks who queued a run, in C
-- now: 1.0's SQL helpers for both are no longer called (and the wake, open
-- to PUBLIC, only let any role keep the launcher cycling).
DROP FUNCTION @extschema@._singleton_worker_wake();
DROP FUNCTION @extschema@._singleton_xid_is_current(xid);

-- A run's status is one type, shared with the C code (SingletonRunStatus in
-- src/worker.h has these labels in this order).  The type itself rejects
-- other values, so the CHECK of 1.0 goes; the index and the policies that
-- mention the column are made again over the new type.
CREATE TYPE @extschema@.singleton_run_status AS ENUM
    ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out');
COMMENT ON TYPE @extschema@.singleton_run_status IS 'the status of a singleton job run';
DROP POLICY singleton_job_run_insert ON @extschema@.singleton_job_run;
DROP POLICY singleton_job_run_cancel ON @extschema@.singleton_job_run;
DROP INDEX @extschema@.singleton_job_run_active;
ALTER TABLE @extschema@.singleton_job_run
    DROP CONSTRAINT singleton_job_run_status_check,
    ALTER COLUMN status DROP DEFAULT,
    ALTER COLUMN status TYPE @extschema@.singleton_run_status
        USING status::@extschema@.singleton_run_status,
    ALTER COLUMN status SET DEFAULT 'queued';
CREATE INDEX singleton_job_run_active ON @extschema@.singleton_job_run (id)
    WHERE status IN ('queued', 'running');
CREATE POLICY singleton_job_run_insert ON @extschema@.singleton_job_run FOR INSERT
    WITH CHECK (status = 'queued' AND attempt = 1
                AND EXISTS (SELECT 1 FROM @extschema@.singleton_job j WHERE j.id = job_id AND j.enabled));
CREATE POLICY singleton_job_run_cancel ON @extschema@.singleton_job_run FOR UPDATE
    USING (status IN ('queued', 'running')
           AND EXISTS (SELECT 1 FROM @extschema@.singleton_job j WHERE j.id = job_id))
    WITH CHECK (status = 'cancelled');

-- One guard trigger function per table, with the checks and bookkeeping of
-- 1.0's _singleton_job_guard (which branched on the table's name).  Row-
-- level security does not bind roles with BYPASSRLS, and a job runs as its
-- owner: so every write by a non-superuser is also checked here, and the
-- bookkeeping columns are set here rather than by the writer.
CREATE FUNCTION @extschema@._singleton_job_guard_job()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    is_super boolean;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := pg_catalog.now();
    END IF;
    SELECT rolsuper INTO is_super FROM pg_catalog.pg_roles
     WHERE oid = current_user::pg_catalog.regrole;
    IF is_super THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_OP <> 'INSERT' AND NOT pg_catalog.pg_has_role(OLD.owner::pg_catalog.oid, 'USAGE') THEN
        RAISE EXCEPTION 'permission denied for job %', OLD.id USING ERRCODE = '42501';
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.owner <> current_user::pg_catalog.regrole
       AND NOT (TG_OP = 'UPDATE' AND NEW.owner = OLD.owner) THEN
        RAISE EXCEPTION 'permission denied for job %', NEW.id USING ERRCODE = '42501';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
COMMENT ON FUNCTION @extschema@._singleton_job_guard_job() IS
'internal: ownership and bookkeeping checks on singleton_job, also for BYPASSRLS roles';

-- users may queue runs and cancel them, nothing else
CREATE FUNCTION @extschema@._singleton_job_guard_run()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job_owner pg_catalog.regrole;
    is_super boolean;
BEGIN
    SELECT rolsuper INTO is_super FROM pg_catalog.pg_roles
     WHERE oid = current_user::pg_catalog.regrole;
    IF is_super THEN
        RETURN NEW;
    END IF;
    SELECT owner INTO job_owner FROM @extschema@.singleton_job
     WHERE id = CASE WHEN TG_OP = 'INSERT' THEN NEW.job_id ELSE OLD.job_id END;
    IF job_owner IS NULL OR NOT pg_catalog.pg_has_role(job_owner::pg_catalog.oid, 'USAGE') THEN
        RAISE EXCEPTION 'permission denied for job %', NEW.job_id USING ERRCODE = '42501';
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'queued' OR NEW.attempt <> 1 THEN
            RAISE EXCEPTION 'a new run must be queued as attempt 1' USING ERRCODE = '42501';
        END IF;
    ELSE
        IF NEW.status <> 'cancelled' OR OLD.status NOT IN ('queued', 'running') THEN
            RAISE EXCEPTION 'a run may only be cancelled while queued or running' USING ERRCODE = '42501';
        END IF;
        NEW.finished_at := pg_catalog.clock_timestamp();
    END IF;
    RETURN NEW;
END $$;
COMMENT ON FUNCTION @extschema@._singleton_job_guard_run() IS
'internal: ownership and bookkeeping checks on singleton_job_run, also for BYPASSRLS roles';

DROP TRIGGER singleton_job_guard ON @extschema@.singleton_job;
CREATE TRIGGER singleton_job_guard BEFORE INSERT OR UPDATE OR DELETE ON @extschema@.singleton_job
    FOR EACH ROW EXECUTE FUNCTION @extschema@._singleton_job_guard_job();
DROP TRIGGER singleton_job_run_guard ON @extschema@.singleton_job_run;
CREATE TRIGGER singleton_job_run_guard BEFORE INSERT OR UPDATE ON @extschema@.singleton_job_run
    FOR EACH ROW EXECUTE FUNCTION @extschema@._singleton_job_guard_run();
DROP FUNCTION @extschema@._singleton_job_guard();

-- Dispatch takes the oldest queued run of each enabled job and counts the
-- running ones: with these its cost does not grow with the queue.
CREATE INDEX singleton_job_run_queued ON @extschema@.singleton_job_run (job_id, id)
    WHERE status = 'queued';
CREATE INDEX singleton_job_run_running ON @extschema@.singleton_job_run (job_id)
    WHERE status = 'running';

-- pg_dump keeps the ids' sequences too, so a restored database creates new
-- jobs and runs without colliding with the restored ones.
SELECT pg_catalog.pg_extension_config_dump('@extschema@.singleton_job_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.singleton_job_run_id_seq', '');

CREATE FUNCTION @extschema@._singleton_job_insert(name text, command text, timeout interval,
                                                  max_attempts integer)
RETURNS bigint
AS 'MODULE_PATHNAME', 'singleton_job_insert'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._singleton_job_insert(text, text, interval, integer) IS
'internal: create a job owned by the current role';

CREATE FUNCTION @extschema@._singleton_job_modify(job bigint, command text, timeout interval,
                                                  max_attempts integer, enabled boolean)
RETURNS void
AS 'MODULE_PATHNAME', 'singleton_job_modify'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._singleton_job_modify(bigint, text, interval, integer, boolean) IS
'internal: change a job the current role may manage';

CREATE FUNCTION @extschema@._singleton_job_remove(job bigint)
RETURNS integer[]
AS 'MODULE_PATHNAME', 'singleton_job_remove'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._singleton_job_remove(bigint) IS
'internal: stop and delete a job the current role may manage; the pids of its workers to cancel, NULL if no such job';

-- One row per owner with caps, locked while a session counts that owner's
-- jobs or queued runs and adds one, so concurrent sessions cannot overshoot
-- the caps.  PUBLIC has no privilege on it, so no role can hold the lock of
-- another.
CREATE TABLE @extschema@._singleton_job_owner_lock (owner oid PRIMARY KEY);
REVOKE ALL ON @extschema@._singleton_job_owner_lock FROM PUBLIC;
COMMENT ON TABLE @extschema@._singleton_job_owner_lock IS
'internal: serializes the cap checks of one job owner';

CREATE FUNCTION @extschema@._singleton_run_queue(job bigint)
RETURNS bigint
AS 'MODULE_PATHNAME', 'singleton_run_queue'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._singleton_run_queue(bigint) IS
'internal: queue a run of a job the current role may manage';

CREATE FUNCTION @extschema@._singleton_run_cancel(run bigint)
RETURNS integer
AS 'MODULE_PATHNAME', 'singleton_run_cancel'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._singleton_run_cancel(bigint) IS
'internal: mark a run the current role may manage cancelled; its worker''s pid, or -1 if it had finished';

CREATE OR REPLACE FUNCTION @extschema@.singleton_job_create(name text, command text,
                                                            timeout interval DEFAULT NULL,
                                                            max_attempts integer DEFAULT 1)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    new_id bigint;
BEGIN
    PERFORM @extschema@._singleton_job_database_check();
    -- _singleton_job_insert checks the arguments (22004 for a NULL name or
    -- command) and the settings; max_attempts is optional: NULL means its
    -- default
    BEGIN
        new_id := @extschema@._singleton_job_insert($1, $2, $3, coalesce($4, 1));
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION 'job "%" already exists', $1 USING ERRCODE = '42710',
            DETAIL = 'Job names are unique per owner.';
    END;
    RETURN new_id;
END $$;

-- By name: the current role's own job of that name, else the one job of
-- that name it may manage.
CREATE OR REPLACE FUNCTION @extschema@.singleton_job_get(name text)
RETURNS @extschema@.singleton_job
LANGUAGE plpgsql STABLE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j @extschema@.singleton_job;
    n bigint;
BEGIN
    PERFORM @extschema@._singleton_job_database_check();
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'job name must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO j FROM @extschema@.singleton_job s
     WHERE s.name = $1 AND s.owner = current_user::regrole;
    IF FOUND THEN
        RETURN j;
    END IF;
    SELECT count(*) INTO n FROM @extschema@.singleton_job s
     WHERE s.name = $1 AND pg_has_role(s.owner::oid, 'USAGE');
    IF n > 1 THEN
        RAISE EXCEPTION 'job name "%" is ambiguous', $1 USING ERRCODE = '42725',
            HINT = 'Several roles you act for have a job of that name: use the job''s id.';
    END IF;
    SELECT * INTO j FROM @extschema@.singleton_job s
     WHERE s.name = $1 AND pg_has_role(s.owner::oid, 'USAGE');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job "%" does not exist', $1 USING ERRCODE = '42704';
    END IF;
    RETURN j;
END $$;

CREATE OR REPLACE FUNCTION @extschema@.singleton_job_update(job bigint, command text DEFAULT NULL,
                                                            timeout interval DEFAULT NULL,
                                                            max_attempts integer DEFAULT NULL,
                                                            enabled boolean DEFAULT NULL)
RETURNS @extschema@.singleton_job
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM @extschema@._singleton_job_database_check();
    -- checks the arguments (22004 for a NULL job) and the settings
    PERFORM @extschema@._singleton_job_modify($1, $2, $3, $4, $5);
    RETURN @extschema@.singleton_job_get($1);
END $$;

CREATE OR REPLACE FUNCTION @extschema@.singleton_job_stop(run bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pid integer;
BEGIN
    PERFORM @extschema@._singleton_job_database_check();
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'run must not be null' USING ERRCODE = '22004';
    END IF;
    pid := @extschema@._singleton_run_cancel($1);
    IF pid < 0 THEN
        RETURN false;           -- already finished
    END IF;
    -- a running command is cancelled; its worker then rolls it back
    IF pid > 0 THEN
        PERFORM pg_catalog.pg_cancel_backend(pid);
    END IF;
    RETURN true;
END $$;

CREATE OR REPLACE FUNCTION @extschema@.singleton_job_delete(job bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pids integer[];
    pid integer;
BEGIN
    PERFORM @extschema@._singleton_job_database_check();
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'job must not be null' USING ERRCODE = '22004';
    END IF;
    pids := @extschema@._singleton_job_remove($1);
    IF pids IS NULL THEN
        RETURN false;
    END IF;
    -- running commands are cancelled; their workers then roll them back
    FOREACH pid IN ARRAY pids LOOP
        IF pid > 0 THEN
            PERFORM pg_catalog.pg_cancel_backend(pid);
        END IF;
    END LOOP;
    RETURN true;
END $$;

CREATE OR REPLACE FUNCTION @extschema@.singleton_job_execute(job bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM @extschema@._singleton_job_database_check();
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'job must not be null' USING ERRCODE = '22004';
    END IF;
    RETURN @extschema@._singleton_run_queue($1);
END $$;

-- Waiting sleeps until a run's end is broadcast (and looks again at least
-- once a second) instead of polling the table every 20 ms; the checks and
-- results are those of 1.0.
CREATE OR REPLACE FUNCTION @extschema@.singleton_job_wait(run bigint, timeout interval DEFAULT NULL)
RETURNS @extschema@.singleton_job_run
AS 'MODULE_PATHNAME', 'singleton_job_wait'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

--
-- A cheap form of singleton_stats() for dashboards that poll often: the
-- instance's totals without the per-name maps, whose cost grows with the
-- registry (a second function, so singleton_stats() keeps the keys of 1.0).
--
CREATE FUNCTION @extschema@.singleton_stats_summary()
RETURNS jsonb
AS 'MODULE_PATHNAME', 'singleton_stats_summary'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.singleton_stats_summary() IS
'instance-wide totals of singleton_stats() without per-name maps: the same cost at any registry size';
