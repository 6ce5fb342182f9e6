-- Schema and data shared by every benchmark section (run once, as superuser,
-- in a fresh database of a throwaway cluster).
\set ON_ERROR_STOP on
CREATE EXTENSION singleton;

-- The same 10,000 jsonb values, once in an UNLOGGED table with a primary key
-- and once in the registry under the same names (k1 .. k10000).  k1 is the
-- "hot" key.
CREATE UNLOGGED TABLE kv (
    name  text PRIMARY KEY,
    value jsonb NOT NULL
);
INSERT INTO kv
SELECT 'k' || i,
       jsonb_build_object('id', i, 'name', 'item-' || i, 'price', i * 1.5,
                          'active', i % 2 = 0, 'tags', jsonb_build_array('alpha', 'beta'))
FROM generate_series(1, 10000) AS i;
VACUUM (ANALYZE) kv;

SELECT count(singleton_set(name, value)) FROM kv;

-- Table-backed equivalents of singleton_get(name), for the per-call section.
-- VOLATILE like singleton_get, so every call really runs (no inlining: the
-- bodies read a table; no constant folding: they are not IMMUTABLE).
CREATE FUNCTION table_get_sql(n text) RETURNS jsonb
LANGUAGE sql VOLATILE
AS $$ SELECT value FROM kv WHERE name = n $$;

CREATE FUNCTION table_get_plpgsql(n text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v jsonb;
BEGIN
    SELECT value INTO v FROM kv WHERE name = n;
    RETURN v;
END
$$;

-- Exactly-once factory race: every factory run leaves one row here.
CREATE TABLE factory_log (
    id     bigserial PRIMARY KEY,
    name   text NOT NULL,
    run_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- Callers take tickets; ticket / callers_per_name is the name they ask for.
CREATE SEQUENCE ticket MINVALUE 0 START 0;
