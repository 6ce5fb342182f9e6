/*-------------------------------------------------------------------------
 *
 * stats.c
 *		singleton_stats() and singleton_health().
 *
 * Both build their jsonb from a snapshot (singleton_registry_snapshot) and from
 * atomics, so no lock is held while the result is built.  Instance-wide
 * counters are the sums of the per-backend counter slots.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "admission.h"
#include "area.h"
#include "limiter.h"
#include "persist.h"
#include "jsonb_writer.h"
#include "registry.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(singleton_stats);
PG_FUNCTION_INFO_V1(singleton_stats_summary);
PG_FUNCTION_INFO_V1(singleton_health);

/* Degraded once this share of singleton.memory_limit is in use. */
#define HEALTH_DEGRADED_PCT 90.0

/* Microseconds from the Unix epoch to PostgreSQL's. */
#define UNIX_EPOCH_OFFSET_US \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * USECS_PER_SEC)

static const char *const memory_note =
"estimated_memory_bytes is exact, not an estimate: it is the shared memory "
"the registry allocated for this database's entries (hash item, entry "
"header, name, type label and value), as requested from the allocator. "
"memory_used_bytes counts the same for every database and for rate limiter "
"keys.";

typedef struct CounterTotals
{
	uint64		gets;
	uint64		hits;
	uint64		misses;
	uint64		sets;
	uint64		deletes;
	uint64		incrs;
	uint64		factory_runs;
	uint64		factory_failures;
	uint64		factory_waits;
	uint64		factory_wait_us;
	uint64		limiter_allowed;
	uint64		limiter_refused;
} CounterTotals;

static void
sum_counters(CounterTotals *t)
{
	int			i;

	memset(t, 0, sizeof(*t));
	for (i = 0; i < singleton_area_shared->nslots; i++)
	{
		SingletonCounters *c = &singleton_counter_slots[i].c;

		t->gets += pg_atomic_read_u64(&c->gets);
		t->hits += pg_atomic_read_u64(&c->hits);
		t->misses += pg_atomic_read_u64(&c->misses);
		t->sets += pg_atomic_read_u64(&c->sets);
		t->deletes += pg_atomic_read_u64(&c->deletes);
		t->incrs += pg_atomic_read_u64(&c->incrs);
		t->factory_runs += pg_atomic_read_u64(&c->factory_runs);
		t->factory_failures += pg_atomic_read_u64(&c->factory_failures);
		t->factory_waits += pg_atomic_read_u64(&c->factory_waits);
		t->factory_wait_us += pg_atomic_read_u64(&c->factory_wait_us);
		t->limiter_allowed += pg_atomic_read_u64(&c->limiter_allowed);
		t->limiter_refused += pg_atomic_read_u64(&c->limiter_refused);
	}
}

static double
epoch_seconds(TimestampTz ts)
{
	return (double) ts / USECS_PER_SEC +
		(double) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
}

static void
append_key(StringInfo buf, const char *key, bool *first)
{
	if (!*first)
		appendStringInfoString(buf, ", ");
	*first = false;
	escape_json(buf, key);
	appendStringInfoString(buf, ": ");
}

static void
append_u64(StringInfo buf, const char *key, uint64 v, bool *first)
{
	append_key(buf, key, first);
	appendStringInfo(buf, UINT64_FORMAT, v);
}

static void
append_u64_or_null(StringInfo buf, const char *key, uint64 v, bool show, bool *first)
{
	append_key(buf, key, first);
	if (show)
		appendStringInfo(buf, UINT64_FORMAT, v);
	else
		appendStringInfoString(buf, "null");
}

/*
 * Instance-wide byte totals include private entries: minus the sizes the
 * caller may see they would give away the private ones.  Shown to roles
 * with pg_read_all_stats (so superusers and pg_monitor), null to others.
 */
static bool
may_see_byte_totals(void)
{
	return has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
}

