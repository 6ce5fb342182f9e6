# Attacks on the job system's capacity, and its survival of pg_dump:
#  - one role queues hundreds of hour-long runs: it gets its share of the
#    workers, its queue is capped, and another role's run still starts;
#  - a hundred thousand queued runs of a disabled job do not stop others'
#    runs from being dispatched;
#  - dump and restore into a new cluster keep jobs usable: ids continue
#    after the restored ones, finished runs stay finished, and a job whose
#    owner was dropped before the dump (so the dump holds a bare OID) never
#    runs as whichever role has that OID in the new cluster.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $conf = qq{
shared_preload_libraries = 'singleton'
singleton.max_workers = 2
singleton.job_role_max_queued = 200
max_worker_processes = 16
};
my $node = PostgreSQL::Test::Cluster->new('fair');
$node->init;
$node->append_conf('postgresql.conf', $conf);
$node->start;

sub sql { my ($q, $n) = @_; return ($n // $node)->safe_psql('postgres', $q); }
sub wait_for
{
	my ($q, $what, $n) = @_;
	($n // $node)->poll_query_until('postgres', $q) or die "timed out waiting for $what";
}

sql('CREATE EXTENSION singleton');
sql('CREATE ROLE mallory LOGIN; CREATE ROLE victim LOGIN');
wait_for("SELECT (singleton_health()->'worker'->>'running')::boolean", 'the launcher');

# mallory floods: 200 hour-long runs fill its queue, the 201st is refused
my $hog = sql(q{SET ROLE mallory; SELECT singleton_job_create('hog', 'SELECT pg_sleep(3600)')});
# (in one transaction, so that none starts before the 201st is tried)
my ($rc, $out, $err) = $node->psql('postgres', qq{
SET ROLE mallory;
BEGIN;
SELECT count(singleton_job_execute($hog)) FROM generate_series(1, 200);
SAVEPOINT s;
SELECT singleton_job_execute($hog);
ROLLBACK TO s;
COMMIT;}, on_error_stop => 0);
like($err, qr/role "mallory" has too many queued job runs/, 'the queue of one role is capped');
is(sql("SELECT count(*) FROM singleton_job_run WHERE job_id = $hog"), '200', 'with 200 queued');
wait_for("SELECT count(*) = 1 FROM singleton_job_run WHERE job_id = $hog AND status = 'running'",
	'the first hog run');

# the victim's runs go through while the hog runs hold their share only
my $quick = sql(q{SET ROLE victim; SELECT singleton_job_create('quick', 'SELECT 1')});
for my $i (1 .. 2)
{
	my $run = sql("SET ROLE victim; SELECT singleton_job_execute($quick)");
	is(sql("SET ROLE victim; SELECT status FROM singleton_job_wait($run, '60 seconds')"),
		'succeeded', "victim run $i succeeds behind 200 queued hour-long runs");
}
is(sql("SELECT count(*) FROM singleton_job_run WHERE job_id = $hog AND status = 'running'"),
	'1', 'the flooding role holds one of the two workers (its 50% share), not both');
is(sql("SELECT count(*) FROM singleton_job_run WHERE job_id = $hog AND status = 'queued'"),
	'199', 'the rest of its runs wait');

# a very long queue of a disabled job costs dispatch nothing (the job is a
# superuser's, whose queue has no cap)
my $held = sql(q{SELECT singleton_job_create('held', 'SELECT 1')});
sql("SELECT singleton_job_update($held, enabled => false)");
sql("INSERT INTO singleton_job_run (job_id) SELECT $held FROM generate_series(1, 100000)");
my $run = sql("SET ROLE victim; SELECT singleton_job_execute($quick)");
is(sql("SET ROLE victim; SELECT status FROM singleton_job_wait($run, '60 seconds')"),
	'succeeded', 'a run is dispatched past 100,000 queued runs of a disabled job');

# deleting the hog stops its running run and drops its queue
is(sql("SET ROLE mallory; SELECT singleton_job_delete($hog)"), 't', 'the flood can be deleted');
wait_for(q{SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'singleton job run')},
	'the hog worker to stop');
sql("DELETE FROM singleton_job WHERE id = $held");

# dump and restore
sql('CREATE ROLE gone LOGIN');
my $orphan = sql(q{SET ROLE gone; SELECT singleton_job_create('orphan', 'SELECT 1', max_attempts => 3)});
sql('DROP ROLE gone');
my $before_max = sql('SELECT max(id) FROM singleton_job_run');
my $runs_before = sql("SELECT string_agg(id || ':' || status, ' ' ORDER BY id) FROM singleton_job_run");
my $dump = $node->basedir . '/jobs.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres') ], 'pg_dump');

my $copy = PostgreSQL::Test::Cluster->new('restored');
$copy->init;
$copy->append_conf('postgresql.conf', $conf);
$copy->start;
# roles are global objects: pg_dump does not carry them
sql('CREATE ROLE mallory LOGIN; CREATE ROLE victim LOGIN', $copy);
$copy->command_ok([ 'pg_restore', '-d', $copy->connstr('postgres'), $dump ], 'pg_restore');
wait_for("SELECT (singleton_health()->'worker'->>'running')::boolean", 'the launcher', $copy);

is(sql("SELECT string_agg(id || ':' || status, ' ' ORDER BY id) FROM singleton_job_run WHERE id <= $before_max", $copy),
	$runs_before, 'the run history is restored as it was');
is(sql("SELECT owner::text FROM singleton_job WHERE id = $quick", $copy), 'victim',
	'owners are restored by name');
my $new = sql(q{SET ROLE victim; SELECT singleton_job_create('after_restore', 'SELECT 2')}, $copy);
cmp_ok($new, '>', $orphan, 'a new job gets an id after the restored ones (no 42710)');
$run = sql("SET ROLE victim; SELECT singleton_job_execute($quick)", $copy);
cmp_ok($run, '>', $before_max, 'a new run gets an id after the restored ones');
is(sql("SET ROLE victim; SELECT status FROM singleton_job_wait($run, '60 seconds')", $copy),
	'succeeded', 'a restored job runs as its owner');

# the dropped owner's job: its dump holds a bare OID and the old name
$run = sql("SELECT singleton_job_execute($orphan)", $copy);
like(sql("SELECT error FROM singleton_job_wait($run, '60 seconds')", $copy),
	qr/^42704: role "gone" that owns the job no longer exists/,
	'the job of a dropped owner is refused after a restore');
is(sql("SELECT enabled FROM singleton_job WHERE id = $orphan", $copy), 'f', 'and disabled');
is(sql("SELECT count(*) FROM singleton_job_run WHERE job_id = $orphan", $copy), '1', 'and not retried');

$copy->stop;
$node->stop;
done_testing();
