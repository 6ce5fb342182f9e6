# Snapshot files that do not hold: a crafted file (it takes write access to
# the data directory) must never bring a bad record into shared memory, and
# a snapshot that could not be loaded in full must not freeze persistence.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('snap');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'singleton'
singleton.persist_interval = 0
singleton.memory_limit = '64MB'
});
$node->start;
sub sql { return $node->safe_psql('postgres', shift); }
my $snapshot = $node->data_dir . '/singleton.snapshot';
sql('CREATE EXTENSION singleton');

# --- every kind of sound value survives the validation
my %values = (
	'v.object' => '{"a": 1, "b": [true, false, null], "c": {"d": "x"}}',
	'v.long_array' => '[' . join(', ', 1 .. 70) . ']',
	'v.long_object' => '{' . join(', ', map { "\"k$_\": $_" } 1 .. 40) . '}',
	'v.numbers' => '[0, -1.5, 1e+100, 123456789012345678901234567890, 0.000001]',
	'v.strings' => '["", "é ü ✓", "quote \" backslash \\\\"]',
	'v.empty' => '[{}, [], ""]',
	'v.scalar_string' => '"just a string"',
	'v.scalar_number' => '3.14159',
	'v.bool' => 'true',
	'v.null' => 'null',
	'v.deep' => ('[' x 60) . '1' . (']' x 60));
foreach my $n (sort keys %values)
{
	sql("SELECT singleton_set('$n', \$v\$$values{$n}\$v\$::jsonb)");
}
sql("SELECT singleton_incr('v.counter', 41)");
my $all = q{SELECT string_agg(name || '=' || singleton_get(name)::text, E'\n' ORDER BY name) FROM singleton_entries};
my $before = sql($all);
$node->restart;
is(sql($all), $before, 'every sound value comes back unchanged');

# --- crafted records: a file with a correct checksum but a bad record
sql("SELECT singleton_clear()");
sql(q{SELECT singleton_set('crafted', '{"a": [1, 2]}')});
$node->stop;
my $good = slurp_file($snapshot);

# CRC-32C (Castagnoli), as PostgreSQL computes it
my @crc_table;
for my $i (0 .. 255)
{
	my $c = $i;
	$c = ($c & 1) ? (($c >> 1) ^ 0x82F63B78) : ($c >> 1) for 1 .. 8;
	$crc_table[$i] = $c;
}
sub crc32c
{
	my $crc = 0xFFFFFFFF;
	$crc = $crc_table[($crc ^ $_) & 0xFF] ^ ($crc >> 8) for unpack('C*', shift);
	return $crc ^ 0xFFFFFFFF;
}
# layout: header (8), record header (72: dbid, owner, kind, private,
# typelen, pad, namelen, valuelen, pad, 6 x 8 bytes), name, type, value,
# trailer (count 8, crc 4, pad 4)
my $REC = 8;
my $REC_HDR = 72;
sub reseal
{
	my $d = shift;
	my $body = substr($d, 0, length($d) - 16);
	my $count = substr($d, length($d) - 16, 8);
	return $body . $count . pack('L', crc32c($body . $count)) . "\0" x 4;
}
my ($namelen, $valuelen) = unpack('L L', substr($good, $REC + 12, 8));
my $typelen = unpack('C', substr($good, $REC + 10, 1));
my $VALUE = $REC + $REC_HDR + $namelen + $typelen;
is($namelen, length('crafted'), 'the record layout is as expected');

# replace the value bytes (a jsonb datum: 4-byte header, then the container)
sub with_value
{
	my ($d, $container) = @_;
	my $value = pack('L', (4 + length($container)) << 2) . $container;
	substr($d, $VALUE, $valuelen) = $value;
	substr($d, $REC + 16, 4) = pack('L', length($value));
	return $d;
}
# the value '{"a": [1, 2]}': root object header, key and value entries, then
# "a", padding, the array (header, two entries) and two short numerics of 8
# bytes (varlena header, numeric header, one digit)
my $ARRAY = $VALUE + 20;
my $NUM1 = $ARRAY + 12;

my %crafted = (
	'a scalar root holding a container' => sub {
		return with_value(shift, pack('L L L', 0x50000001, 0x50000004, 0x20000000));
	},
	'object keys out of order' => sub {
		return with_value(shift, pack('L L L L L', 0x20000002, 1, 1, 0x40000000, 0x40000000) . 'ba');
	},
	'a duplicate key' => sub {
		return with_value(shift, pack('L L L L L', 0x20000002, 1, 1, 0x40000000, 0x40000000) . 'aa');
	},
	'a numeric of an unknown special kind' => sub {
		my $d = shift;
		substr($d, $NUM1 + 4, 2) = pack('S', 0xE000);
		return $d;
	},
	'a numeric digit out of range' => sub {
		my $d = shift;
		substr($d, $NUM1 + 6, 2) = pack('s', 32767);
		return $d;
	},
	'a NUL byte in the name' => sub {
		my $d = shift;
		substr($d, $REC + $REC_HDR + 2, 1) = "\0";
		return $d;
	},
	'a creation time out of range' => sub {
		my $d = shift;
		substr($d, $REC + 32, 8) = pack('q', 9223372036854775807);
		return $d;
	},
	'a value header claiming 200 MB' => sub {
		my $d = shift;
		substr($d, $VALUE, 4) = pack('L', (200 * 1024 * 1024) << 2);
		return $d;
	},
	'a zero-length value' => sub {
		my $d = shift;
		substr($d, $VALUE, $valuelen) = '';
		substr($d, $REC + 16, 4) = pack('L', 0);
		return $d;
	},
	'an unknown value kind' => sub {
		my $d = shift;
		substr($d, $REC + 8, 1) = pack('C', 7);
		return $d;
	},
	'a child offset past the container' => sub {
		my $d = shift;
		# root object: header, then the key's JEntry; make the key 1 MB long
		substr($d, $VALUE + 8, 4) = pack('L', 0x000FFFFF);
		return $d;
	},
	'an array child that is a key-less object' => sub {
		my $d = shift;
		# flip the root from object to array-and-object
		my $h = unpack('L', substr($d, $VALUE + 4, 4));
		substr($d, $VALUE + 4, 4) = pack('L', $h | 0x40000000);
		return $d;
	},
	'an invalid owner' => sub {
		my $d = shift;
		substr($d, $REC + 4, 4) = pack('L', 0);
		return $d;
	},
	'a type label of zero bytes' => sub {
		my $d = shift;
		substr($d, $REC + $REC_HDR + $namelen, $typelen) = '';
		substr($d, $REC + 10, 1) = pack('C', 0);
		return $d;
	});
