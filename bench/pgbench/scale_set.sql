-- Scale section: overwrite a random existing entry (same value size), to
-- see how long writers wait on partition locks held by whole-registry scans
\set i random(1, :entries)
SELECT singleton_set('s.' || :i, to_jsonb(repeat('x', 88))) IS NOT NULL;
