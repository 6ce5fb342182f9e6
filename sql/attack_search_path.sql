-- Attack: a role that can create in a schema on an administrator's
-- search_path shadows operators there, hoping the extension's own queries
-- pick them up and run its code with the administrator's rights.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS singleton;
RESET client_min_messages;
CREATE ROLE sp_attacker LOGIN;
GRANT CREATE ON SCHEMA public TO sp_attacker;
CREATE TABLE sp_canary (ran_as text);
SET ROLE sp_attacker;
-- operators with an exact match for what a query might write unqualified
-- (numeric * integer, float8 * integer, interval - ...): each records who ran it
CREATE FUNCTION public.sp_mul_num(numeric, integer) RETURNS numeric
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.sp_canary VALUES (current_user);
	RETURN $1 OPERATOR(pg_catalog.*) $2;
END $$;
CREATE OPERATOR public.* (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = public.sp_mul_num);
CREATE FUNCTION public.sp_mul_f8(float8, integer) RETURNS float8
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.sp_canary VALUES (current_user);
	RETURN $1 OPERATOR(pg_catalog.*) $2;
END $$;
CREATE OPERATOR public.* (LEFTARG = float8, RIGHTARG = integer, FUNCTION = public.sp_mul_f8);
CREATE FUNCTION public.sp_count(text) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.sp_canary VALUES (current_user);
	RETURN 0;
END $$;
RESET ROLE;
GRANT INSERT ON sp_canary TO sp_attacker;
-- the shadowing is real: plain SQL under the default search_path runs it
SELECT 2.5 * 2 AS shadowed;
SELECT ran_as FROM sp_canary;
DELETE FROM sp_canary;
-- a finished run, so that every row-level expression of the job statistics
-- is evaluated at least once
SELECT singleton_job_create('sp_job', 'SELECT 1') AS job \gset
SELECT singleton_job_execute(:job) AS run \gset
SELECT status FROM singleton_job_wait(:run, '60 seconds');
-- the administrator looks at the statistics: none of the attacker's code runs
SHOW search_path;
SELECT (singleton_stats()->'jobs'->>'succeeded')::int >= 1 AS stats_ok;
SELECT count(*) AS attacker_code_runs FROM sp_canary;
-- clean up
SELECT singleton_job_delete(:job);
DROP OPERATOR public.* (numeric, integer);
DROP OPERATOR public.* (float8, integer);
DROP FUNCTION public.sp_mul_num(numeric, integer), public.sp_mul_f8(float8, integer), public.sp_count(text);
DROP TABLE sp_canary;
REVOKE CREATE ON SCHEMA public FROM sp_attacker;
DROP ROLE sp_attacker;