static Datum
finish_json(StringInfo buf)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf->data));
}

/*
 * singleton_stats() writes its per-name maps straight into jsonb's binary
 * form (jsonb_writer.c): a million names would otherwise be printed as JSON
 * text and parsed back, or built as a tree of JsonbValues first.
 *
 * Sorting a million names by strcmp through pointers would miss the cache
 * on every comparison: each sort item carries the name's first eight
 * bytes, zero-padded and big-endian, so most comparisons stay in the array.
 */
typedef struct NameSortItem
{
	uint64		prefix;
	EntrySnapshot *s;
} NameSortItem;

static inline int
name_sort_cmp(const NameSortItem *x, const NameSortItem *y)
{
	if (x->prefix != y->prefix)
		return x->prefix < y->prefix ? -1 : 1;
	/* equal prefixes: the names are equal, or both are eight bytes or more */
	if (x->s->namelen < 8)
		return 0;
	return strcmp(x->s->name + 8, y->s->name + 8);
}

/* sort_name_items(), with the comparison inlined */
#define ST_SORT sort_name_items
#define ST_ELEMENT_TYPE NameSortItem
#define ST_COMPARE(a, b) name_sort_cmp(a, b)
#define ST_SCOPE static
#define ST_DEFINE
#include "lib/sort_template.h"

static NameSortItem *
sort_by_name(EntrySnapshot *snap, int n)
{
	NameSortItem *items = palloc_extended(Max(n, 1) * sizeof(NameSortItem), MCXT_ALLOC_HUGE);
	int			i;

	for (i = 0; i < n; i++)
	{
		uint64		prefix = 0;
		int			j;

		for (j = 0; j < 8 && j < snap[i].namelen; j++)
			prefix |= (uint64) (unsigned char) snap[i].name[j] << (56 - 8 * j);
		items[i].prefix = prefix;
		items[i].s = &snap[i];
	}
	sort_name_items(items, n);
	return items;
}

/*
 * What the maps need of one entry, gathered in name order with the names
 * next to each other, so that writing the maps reads memory in order.
 */
typedef struct SortedEntry
{
	const char *name;
	const char *type;
	uint16		namelen;
	uint8		typelen;
	bool		ready;
	bool		hidden;			/* usage hidden from the caller */
	int64		created_us;		/* since the Unix epoch */
	uint64		access_count;
} SortedEntry;

#define GATHER_PREFETCH 8
#if defined(__GNUC__) || defined(__clang__)
#define prefetch_read(p) __builtin_prefetch(p)
#else
#define prefetch_read(p) ((void) 0)
#endif

