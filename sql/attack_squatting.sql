-- Attacks on names: poisoning a name another role will ask for as a private
-- entry, squatting a name with a factory that never ends, and reading what
-- a private entry's metadata says about its value.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS singleton;
RESET client_min_messages;
CREATE FUNCTION sq_error(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE ROLE sq_victim;
CREATE ROLE sq_attacker;
CREATE ROLE sq_admin SUPERUSER;
-- poisoning: the attacker sets the name first, as a public entry
SET ROLE sq_attacker;
SELECT singleton_set('app.secret', '"attacker-chosen"');
RESET ROLE;
-- the victim asks for a private entry: refused, never the attacker's value
SET ROLE sq_victim;
SELECT sq_error($$SELECT singleton_get('app.secret', 'SELECT ''"mine"''::jsonb', private => true)$$);
-- a public read of a public value stays what it always was
SELECT singleton_get('app.secret', 'SELECT 1') AS public_read;
-- the victim's own private entries work as before, and are returned to it
SELECT singleton_get('victim.secret', $$SELECT '"s3cret"'::jsonb$$, private => true);
SELECT singleton_get('victim.secret', $$SELECT '"other"'::jsonb$$, private => true);
RESET ROLE;
-- an administrator may ask for it privately: it has every role's privileges
SET ROLE sq_admin;
SELECT singleton_get('victim.secret', 'SELECT 1', private => true) AS admin_read;
RESET ROLE;
-- what a private entry's metadata says stays with roles that may read it
SET ROLE sq_attacker;
SELECT name, owner, private, size_bytes, access_count, last_access, factory_ms
  FROM singleton_entries WHERE name = 'victim.secret';
SELECT singleton_stats()->'access_counts'->'victim.secret' AS access_count_in_stats;
-- nor can its size be worked out from the database's total
SELECT (singleton_stats()->>'estimated_memory_bytes')::bigint =
       (SELECT sum(size_bytes) FROM singleton_entries) AS total_leaves_it_out;
-- nor from the instance's byte totals: memory used (minus the visible
-- sizes) and the last snapshot's size are for pg_read_all_stats only
SELECT s->'memory_used_bytes' AS stats_memory_used,
       h->'memory_used_bytes' AS health_memory_used, h->'memory_used_pct' AS health_pct,
       h->'persist'->'last_snapshot_bytes' AS snapshot_bytes,
       h->'memory_limit_bytes' IS NOT NULL AS limit_shown, h->>'status' IS NOT NULL AS status_shown
  FROM singleton_stats() s, singleton_health() h;
-- nor from a refusal to write it: a role that may not write an entry gets
-- 42501 before any share check could name the owner's usage (a value that
-- would take the victim past its share of this 4MB test registry)
RESET ROLE;
SET ROLE sq_victim;
SELECT singleton_set('victim.big' || i, to_jsonb(repeat('v', 600000)), private => true)
  FROM generate_series(1, 3) i;
RESET ROLE;
SET ROLE sq_attacker;
SELECT sq_error($$SELECT singleton_set('victim.big1', to_jsonb(repeat('m', 1000000)))$$);
-- public entries show everything, as before
SELECT size_bytes > 0 AS size_shown, access_count FROM singleton_entries WHERE name = 'app.secret';
RESET ROLE;
GRANT pg_read_all_stats TO sq_attacker;
SET ROLE sq_attacker;
SELECT (s->>'memory_used_bytes')::bigint > 0 AS stats_memory_used,
       (h->>'memory_used_bytes')::bigint > 0 AS health_memory_used,
       h->'persist'->'last_snapshot_bytes' IS NOT NULL AS snapshot_bytes
  FROM singleton_stats() s, singleton_health() h;
RESET ROLE;
REVOKE pg_read_all_stats FROM sq_attacker;
SELECT singleton_delete('victim.big' || i) FROM generate_series(1, 3) i;
SET ROLE sq_victim;
SELECT size_bytes > 0 AS size_shown, access_count, last_access IS NOT NULL AS last_access_shown,
       factory_ms IS NOT NULL AS factory_ms_shown
  FROM singleton_entries WHERE name = 'victim.secret';
SELECT singleton_stats()->'access_counts'->'victim.secret' AS access_count_in_stats;
RESET ROLE;
-- a factory that returns void (or another pseudo-type) is a clear 22023
SELECT sq_error($$SELECT singleton_get('sq.void', 'SELECT pg_sleep(0)')$$);
SELECT singleton_has('sq.void') AS stored;
SELECT singleton_get('sq.record', 'SELECT row(1, ''a'')') AS record_is_fine;
-- waiting for another session's factory is bounded by default
SHOW singleton.wait_timeout;
-- clean up
SELECT singleton_delete(name) FROM singleton_entries
 WHERE name IN ('app.secret', 'victim.secret', 'sq.record') ORDER BY name;
DROP FUNCTION sq_error(text);
DROP ROLE sq_victim, sq_attacker, sq_admin;
