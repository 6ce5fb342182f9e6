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
#include "utils/timestamp.h"

#include "admission.h"
#include "area.h"
#include "limiter.h"
#include "persist.h"
#include "registry.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(singleton_stats);
PG_FUNCTION_INFO_V1(singleton_stats_summary);
PG_FUNCTION_INFO_V1(singleton_health);

/* Degraded once this share of singleton.memory_limit is in use. */
#define HEALTH_DEGRADED_PCT 90.0

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

static int
snapshot_name_cmp(const void *a, const void *b)
{
	return strcmp(((const EntrySnapshot *) a)->name,
				  ((const EntrySnapshot *) b)->name);
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

/* The per-name maps of singleton_stats(), over sorted snapshots. */
static void
append_entry_maps(StringInfo buf, EntrySnapshot *snap, int n, OwnerPrivCache *cache,
				  bool *first)
{
	int			i;
	bool		inner;

	append_key(buf, "singleton_names", first);
	appendStringInfoChar(buf, '[');
	for (i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoString(buf, ", ");
		escape_json(buf, snap[i].name);
	}
	appendStringInfoChar(buf, ']');

	append_key(buf, "singleton_types", first);
	appendStringInfoChar(buf, '{');
	inner = true;
	for (i = 0; i < n; i++)
	{
		append_key(buf, snap[i].name, &inner);
		if (snap[i].state == ENTRY_READY)
			escape_json(buf, snap[i].type);
		else
			appendStringInfoString(buf, "null");
	}
	appendStringInfoChar(buf, '}');

	append_key(buf, "creation_times", first);
	appendStringInfoChar(buf, '{');
	inner = true;
	for (i = 0; i < n; i++)
	{
		append_key(buf, snap[i].name, &inner);
		appendStringInfo(buf, "%.6f", epoch_seconds(snap[i].created_at));
	}
	appendStringInfoChar(buf, '}');

	append_key(buf, "access_counts", first);
	appendStringInfoChar(buf, '{');
	inner = true;
	for (i = 0; i < n; i++)
	{
		if (singleton_registry_hides_usage(&snap[i], cache))
		{
			append_key(buf, snap[i].name, &inner);
			appendStringInfoString(buf, "null");
		}
		else
			append_u64(buf, snap[i].name, snap[i].access_count, &inner);
	}
	appendStringInfoChar(buf, '}');
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

	singleton_registry_attach();
	snap = singleton_registry_snapshot(MyDatabaseId, &n);
	qsort(snap, n, sizeof(EntrySnapshot), snapshot_name_cmp);
	/* a private entry's size is the caller's to know only if it may read it */
	for (i = 0; i < n; i++)
		if (!singleton_registry_hides_usage(&snap[i], &cache))
			bytes += snap[i].size_bytes;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	append_u64(&buf, "total_singletons", n, &first);

	append_entry_maps(&buf, snap, n, &cache, &first);

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
	pfree(snap);
	PG_RETURN_DATUM(finish_json(&buf));
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
