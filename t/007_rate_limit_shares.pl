# Attack: one role floods the registry so that the instance-wide rate limit
# (singleton.rate_limit) refuses every other role's occasional calls.  Each
# role that is not a superuser gets at most its share of the limit per
# second (singleton.rate_limit_role_share, 50% by default).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('shares');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'singleton'
singleton.rate_limit = 100
});
$node->start;
sub sql { return $node->safe_psql('postgres', shift); }
sql('CREATE EXTENSION singleton');
sql(q{CREATE ROLE flooder; CREATE ROLE bystander; SELECT singleton_set('x', '1')});
sql(q{CREATE FUNCTION admitted(n int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
	ok int := 0;
BEGIN
	FOR i IN 1 .. n LOOP
		BEGIN
			PERFORM singleton_get('x');
			ok := ok + 1;
		EXCEPTION WHEN SQLSTATE '53400' THEN
			NULL;
		END;
	END LOOP;
	RETURN ok;
END $$});
sql('SELECT singleton_reset()');

# the flooder asks 1000 times at once: it gets its share, about 50, not 100
my $flood = sql(q{SET ROLE flooder; SELECT admitted(1000)});
cmp_ok($flood, '>=', 50, "the flooder gets its share ($flood)");
cmp_ok($flood, '<', 75, 'and not the whole window');
# right after, another role's occasional calls are all admitted
is(sql(q{SET ROLE bystander; SELECT admitted(10)}), '10', 'another role is not refused');
cmp_ok(sql(q{SELECT (singleton_stats()->>'rate_limited_count')::int}), '>=', 900,
	'the flood\'s refusals are counted');

# superusers have no share: only the instance-wide window limits them
$node->restart;    # an empty window, without waiting for it to pass
my $super = sql(q{SELECT admitted(1000)});
cmp_ok($super, '>=', 100, "a superuser gets the whole window ($super)");
cmp_ok($super, '<', 130, 'and no more');

# a share of 100 restores one window for all
$node->append_conf('postgresql.conf', 'singleton.rate_limit_role_share = 100');
$node->restart;
$flood = sql(q{SET ROLE flooder; SELECT admitted(1000)});
cmp_ok($flood, '>=', 100, "with a share of 100 a role may take the whole window ($flood)");

$node->stop;
done_testing();
