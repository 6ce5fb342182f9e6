# The snapshot's I/O failure paths:
#  - a snapshot that cannot be written is reported (singleton_health's
#    persist.last_error, a WARNING), leaves the previous file intact, and
#    the next snapshot after the cause is gone succeeds;
#  - a snapshot file that cannot be read at startup does not keep sessions
#    waiting: the registry opens, and the file is kept aside (never
#    overwritten) before the next snapshot is written.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('persist_io');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'singleton'
singleton.persist_interval = 1
});
$node->start;
my $pgdata = $node->data_dir;
my $file = "$pgdata/singleton.snapshot";

sub sql { return $node->safe_psql('postgres', shift); }
sub wait_for
{
	my ($q, $what) = @_;
	$node->poll_query_until('postgres', $q) or die "timed out waiting for $what";
}

sql('CREATE EXTENSION singleton');
sql(q{SELECT singleton_set('kept', '"first"')});
wait_for(q{SELECT (singleton_health()->'persist'->>'last_snapshot_entries')::int = 1}, 'a first snapshot');
my $before = slurp_file($file);

# a write error: the temporary file's name is taken by a directory
mkdir "$pgdata/singleton.snapshot.tmp" or die "mkdir: $!";
sql(q{SELECT singleton_set('later', '"second"')});
wait_for(q{SELECT singleton_health()->'persist'->>'last_error' LIKE 'could not write file%'}, 'the write error');
ok($node->log_contains('singleton snapshot failed: could not write file'), 'the failed write is logged');
is(slurp_file($file), $before, 'the previous snapshot is left as it was');

# the cause goes: the next snapshot succeeds and clears the error
rmdir "$pgdata/singleton.snapshot.tmp" or die "rmdir: $!";
wait_for(q{SELECT singleton_health()->'persist'->'last_error' = 'null'::jsonb
           AND (singleton_health()->'persist'->>'last_snapshot_entries')::int = 2}, 'a good snapshot');
pass('after the cause is gone the next snapshot is written');

# a read error at startup: the registry opens, the file is kept aside
$node->stop;
my $last = slurp_file($file);
chmod 0000, $file or die "chmod: $!";
$node->start;
is(sql(q{SELECT singleton_get('kept') IS NULL}), 't',
	'an unreadable snapshot leaves the registry empty but open');
ok($node->log_contains('could not open file "singleton.snapshot"'), 'the read error is logged');
sql(q{SELECT singleton_set('after', '"third"')});
wait_for(q{SELECT (singleton_health()->'persist'->>'last_snapshot_entries')::int = 1}, 'the next snapshot');
my @aside = glob("$pgdata/singleton.snapshot.unloaded.*");
is(scalar(@aside), 1, 'the unreadable file was moved aside, not overwritten');
chmod 0600, $aside[0];
is(slurp_file($aside[0]), $last, 'with the bytes of the last snapshot before the restart');

$node->stop;
done_testing();
