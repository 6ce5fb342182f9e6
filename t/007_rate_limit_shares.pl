# Attack: one role floods the registry so that the instance-wide rate limit
# (singleton.rate_limit) refuses every other role's occasional calls.  Each
# role that is not a superuser gets at most its share of the limit per
# second (singleton.rate_limit_role_share, 50% by default).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

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
sql(q{CREATE FUNCTION admitted(n int, pause float8 DEFAULT 0) RETURNS int LANGUAGE plpgsql AS $$
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
		IF pause > 0 THEN
			PERFORM pg_sleep(pause);
		END IF;
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

# a limit too small to split (1 a second at 50%): the flooder's share is one
# call every 2 s, not the whole limit, so another role's occasional calls
# still get through while it floods
$node->append_conf('postgresql.conf', "singleton.rate_limit = 1\nsingleton.rate_limit_role_share = 50");
$node->restart;
sql(q{CREATE FUNCTION flood_for(secs float8) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
	stop timestamptz := clock_timestamp() + make_interval(secs => secs);
	ok int := 0;
BEGIN
	WHILE clock_timestamp() < stop LOOP
		BEGIN
			PERFORM singleton_get('x');
			ok := ok + 1;
		EXCEPTION WHEN SQLSTATE '53400' THEN
			NULL;
		END;
	END LOOP;
	RETURN ok;
END $$});
my ($out, $err) = ('', '');
my $flooder = IPC::Run::start(
	[ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-c', 'SET ROLE flooder; SELECT flood_for(8)' ],
	'>', \$out, '2>', \$err);
$node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%flood_for(8)%' AND pid <> pg_backend_pid()})
  or die 'the flood did not start';
my $polite = sql(q{SET ROLE bystander; SELECT admitted(20, 0.25)});
$flooder->finish;
chomp $out;
cmp_ok($polite, '>=', 1, "with rate_limit = 1 another role still gets calls through a flood ($polite of 20)");
cmp_ok($out, '<=', 5, "the flooder gets about one call every 2 s ($out in 8 s)");

$node->stop;
done_testing();