static SortedEntry *
gather_sorted(NameSortItem *by_name, int n, Size textlen, OwnerPrivCache *cache)
{
	SortedEntry *out = palloc_extended(Max(n, 1) * sizeof(SortedEntry) + textlen, MCXT_ALLOC_HUGE);
	char	   *text = (char *) (out + Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
	{
		EntrySnapshot *s = by_name[i].s;
		SortedEntry *o = &out[i];
		Size		typelen = strlen(s->type);

		/* the reads are random: start the misses of later entries now */
		if (i + GATHER_PREFETCH < n)
		{
			prefetch_read(by_name[i + GATHER_PREFETCH].s);
			prefetch_read(by_name[i + GATHER_PREFETCH].s->name);
		}

		memcpy(text, s->name, s->namelen);
		o->name = text;
		text += s->namelen;
		memcpy(text, s->type, typelen);
		o->type = text;
		text += typelen;
		o->namelen = s->namelen;
		o->typelen = typelen;
		o->ready = (s->state == ENTRY_READY);
		o->hidden = singleton_registry_hides_usage(s, cache);
		o->created_us = s->created_at + UNIX_EPOCH_OFFSET_US;
		o->access_count = s->access_count;
	}
	return out;
}

/*
 * The objects want jsonb's key order, shorter names first: a stable
 * counting sort on length of the name-sorted entries gives it, since
 * same-length names are bytewise ordered already.
 */
static SortedEntry **
key_order(SortedEntry *sorted, int n)
{
	SortedEntry **out = palloc_extended(Max(n, 1) * sizeof(SortedEntry *), MCXT_ALLOC_HUGE);
	int			start[SINGLETON_NAME_MAX + 2] = {0};
	int			i;

	for (i = 0; i < n; i++)
		start[sorted[i].namelen + 1]++;
	for (i = 1; i <= SINGLETON_NAME_MAX + 1; i++)
		start[i] += start[i - 1];
	for (i = 0; i < n; i++)
		out[start[sorted[i].namelen]++] = &sorted[i];
	return out;
}

/* The per-name maps. */
typedef enum EntryMap
{
	MAP_NAMES,					/* singleton_names */
	MAP_TYPES,					/* singleton_types */
	MAP_ACCESS_COUNTS,			/* access_counts */
	MAP_CREATION_TIMES,			/* creation_times */
	MAP_COUNT
} EntryMap;

static const char *const map_keys[MAP_COUNT] =
{"singleton_names", "singleton_types", "access_counts", "creation_times"};

typedef struct StatsMaps
{
	SortedEntry *sorted;		/* in strcmp order */
	SortedEntry **order;		/* in jsonb key order */
	int			n;
} StatsMaps;

static void
write_map_value(StringInfo buf, JsonbWriterContainer *obj, SortedEntry *e, EntryMap map)
{
	Numeric		num;

	if (map == MAP_TYPES)
	{
		if (e->ready)
			singleton_jsonb_string(buf, obj, e->type, e->typelen);
		else
			singleton_jsonb_null(buf, obj);
		return;
	}
	if (map == MAP_ACCESS_COUNTS && e->hidden)
	{
		singleton_jsonb_null(buf, obj);
		return;
	}
	if (map == MAP_ACCESS_COUNTS)
		num = int64_to_numeric((int64) e->access_count);
	else
		num = int64_div_fast_to_numeric(e->created_us, 6);
	singleton_jsonb_numeric(buf, obj, num);
	pfree(num);
}

static void
write_map(StringInfo buf, JsonbWriterContainer *parent, StatsMaps *m, EntryMap map)
{
	JsonbWriterContainer obj;
	int			i;

	singleton_jsonb_open(buf, &obj, m->n, map != MAP_NAMES);
	if (map == MAP_NAMES)
	{
		for (i = 0; i < m->n; i++)
			singleton_jsonb_string(buf, &obj, m->sorted[i].name, m->sorted[i].namelen);
	}
	else
	{
		for (i = 0; i < m->n; i++)
			singleton_jsonb_string(buf, &obj, m->order[i]->name, m->order[i]->namelen);
		for (i = 0; i < m->n; i++)
			write_map_value(buf, &obj, m->order[i], map);
	}
	singleton_jsonb_close(buf, &obj, parent);
}

/* One key of the result: a value of the small part, or a per-name map. */
typedef struct StatsPair
{
	JsonbValue	key;
	JsonbValue	value;
	int			map;			/* an EntryMap, or -1 */
} StatsPair;

static int
stats_pair_cmp(const void *a, const void *b)
{
	const JsonbValue *x = &((const StatsPair *) a)->key;
	const JsonbValue *y = &((const StatsPair *) b)->key;

	return singleton_jsonb_key_cmp(x->val.string.val, x->val.string.len,
								   y->val.string.val, y->val.string.len);
}

/*
 * The whole of singleton_stats(): the top-level pairs of the small part
 * (nested objects copied as they are) and the four per-name maps.
 */
static Jsonb *
stats_with_maps(Jsonb *small, EntrySnapshot *snap, int n, Size textlen,
				OwnerPrivCache *cache)
{
	int			nsmall = JB_ROOT_COUNT(small);
	StatsPair  *pairs = palloc((nsmall + MAP_COUNT) * sizeof(StatsPair));
	int			npairs = 0;
	JsonbIterator *it = JsonbIteratorInit(&small->root);
	JsonbIteratorToken tok;
	JsonbValue	v;
	StatsMaps	m;
	StringInfoData buf;
	JsonbWriterContainer top;
	int			i;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			pairs[npairs].key = v;
		else if (tok == WJB_VALUE)
		{
			pairs[npairs].value = v;
			pairs[npairs++].map = -1;
		}
	}
	for (i = 0; i < MAP_COUNT; i++, npairs++)
	{
		pairs[npairs].key.type = jbvString;
		pairs[npairs].key.val.string.val = (char *) map_keys[i];
		pairs[npairs].key.val.string.len = strlen(map_keys[i]);
		pairs[npairs].map = i;
	}
	qsort(pairs, npairs, sizeof(StatsPair), stats_pair_cmp);

	m.sorted = gather_sorted(sort_by_name(snap, n), n, textlen, cache);
	m.order = key_order(m.sorted, n);
	m.n = n;
	singleton_jsonb_writer_init(&buf, (Size) n * 64 + VARSIZE(small));
	singleton_jsonb_open(&buf, &top, npairs, true);
	for (i = 0; i < npairs; i++)
		singleton_jsonb_string(&buf, &top, pairs[i].key.val.string.val, pairs[i].key.val.string.len);
	for (i = 0; i < npairs; i++)
	{
		if (pairs[i].map >= 0)
			write_map(&buf, &top, &m, (EntryMap) pairs[i].map);
		else
			singleton_jsonb_value(&buf, &top, &pairs[i].value);
	}
	singleton_jsonb_close(&buf, &top, NULL);
	return singleton_jsonb_finish(&buf);
}

