# The background worker under real conditions: stopping a running job,
# timeouts, retries, the concurrency limit and FIFO order, a restart while
# runs are running and queued, history pruning, and a launcher that dies.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('jobs');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'singleton'
singleton.max_workers = 2
max_worker_processes = 16
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION singleton');

sub sql { return $node->safe_psql('postgres', shift); }
sub wait_for
{
	my ($sql, $what) = @_;
	$node->poll_query_until('postgres', $sql) or die "timed out waiting for $what";
}

wait_for("SELECT (singleton_health()->'worker'->>'running')::boolean", 'the launcher');

# a long run is stopped within a second
my $long = sql("SELECT singleton_job_create('long', 'SELECT pg_sleep(600)')");
my $run = sql("SELECT singleton_job_execute($long)");
wait_for("SELECT status = 'running' AND worker_pid IS NOT NULL FROM singleton_job_status($run)", 'the run to start');
my $pid = sql("SELECT worker_pid FROM singleton_job_status($run)");
my $t0 = time();
is(sql("SELECT singleton_job_stop($run)"), 't', 'stop returns true for a running run');
wait_for("SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $pid)", 'the worker to end');
my $took = time() - $t0;
cmp_ok($took, '<', 1.0, "the worker ended within a second of the stop ($took s)");
is(sql("SELECT status FROM singleton_job_status($run)"), 'cancelled', 'recorded as cancelled');

# the job's timeout becomes the statement timeout: status timed_out
my $slow = sql("SELECT singleton_job_create('slow', 'SELECT pg_sleep(60)', '1 second')");
$run = sql("SELECT singleton_job_execute($slow)");
is(sql("SELECT status FROM singleton_job_wait($run, '60 seconds')"), 'timed_out', 'a run past its timeout is timed_out');
like(sql("SELECT error FROM singleton_job_status($run)"), qr/^57014: canceling statement due to statement timeout/,
	'the error says so');
cmp_ok(sql("SELECT extract(epoch FROM finished_at - started_at) FROM singleton_job_status($run)"), '<', 10,
	'and it ended long before the command would have');

# retries: fails twice, succeeds on the third attempt
sql(q{
CREATE SEQUENCE flaky_calls;
CREATE FUNCTION flaky() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
	IF nextval('flaky_calls') < 3 THEN
		RAISE EXCEPTION 'not yet' USING ERRCODE = 'P0001';
	END IF;
	RETURN 1;
END $$;
});
my $flaky = sql("SELECT singleton_job_create('flaky', 'SELECT flaky()', NULL, 5)");
sql("SELECT singleton_job_execute($flaky)");
wait_for("SELECT count(*) = 1 FROM singleton_job_run WHERE job_id = $flaky AND status = 'succeeded'", 'the retries');
is(sql("SELECT string_agg(attempt || ':' || status, ' ' ORDER BY id) FROM singleton_job_run WHERE job_id = $flaky"),
	'1:failed 2:failed 3:succeeded', 'failed runs are retried as new attempts until one succeeds');
like(sql("SELECT error FROM singleton_job_run WHERE job_id = $flaky ORDER BY id LIMIT 1"), qr/^P0001: not yet$/,
	'each failed attempt records its error');

# max_workers = 2: six one-second runs never run more than two at once, FIFO
my $sec = sql("SELECT singleton_job_create('second', 'SELECT pg_sleep(1)')");
sql("SELECT singleton_job_execute($sec) FROM generate_series(1, 6)");
my $max_active = 0;
for (my $i = 0; $i < 200; $i++)
{
	my $active = sql("SELECT (singleton_health()->'worker'->>'active_runs')::int");
	$max_active = $active if $active > $max_active;
	last if sql("SELECT count(*) FROM singleton_job_run WHERE job_id = $sec AND status = 'succeeded'") == 6;
	Time::HiRes::sleep(0.05);
}
wait_for("SELECT count(*) = 6 FROM singleton_job_run WHERE job_id = $sec AND status = 'succeeded'", 'six runs');
cmp_ok($max_active, '<=', 2, "never more than 2 active runs seen ($max_active)");
is(sql(qq{
	SELECT max(c) FROM (
		SELECT (SELECT count(*) FROM singleton_job_run r2
		        WHERE r2.job_id = $sec AND r2.started_at <= r1.started_at AND r2.finished_at > r1.started_at) AS c
		FROM singleton_job_run r1 WHERE r1.job_id = $sec) x}), '2',
	'run history shows exactly two runs overlapping at most');
