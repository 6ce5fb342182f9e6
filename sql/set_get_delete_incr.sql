-- The registry API: set, get, has, delete, incr, entries, stats, health.
CREATE EXTENSION singleton;

-- set and get
SELECT singleton_set('greeting', '"hello"');
SELECT singleton_get('greeting');
SELECT singleton_get('absent') IS NULL AS absent_is_null;
SELECT singleton_has('greeting') AS has, singleton_exists('greeting') AS exists,
       singleton_has('absent') AS has_absent, singleton_exists('absent') AS exists_absent;

-- the type label defaults to jsonb_typeof(value)
SELECT singleton_set('obj', '{"a": [1, 2]}');
SELECT singleton_set('arr', '[1, "x"]');
SELECT singleton_set('num', '3.25');
SELECT singleton_set('int', '7');
SELECT singleton_set('bool', 'true');
SELECT singleton_set('nul', 'null');
SELECT singleton_set('labelled', '{"k": 1}', 'config');
SELECT singleton_set(value => '"v"', name => 'named_args', private => false);
SELECT name, type, state, private, owner = current_user::regrole AS mine,
       creator_pid, factory_ms
FROM singleton_entries ORDER BY name;
SELECT name, singleton_get(name) AS value FROM singleton_entries ORDER BY name;
SELECT name, access_count, last_access IS NOT NULL AS was_read,
       created_at <= updated_at AS ordered
FROM singleton_entries ORDER BY name;

-- replacing keeps created_at, moves updated_at, resets the access count
CREATE TEMP TABLE before AS
    SELECT created_at, updated_at FROM singleton_entries WHERE name = 'greeting';
SELECT singleton_set('greeting', '"hi again"', 'text');
SELECT e.access_count, e.last_access IS NULL AS unread, e.type,
       e.created_at = b.created_at AS same_created, e.updated_at > b.updated_at AS updated
FROM singleton_entries e, before b WHERE e.name = 'greeting';
SELECT singleton_get('greeting');

-- delete
SELECT singleton_delete('greeting') AS first, singleton_delete('greeting') AS second,
       singleton_get('greeting') IS NULL AS gone;

-- incr: absent entries become counters
SELECT singleton_incr('hits') AS a, singleton_incr('hits') AS b, singleton_incr('hits', 40) AS c;
SELECT singleton_get('hits'), type FROM singleton_entries WHERE name = 'hits';
SELECT singleton_incr('hits', -50);
SELECT singleton_incr('hits', 0);
-- incr works on any integer value, whatever its label
SELECT singleton_incr('int', 3) AS incr, singleton_get('int') AS value;
SELECT singleton_set('whole', '10.00');
SELECT singleton_incr('whole') AS incr, singleton_get('whole') AS value;
SELECT singleton_set('big', '9223372036854775806');
SELECT singleton_incr('big');

-- not transactional: what a rolled-back transaction did stays done
BEGIN;
SELECT singleton_set('tx', '1');
SELECT singleton_incr('tx');
ROLLBACK;
SELECT singleton_get('tx');
BEGIN;
SELECT singleton_delete('obj');
ROLLBACK;
SELECT singleton_has('obj');
BEGIN;
SELECT singleton_incr('tx', 10);
SELECT 1 / 0;
ROLLBACK;
SELECT singleton_get('tx');

-- sizes are exact: the same overhead for every entry, plus its bytes
SELECT singleton_set('sized_1k', to_jsonb(repeat('x', 1000)));
SELECT singleton_set('sized_2k', to_jsonb(repeat('x', 2000)));
SELECT (SELECT size_bytes FROM singleton_entries WHERE name = 'sized_2k') -
       (SELECT size_bytes FROM singleton_entries WHERE name = 'sized_1k') AS diff;
SELECT (s->>'estimated_memory_bytes')::bigint = (SELECT sum(size_bytes) FROM singleton_entries) AS exact,
       (s->>'estimated_memory_kb')::numeric = round((s->>'estimated_memory_bytes')::numeric / 1024, 2) AS kb
FROM singleton_stats() s;

-- stats
SELECT s->'total_singletons' AS total, s->'singleton_names' AS names,
       s->'singleton_types' AS types
FROM singleton_stats() s;
SELECT s->'access_counts' FROM singleton_stats() s;
SELECT jsonb_object_keys(singleton_stats()) AS key ORDER BY 1;
-- the cheap form: the instance's totals without per-name maps, the same
-- counters as singleton_stats() and the same entry count as the health
SELECT jsonb_object_keys(singleton_stats_summary()) AS key ORDER BY 1;
SELECT (singleton_stats_summary()->>'gets') = (singleton_stats()->>'gets') AS same_gets,
       (singleton_stats_summary()->'rate_limiter') = (singleton_stats()->'rate_limiter') AS same_limiter,
       (singleton_stats_summary()->>'instance_entries') = (singleton_health()->>'entries') AS same_entries;
SELECT count(*) AS creation_times_are_epochs
FROM jsonb_each(singleton_stats()->'creation_times') t
WHERE to_timestamp(t.value::text::float8) BETWEEN now() - interval '1 hour' AND now() + interval '1 minute';
SELECT (singleton_stats()->>'memory_limit_bytes')::bigint AS memory_limit_bytes,
       singleton_stats()->'memory_note' IS NOT NULL AS has_note,
       singleton_stats()->'rate_limited_count' AS rate_limited_count;

-- the instance counters move by exactly what was done
CREATE TEMP TABLE s0 AS SELECT singleton_stats() s;
SELECT singleton_get('counted');
SELECT singleton_set('counted', '1');
SELECT singleton_get('counted');
SELECT singleton_incr('counted');
SELECT singleton_delete('counted');
SELECT k, (n.s->>k)::bigint - (o.s->>k)::bigint AS delta
FROM s0 o, (SELECT singleton_stats() s) n,
     unnest(ARRAY['gets', 'hits', 'misses', 'sets', 'deletes', 'incrs']) k ORDER BY k;

-- health
SELECT h->>'status' AS status, h->'shared_memory' AS shared_memory, h->'registry_full' AS full,
       (h->>'entries')::int = (SELECT count(*) FROM singleton_entries) AS entries,
       (h->>'memory_used_bytes')::bigint > 0 AS used, h->'memory_limit_bytes' AS memory_limit_bytes
FROM singleton_health() h;
SELECT jsonb_object_keys(singleton_health()) AS key ORDER BY 1;

-- clear removes everything the caller may write; its alias too
SELECT singleton_clear();
SELECT count(*) FROM singleton_entries;
SELECT singleton_set('again', '1');
SELECT singleton_reset_all();
SELECT (singleton_health()->>'memory_used_bytes')::bigint AS used_after_clear;
