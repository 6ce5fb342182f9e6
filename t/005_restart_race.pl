# Attack: take over another role's private entry in the window between a
# restart and the end of the snapshot load.  A job run (a background
# worker) queued before the restart starts as soon as the launcher does; if
# it could write before the load finished, its singleton_set would create
# the victim's name as the attacker's, and the load would then keep it.
# Every process but the loader must wait for the load, however long it
# takes.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $entries = 400000;
my $node = PostgreSQL::Test::Cluster->new('race');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'singleton'
singleton.memory_limit = '256MB'
singleton.persist_interval = 0
singleton.max_workers = 1
max_worker_processes = 8
});
$node->start;

sub sql { return $node->safe_psql('postgres', shift); }
sub wait_for
{
	my ($q, $what) = @_;
	$node->poll_query_until('postgres', $q) or die "timed out waiting for $what";
}

sql('CREATE EXTENSION singleton');
sql('CREATE ROLE victim LOGIN; CREATE ROLE attacker LOGIN');
sql(q{SET ROLE victim; SELECT singleton_set('victim.secret', '"s3cret"', 'token', private => true)});
# a registry large enough that loading it takes a while
sql("SELECT singleton_set('bulk.' || i, pg_catalog.to_jsonb(i)) FROM generate_series(1, $entries) i");
is(sql("SELECT count(*) FROM singleton_entries"), $entries + 1, "$entries entries to load");

# the attacker keeps the only job worker busy and queues the theft behind it
my $busy = sql(q{SET ROLE attacker; SELECT singleton_job_execute(singleton_job_create('busy', 'SELECT pg_sleep(600)'))});
wait_for("SELECT status = 'running' FROM singleton_job_status($busy)", 'the busy run');
my $steal = sql(q{SET ROLE attacker;
	SELECT singleton_job_execute(singleton_job_create('steal',
		$$SELECT singleton_set('victim.secret', '"pwned"', private => false)$$))});
is(sql("SELECT status FROM singleton_job_status($steal)"), 'queued', 'the theft is queued');
# before the restart the theft cannot work: the name is the victim's
ok($node->psql('postgres', q{SET ROLE attacker; SELECT singleton_set('victim.secret', '"pwned"')}) != 0,
	'the attacker cannot overwrite the entry directly');

# restart: the snapshot is written at shutdown and loaded at start, while
# the launcher dispatches the queued theft at once
my $log_offset = -s $node->logfile;
$node->restart;
wait_for("SELECT status NOT IN ('queued', 'running') FROM singleton_job_status($steal)", 'the theft to finish');
ok($node->log_contains("singleton loaded " . ($entries + 1) . " entries", $log_offset),
	'every entry was loaded');
is(sql("SELECT status FROM singleton_job_status($steal)"), 'failed', 'the theft failed');
like(sql("SELECT error FROM singleton_job_status($steal)"), qr/^42501: permission denied for singleton "victim.secret"/,
	'with a permission error: it ran after the load');
is(sql(q{SELECT owner::text || ' ' || private FROM singleton_entries WHERE name = 'victim.secret'}), 'victim true',
	'the entry is still the victim\'s, and private');
is(sql(q{SET ROLE victim; SELECT singleton_get('victim.secret')}), '"s3cret"', 'with the victim\'s value');
ok(!$node->log_contains('entries set since startup over their snapshot copies', $log_offset),
	'nothing was written before the load');
is(sql("SELECT count(*) FROM singleton_entries WHERE name LIKE 'bulk.%'"), $entries, 'and the bulk came back whole');

# a session's first call also waits for the load: right after a restart,
# the victim's first read returns the value (the load is never skipped)
$node->restart;
is(sql(q{SET ROLE victim; SELECT singleton_get('victim.secret')}), '"s3cret"',
	'a session\'s first call after a restart sees the loaded value');

# the loader cannot be cut short: cancelling it again and again while it
# loads leaves every entry loaded and the victim's name the victim's
$node->restart;
my $cancels = 0;
for (my $i = 0; $i < 2000; $i++)
{
	last if sql(q{SELECT (singleton_health()->'persist'->>'loaded')::boolean}) eq 't';
	$cancels += sql(q{SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity
		WHERE backend_type = 'singleton persist'});
}
cmp_ok($cancels, '>', 0, "the loader was sent $cancels cancels while loading");
wait_for(q{SELECT (singleton_health()->'persist'->>'loaded')::boolean}, 'the load');
is(sql("SELECT count(*) FROM singleton_entries WHERE name LIKE 'bulk.%'"), $entries,
	'every entry was loaded all the same');
ok(!$node->psql('postgres', q{SET ROLE attacker; SELECT singleton_set('victim.secret', '"pwned"')}) == 0,
	'and the victim\'s name is still not the attacker\'s to take');

$node->stop;
done_testing();
