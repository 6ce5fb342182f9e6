# Concurrency promises with many real clients: no lost increments, exactly
# one factory run per name, per-key limiters that admit no more than the
# algorithm allows, and cross-session factory deadlocks that end in an error
# instead of a hang.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('concurrency');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'singleton'
singleton.memory_limit = 64MB
max_connections = 40
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION singleton');

# 8 clients x 10,000 increments of one counter
$node->pgbench(
	'--no-vacuum --client=8 --jobs=2 --transactions=10000',
	0, [qr{processed: 80000/80000}], [qr{^$}],
	'8 clients increment one counter 10,000 times each',
	{ 'incr' => q{SELECT singleton_incr('hits');} });
is($node->safe_psql('postgres', "SELECT singleton_get('hits')"),
	'80000', 'no increment is lost');

# negative and positive deltas from many clients cancel out exactly
$node->pgbench(
	'--no-vacuum --client=8 --jobs=2 --transactions=2000',
	0, [qr{processed: 16000/16000}], [qr{^$}],
	'mixed deltas',
	{ 'mixed' => q{SELECT singleton_incr('balance', 7); SELECT singleton_incr('balance', -7);} });
is($node->safe_psql('postgres', "SELECT singleton_get('balance')"),
	'0', 'mixed deltas sum exactly');

# 16 clients, 1,000 fresh names, 16 callers per name arriving together: each
# factory logs its run, sleeps 2 ms so the others pile up, and returns the
# run's id.
$node->safe_psql('postgres', q{
	CREATE TABLE factory_log (id bigserial PRIMARY KEY, name text NOT NULL);
	CREATE TABLE got (name text NOT NULL, value bigint NOT NULL);
	CREATE SEQUENCE ticket START 0 MINVALUE 0;
});
$node->pgbench(
	'--no-vacuum --client=16 --jobs=2 --transactions=1000',
	0, [qr{processed: 16000/16000}], [qr{^$}],
	'16 clients race on 1,000 fresh names',
	{
		'race' => q{
SELECT nextval('ticket') / 16 AS n \gset
INSERT INTO got
SELECT 'f' || :n, singleton_get('f' || :n,
	format('WITH pause AS (SELECT pg_sleep(0.002)) INSERT INTO factory_log (name) SELECT %L FROM pause RETURNING id', 'f' || :n))::bigint;
}
	});
is($node->safe_psql('postgres', 'SELECT count(*) FROM factory_log'),
	'1000', 'one factory run per name');
is($node->safe_psql('postgres',
		'SELECT count(*) FROM (SELECT name FROM factory_log GROUP BY name HAVING count(*) > 1) d'),
	'0', 'no name ran its factory twice');
is($node->safe_psql('postgres', 'SELECT count(*) FROM got'),
	'16000', 'every client got a value');
is($node->safe_psql('postgres',
		'SELECT count(*) FROM got g JOIN factory_log f USING (name) WHERE g.value <> f.id'),
	'0', 'every client got the value its name\'s one factory run made');
ok($node->safe_psql('postgres', "SELECT (singleton_stats()->>'factory_waits')::int") > 0,
	'callers really waited for each other\'s factories');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM singleton_entries WHERE state <> 'ready'"),
	'0', 'nothing left initializing');

# one per-key limiter hammered by 8 clients: burst 99, one token per hour,
# so exactly 100 of 1,600 calls may pass
$node->safe_psql('postgres', 'CREATE TABLE rl_log (allowed boolean)');
$node->pgbench(
	'--no-vacuum --client=8 --jobs=2 --transactions=200',
	0, [qr{processed: 1600/1600}], [qr{^$}],
	'8 clients share one per-key limiter',
	{ 'rl' => q{INSERT INTO rl_log SELECT allowed FROM singleton_rate_limit('shared', 99, 1, '1 hour');} });
is($node->safe_psql('postgres', 'SELECT count(*) FROM rl_log WHERE allowed'),
	'100', 'the limiter admits exactly its burst under concurrency');

# two factories that ask for each other's names from two sessions: one of
# them is told about the deadlock, the other completes, nobody hangs
my $gate = $node->background_psql('postgres', on_error_stop => 0);
$gate->query_safe('SELECT pg_advisory_lock(1)');
my $s1 = $node->background_psql('postgres', on_error_stop => 0);
my $s2 = $node->background_psql('postgres', on_error_stop => 0);
my $cross = q{SELECT singleton_get('%s', $f$SELECT singleton_get('%s', 'SELECT 1') FROM (SELECT pg_advisory_lock_shared(1), pg_advisory_unlock_shared(1)) l$f$);};
$s1->query_until(qr/started/, "\\echo started\n" . sprintf($cross, 'dl_a', 'dl_b') . "\n\\echo s1 done\n");
$s2->query_until(qr/started/, "\\echo started\n" . sprintf($cross, 'dl_b', 'dl_a') . "\n\\echo s2 done\n");
$node->poll_query_until('postgres',
	"SELECT count(*) = 2 FROM singleton_entries WHERE state = 'initializing'")
  or die 'both factories should be running';
$gate->query_safe('SELECT pg_advisory_unlock(1)');
$s1->query_until(qr/s1 done/, '');
$s2->query_until(qr/s2 done/, '');
my $errors = $s1->{stderr} . $s2->{stderr};
like($errors, qr/deadlock detected while waiting for singleton/,
	'a cross-session factory cycle is reported as a deadlock');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM singleton_entries WHERE state <> 'ready'"),
	'0', 'no entry is left initializing after the deadlock');
$_->quit for ($gate, $s1, $s2);

# a factory blocked on a row lock held by the session that waits for the
# factory: the lock manager cannot see the condition-variable wait, the
# extension's detector can
$node->safe_psql('postgres', 'CREATE TABLE lockt (id int PRIMARY KEY, v int); INSERT INTO lockt VALUES (1, 42)');
my $holder = $node->background_psql('postgres', on_error_stop => 0);
my $creator = $node->background_psql('postgres', on_error_stop => 0);
$holder->query_safe('BEGIN');
$holder->query_safe('UPDATE lockt SET v = v WHERE id = 1');
$creator->query_until(qr/started/,
	"\\echo started\nSELECT singleton_get('mixed', 'SELECT v FROM lockt WHERE id = 1 FOR UPDATE');\n\\echo creator done\n");
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM singleton_entries WHERE name = 'mixed' AND state = 'initializing'")
  or die 'the creator should be running its factory';
$holder->query_until(qr/holder done/,
	"SELECT singleton_get('mixed', 'SELECT 0');\n\\echo holder done\n");
like($holder->{stderr}, qr/deadlock detected while waiting for singleton "mixed"/,
	'a factory waiting for a lock held by its waiter is reported as a deadlock');
$holder->query('ROLLBACK');
my $created = $creator->query_until(qr/creator done/, '');
like($created, qr/^42$/m, 'the creator then finishes with its value');
$_->quit for ($holder, $creator);

$node->stop;
done_testing();
