# singleton_job_wait sleeps until a run's end is broadcast: a stop from
# another session wakes it with the cancelled run (running or queued), a
# wait with a timeout returns the unfinished run, a waiter shows its wait
# event and can be cancelled or time out.  And the update from 1.0 keeps
# existing job rows and gives the run status its enum type.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('wait');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'singleton'
singleton.max_workers = 2
max_worker_processes = 16
});
$node->start;

sub sql { my ($q, $db) = @_; return $node->safe_psql($db // 'postgres', $q); }
sub wait_for
{
	my ($q, $what) = @_;
	$node->poll_query_until('postgres', $q) or die "timed out waiting for $what";
}

sql('CREATE EXTENSION singleton');
wait_for("SELECT (singleton_health()->'worker'->>'running')::boolean", 'the launcher');
my $event = sql("SELECT CASE WHEN current_setting('server_version_num')::int >= 170000"
	. " THEN 'SingletonJobWait' ELSE 'Extension' END");
my $waiting = "SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event_type = 'Extension'"
	. " AND wait_event = '$event' AND query LIKE '%singleton_job_wait%'";

# Start "SELECT ... singleton_job_wait(...)" in a session of its own, and
# return once it is asleep in the wait.
sub start_wait
{
	my ($session, $query) = @_;
	$session->query_until(qr/started/, "\\echo started\n$query\n\\echo wait done\n");
	wait_for($waiting, 'the session to wait');
}

# a stop from another session ends the wait for a running run
my $long = sql("SELECT singleton_job_create('long', 'SELECT pg_sleep(600)')");
my $run = sql("SELECT singleton_job_execute($long)");
wait_for("SELECT status = 'running' AND worker_pid IS NOT NULL FROM singleton_job_status($run)",
	'the run to start');
my $waiter = $node->background_psql('postgres', on_error_stop => 0);
start_wait($waiter, "SELECT status, finished_at IS NOT NULL AS finished FROM singleton_job_wait($run);");
is(sql("SELECT singleton_job_stop($run)"), 't', 'the waited-for run is stopped');
like($waiter->query_until(qr/wait done/, ''), qr/^cancelled\|t$/m,
	'the waiter wakes with the cancelled run');

# the same for a queued run (of a disabled job), which has no worker
my $held = sql("SELECT singleton_job_create('held', 'SELECT 1')");
my $queued = sql("BEGIN; SELECT singleton_job_execute($held);"
	. " SELECT enabled FROM singleton_job_update($held, enabled => false); COMMIT;");
($queued) = split /\n/, $queued;
start_wait($waiter, "SELECT status, started_at IS NULL AS never_started FROM singleton_job_wait($queued);");
is(sql("SELECT singleton_job_stop($queued)"), 't', 'the waited-for queued run is stopped');
like($waiter->query_until(qr/wait done/, ''), qr/^cancelled\|t$/m,
	'the waiter of a queued run wakes with it cancelled');

# a wait with a timeout returns the unfinished run
$run = sql("SELECT singleton_job_execute($long)");
is(sql("SELECT status IN ('queued', 'running') FROM singleton_job_wait($run, '200 ms')"), 't',
	'a wait whose timeout passes returns the unfinished run');
is(sql("SELECT status IN ('queued', 'running') FROM singleton_job_wait($run, '0')"), 't',
	'a zero timeout looks once');

# a waiter can be cancelled, and statement_timeout ends a wait
start_wait($waiter, "SELECT singleton_job_wait($run);");
sql("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = '$event'"
	. " AND query LIKE '%singleton_job_wait%'");
$waiter->query_until(qr/wait done/, '');
like($waiter->{stderr}, qr/canceling statement due to user request/, 'a query cancel ends a wait');
$waiter->{stderr} = '';
my ($rc, $out, $err) = $node->psql('postgres',
	"SET statement_timeout = '300ms'; SELECT singleton_job_wait($run)");
like($err, qr/canceling statement due to statement timeout/, 'statement_timeout ends a wait');
is(sql("SELECT status FROM singleton_job_status($run)"), 'running', 'the run goes on meanwhile');
is(sql("SELECT singleton_job_stop($run)"), 't', 'until it is stopped');

# a run that finishes by itself wakes its waiter too
my $short = sql("SELECT singleton_job_create('short', 'SELECT pg_sleep(0.5)')");
$run = sql("SELECT singleton_job_execute($short)");
start_wait($waiter, "SELECT status FROM singleton_job_wait($run);");
like($waiter->query_until(qr/wait done/, ''), qr/^succeeded$/m, 'a waiter wakes when its run succeeds');
$waiter->quit;
is(sql("SELECT pg_typeof(status)::text FROM singleton_job_status($run)"), 'singleton_run_status',
	'status has the enum type');

# the update from 1.0: existing rows stay, status becomes the enum
sql('CREATE DATABASE up');
sql(q{
CREATE ROLE up_owner LOGIN;
SET client_min_messages = warning;
CREATE EXTENSION singleton VERSION '1.0';
RESET client_min_messages;
INSERT INTO singleton_job (name, command, owner, timeout, max_attempts)
VALUES ('old', 'SELECT 1', 'up_owner', '5 minutes', 3);
INSERT INTO singleton_job_run (job_id, status, attempt, started_at, finished_at, result)
SELECT id, s, a, now(), CASE WHEN s NOT IN ('queued', 'running') THEN now() END,
       CASE WHEN s = 'succeeded' THEN 'SELECT 1' END
FROM singleton_job,
     unnest(ARRAY['succeeded', 'failed', 'cancelled', 'timed_out', 'queued', 'running']) WITH ORDINALITY u(s, a);
}, 'up');
my $runs_sql = "SELECT string_agg(format('%s:%s:%s:%s', r.id, r.status, r.attempt, r.result), ' ' ORDER BY r.id)"
	. " FROM singleton_job_run r";
my $runs_before = sql($runs_sql, 'up');
my $job_sql = 'SELECT id, name, command, owner, timeout, max_attempts, enabled, created_at FROM singleton_job';
my $job_before = sql($job_sql, 'up');
sql('ALTER EXTENSION singleton UPDATE', 'up');
is(sql("SELECT extversion FROM pg_extension WHERE extname = 'singleton'", 'up'), '1.1', 'updated to 1.1');
is(sql($runs_sql, 'up'), $runs_before, 'the runs are kept, with their statuses');
is(sql($job_sql, 'up'), $job_before, 'the job is kept');
is(sql("SELECT atttypid::regtype FROM pg_attribute WHERE attrelid = 'singleton_job_run'::regclass"
		. " AND attname = 'status'", 'up'), 'singleton_run_status', 'status has the enum type');
is(sql("SELECT enum_range(NULL::singleton_run_status)", 'up'),
	'{queued,running,succeeded,failed,cancelled,timed_out}', 'with the six statuses in order');
($rc, $out, $err) = $node->psql('up',
	"INSERT INTO singleton_job_run (job_id, status) SELECT id, 'done' FROM singleton_job");
like($err, qr/invalid input value for enum singleton_run_status: "done"/, 'other statuses are refused');

# the update leaves the same definitions as a fresh install
my $defs = q{
SELECT string_agg(d, E'\n' ORDER BY d) FROM (
  SELECT pg_get_indexdef(indexrelid) AS d FROM pg_index
   WHERE indrelid IN ('singleton_job'::regclass, 'singleton_job_run'::regclass)
  UNION ALL
  SELECT format('%s %s %s %s %s', polname, polcmd, pg_get_expr(polqual, polrelid),
                pg_get_expr(polwithcheck, polrelid), polrelid::regclass)
  FROM pg_policy
  UNION ALL
  SELECT pg_get_triggerdef(oid) FROM pg_trigger
   WHERE tgrelid IN ('singleton_job'::regclass, 'singleton_job_run'::regclass) AND NOT tgisinternal
  UNION ALL
  SELECT pg_get_constraintdef(oid) || ' ' || conname FROM pg_constraint
   WHERE conrelid IN ('singleton_job'::regclass, 'singleton_job_run'::regclass)
  UNION ALL
  SELECT format('%s %s %s', attname, atttypid::regtype, pg_get_expr(adbin, adrelid))
  FROM pg_attribute LEFT JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum
   WHERE attrelid = 'singleton_job_run'::regclass AND attnum > 0
  UNION ALL
  SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid
   WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND p.proname LIKE '%job%') x
};
sql('CREATE DATABASE fresh');
sql('CREATE EXTENSION singleton', 'fresh');
is(sql($defs, 'up'), sql($defs, 'fresh'), 'indexes, policies, triggers and constraints as in a fresh install');
unlike(sql($defs, 'fresh'), qr/_singleton_job_guard\(\)|_singleton_job_check/,
	'the old guard and check functions are gone');
like(sql("SELECT pg_get_indexdef('singleton_job_run_queued'::regclass)", 'up'), qr/WHERE \(status = 'queued'::singleton_run_status\)/,
	'the partial indexes compare with the enum');

$node->stop;
done_testing();