/*
 * The instance-wide part of singleton_stats(), which is all of
 * singleton_stats_summary(): counters summed over the per-backend slots,
 * memory, the limiters' state.  Its cost does not depend on the entries.
 */
static void
append_instance_counters(StringInfo buf, bool *first)
{
	CounterTotals t;
	bool		inner = true;

	sum_counters(&t);
	append_u64(buf, "rate_limited_count", singleton_admission_refused_count(), first);
	append_key(buf, "timestamp", first);
	appendStringInfo(buf, "%.6f", epoch_seconds(GetCurrentTimestamp()));
	append_u64(buf, "gets", t.gets, first);
	append_u64(buf, "hits", t.hits, first);
	append_u64(buf, "misses", t.misses, first);
	append_u64(buf, "sets", t.sets, first);
	append_u64(buf, "deletes", t.deletes, first);
	append_u64(buf, "incrs", t.incrs, first);
	append_u64_or_null(buf, "memory_used_bytes",
					   pg_atomic_read_u64(&singleton_area_shared->memory_used),
					   may_see_byte_totals(), first);
	append_u64(buf, "memory_limit_bytes", singleton_area_shared->memory_limit, first);
	append_u64(buf, "factory_runs", t.factory_runs, first);
	append_u64(buf, "factory_failures", t.factory_failures, first);
	append_u64(buf, "factory_waits", t.factory_waits, first);
	append_key(buf, "factory_wait_ms", first);
	appendStringInfo(buf, "%.3f", t.factory_wait_us / 1000.0);
	append_key(buf, "rate_limiter", first);
	appendStringInfoChar(buf, '{');
	append_u64(buf, "keys", singleton_limiter_key_count(), &inner);
	append_u64(buf, "allowed", t.limiter_allowed, &inner);
	append_u64(buf, "refused", t.limiter_refused, &inner);
	appendStringInfoChar(buf, '}');
}

