# Attacks on the job system's availability by an ordinary role, and races
# between job functions:
#  - holding the row lock of one's own queued run (a stop in an open
#    transaction) must not stall dispatch for anyone else;
#  - a command that catches its cancel keeps its worker busy: it still
#    counts against its owner's worker share, and it is terminated a grace
#    period after its stop or its timeout;
#  - concurrent sessions cannot take an owner past its queue cap;
#  - executing a job while another session deletes it is a clean 42704,
#    and two sessions deleting one job do not deadlock.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('avail');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'singleton'
singleton.max_workers = 2
singleton.job_role_max_queued = 50
max_worker_processes = 16
log_min_messages = log
});
$node->start;

sub sql { return $node->safe_psql('postgres', shift); }
sub wait_for
{
	my ($q, $what) = @_;
	$node->poll_query_until('postgres', $q) or die "timed out waiting for $what";
}
# a psql session in the background running one multi-statement query (so
# pg_stat_activity shows all of it); returns its harness
sub background
{
	my ($script) = @_;
	my ($out, $err) = ('', '');
	return IPC::Run::start([ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-c', $script ],
		'>', \$out, '2>', \$err);
}

sql('CREATE EXTENSION singleton');
sql('CREATE ROLE mallory LOGIN; CREATE ROLE victim LOGIN');
wait_for("SELECT (singleton_health()->'worker'->>'running')::boolean", 'the launcher');
my $quick = sql(q{SET ROLE victim; SELECT singleton_job_create('quick', 'SELECT 1')});
# a superuser's long runs occupy both workers, so that queued runs stay queued
my $hold = sql(q{SELECT singleton_job_create('hold', 'SELECT pg_sleep(600)')});
sub hold_workers
{
	sql("SELECT singleton_job_execute($hold) FROM generate_series(1, 2)");
	wait_for("SELECT count(*) = 2 FROM singleton_job_run WHERE job_id = $hold AND status = 'running'",
		'both workers busy');
}
sub free_workers
{
	sql("SELECT singleton_job_stop(id) FROM singleton_job_run WHERE job_id = $hold AND status IN ('queued', 'running')");
	wait_for(q{SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(600)%' AND backend_type = 'singleton job run')},
		'the workers to be free');
}

# 1. mallory locks her own queued run, older than the victim's, and sits on it
hold_workers();
my $mjob = sql(q{SET ROLE mallory; SELECT singleton_job_create('mine', 'SELECT 1')});
my $mrun = sql("SET ROLE mallory; SELECT singleton_job_execute($mjob)");
my $locker = background("SET ROLE mallory; BEGIN; SELECT singleton_job_stop($mrun); SELECT pg_sleep(120);");
wait_for(q{SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()},
	'the lock holder');
my $vrun = sql("SET ROLE victim; SELECT singleton_job_execute($quick)");
free_workers();
is(sql("SET ROLE victim; SELECT status FROM singleton_job_wait($vrun, '60 seconds')"), 'succeeded',
	'a run is dispatched while another role holds the lock of an older queued run');
sql(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()});
$locker->finish;

# 1b. ... however many of its queued runs it locks (more than any batch the
# launcher might look at)
hold_workers();
my @mj = map { sql(qq{SET ROLE mallory; SELECT singleton_job_create('many_$_', 'SELECT 1')}) } 1 .. 20;
sql("SET ROLE mallory; SELECT singleton_job_execute(id) FROM unnest(ARRAY[" . join(',', @mj) . "]) id");
$locker = background(q{SET ROLE mallory; BEGIN;
	SELECT count(_singleton_run_cancel(id)) FROM singleton_job_run WHERE status = 'queued';
	SELECT pg_sleep(120);});
wait_for(q{SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()},
	'the holder of 20 locks');
$vrun = sql("SET ROLE victim; SELECT singleton_job_execute($quick)");
free_workers();
is(sql("SET ROLE victim; SELECT status FROM singleton_job_wait($vrun, '60 seconds')"), 'succeeded',
	'a run is dispatched while another role holds the locks of 20 older queued runs');
sql(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()});
$locker->finish;
sql("SELECT singleton_job_delete(id) FROM unnest(ARRAY[" . join(',', @mj) . "]) id");

# 1c. a job whose owner is gone (here: renamed), its row locked by a change
# held open: refusing its run must not wait for that lock
sql('CREATE ROLE carol LOGIN');
my $cjob = sql(q{SET ROLE carol; SELECT singleton_job_create('renamed', 'SELECT 1')});
sql('ALTER ROLE carol RENAME TO carol2');
$locker = background("SET ROLE carol2; BEGIN; SELECT singleton_job_update($cjob, command => 'SELECT 2'); SELECT pg_sleep(120);");
wait_for(q{SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()},
	'the holder of the job row');
