-- singleton_stats() writes its per-name maps straight into jsonb's binary
-- form: each map must equal the one SQL builds from singleton_entries, and
-- the whole result must be the canonical jsonb its own text parses into.
\i sql/include/helpers.sql
SELECT singleton_clear() >= 0 AS cleared;

-- empty: the maps are empty, not null
SELECT s->'total_singletons' AS total, s->'singleton_names' AS names,
       s->'singleton_types' AS types, s->'creation_times' AS times,
       s->'access_counts' AS counts, s::text::jsonb = s AS canonical
  FROM (SELECT singleton_stats() AS s OFFSET 0) x;

-- names of every length from 1 to 255, names sharing their first eight
-- bytes, names that are prefixes of others, multibyte names, over 32 of
-- them (jsonb stores an offset every 32 entries)
SELECT count(singleton_set(repeat('n', i), to_jsonb(i), 'len' || i)) AS by_length
  FROM generate_series(1, 255) i;
SELECT count(singleton_set('prefix8_' || i, to_jsonb(i))) AS shared_prefix
  FROM generate_series(1, 300) i;
SELECT count(singleton_set(n, '"v"', NULL)) AS others
  FROM unnest(ARRAY['prefix8', 'prefix8_', 'Ärger', 'äpfel', 'zebra', 'Zebra', '~', ' ',
                    'a"quote', E'back\\slash', 'ünïcødé_ünïcødé']) n;
SELECT count(singleton_get(repeat('n', 1 + i % 3))) AS reads FROM generate_series(1, 10) i;

-- a private entry of another role: its access count is hidden, in both
CREATE ROLE stats_maps_other;
SET ROLE stats_maps_other;
SELECT singleton_set('other.private', '1', 'secret', private => true) IS NOT NULL AS set_private;
SELECT singleton_get('other.private') AS read_private;
RESET ROLE;
CREATE ROLE stats_maps_reader;
GRANT pg_read_all_stats TO stats_maps_reader;

-- an entry being initialized: its type is null while its factory runs
SELECT singleton_get('init.me',
       $$SELECT jsonb_build_object('type_seen', singleton_stats()->'singleton_types'->'init.me',
                                   'listed', singleton_stats()->'singleton_names' ? 'init.me')$$)
       AS seen_while_initializing;

CREATE FUNCTION stats_maps_agree() RETURNS TABLE (names boolean, types boolean, times boolean,
        counts boolean, total boolean, canonical boolean, lookups boolean)
LANGUAGE sql AS $$
    SELECT s->'singleton_names' = (SELECT jsonb_agg(name ORDER BY name COLLATE "C") FROM singleton_entries),
           s->'singleton_types' = (SELECT jsonb_object_agg(name, CASE WHEN state = 'ready' THEN type END)
                                     FROM singleton_entries),
           s->'creation_times' = (SELECT jsonb_object_agg(name, extract(epoch FROM created_at))
                                    FROM singleton_entries),
           s->'access_counts' = (SELECT jsonb_object_agg(name, access_count) FROM singleton_entries),
           (s->>'total_singletons')::bigint = (SELECT count(*) FROM singleton_entries),
           s::text::jsonb = s,
           (SELECT bool_and(s->'access_counts'->name IS NOT NULL AND s->'singleton_types' ? name
                            AND s->'creation_times'->name IS NOT NULL)
              FROM singleton_entries)
      FROM (SELECT singleton_stats() AS s OFFSET 0) x
$$;
GRANT EXECUTE ON FUNCTION stats_maps_agree() TO PUBLIC;
SELECT * FROM stats_maps_agree();
SET ROLE stats_maps_reader;
SELECT * FROM stats_maps_agree();
SELECT singleton_stats()->'access_counts'->'other.private' AS hidden_count,
       singleton_stats()->'singleton_types'->'other.private' AS type_label;
RESET ROLE;
SELECT singleton_stats()->'access_counts'->'other.private' AS superuser_sees,
       singleton_stats()->'singleton_types'->'n' AS one_byte_name,
       singleton_stats()->'singleton_types'->repeat('n', 255) AS longest_name,
       singleton_stats()->'singleton_names'->0 AS first_name,
       singleton_stats()->'singleton_names'->-1 AS last_name,
       jsonb_typeof(singleton_stats()->'rate_limiter') AS nested_object,
       singleton_stats()->'rate_limiter' ? 'keys' AS nested_lookup;

SELECT singleton_clear() > 0 AS cleared;
DROP FUNCTION stats_maps_agree();
DROP ROLE stats_maps_reader;
DROP ROLE stats_maps_other;
