# Durability: the registry survives clean restarts and crashes (to the last
# snapshot), bad snapshot files never stop the server, and the registry
# works on a hot standby.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('primary');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'singleton'
singleton.persist_interval = '1s'
restart_after_crash = on
});
$node->start;

sub sql { my ($db, $q) = @_; return $node->safe_psql($db, $q); }
my $snapshot = $node->data_dir . '/singleton.snapshot';

sql('postgres', 'CREATE EXTENSION singleton');
sql('postgres', 'CREATE DATABASE other');
sql('other', 'CREATE EXTENSION singleton');
sql('postgres', 'CREATE ROLE owner_a LOGIN; CREATE ROLE owner_b LOGIN; CREATE ROLE doomed LOGIN');

# entries of two databases and two owners, with every kind of field set
sql('postgres', q{
SET ROLE owner_a;
SELECT singleton_set('config', '{"feature": true, "list": [1, 2]}', 'settings');
SELECT singleton_set('secret', '"s3cret"', 'token', true);
SELECT singleton_incr('hits', 41);
SELECT singleton_get('config'), singleton_get('config');
SELECT singleton_get('made', 'SELECT 7');
RESET ROLE;
SET ROLE owner_b;
SELECT singleton_set('b_value', '[true, null, "x"]');
});
sql('other', q{
SET ROLE owner_b;
SELECT singleton_set('config', '"other database"');
SELECT singleton_get('config');
});
my $fields = q{SELECT name, type, owner, private, size_bytes, access_count, created_at, updated_at,
	last_access, state, factory_ms FROM singleton_entries ORDER BY name};
my $values = q{SELECT string_agg(name || '=' || singleton_get(name)::text, ' ' ORDER BY name) FROM singleton_entries};
my %before = (postgres => sql('postgres', $fields), other => sql('other', $fields));

# a clean restart keeps every field of every entry
$node->restart;
is(sql('postgres', $fields), $before{postgres}, 'clean restart keeps every field (first database)');
is(sql('other', $fields), $before{other}, 'clean restart keeps every field (second database)');
is(sql('postgres', $values),
	'b_value=[true, null, "x"] config={"list": [1, 2], "feature": true} hits=41 made=7 secret="s3cret"',
	'and every value');
is(sql('other', $values), 'config="other database"', 'per database');
is(sql('postgres', "SET ROLE owner_b; SELECT count(*) FROM singleton_entries WHERE private"), '1',
	'the private flag is kept');
ok($node->psql('postgres', "SET ROLE owner_b; SELECT singleton_get('secret')") != 0,
	'and still enforced');
like(sql('postgres', "SELECT singleton_health()->'persist'->>'loaded'"), qr/true/, 'health says loaded');

# crash: kill -9 of a backend; the registry comes back from the last snapshot
# wait for a snapshot taken after everything done so far
sub wait_new_snapshot
{
	my $t = sql('postgres', 'SELECT clock_timestamp()');
	$node->poll_query_until('postgres',
		"SELECT (singleton_health()->'persist'->>'last_snapshot')::timestamptz > '$t'")
	  or die "no snapshot after $t";
}
sql('postgres', "SELECT singleton_set('before_crash', '1')");
wait_new_snapshot();
sql('postgres', "ALTER SYSTEM SET singleton.persist_interval = 0; SELECT pg_reload_conf()");
sleep 2;
sql('postgres', "SELECT singleton_set('after_snapshot', '1')");
my $victim = $node->background_psql('postgres');
my $pid = $victim->query_safe('SELECT pg_backend_pid()');
kill 'KILL', $pid;
$victim->{run}->finish;
$node->poll_query_until('postgres', 'SELECT true') or die 'server did not come back';
$node->poll_query_until('postgres', "SELECT (singleton_health()->'persist'->>'loaded')::boolean")
  or die 'not loaded after crash';
is(sql('postgres', "SELECT singleton_get('before_crash')"), '1', 'after a backend crash the snapshot is back');
is(sql('postgres', "SELECT singleton_has('after_snapshot')"), 'f', 'changes after the last snapshot are lost');
is(sql('postgres', "SELECT singleton_get('config')"), '{"list": [1, 2], "feature": true}', 'with the older entries');
is(sql('postgres', "SELECT singleton_incr('hits')"), '42', 'every function works again');

# immediate stop: the same
sql('postgres', "ALTER SYSTEM SET singleton.persist_interval = '1s'; SELECT pg_reload_conf()");
wait_new_snapshot();
sql('postgres', "ALTER SYSTEM SET singleton.persist_interval = 0; SELECT pg_reload_conf()");
sleep 2;
sql('postgres', "SELECT singleton_set('lost_on_immediate', '1')");
$node->stop('immediate');
$node->start;
is(sql('postgres', "SELECT singleton_get('hits')"), '42', 'immediate stop: the last snapshot is back');
is(sql('postgres', "SELECT singleton_has('lost_on_immediate')"), 'f', 'and only later changes are lost');