my $crun = sql("SELECT singleton_job_execute($cjob)");
$vrun = sql("SET ROLE victim; SELECT singleton_job_execute($quick)");
is(sql("SET ROLE victim; SELECT status FROM singleton_job_wait($vrun, '60 seconds')"), 'succeeded',
	'a run is dispatched while the row of a refused job is locked');
like(sql("SELECT error FROM singleton_job_wait($crun, '60 seconds')"), qr/^42704: role "carol" that owns the job no longer exists/,
	'and the refused run says why');
sql(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()});
$locker->finish;

# 2. a command that catches its cancel: it keeps its share, and is terminated
my $trap = q{DO $d$ BEGIN FOR i IN 1 .. 120 LOOP BEGIN PERFORM pg_sleep(0.5); EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END $d$};
my $tjob = sql(qq{SET ROLE mallory; SELECT singleton_job_create('trap', \$q\$$trap\$q\$)});
my ($t1, $t2) = split /\n/, sql("SET ROLE mallory; SELECT singleton_job_execute($tjob) FROM generate_series(1, 2)");
wait_for("SELECT status = 'running' FROM singleton_job_status($t1)", 'the first trapped run');
is(sql("SET ROLE mallory; SELECT singleton_job_stop($t1)"), 't', 'the trapped run is stopped');
# while its worker ignores the stop, the second run must wait: one share of two workers
my $max = 0;
for (1 .. 20)
{
	my $n = sql(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'singleton job run' AND query LIKE '%query_canceled%'});
	$max = $n if $n > $max;
	last if sql("SELECT status FROM singleton_job_status($t2)") ne 'queued';
	usleep(100_000);
}
cmp_ok($max, '<=', 1, 'a stopped run that ignores its cancel still holds its owner\'s worker share');
wait_for("SELECT status = 'running' FROM singleton_job_status($t2)", 'the second trapped run, once the first worker is gone');
ok($node->log_contains("terminating the worker of run $t1, which ignored its stop"),
	'the worker that ignored its stop was terminated');
sql("SET ROLE mallory; SELECT singleton_job_stop($t2)");

# ... and one that ignores its timeout is terminated as timed out
my $tojob = sql(qq{SET ROLE mallory; SELECT singleton_job_create('trap_timeout', \$q\$$trap\$q\$, '1 second')});
my $torun = sql("SET ROLE mallory; SELECT singleton_job_execute($tojob)");
my $st = sql("SET ROLE mallory; SELECT status || ' ' || error FROM singleton_job_wait($torun, '60 seconds')");
like($st, qr/^timed_out 57014: .*terminated/, 'a run that ignores its timeout is terminated and timed out');
cmp_ok(sql("SELECT extract(epoch FROM finished_at - started_at) FROM singleton_job_status($torun)"), '<', 50,
	'well before its command would have ended');
wait_for(q{SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'singleton job run')},
	'no worker left');

# 3. concurrent sessions of one owner cannot pass its queue cap (50)
hold_workers();
my $qjob = sql(q{SET ROLE mallory; SELECT singleton_job_create('many', 'SELECT 1')});
my @bg = map {
	background("SET ROLE mallory; BEGIN; SELECT count(singleton_job_execute($qjob)) FROM generate_series(1, 30); SELECT pg_sleep(1); COMMIT;")
} 1 .. 3;
$_->finish for @bg;
cmp_ok(sql("SELECT count(*) FROM singleton_job_run WHERE job_id = $qjob"), '<=', 50,
	'three concurrent sessions did not take the owner past its queue cap');
sql("SET ROLE mallory; SELECT singleton_job_delete($qjob)");
free_workers();

# 4. execute against a concurrent delete, and two concurrent deletes
my $djob = sql(q{SET ROLE mallory; SELECT singleton_job_create('doomed', 'SELECT 1')});
my $deleter = background("SET ROLE mallory; BEGIN; SELECT singleton_job_delete($djob); SELECT pg_sleep(2); COMMIT;");
wait_for(q{SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(2)%' AND pid <> pg_backend_pid()},
	'the deleter');
my ($rc, $out, $err) = $node->psql('postgres', "SET ROLE mallory; SELECT singleton_job_execute($djob)");
like($err, qr/job $djob does not exist/, 'executing a job being deleted is 42704, not a foreign-key error');
$deleter->finish;

my $ejob = sql(q{SET ROLE mallory; SELECT singleton_job_create('doomed2', 'SELECT pg_sleep(30)')});
sql("SET ROLE mallory; SELECT singleton_job_execute($ejob) FROM generate_series(1, 3)");
my @del = map {
	background("SET ROLE mallory; BEGIN; SELECT singleton_job_delete($ejob); SELECT pg_sleep(1); COMMIT;")
} 1 .. 2;
$_->finish for @del;
ok(!$node->log_contains('deadlock detected'), 'two sessions deleting one job do not deadlock');
is(sql("SELECT count(*) FROM singleton_job WHERE id = $ejob"), '0', 'and the job is gone');

$node->stop;
done_testing();
