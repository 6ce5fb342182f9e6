-- Shared memory per entry.  Loaded by scripts/bench right after a restart,
-- so the registry's DSA area is empty; the caller sets the psql variables
-- entries and repeat_x (length of the string value).  Prints key|value lines.
\set ON_ERROR_STOP on
\set QUIET on
SET work_mem = '256MB';

-- Bytes of dynamic shared memory segments this backend has mapped
-- (/dev/shm/PostgreSQL.*, with dynamic_shared_memory_type = posix).  The
-- registry's DSA area grows by adding such segments.  Reading
-- /proc/self/maps needs superuser.
CREATE FUNCTION pg_temp.dsm_mapped_bytes() RETURNS bigint
LANGUAGE sql VOLATILE
AS $$
    SELECT coalesce(sum(('x' || lpad(split_part(r, '-', 2), 16, '0'))::bit(64)::bigint
                        - ('x' || lpad(split_part(r, '-', 1), 16, '0'))::bit(64)::bigint), 0)::bigint
    FROM (SELECT split_part(line, ' ', 1) AS r
          FROM regexp_split_to_table(pg_read_file('/proc/self/maps'), E'\n') AS line
          WHERE line LIKE '%/dev/shm/PostgreSQL.%') AS maps
$$;

SELECT (singleton_health()->>'memory_used_bytes')::bigint AS used_before,
       (singleton_health()->>'entries')::bigint AS entries_before,
       pg_temp.dsm_mapped_bytes() AS dsm_before,
       clock_timestamp() AS t0 \gset

SELECT count(singleton_set('m' || i, to_jsonb(repeat('x', :repeat_x))))
FROM generate_series(1, :entries) AS i \gset

SELECT (singleton_health()->>'memory_used_bytes')::bigint AS used_after,
       (singleton_health()->>'entries')::bigint AS entries_after,
       pg_temp.dsm_mapped_bytes() AS dsm_after,
       extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) AS fill_seconds \gset

SELECT count(*) AS n, avg(size_bytes) AS avg_size, min(size_bytes) AS min_size,
       max(size_bytes) AS max_size, avg(octet_length(name)) AS avg_name,
       avg(octet_length(type)) AS avg_type
FROM singleton_entries WHERE name ~ '^m[0-9]+$' \gset view_

SELECT 'value_bytes|' || pg_column_size(to_jsonb(repeat('x', :repeat_x)))
UNION ALL SELECT 'entries|' || :entries_after - :entries_before
UNION ALL SELECT 'used_before|' || :used_before
UNION ALL SELECT 'used_after|' || :used_after
UNION ALL SELECT 'dsm_before|' || :dsm_before
UNION ALL SELECT 'dsm_after|' || :dsm_after
UNION ALL SELECT 'fill_seconds|' || :fill_seconds
UNION ALL SELECT 'view_entries|' || :view_n
UNION ALL SELECT 'view_avg_size|' || round(:view_avg_size, 2)
UNION ALL SELECT 'view_min_size|' || :view_min_size
UNION ALL SELECT 'view_max_size|' || :view_max_size
UNION ALL SELECT 'avg_name_bytes|' || round(:view_avg_name, 2)
UNION ALL SELECT 'avg_type_bytes|' || round(:view_avg_type, 2);
