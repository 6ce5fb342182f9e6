-- Attacks on shared memory: one role filling the registry so that every
-- other role's writes fail, limiter keys that nobody can free, and entries
-- of a dropped database that stay behind.  (singleton.memory_limit is 4MB
-- here, so a role's default share, 50%, is 2MB.)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS singleton;
RESET client_min_messages;
SHOW singleton.role_memory_share;
-- start from no limiter keys, whatever earlier tests left
SELECT FROM singleton_rate_limit_purge();
CREATE ROLE mem_hog;
CREATE ROLE mem_victim;
CREATE ROLE mem_member IN ROLE mem_hog;
CREATE FUNCTION mem_error(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE FUNCTION mem_fill(prefix text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1 .. 1000 LOOP
		PERFORM singleton_set(prefix || i, pg_catalog.to_jsonb(pg_catalog.repeat('x', 20000)));
	END LOOP;
	RETURN 'filled';
EXCEPTION WHEN out_of_memory THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE FUNCTION mem_keys(prefix text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	made int := 0;
BEGIN
	FOR i IN 1 .. 100000 LOOP
		PERFORM singleton_rate_limit(prefix || i, 1, 1, '1 hour');
		made := made + 1;
	END LOOP;
	RETURN 'no limit';
EXCEPTION WHEN out_of_memory THEN
	RETURN CASE WHEN made < 1000 THEN 'fewer than 1000 keys, then ' ELSE 'too many keys, then ' END
		|| SQLSTATE || ': ' || SQLERRM;
END $$;
-- the hog fills as much as it can: it stops at its share, not at the limit
SET ROLE mem_hog;
SELECT mem_fill('hog.');
SELECT sum(size_bytes) <= 2 * 1024 * 1024 AS within_share,
       sum(size_bytes) > 1024 * 1024 AS most_of_it
  FROM singleton_entries WHERE owner = 'mem_hog'::regrole;
-- its limiter keys count against the same share: it can make a few more
-- small ones, then none
SELECT mem_keys('hog.key.');
RESET ROLE;
-- every other role still writes
SET ROLE mem_victim;
SELECT singleton_set('victim.value', pg_catalog.to_jsonb(pg_catalog.repeat('v', 20000))) IS NULL AS victim_set;
SELECT allowed FROM singleton_rate_limit('victim.key', 1, 1, '1 hour');
RESET ROLE;
-- a role with the hog's privileges may still write the hog's entries (they
-- are charged to the hog, the owner)
SET ROLE mem_member;
SELECT mem_error($$SELECT singleton_set('hog.1', '"small"')$$);
-- but not past the owner's share: the bytes would be the hog's
SELECT mem_error($$SELECT singleton_set('hog.2', pg_catalog.to_jsonb(pg_catalog.repeat('y', 900000)))$$);
RESET ROLE;
-- the hog frees its room (its keys by an administrator), and may make keys again
SELECT singleton_rate_limit_purge('mem_hog') > 0 AS hog_keys_purged;
SET ROLE mem_hog;
SELECT count(*) FILTER (WHERE singleton_delete(name)) > 0 AS freed
  FROM singleton_entries WHERE owner = 'mem_hog'::regrole;
SELECT count(*) FILTER (WHERE allowed) AS hog_keys
  FROM generate_series(1, 100) i, singleton_rate_limit('hog.key.' || i, 1, 1, '1 hour');
RESET ROLE;
SELECT (singleton_stats()->'rate_limiter'->>'keys')::int AS keys;
-- one key: reset by the role that made it (or a role with its privileges)
SET ROLE mem_victim;
SELECT mem_error($$SELECT singleton_rate_limit_reset('hog.key.1')$$);
SELECT singleton_rate_limit_reset('victim.key') AS own_key_reset;
SELECT singleton_rate_limit_reset('victim.key') AS already_gone;
SELECT allowed FROM singleton_rate_limit('victim.key', 1, 1, '1 hour');
RESET ROLE;
SET ROLE mem_member;
SELECT singleton_rate_limit_reset('hog.key.1') AS member_reset;
RESET ROLE;
SELECT mem_error($$SELECT singleton_rate_limit_reset(NULL)$$);
SELECT mem_error($$SELECT singleton_rate_limit_reset('')$$);
-- every key, or one role's: administrators only
SET ROLE mem_hog;
SELECT mem_error($$SELECT singleton_rate_limit_purge()$$);
RESET ROLE;
SELECT singleton_rate_limit_purge('mem_hog') AS hog_keys_purged;
SELECT singleton_rate_limit_purge() AS rest_purged;
SELECT (singleton_stats()->'rate_limiter'->>'keys')::int AS keys_left;
-- a dropped database's entries and keys are freed when the drop commits
SELECT (singleton_health()->>'entries')::int AS entries_before \gset
CREATE DATABASE singleton_mem_db;
\c singleton_mem_db
SET client_min_messages = warning;
CREATE EXTENSION singleton;
RESET client_min_messages;
SELECT count(singleton_incr('gone.' || i)) FROM generate_series(1, 25) i;
SELECT allowed FROM singleton_rate_limit('gone.key', 1, 1, '1 hour');
\c contrib_regression
SELECT (singleton_health()->>'entries')::int - :entries_before AS entries_of_new_database;
SELECT (singleton_stats()->'rate_limiter'->>'keys')::int AS keys_with_new_database;
DROP DATABASE singleton_mem_db;
SELECT (singleton_health()->>'entries')::int - :entries_before AS entries_left_behind;
SELECT (singleton_stats()->'rate_limiter'->>'keys')::int AS keys_left_behind;
-- clean up
SELECT count(singleton_delete(name)) FROM singleton_entries
 WHERE owner IN ('mem_hog'::regrole, 'mem_victim'::regrole);
DROP FUNCTION mem_error(text), mem_fill(text), mem_keys(text);
DROP ROLE mem_member, mem_hog, mem_victim;