# two runs handed out together may start a few ms apart in either order;
# FIFO means no later run starts a whole wave before an earlier one
is(sql(qq{SELECT bool_and(r2.started_at > r1.started_at - interval '0.5 s')
	FROM singleton_job_run r1 JOIN singleton_job_run r2 ON r2.job_id = r1.job_id AND r2.id > r1.id
	WHERE r1.job_id = $sec}), 't', 'excess runs start in FIFO order');

# a restart (immediate stop) with two runs running and one queued
my $nap = sql("SELECT singleton_job_create('nap', 'SELECT pg_sleep(5)')");
sql("SELECT singleton_job_execute($nap) FROM generate_series(1, 3)");
wait_for("SELECT count(*) = 2 FROM singleton_job_run WHERE job_id = $nap AND status = 'running'", 'two running');
is(sql("SELECT count(*) FROM singleton_job_run WHERE job_id = $nap AND status = 'queued'"), '1', 'one queued');
$node->stop('immediate');
$node->start;
wait_for("SELECT NOT EXISTS (SELECT 1 FROM singleton_job_run WHERE job_id = $nap AND status IN ('queued', 'running'))",
	'the runs after the restart');
is(sql("SELECT string_agg(status::text, ' ' ORDER BY id) FROM singleton_job_run WHERE job_id = $nap"),
	'failed failed succeeded', 'the interrupted runs are failed, the queued one executed');
like(sql("SELECT error FROM singleton_job_run WHERE job_id = $nap ORDER BY id LIMIT 1"),
	qr/interrupted: the server restarted/, 'the failure says why');

# a run interrupted by a restart is retried when attempts remain
my $nap2 = sql("SELECT singleton_job_create('nap2', 'SELECT pg_sleep(5)', NULL, 2)");
sql("SELECT singleton_job_execute($nap2)");
wait_for("SELECT count(*) = 1 FROM singleton_job_run WHERE job_id = $nap2 AND status = 'running'", 'nap2 running');
$node->stop('immediate');
$node->start;
wait_for("SELECT count(*) = 1 FROM singleton_job_run WHERE job_id = $nap2 AND status = 'succeeded'", 'nap2 retried');
is(sql("SELECT string_agg(attempt || ':' || status, ' ' ORDER BY id) FROM singleton_job_run WHERE job_id = $nap2"),
	'1:failed 2:succeeded', 'and retried');

# the launcher restarts when it dies
my $launcher = sql("SELECT singleton_health()->'worker'->>'pid'");
sql("SELECT pg_terminate_backend($launcher)");
wait_for("SELECT (singleton_health()->'worker'->>'pid')::int IS DISTINCT FROM $launcher"
	. " AND (singleton_health()->'worker'->>'running')::boolean", 'a new launcher');
$run = sql("SELECT singleton_job_execute($flaky)");
is(sql("SELECT status FROM singleton_job_wait($run, '60 seconds')"), 'succeeded', 'and runs jobs again');

# history pruning: finished runs older than singleton.job_history go
my $before = sql("SELECT count(*) FROM singleton_job_run");
cmp_ok($before, '>', 10, 'there is history');
sql("ALTER SYSTEM SET singleton.job_history = '1s'");
sql('SELECT pg_reload_conf()');
wait_for("SELECT count(*) = 0 FROM singleton_job_run WHERE finished_at IS NOT NULL", 'pruning');
is(sql('SELECT count(*) FROM singleton_job'), '6', 'jobs themselves are kept');

$node->stop;
done_testing();
