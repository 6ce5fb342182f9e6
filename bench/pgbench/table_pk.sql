-- primary-key lookup of the same values in an UNLOGGED table
\set k random(1, 10000)
SELECT value FROM kv WHERE name = 'k' || :k;
