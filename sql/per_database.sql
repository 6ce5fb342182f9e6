-- Entries belong to their database: the same name in two databases is two entries.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS singleton;
RESET client_min_messages;
SELECT (singleton_health()->>'entries')::int AS entries_before \gset
SELECT singleton_set('shared_name', '"first database"');
CREATE DATABASE singleton_other;
\c singleton_other
CREATE EXTENSION singleton;
SELECT singleton_get('shared_name') IS NULL AS absent_here;
SELECT singleton_set('shared_name', '"second database"');
SELECT singleton_incr('only_here');
SELECT singleton_get('shared_name');
SELECT s->'total_singletons' AS total, s->'singleton_names' AS names FROM singleton_stats() s;
-- the instance counts both databases' entries: three more than before
SELECT (singleton_health()->>'entries')::int - :entries_before AS instance_entries_added;
\c contrib_regression
SELECT singleton_get('shared_name');
SELECT singleton_has('only_here');
SELECT singleton_delete('shared_name');
SELECT singleton_clear();
\c singleton_other
SELECT singleton_get('shared_name');
SELECT singleton_clear();
\c contrib_regression
DROP DATABASE singleton_other;