# entries of a database or owner that no longer exists are not loaded
sql('postgres', "SET ROLE doomed; SELECT singleton_set('doomed_entry', '1')");
sql('postgres', 'CREATE DATABASE gone');
sql('gone', "CREATE EXTENSION singleton; SELECT singleton_set('in_gone', '1')");
$node->stop;
$node->start;
my $entries_with_gone = sql('postgres', "SELECT singleton_health()->>'entries'");
sql('postgres', 'DROP DATABASE gone');
is(sql('postgres', "SELECT singleton_health()->>'entries'"), $entries_with_gone - 1,
	'a dropped database\'s entries are freed when the drop commits');
is(sql('postgres', "SELECT singleton_has('doomed_entry')"), 't', 'the doomed role\'s entry survived while it existed');
sql('postgres', 'DROP ROLE doomed');
my $log_offset = -s $node->logfile;
$node->restart;
is(sql('postgres', "SELECT singleton_has('doomed_entry')"), 'f', 'an entry of a dropped role is not loaded');
ok($node->log_contains('singleton skipped 1 snapshot entries whose database or owner role no longer exists', $log_offset),
	'and the log says so');

# bad snapshot files: a WARNING, the file kept aside, an empty registry
my %bad = (
	'truncated' => sub { my $f = shift; my $d = slurp_file($f); truncate_to($f, length($d) - 10); },
	'random bytes' => sub { my $f = shift; write_bytes($f, join('', map { chr(int(rand(256))) } 1 .. 4096)); },
	'wrong version' => sub {
		my $f = shift; my $d = slurp_file($f);
		substr($d, 4, 4) = pack('L', 99);
		write_bytes($f, $d);
	});
sub truncate_to { my ($f, $len) = @_; truncate($f, $len) or die "truncate $f: $!"; }
sub write_bytes
{
	my ($f, $d) = @_;
	open(my $fh, '>:raw', $f) or die "open $f: $!";
	print $fh $d;
	close $fh;
}
foreach my $case (sort keys %bad)
{
	$node->stop;
	ok(-s $snapshot, "a snapshot exists before damaging it ($case)");
	$bad{$case}->($snapshot);
	unlink glob($node->data_dir . '/singleton.snapshot.bad.*');
	$log_offset = -s $node->logfile;
	$node->start;
	$node->poll_query_until('postgres', "SELECT (singleton_health()->'persist'->>'loaded')::boolean")
	  or die 'not loaded';
	is(sql('postgres', 'SELECT count(*) FROM singleton_entries'), '0', "$case: the server starts empty");
	ok($node->log_contains('WARNING:  singleton snapshot file "singleton.snapshot" is', $log_offset),
		"$case: a WARNING names the file");
	my @aside = glob($node->data_dir . '/singleton.snapshot.bad.*');
	is(scalar(@aside), 1, "$case: the bad file is kept aside");
	sql('postgres', "SELECT singleton_set('refill', '1')");
}

# a snapshot that cannot be written is a WARNING and a health field, not an ERROR
mkdir($node->data_dir . '/singleton.snapshot.tmp') or die;
sql('postgres', "ALTER SYSTEM SET singleton.persist_interval = '1s'; SELECT pg_reload_conf()");
$node->poll_query_until('postgres', "SELECT singleton_health()->'persist'->>'last_error' IS NOT NULL")
  or die 'no snapshot error reported';
like(sql('postgres', "SELECT singleton_health()->'persist'->>'last_error'"), qr/could not write file/,
	'a failed snapshot shows in health');
is(sql('postgres', "SELECT singleton_incr('still')"), '1', 'sessions are not affected');
rmdir($node->data_dir . '/singleton.snapshot.tmp');
$node->poll_query_until('postgres', "SELECT singleton_health()->'persist'->>'last_error' IS NULL")
  or die 'error not cleared';
pass('the next snapshot succeeds and clears the error');

# persist off: nothing written, nothing loaded
sql('postgres', "ALTER SYSTEM SET singleton.persist = off; SELECT pg_reload_conf()");
$node->stop;
unlink $snapshot;
$node->start;
sql('postgres', "SELECT singleton_set('not_kept', '1')");
$node->stop;
ok(!-e $snapshot, 'persist off: no file written at shutdown');
$node->start;
is(sql('postgres', 'SELECT count(*) FROM singleton_entries'), '0', 'persist off: nothing loaded');
sql('postgres', "ALTER SYSTEM SET singleton.persist = on; SELECT pg_reload_conf()");

# a hot standby: the registry works there (it writes no WAL); no job worker
sql('postgres', "SELECT singleton_set('on_primary', '1')");
$node->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'b1', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');
is($standby->safe_psql('postgres', "SELECT singleton_set('on_standby', '{\"ok\": true}'); SELECT singleton_get('on_standby')"),
	"\n" . '{"ok": true}', 'set and get work on the standby');
is($standby->safe_psql('postgres', "SELECT singleton_incr('standby_counter', 3)"), '3', 'incr too');
is($standby->safe_psql('postgres', "SELECT singleton_has('on_standby')"), 't', 'the value stays');
is($node->safe_psql('postgres', "SELECT singleton_has('on_standby')"), 'f', 'and is not replicated');
is($standby->safe_psql('postgres', "SELECT singleton_health()->'worker'->>'running'"), 'false',
	'the job worker does not run on the standby');
$standby->stop;
$node->stop;
done_testing();
