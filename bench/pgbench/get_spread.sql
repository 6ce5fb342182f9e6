-- reads spread over 10,000 keys
\set k random(1, 10000)
SELECT singleton_get('k' || :k);
