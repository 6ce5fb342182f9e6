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

-- Job functions: the bodies of 1.0 with the check added.
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
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'job name must not be null' USING ERRCODE = '22004';
    END IF;
    IF $2 IS NULL THEN
        RAISE EXCEPTION 'job command must not be null' USING ERRCODE = '22004';
    END IF;
    IF $1 = '' THEN
        RAISE EXCEPTION 'job name must not be empty' USING ERRCODE = '22023';
    END IF;
    -- max_attempts is optional: NULL means its default
    PERFORM @extschema@._singleton_job_check($2, $3, coalesce($4, 1));
    -- runs connect as the owner, so the owner must be able to log in
    IF NOT (SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'role "%" cannot log in, so jobs cannot run as it', current_user
            USING ERRCODE = '42501',
                  HINT = 'Create the job as a role with LOGIN, or grant it LOGIN.';
    END IF;
    BEGIN
        INSERT INTO @extschema@.singleton_job (name, command, timeout, max_attempts)
        VALUES ($1, $2, $3, coalesce($4, 1))
        RETURNING id INTO new_id;
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION 'job "%" already exists', $1 USING ERRCODE = '42710';
    END;
    RETURN new_id;
END $$;

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

CREATE OR REPLACE FUNCTION @extschema@.singleton_job_get(name text)
RETURNS @extschema@.singleton_job
LANGUAGE plpgsql STABLE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j @extschema@.singleton_job;
BEGIN
    PERFORM @extschema@._singleton_job_database_check();
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'job name must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO j FROM @extschema@.singleton_job WHERE singleton_job.name = $1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job "%" does not exist', $1 USING ERRCODE = '42704';
    END IF;
    RETURN j;
END $$;

CREATE OR REPLACE FUNCTION @extschema@.singleton_job_stop(run bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r @extschema@.singleton_job_run;
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'run must not be null' USING ERRCODE = '22004';
    END IF;
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
        PERFORM pg_catalog.pg_cancel_backend(r.worker_pid);
    END IF;
    RETURN true;
END $$;

CREATE OR REPLACE FUNCTION @extschema@.singleton_job_delete(job bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    run_id bigint;
BEGIN
    PERFORM @extschema@._singleton_job_database_check();
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'job must not be null' USING ERRCODE = '22004';
    END IF;
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

CREATE OR REPLACE FUNCTION @extschema@.singleton_job_execute(job bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j @extschema@.singleton_job;
    run_id bigint;
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'job must not be null' USING ERRCODE = '22004';
    END IF;
    j := @extschema@.singleton_job_get($1);
    IF NOT j.enabled THEN
        RAISE EXCEPTION 'job "%" is disabled', j.name USING ERRCODE = '55000',
            HINT = 'Enable it with singleton_job_update(job, enabled => true).';
    END IF;
    INSERT INTO @extschema@.singleton_job_run (job_id) VALUES ($1) RETURNING id INTO run_id;
    PERFORM @extschema@._singleton_worker_wake();
    RETURN run_id;
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
-- ("leave as it is", "no timeout").

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
