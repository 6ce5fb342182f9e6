-- Every documented error, with its SQLSTATE; a failed call changes nothing.
\i sql/include/helpers.sql

-- names are 1 to 255 bytes
SELECT sqlstate_of($$SELECT singleton_set('', '1')$$);
SELECT sqlstate_of($$SELECT singleton_get('')$$);
SELECT sqlstate_of($$SELECT singleton_has('')$$);
SELECT sqlstate_of($$SELECT singleton_delete('')$$);
SELECT sqlstate_of($$SELECT singleton_incr('')$$);
SELECT sqlstate_of($$SELECT singleton_set(repeat('n', 256), '1')$$);
SELECT sqlstate_of($$SELECT singleton_get(repeat('n', 256))$$);
SELECT sqlstate_of($$SELECT singleton_set(repeat('n', 255), '1')$$);
SELECT sqlstate_of($$SELECT singleton_set(repeat('é', 128), '1')$$);
SELECT singleton_delete(repeat('n', 255));
SELECT count(*) FROM singleton_entries;

-- NULL arguments
SELECT sqlstate_of($$SELECT singleton_set(NULL, '1')$$);
SELECT sqlstate_of($$SELECT singleton_set('x', NULL)$$);
SELECT sqlstate_of($$SELECT singleton_get(NULL)$$);
SELECT sqlstate_of($$SELECT singleton_has(NULL)$$);
SELECT sqlstate_of($$SELECT singleton_incr(NULL)$$);
SELECT singleton_set('private_null', '1', NULL, NULL);
SELECT private FROM singleton_entries WHERE name = 'private_null';
SELECT singleton_delete('private_null');

-- type labels are 1 to 63 bytes
SELECT sqlstate_of($$SELECT singleton_set('x', '1', '')$$);
SELECT sqlstate_of($$SELECT singleton_set('x', '1', repeat('t', 64))$$);
SELECT sqlstate_of($$SELECT singleton_set('x', '1', repeat('t', 63))$$);
SELECT singleton_delete('x');

-- values up to singleton.max_value_size
SHOW singleton.max_value_size;
SELECT singleton_set('sized', '"small"');
SET singleton.max_value_size = 100;
SELECT sqlstate_of($$SELECT singleton_set('sized', to_jsonb(repeat('x', 200)))$$);
SELECT singleton_get('sized');
SELECT sqlstate_of($$SELECT singleton_set('sized', to_jsonb(repeat('x', 50)))$$);
RESET singleton.max_value_size;

-- incr needs an integer and stays in bigint range; the value is unchanged
SELECT singleton_set('str', '"abc"');
SELECT sqlstate_of($$SELECT singleton_incr('str')$$);
SELECT singleton_get('str');
SELECT singleton_set('frac', '1.5');
SELECT sqlstate_of($$SELECT singleton_incr('frac')$$);
SELECT singleton_get('frac');
SELECT singleton_set('obj', '{"n": 1}');
SELECT sqlstate_of($$SELECT singleton_incr('obj')$$);
SELECT singleton_set('max', '9223372036854775807');
SELECT sqlstate_of($$SELECT singleton_incr('max')$$);
SELECT singleton_get('max');
SELECT singleton_incr('max', -1);
SELECT singleton_set('min', '-9223372036854775808');
SELECT sqlstate_of($$SELECT singleton_incr('min', -1)$$);
SELECT singleton_get('min');
SELECT singleton_set('huge', '100000000000000000000000000000');
SELECT sqlstate_of($$SELECT singleton_incr('huge')$$);
SELECT singleton_get('huge');

-- messages, details and hints as a user sees them
\set VERBOSITY default
SELECT singleton_set('', '1');
SELECT singleton_incr('str');
SELECT singleton_incr('max');
SELECT singleton_incr('max');
SET singleton.max_value_size = 100;
SELECT singleton_set('sized', to_jsonb(repeat('x', 200)));
RESET singleton.max_value_size;
SET singleton.no_such_setting = 1;

SELECT singleton_clear();
