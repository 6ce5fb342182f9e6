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
