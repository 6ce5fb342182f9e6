-- floor for the 10,000-key workloads: the same random parameter and the
-- same key expression, but no registry or table access
\set k random(1, 10000)
SELECT 'k' || :k;
