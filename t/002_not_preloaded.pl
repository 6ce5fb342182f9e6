# Without shared_preload_libraries the extension installs, and every
# function fails with SQLSTATE 55000 and a hint; nothing crashes.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('not_preloaded');
$node->init;
$node->start;

is($node->psql('postgres', 'CREATE EXTENSION singleton'), 0,
	'CREATE EXTENSION works without preloading');

my @calls = (
	"SELECT singleton_set('x', '1')",
	"SELECT singleton_get('x')",
	"SELECT singleton_get('x', 'SELECT 1')",
	"SELECT singleton_has('x')",
	"SELECT singleton_delete('x')",
	"SELECT singleton_incr('x')",
	'SELECT singleton_clear()',
	'SELECT * FROM singleton_entries',
	'SELECT singleton_stats()',
	'SELECT singleton_health()',
	'SELECT singleton_reset()',
	"SELECT * FROM singleton_rate_limit('k', 1, 1, '1 second')");
foreach my $sql (@calls)
{
	my ($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	isnt($ret, 0, "$sql fails");
	like($err, qr/ERROR:  55000: singleton must be loaded via shared_preload_libraries/,
		"$sql reports SQLSTATE 55000");
	like($err, qr/HINT:  Add singleton to shared_preload_libraries in postgresql.conf and restart the server./,
		"$sql hints at the fix");
}

is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server is still up');
$node->stop;
done_testing();