foreach my $case (sort keys %crafted)
{
	open(my $fh, '>:raw', $snapshot) or die;
	print $fh reseal($crafted{$case}->($good));
	close $fh;
	unlink glob($node->data_dir . '/singleton.snapshot.bad.*');
	my $offset = -s $node->logfile;
	$node->start;
	$node->poll_query_until('postgres', "SELECT (singleton_health()->'persist'->>'loaded')::boolean")
	  or die 'not loaded';
	ok($node->log_contains('singleton snapshot file "singleton.snapshot" is inconsistent', $offset),
		"$case: the file is refused as inconsistent");
	is(scalar(my @a = glob($node->data_dir . '/singleton.snapshot.bad.*')), 1, "$case: and kept aside");
	is(sql(q{SELECT count(*) FROM singleton_entries}), '0', "$case: nothing was loaded");
	is(sql(q{SELECT singleton_get('crafted') IS NULL}), 't', "$case: reading the name is safe");
	ok(!$node->log_contains('terminated by signal', $offset), "$case: no process crashed");
	$node->stop;
}
# the untouched file still loads (the cases above fail for their flaw only)
open(my $fh, '>:raw', $snapshot) or die;
print $fh reseal($good);
close $fh;
$node->start;
is(sql(q{SELECT singleton_get('crafted')}), '{"a": [1, 2]}', 'the same file, resealed unchanged, loads');

# --- a partial load does not freeze persistence
sql(q{SELECT singleton_set('fill.' || i, pg_catalog.to_jsonb(pg_catalog.repeat('x', 400))) FROM generate_series(1, 60000) i});
my $filled = sql('SELECT count(*) FROM singleton_entries');
cmp_ok($filled, '>', 50000, "a registry of $filled entries");
$node->stop;
$node->append_conf('postgresql.conf', "singleton.memory_limit = '8MB'");
my $offset = -s $node->logfile;
$node->start;
$node->poll_query_until('postgres', "SELECT (singleton_health()->'persist'->>'loaded')::boolean")
  or die 'not loaded';
ok($node->log_contains('singleton snapshot only partly loaded', $offset), 'a smaller registry loads only part');
my $full_size = -s $snapshot;
# the administrator clears the registry: that is what the next start sees
sql('SELECT singleton_clear()');
sql(q{SELECT singleton_set('after_clear', '1')});
$node->restart;
is(sql('SELECT count(*) FROM singleton_entries'), '1', 'the cleared registry was saved and loaded again');
is(sql(q{SELECT singleton_get('after_clear')}), '1', 'with what was set after the clear');
my @unloaded = glob($node->data_dir . '/singleton.snapshot.unloaded.*');
is(scalar(@unloaded), 1, 'the partly loaded file was kept aside before that snapshot');
is(-s $unloaded[0], $full_size, 'whole, to recover from');
is(sql(q{SELECT singleton_health()->'persist'->>'last_error' IS NULL}), 't', 'and snapshots were never paused');
unlink @unloaded;

# --- a file not loaded because persistence was off at startup is kept too
$node->append_conf('postgresql.conf', "singleton.memory_limit = '64MB'");
$node->restart;
sql(q{CREATE ROLE keeper; SET ROLE keeper; SELECT singleton_set('kept.secret', '"mine"', private => true)});
$node->stop;
my $kept_size = -s $snapshot;
$node->append_conf('postgresql.conf', "singleton.persist = off");
$node->start;
is(sql('SELECT count(*) FROM singleton_entries'), '0', 'persist off at startup: nothing is loaded');
sql(q{CREATE ROLE squatter; SET ROLE squatter; SELECT singleton_set('kept.secret', '"squatted"')});
sql(q{ALTER SYSTEM SET singleton.persist = on; SELECT pg_reload_conf()});
$node->restart;
@unloaded = glob($node->data_dir . '/singleton.snapshot.unloaded.*');
is(scalar(@unloaded), 1, 'persist turned on again: the unloaded file was kept aside, not overwritten');
is(-s $unloaded[0], $kept_size, 'whole');

$node->stop;
done_testing();
