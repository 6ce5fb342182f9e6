-- Ownership and private entries between roles.
\i sql/include/helpers.sql
CREATE ROLE singleton_alice;
CREATE ROLE singleton_bob;
CREATE ROLE singleton_carol IN ROLE singleton_alice;   -- has alice's privileges
CREATE ROLE singleton_noinherit NOINHERIT IN ROLE singleton_alice;

SET ROLE singleton_alice;
SELECT singleton_set('alice_public', '"for everyone"');
SELECT singleton_set('alice_secret', '"s3cret"', 'token', true);
SELECT singleton_incr('alice_counter');
RESET ROLE;

-- bob reads public values, sees names, types and counts, not private values
SET ROLE singleton_bob;
SELECT singleton_get('alice_public');
SELECT sqlstate_of($$SELECT singleton_get('alice_secret')$$);
SELECT sqlstate_of($$SELECT singleton_get('alice_secret', 'SELECT 1')$$);
SELECT singleton_has('alice_secret');
SELECT name, type, owner, private FROM singleton_entries ORDER BY name;
SELECT singleton_stats()->'singleton_names' AS names;
-- and may not change alice's entries
SELECT sqlstate_of($$SELECT singleton_set('alice_public', '"bob was here"')$$);
SELECT sqlstate_of($$SELECT singleton_delete('alice_public')$$);
SELECT sqlstate_of($$SELECT singleton_incr('alice_counter')$$);
SELECT sqlstate_of($$SELECT singleton_clear()$$);
SELECT sqlstate_of($$SELECT singleton_reset_all()$$);
SELECT sqlstate_of($$SELECT singleton_reset()$$);
SELECT sqlstate_of($$SET singleton.max_value_size = 100$$);
RESET ROLE;
SELECT singleton_get('alice_public'), singleton_get('alice_counter');

-- a member with alice's privileges may read and write her entries
SET ROLE singleton_carol;
SELECT singleton_get('alice_secret');
SELECT singleton_incr('alice_counter');
SELECT singleton_set('alice_public', '"carol was here"');
RESET ROLE;
-- replacing does not change the owner
SELECT name, owner FROM singleton_entries WHERE name = 'alice_public';

-- membership without inheritance is not enough
SET ROLE singleton_noinherit;
SELECT sqlstate_of($$SELECT singleton_get('alice_secret')$$);
RESET ROLE;

-- the owner can make a private entry public again
SET ROLE singleton_alice;
SELECT singleton_set('alice_secret', '"now public"', 'token', false);
RESET ROLE;
SET ROLE singleton_bob;
SELECT singleton_get('alice_secret');
RESET ROLE;

-- clear, granted to bob, removes only what bob may write
GRANT EXECUTE ON FUNCTION singleton_clear() TO singleton_bob;
SET ROLE singleton_bob;
SELECT singleton_set('bob_entry', '1');
SELECT singleton_clear();
RESET ROLE;
SELECT name, owner FROM singleton_entries ORDER BY name;

-- the message as a user sees it
SET ROLE singleton_alice;
SELECT singleton_set('alice_secret', '"secret again"', 'token', true);
RESET ROLE;
SET ROLE singleton_bob;
\set VERBOSITY default
SELECT singleton_get('alice_secret');
SELECT singleton_delete('alice_secret');
RESET ROLE;

-- superusers may do anything
SELECT singleton_get('alice_secret');
SELECT singleton_clear();

REVOKE EXECUTE ON FUNCTION singleton_clear() FROM singleton_bob;
DROP ROLE singleton_alice, singleton_bob, singleton_carol, singleton_noinherit;
