/* singleton--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION singleton" to load this file. \quit

--
-- Registry
--
CREATE FUNCTION singleton_set(name text, value jsonb, type text DEFAULT NULL,
                              private boolean DEFAULT false)
RETURNS void
AS 'MODULE_PATHNAME', 'singleton_set'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION singleton_set(text, jsonb, text, boolean) IS
'create or replace a registry entry of the current database';

CREATE FUNCTION singleton_get(name text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'singleton_get'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION singleton_get(text) IS
'value of a registry entry, or NULL when absent';

CREATE FUNCTION singleton_get(name text, factory text, type text DEFAULT NULL,
                              private boolean DEFAULT false)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'singleton_get_factory'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION singleton_get(text, text, text, boolean) IS
'value of a registry entry, created once by running the factory query when absent';

CREATE FUNCTION singleton_has(name text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'singleton_has'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION singleton_has(text) IS
'whether a registry entry exists and is ready';

CREATE FUNCTION singleton_exists(name text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'singleton_has'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION singleton_exists(text) IS
'legacy alias of singleton_has';

CREATE FUNCTION singleton_delete(name text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'singleton_delete'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION singleton_delete(text) IS
'remove a registry entry; true if it existed';

CREATE FUNCTION singleton_clear()
RETURNS bigint
AS 'MODULE_PATHNAME', 'singleton_clear'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION singleton_clear() IS
'remove every entry of the current database the caller may write; returns how many';

CREATE FUNCTION singleton_reset_all()
RETURNS bigint
AS 'MODULE_PATHNAME', 'singleton_clear'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION singleton_reset_all() IS
'legacy alias of singleton_clear';

CREATE FUNCTION singleton_incr(name text, delta bigint DEFAULT 1)
RETURNS bigint
AS 'MODULE_PATHNAME', 'singleton_incr'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION singleton_incr(text, bigint) IS
'atomically add delta to an integer entry, creating a counter when absent';

--
-- Introspection
--
CREATE FUNCTION singleton_entries(
    OUT name text,
    OUT type text,
    OUT owner regrole,
    OUT private boolean,
    OUT size_bytes bigint,
    OUT access_count bigint,
    OUT created_at timestamptz,
    OUT updated_at timestamptz,
    OUT last_access timestamptz,
    OUT state text,
    OUT creator_pid integer,
    OUT factory_ms double precision)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'singleton_entries'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION singleton_entries() IS
'entries of the current database, without their values';

CREATE VIEW singleton_entries AS
    SELECT * FROM singleton_entries();
COMMENT ON VIEW singleton_entries IS
'entries of the current database, without their values';
-- names, types and counts are visible to everyone in the database
GRANT SELECT ON singleton_entries TO PUBLIC;

CREATE FUNCTION singleton_stats()
RETURNS jsonb
AS 'MODULE_PATHNAME', 'singleton_stats'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION singleton_stats() IS
'what the registry holds for the current database, and instance-wide counters';

CREATE FUNCTION singleton_health()
RETURNS jsonb
AS 'MODULE_PATHNAME', 'singleton_health'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION singleton_health() IS
'whether the registry is healthy: shared memory use against its limit';

--
-- Rate limiting
--
CREATE FUNCTION singleton_reset()
RETURNS boolean
AS 'MODULE_PATHNAME', 'singleton_reset'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION singleton_reset() IS
'clear the registry rate limiter''s window and rate_limited_count';

CREATE FUNCTION singleton_rate_limit(key text, max_burst integer,
                                     count_per_period integer, period interval,
                                     quantity integer DEFAULT 1)
RETURNS TABLE(allowed boolean, "limit" integer, remaining integer,
              retry_after interval, reset_after interval)
AS 'MODULE_PATHNAME', 'singleton_rate_limit'
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1;
COMMENT ON FUNCTION singleton_rate_limit(text, integer, integer, interval, integer) IS
'generic cell rate algorithm limiter per key: take quantity tokens if allowed';

-- Administrative functions: removing other sessions' data or clearing the
-- limiter is for roles the administrator grants it to.
REVOKE ALL ON FUNCTION singleton_clear() FROM PUBLIC;
REVOKE ALL ON FUNCTION singleton_reset_all() FROM PUBLIC;
REVOKE ALL ON FUNCTION singleton_reset() FROM PUBLIC;

--
-- Background jobs
--
-- Job definitions and run history live in tables (kept by pg_dump); one
-- launcher per instance executes runs in singleton.database.  Row-level
-- security lets each role see and manage only jobs whose owner it has the
-- privileges of; column privileges keep the owner and the bookkeeping out
-- of users' hands.  The functions below are SECURITY INVOKER: they act with
-- the caller's rights.
CREATE TABLE singleton_job (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name <> ''),
    command text NOT NULL CHECK (btrim(command) <> ''),
    owner regrole NOT NULL DEFAULT current_user::regrole,
    -- the statement timer counts whole milliseconds in an int
    timeout interval CHECK (timeout >= interval '1 millisecond' AND timeout <= interval '24 days'),
    max_attempts integer NOT NULL DEFAULT 1 CHECK (max_attempts >= 1),
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE singleton_job IS 'job definitions of the singleton job handler';

CREATE TABLE singleton_job_run (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id bigint NOT NULL REFERENCES singleton_job (id) ON DELETE CASCADE,
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out')),
    attempt integer NOT NULL DEFAULT 1,
    queued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at timestamptz,
    finished_at timestamptz,
    worker_pid integer,
    result text,
    error text
);
COMMENT ON TABLE singleton_job_run IS 'runs of singleton jobs: queue and history';
CREATE INDEX singleton_job_run_job_id ON singleton_job_run (job_id);
CREATE INDEX singleton_job_run_active ON singleton_job_run (id)
    WHERE status IN ('queued', 'running');
CREATE INDEX singleton_job_run_finished ON singleton_job_run (finished_at)
    WHERE finished_at IS NOT NULL;

SELECT pg_catalog.pg_extension_config_dump('singleton_job', '');
SELECT pg_catalog.pg_extension_config_dump('singleton_job_run', '');

ALTER TABLE singleton_job ENABLE ROW LEVEL SECURITY;
ALTER TABLE singleton_job_run ENABLE ROW LEVEL SECURITY;

CREATE POLICY singleton_job_owner ON singleton_job
    USING (pg_catalog.pg_has_role(owner::oid, 'USAGE'))
    WITH CHECK (pg_catalog.pg_has_role(owner::oid, 'USAGE'));
-- a run is visible with its job; users may only queue runs and cancel them
CREATE POLICY singleton_job_run_select ON singleton_job_run FOR SELECT
    USING (EXISTS (SELECT 1 FROM @extschema@.singleton_job j WHERE j.id = job_id));
CREATE POLICY singleton_job_run_insert ON singleton_job_run FOR INSERT
    WITH CHECK (status = 'queued' AND attempt = 1
                AND EXISTS (SELECT 1 FROM @extschema@.singleton_job j WHERE j.id = job_id AND j.enabled));
CREATE POLICY singleton_job_run_cancel ON singleton_job_run FOR UPDATE
    USING (status IN ('queued', 'running')
           AND EXISTS (SELECT 1 FROM @extschema@.singleton_job j WHERE j.id = job_id))
    WITH CHECK (status = 'cancelled');

REVOKE ALL ON singleton_job, singleton_job_run FROM PUBLIC;
GRANT SELECT, DELETE ON singleton_job TO PUBLIC;
GRANT INSERT (name, command, timeout, max_attempts) ON singleton_job TO PUBLIC;
GRANT UPDATE (command, timeout, max_attempts, enabled) ON singleton_job TO PUBLIC;
GRANT SELECT ON singleton_job_run TO PUBLIC;
GRANT INSERT (job_id) ON singleton_job_run TO PUBLIC;
GRANT UPDATE (status) ON singleton_job_run TO PUBLIC;

-- Row-level security does not bind roles with BYPASSRLS, and a job runs as
-- its owner: so every write by a non-superuser is also checked here, and the
-- bookkeeping columns are set here rather than by the writer.
CREATE FUNCTION _singleton_job_guard()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job_owner regrole;
    is_super boolean;
BEGIN
    SELECT rolsuper INTO is_super FROM pg_roles WHERE oid = current_user::regrole;
    IF TG_TABLE_NAME = 'singleton_job' THEN
        IF TG_OP = 'UPDATE' THEN
            NEW.updated_at := now();
        END IF;
        IF is_super THEN
            RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
        END IF;
        IF TG_OP <> 'INSERT' AND NOT pg_has_role(OLD.owner::oid, 'USAGE') THEN
            RAISE EXCEPTION 'permission denied for job %', OLD.id USING ERRCODE = '42501';
        END IF;
        IF TG_OP <> 'DELETE' AND NEW.owner <> current_user::regrole
           AND NOT (TG_OP = 'UPDATE' AND NEW.owner = OLD.owner) THEN
            RAISE EXCEPTION 'permission denied for job %', NEW.id USING ERRCODE = '42501';
        END IF;
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    -- singleton_job_run: users may queue runs and cancel them, nothing else
    IF is_super THEN
        RETURN NEW;
    END IF;
    SELECT owner INTO job_owner FROM @extschema@.singleton_job
     WHERE id = CASE WHEN TG_OP = 'INSERT' THEN NEW.job_id ELSE OLD.job_id END;
    IF job_owner IS NULL OR NOT pg_has_role(job_owner::oid, 'USAGE') THEN
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
        NEW.finished_at := clock_timestamp();
    END IF;
    RETURN NEW;
END $$;
COMMENT ON FUNCTION _singleton_job_guard() IS
'internal: ownership and bookkeeping checks on job tables, also for BYPASSRLS roles';

CREATE TRIGGER singleton_job_guard BEFORE INSERT OR UPDATE OR DELETE ON singleton_job
    FOR EACH ROW EXECUTE FUNCTION _singleton_job_guard();
CREATE TRIGGER singleton_job_run_guard BEFORE INSERT OR UPDATE ON singleton_job_run
    FOR EACH ROW EXECUTE FUNCTION _singleton_job_guard();

CREATE FUNCTION _singleton_job_database_check()
RETURNS void
AS 'MODULE_PATHNAME', 'singleton_job_database_check'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION _singleton_job_database_check() IS
'internal: fail unless this is the database named by singleton.database';

CREATE FUNCTION _singleton_worker_wake()
RETURNS void
AS 'MODULE_PATHNAME', 'singleton_worker_wake'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION _singleton_worker_wake() IS
'internal: wake the job launcher when the current transaction commits';

CREATE FUNCTION _singleton_xid_is_current(xid)
RETURNS boolean
AS 'MODULE_PATHNAME', 'singleton_xid_is_current'
LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION _singleton_xid_is_current(xid) IS
'internal: whether a row with this xmin was written by the current transaction';

CREATE FUNCTION _singleton_job_check(command text, timeout interval, max_attempts integer)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF command IS NOT NULL AND btrim(command) = '' THEN
        RAISE EXCEPTION 'job command must not be empty' USING ERRCODE = '22023';
    END IF;
    IF timeout IS NOT NULL AND timeout <= interval '0' THEN
        RAISE EXCEPTION 'job timeout must be positive' USING ERRCODE = '22023',
            DETAIL = format('The timeout given was %s.', timeout);
    END IF;
    IF timeout IS NOT NULL AND (timeout < interval '1 millisecond' OR timeout > interval '24 days') THEN
        RAISE EXCEPTION 'job timeout must be between 1 millisecond and 24 days' USING ERRCODE = '22023',
            DETAIL = format('The timeout given was %s.', timeout);
    END IF;
    IF max_attempts IS NOT NULL AND max_attempts < 1 THEN
        RAISE EXCEPTION 'max_attempts must be at least 1' USING ERRCODE = '22023';
    END IF;
END $$;
COMMENT ON FUNCTION _singleton_job_check(text, interval, integer) IS
'internal: validate job settings';

CREATE FUNCTION singleton_job_create(name text, command text, timeout interval DEFAULT NULL,
                                     max_attempts integer DEFAULT 1)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    new_id bigint;
BEGIN
    PERFORM @extschema@._singleton_job_database_check();
    IF $1 IS NULL OR $1 = '' THEN
        RAISE EXCEPTION 'job name must not be empty' USING ERRCODE = '22023';
    END IF;
    IF $2 IS NULL THEN
        RAISE EXCEPTION 'job command must not be empty' USING ERRCODE = '22023';
    END IF;
    IF $4 IS NULL THEN
        RAISE EXCEPTION 'max_attempts must be at least 1' USING ERRCODE = '22023';
    END IF;
    PERFORM @extschema@._singleton_job_check($2, $3, $4);
    -- runs connect as the owner, so the owner must be able to log in
    IF NOT (SELECT rolcanlogin FROM pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'role "%" cannot log in, so jobs cannot run as it', current_user
            USING ERRCODE = '42501',
                  HINT = 'Create the job as a role with LOGIN, or grant it LOGIN.';
    END IF;
    BEGIN
        INSERT INTO @extschema@.singleton_job (name, command, timeout, max_attempts)
        VALUES ($1, $2, $3, $4)
        RETURNING id INTO new_id;
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION 'job "%" already exists', $1 USING ERRCODE = '42710';
    END;
    RETURN new_id;
END $$;
COMMENT ON FUNCTION singleton_job_create(text, text, interval, integer) IS
'create a job owned by the current role; returns its id';

CREATE FUNCTION singleton_job_get(job bigint)
RETURNS singleton_job
LANGUAGE plpgsql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j @extschema@.singleton_job;
BEGIN
    PERFORM @extschema@._singleton_job_database_check();
    SELECT * INTO j FROM @extschema@.singleton_job WHERE id = $1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job % does not exist', $1 USING ERRCODE = '42704';
    END IF;
    RETURN j;
END $$;
COMMENT ON FUNCTION singleton_job_get(bigint) IS 'a job by id';

CREATE FUNCTION singleton_job_get(name text)
RETURNS singleton_job
LANGUAGE plpgsql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j @extschema@.singleton_job;
BEGIN
    PERFORM @extschema@._singleton_job_database_check();
    SELECT * INTO j FROM @extschema@.singleton_job WHERE singleton_job.name = $1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job "%" does not exist', $1 USING ERRCODE = '42704';
    END IF;
    RETURN j;
END $$;
COMMENT ON FUNCTION singleton_job_get(text) IS 'a job by name';

CREATE FUNCTION singleton_job_update(job bigint, command text DEFAULT NULL,
                                     timeout interval DEFAULT NULL,
                                     max_attempts integer DEFAULT NULL,
                                     enabled boolean DEFAULT NULL)
RETURNS singleton_job
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j @extschema@.singleton_job;
BEGIN
    PERFORM @extschema@._singleton_job_database_check();
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'job must not be null' USING ERRCODE = '22004';
    END IF;
    PERFORM @extschema@._singleton_job_check($2, $3, $4);
    UPDATE @extschema@.singleton_job AS s
       SET command = coalesce($2, s.command),
           timeout = coalesce($3, s.timeout),
           max_attempts = coalesce($4, s.max_attempts),
           enabled = coalesce($5, s.enabled)
     WHERE s.id = $1
    RETURNING s.* INTO j;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job % does not exist', $1 USING ERRCODE = '42704';
    END IF;
    RETURN j;
END $$;
COMMENT ON FUNCTION singleton_job_update(bigint, text, interval, integer, boolean) IS
'change a job; NULL arguments leave a setting as it is';

CREATE FUNCTION singleton_job_stop(run bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r @extschema@.singleton_job_run;
BEGIN
    r := @extschema@.singleton_job_status($1);
    UPDATE @extschema@.singleton_job_run
       SET status = 'cancelled'
     WHERE id = $1 AND status IN ('queued', 'running')
    RETURNING * INTO r;
    IF NOT FOUND THEN
        RETURN false;           -- already finished
    END IF;
    -- a running command is cancelled; its worker then rolls it back
    IF r.worker_pid IS NOT NULL THEN
        PERFORM pg_cancel_backend(r.worker_pid);
    END IF;
    RETURN true;
END $$;
COMMENT ON FUNCTION singleton_job_stop(bigint) IS
'cancel a queued or running run; false if it had already finished';

CREATE FUNCTION singleton_job_delete(job bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    run_id bigint;
BEGIN
    PERFORM @extschema@._singleton_job_database_check();
    IF NOT EXISTS (SELECT 1 FROM @extschema@.singleton_job WHERE id = $1) THEN
        RETURN false;
    END IF;
    FOR run_id IN SELECT id FROM @extschema@.singleton_job_run
                  WHERE job_id = $1 AND status IN ('queued', 'running') LOOP
        PERFORM @extschema@.singleton_job_stop(run_id);
    END LOOP;
    DELETE FROM @extschema@.singleton_job WHERE id = $1;
    RETURN FOUND;
END $$;
COMMENT ON FUNCTION singleton_job_delete(bigint) IS
'stop a job''s active runs and delete it with its history; false if it did not exist';

CREATE FUNCTION singleton_job_execute(job bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j @extschema@.singleton_job;
    run_id bigint;
BEGIN
    j := @extschema@.singleton_job_get($1);
    IF NOT j.enabled THEN
        RAISE EXCEPTION 'job "%" is disabled', j.name USING ERRCODE = '55000',
            HINT = 'Enable it with singleton_job_update(job, enabled => true).';
    END IF;
    INSERT INTO @extschema@.singleton_job_run (job_id) VALUES ($1) RETURNING id INTO run_id;
    PERFORM @extschema@._singleton_worker_wake();
    RETURN run_id;
END $$;
COMMENT ON FUNCTION singleton_job_execute(bigint) IS
'queue a run of a job and return its id at once';

CREATE FUNCTION singleton_job_status(run bigint)
RETURNS singleton_job_run
LANGUAGE plpgsql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r @extschema@.singleton_job_run;
BEGIN
    PERFORM @extschema@._singleton_job_database_check();
    SELECT * INTO r FROM @extschema@.singleton_job_run WHERE id = $1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job run % does not exist', $1 USING ERRCODE = '42704';
    END IF;
    RETURN r;
END $$;
COMMENT ON FUNCTION singleton_job_status(bigint) IS 'a run and its outcome so far';

CREATE FUNCTION singleton_job_wait(run bigint, timeout interval DEFAULT NULL)
RETURNS singleton_job_run
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r @extschema@.singleton_job_run;
    deadline timestamptz;
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'run must not be null' USING ERRCODE = '22004';
    END IF;
    IF $2 IS NOT NULL AND $2 < interval '0' THEN
        RAISE EXCEPTION 'wait timeout must not be negative' USING ERRCODE = '22023';
    END IF;
    -- a fixed snapshot would never see the run finish
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'singleton_job_wait needs the read committed isolation level'
            USING ERRCODE = '55000',
                  HINT = 'Wait outside a repeatable read or serializable transaction.';
    END IF;
    -- a run queued by this very transaction cannot start before it commits
    IF EXISTS (SELECT 1 FROM @extschema@.singleton_job_run
               WHERE id = $1 AND status = 'queued'
                 AND @extschema@._singleton_xid_is_current(xmin)) THEN
        RAISE EXCEPTION 'job run % was queued by this transaction, so it cannot start before the transaction commits', $1
            USING ERRCODE = '55000',
                  HINT = 'Commit the transaction that called singleton_job_execute, then wait for the run.';
    END IF;
    deadline := clock_timestamp() + $2;
    LOOP
        -- each statement takes a new snapshot, so the worker's progress shows
        r := @extschema@.singleton_job_status($1);
        EXIT WHEN r.status NOT IN ('queued', 'running');
        EXIT WHEN deadline IS NOT NULL AND clock_timestamp() >= deadline;
        PERFORM pg_sleep(0.02);
    END LOOP;
    RETURN r;
END $$;
COMMENT ON FUNCTION singleton_job_wait(bigint, interval) IS
'wait until a run has finished or the timeout passes, and return it';
