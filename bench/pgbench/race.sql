-- Exactly-once factory race.  Every transaction takes a ticket; each run of
-- consecutive tickets as long as the variable callers (pgbench -D callers=N)
-- asks for the same fresh name, so that many sessions arrive together and
-- exactly one of them must run the factory.  The factory text is built with
-- format() because pgbench substitutes variables only as whole values.
WITH t AS MATERIALIZED (
    SELECT 'race-' || (nextval('ticket') / :callers) AS n
)
SELECT singleton_get(n, format(
    'WITH pause AS (SELECT pg_sleep(0.001)) '
    'INSERT INTO factory_log(name) SELECT %L FROM pause RETURNING id', n))
FROM t;