Datum
singleton_stats(PG_FUNCTION_ARGS)
{
	EntrySnapshot *snap;
	int			n;
	int			i;
	int64		bytes = 0;
	StringInfoData buf;
	bool		first = true;
	OwnerPrivCache cache = {0};
	Jsonb	   *small;
	Size		textlen = 0;

	singleton_registry_attach();
	snap = singleton_registry_snapshot(MyDatabaseId, &n);
	/* a private entry's size is the caller's to know only if it may read it */
	for (i = 0; i < n; i++)
	{
		if (!singleton_registry_hides_usage(&snap[i], &cache))
			bytes += snap[i].size_bytes;
		textlen += snap[i].namelen + strlen(snap[i].type);
	}

	/* everything but the per-name maps, as text */
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	append_u64(&buf, "total_singletons", n, &first);
	append_u64(&buf, "estimated_memory_bytes", bytes, &first);
	append_key(&buf, "estimated_memory_kb", &first);
	appendStringInfo(&buf, "%.2f", bytes / 1024.0);
	append_key(&buf, "estimated_memory_mb", &first);
	appendStringInfo(&buf, "%.4f", bytes / (1024.0 * 1024.0));
	append_key(&buf, "memory_note", &first);
	escape_json(&buf, memory_note);
	append_instance_counters(&buf, &first);
	singleton_jobs_append_stats(&buf);
	appendStringInfoChar(&buf, '}');
	small = DatumGetJsonbP(finish_json(&buf));

	PG_RETURN_JSONB_P(stats_with_maps(small, snap, n, textlen, &cache));
}

/*
 * singleton_stats_summary(): for dashboards that poll often, the totals of
 * singleton_stats() without its per-name maps and without the job counts
 * (which read the run history): entries in the instance, counters, memory,
 * the limiters.  Reads fixed shared memory only, so it costs the same at
 * ten entries and at ten million, and answers while the snapshot loads.
 */
Datum
singleton_stats_summary(PG_FUNCTION_ARGS)
{
	StringInfoData buf;
	bool		first = true;

	singleton_require_loaded();
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	append_u64(&buf, "instance_entries", singleton_registry_entry_count(), &first);
	append_instance_counters(&buf, &first);
	appendStringInfoChar(&buf, '}');
	PG_RETURN_DATUM(finish_json(&buf));
}

Datum
singleton_health(PG_FUNCTION_ARGS)
{
	StringInfoData buf;
	bool		first = true;
	uint64		used;
	size_t		limit;
	double		pct;
	bool		full;
	bool		show;

	/* fixed shared memory only: answers at once, also while loading */
	singleton_require_loaded();
	used = pg_atomic_read_u64(&singleton_area_shared->memory_used);
	limit = singleton_area_shared->memory_limit;
	pct = limit > 0 ? 100.0 * (double) used / (double) limit : 0.0;
	full = pg_atomic_read_u32(&singleton_area_shared->full) != 0;
	show = may_see_byte_totals();

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	append_key(&buf, "status", &first);
	escape_json(&buf, (pct >= HEALTH_DEGRADED_PCT || full) ? "degraded" : "healthy");
	append_key(&buf, "registry_full", &first);
	appendStringInfoString(&buf, full ? "true" : "false");
	append_key(&buf, "shared_memory", &first);
	appendStringInfoString(&buf, singleton_area_shared != NULL ? "true" : "false");
	append_u64(&buf, "entries", singleton_registry_entry_count(), &first);
	append_u64_or_null(&buf, "memory_used_bytes", used, show, &first);
	append_u64(&buf, "memory_limit_bytes", limit, &first);
	append_key(&buf, "memory_used_pct", &first);
	if (show)
		appendStringInfo(&buf, "%.2f", pct);
	else
		appendStringInfoString(&buf, "null");
	append_key(&buf, "timestamp", &first);
	appendStringInfo(&buf, "%.6f", epoch_seconds(GetCurrentTimestamp()));
	singleton_jobs_append_health(&buf);
	singleton_persist_append_health(&buf, show);
	appendStringInfoChar(&buf, '}');
	PG_RETURN_DATUM(finish_json(&buf));
}
