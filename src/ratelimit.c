/*-------------------------------------------------------------------------
 *
 * ratelimit.c
 *		The registry's own limiter and per-key GCRA limiters.
 *
 * Registry limiter: a true sliding window.  A ring in fixed shared memory
 * holds the monotonic times of the last singleton.rate_limit admissions; an
 * operation is admitted when the oldest of them is more than one second
 * old, so no one-second interval ever admits more than the limit.  O(1) per
 * operation under a spinlock that covers a handful of instructions.  With
 * the limit at 0 the check is one read of a backend-local integer.  Before
 * the window, each role's own share of it is checked (quota.c), so that a
 * flood by one role leaves room for the others.
 *
 * Per-key limiters: the generic cell rate algorithm (as redis-cell's
 * CL.THROTTLE).  State is one theoretical arrival time per (database, key)
 * in a dshash table in the registry's DSA area, updated under the key's
 * partition lock with pure integer arithmetic (128-bit nanoseconds).  A key
 * whose bucket is full again carries no information and is deleted, on its
 * next use or by a sweep that runs at most once a second.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "datatype/timestamp.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "singleton.h"
#include "quota.h"
#include "registry.h"

PG_FUNCTION_INFO_V1(singleton_reset);
PG_FUNCTION_INFO_V1(singleton_rate_limit);
PG_FUNCTION_INFO_V1(singleton_rate_limit_reset);
PG_FUNCTION_INFO_V1(singleton_rate_limit_purge);

#define NS_PER_SEC		INT64CONST(1000000000)
#define LIMITER_NS_PER_US	1000
/* Durations are clamped here (about 146 years) so stored times fit int64. */
#define LIMITER_NS_MAX	(INT64CONST(1) << 62)

bool
ratelimit_admit(void)
{
	int			limit = singleton_ops_per_second;
	SingletonShared *s;
	int64		now;
	bool		admit;

	if (likely(limit <= 0))
		return true;

	s = singleton_shared;
	now = (int64) singleton_now_ns();
	/* the role's own share first, so one role cannot take the whole window */
	if (!quota_admit(GetUserId(), now, limit))
	{
		pg_atomic_fetch_add_u64(&s->rate_limited_count, 1);
		return false;
	}
	SpinLockAcquire(&s->rl_mutex);
	if (s->rl_limit != limit)
	{
		/* the setting changed: start a fresh window of the new size */
		s->rl_limit = limit;
		s->rl_filled = 0;
		s->rl_pos = 0;
	}
	if (s->rl_filled < limit)
	{
		singleton_rl_ring[s->rl_filled++] = now;
		s->rl_pos = s->rl_filled % limit;
		admit = true;
	}
	else if (now - singleton_rl_ring[s->rl_pos] > NS_PER_SEC)
	{
		singleton_rl_ring[s->rl_pos] = now;
		s->rl_pos = (s->rl_pos + 1) % limit;
		admit = true;
	}
	else
		admit = false;
	SpinLockRelease(&s->rl_mutex);

	if (!admit)
	{
		quota_admit_refund(GetUserId(), limit);
		pg_atomic_fetch_add_u64(&s->rate_limited_count, 1);
	}
	return admit;
}

void
ratelimit_require(const char *what)
{
	if (!ratelimit_admit())
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("singleton rate limit of %d operations per second exceeded",
						singleton_ops_per_second),
				 errdetail("%s was refused.", what),
				 errhint("Retry later, or raise singleton.rate_limit.")));
}

/*
 * Clear the registry limiter's window and refusal count.  Never refused
 * itself: it is the way out of a saturated limiter.
 */
Datum
singleton_reset(PG_FUNCTION_ARGS)
{
	SingletonShared *s;

	singleton_attach();
	s = singleton_shared;
	SpinLockAcquire(&s->rl_mutex);
	s->rl_filled = 0;
	s->rl_pos = 0;
	SpinLockRelease(&s->rl_mutex);
	pg_atomic_write_u64(&s->rate_limited_count, 0);
	PG_RETURN_BOOL(true);
}

/*
 * Give back what a limiter key held, once it is out of the table: its key
 * text chunk and its share of memory.  Takes no lock.
 */
static void
limiter_release(dsa_pointer chunk, Size len, Oid creator)
{
	singleton_chunk_free(chunk, len, creator);
	singleton_account_memory(creator, -(int64) LIMITER_ENTRY_OVERHEAD);
	pg_atomic_fetch_sub_u32(&singleton_shared->limiter_keys, 1);
}

/* Remove a key the caller has locked (dshash_find); releases the lock. */
static void
limiter_remove_locked(LimiterEntry *e)
{
	dsa_pointer chunk = e->key.name;
	Size		len = e->key.namelen;
	Oid			creator = e->creator;

	dshash_delete_entry(singleton_limiters, e);
	limiter_release(chunk, len, creator);
}

/* What a limiter scan removes. */
typedef struct LimiterFilter
{
	int64		full_before;	/* keys whose bucket is full at this time */
	Oid			dbid;			/* keys of this database */
	Oid			creator;		/* keys of this role */
} LimiterFilter;

/*
 * Remove every key one filter field matches (InvalidOid and 0 match
 * nothing; all three unset removes every key).  The scan locks one
 * partition at a time.  Returns how many keys were removed.
 */
static int64
limiter_remove_matching(const LimiterFilter *f)
{
	dshash_seq_status status;
	LimiterEntry *e;
	int64		removed = 0;
	bool		all = (f->full_before == 0 && !OidIsValid(f->dbid) &&
					   !OidIsValid(f->creator));

	dshash_seq_init(&status, singleton_limiters, true);
	while ((e = dshash_seq_next(&status)) != NULL)
	{
		if (all || (f->full_before != 0 && e->tat_ns <= f->full_before) ||
			(OidIsValid(f->dbid) && e->key.dbid == f->dbid) ||
			(OidIsValid(f->creator) && e->creator == f->creator))
		{
			dsa_pointer chunk = e->key.name;
			Size		len = e->key.namelen;
			Oid			creator = e->creator;

			dshash_delete_current(&status);
			limiter_release(chunk, len, creator);
			removed++;
		}
	}
	dshash_seq_term(&status);
	return removed;
}

/*
 * Delete limiter keys whose bucket is full again.  At most one backend
 * sweeps per second; the others skip it.
 */
static void
limiter_sweep(int64 now)
{
	uint64		last = pg_atomic_read_u64(&singleton_shared->limiter_last_sweep_ns);
	LimiterFilter f = {.full_before = now};

	if (now - (int64) last < NS_PER_SEC ||
		!pg_atomic_compare_exchange_u64(&singleton_shared->limiter_last_sweep_ns,
										&last, (uint64) now))
		return;
	(void) limiter_remove_matching(&f);
}

/* Remove every limiter key of a database (it was dropped, or is new). */
void
limiter_purge_database(Oid dbid)
{
	LimiterFilter f = {.dbid = dbid};

	(void) limiter_remove_matching(&f);
}

static void
check_limiter_key(int len)
{
	if (len < 1 || len > SINGLETON_NAME_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rate limiter key must be between 1 and %d bytes long",
						SINGLETON_NAME_MAX)));
}

static Interval *
interval_from_ns(int128 ns)
{
	Interval   *iv = palloc0(sizeof(Interval));

	/* round up: waiting this long is always enough */
	iv->time = (int64) ((ns + LIMITER_NS_PER_US - 1) / LIMITER_NS_PER_US);
	return iv;
}

/* The result of one GCRA step. */
typedef struct GcraResult
{
	bool		allowed;
	int			limit;
	int			remaining;
	int128		retry_after;	/* < 0: none */
	int128		reset_after;
	int64		new_tat;		/* store this when allowed */
} GcraResult;

/*
 * One step of the generic cell rate algorithm.  Times are nanoseconds; the
 * emission interval is period/count, kept as a fraction so high rates stay
 * exact.  Pure arithmetic: safe under a partition lock.
 */
static void
gcra_step(int64 tat, int64 now, int32 max_burst, int32 count, int128 period_ns,
		  int32 quantity, GcraResult *r)
{
	int128		dvt = period_ns * ((int128) max_burst + 1) / count;
	int128		increment = period_ns * quantity / count;
	int128		base = Max((int128) tat, (int128) now);
	int128		new_tat;
	int128		diff;
	int128		ttl;
	int128		next;

	if (dvt > LIMITER_NS_MAX)
		dvt = LIMITER_NS_MAX;
	if (increment > LIMITER_NS_MAX + 1)
		increment = LIMITER_NS_MAX + 1;

	new_tat = base + increment;
	diff = (int128) now - (new_tat - dvt);
	r->limit = max_burst + 1;
	r->retry_after = -1;
	if (diff < 0)
	{
		r->allowed = false;
		if (increment <= dvt)
			r->retry_after = -diff;
		ttl = base - now;
		r->new_tat = tat;
	}
	else
	{
		r->allowed = true;
		ttl = new_tat - now;
		r->new_tat = (int64) new_tat;
	}
	next = dvt - ttl;
	if (next > 0)
	{
		int128		rem = next * count / period_ns;

		r->remaining = (int) Min(rem, (int128) r->limit);
	}
	else
		r->remaining = 0;
	r->reset_after = ttl;
}

Datum
singleton_rate_limit(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text	   *key_t;
	const char *name;
	int			len;
	int32		max_burst;
	int32		count;
	Interval   *period;
	int32		quantity;
	int128		period_us;
	int128		period_ns;
	int64		now;
	SingletonKey key;
	LimiterEntry *e;
	dsa_pointer chunk = InvalidDsaPointer;
	GcraResult	r;
	Datum		values[5];
	bool		nulls[5];
	Oid			userid = GetUserId();

	singleton_attach();
	/* before any token is spent: fails if the caller cannot take a set */
	InitMaterializedSRF(fcinfo, 0);
	singleton_require_arg(fcinfo, 0, "key");
	singleton_require_arg(fcinfo, 1, "max_burst");
	singleton_require_arg(fcinfo, 2, "count_per_period");
	singleton_require_arg(fcinfo, 3, "period");

	key_t = PG_GETARG_TEXT_PP(0);
	name = VARDATA_ANY(key_t);
	len = VARSIZE_ANY_EXHDR(key_t);
	check_limiter_key(len);
	max_burst = PG_GETARG_INT32(1);
	count = PG_GETARG_INT32(2);
	period = PG_GETARG_INTERVAL_P(3);
	/* quantity is optional: NULL means its default, 1 */
	quantity = PG_ARGISNULL(4) ? 1 : PG_GETARG_INT32(4);

	if (max_burst < 0 || max_burst == PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_burst must be between 0 and %d", PG_INT32_MAX - 1)));
	if (count <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("count_per_period must be positive")));
	if (quantity < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("quantity must not be negative")));

	if (!SINGLETON_INTERVAL_IS_FINITE(period))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("period must be finite")));
	period_us = (int128) period->time +
		(int128) period->day * USECS_PER_DAY +
		(int128) period->month * DAYS_PER_MONTH * USECS_PER_DAY;
	if (period_us <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("period must be positive")));
	period_ns = Min(period_us * LIMITER_NS_PER_US, (int128) LIMITER_NS_MAX);

	now = (int64) singleton_now_ns();
	limiter_sweep(now);

	singleton_lookup_key(&key, MyDatabaseId, name, len);
	for (;;)
	{
		bool		found;

		e = dshash_find(singleton_limiters, &key, true);
		if (e != NULL)
			break;
		if (quantity == 0)
			break;				/* inspecting an absent key: bucket is full */
		if (!DsaPointerIsValid(chunk))
		{
			quota_check(userid, len + LIMITER_ENTRY_OVERHEAD);
			chunk = singleton_chunk_build(userid, name, len, "", 0, NULL, 0);
			continue;
		}
		e = singleton_find_or_insert(singleton_limiters, &key, &found, chunk, len, userid);
		if (!found)
		{
			e->key.namelen = (uint32) len;
			e->key.name = chunk;
			e->tat_ns = 0;
			e->creator = userid;
			chunk = InvalidDsaPointer;
			pg_atomic_fetch_add_u32(&singleton_shared->limiter_keys, 1);
			singleton_account_memory(userid, LIMITER_ENTRY_OVERHEAD);
		}
		break;
	}

	gcra_step(e ? e->tat_ns : 0, now, max_burst, count, period_ns, quantity, &r);
	if (e != NULL)
	{
		if (r.allowed)
			e->tat_ns = r.new_tat;
		if (e->tat_ns <= now)
			limiter_remove_locked(e);	/* a full bucket needs no state */
		else
			dshash_release_lock(singleton_limiters, e);
	}
	if (DsaPointerIsValid(chunk))
		singleton_chunk_free(chunk, len, userid);

	if (r.allowed)
		SINGLETON_COUNT(limiter_allowed, 1);
	else
		SINGLETON_COUNT(limiter_refused, 1);

	memset(nulls, 0, sizeof(nulls));
	values[0] = BoolGetDatum(r.allowed);
	values[1] = Int32GetDatum(r.limit);
	values[2] = Int32GetDatum(r.remaining);
	if (r.retry_after < 0)
		nulls[3] = true;
	else
		values[3] = IntervalPGetDatum(interval_from_ns(r.retry_after));
	values[4] = IntervalPGetDatum(interval_from_ns(Max(r.reset_after, 0)));
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/*
 * singleton_rate_limit_reset(key): forget one key's state in the current
 * database, as redis_rate's Reset(key): its bucket is full again.  Allowed
 * to the role the key is charged to and roles with its privileges.  True
 * if the key had state.
 */
Datum
singleton_rate_limit_reset(PG_FUNCTION_ARGS)
{
	text	   *key_t;
	int			len;
	SingletonKey key;
	Oid			ok_creator = GetUserId();

	singleton_attach();
	singleton_require_arg(fcinfo, 0, "key");
	key_t = PG_GETARG_TEXT_PP(0);
	len = VARSIZE_ANY_EXHDR(key_t);
	check_limiter_key(len);

	singleton_lookup_key(&key, MyDatabaseId, VARDATA_ANY(key_t), len);
	for (;;)
	{
		LimiterEntry *e = dshash_find(singleton_limiters, &key, true);

		if (e == NULL)
			PG_RETURN_BOOL(false);
		if (e->creator != ok_creator)
		{
			Oid			creator = e->creator;

			/* check without the lock, then look again */
			dshash_release_lock(singleton_limiters, e);
			if (!has_privs_of_role(GetUserId(), creator))
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied for rate limiter key \"%.*s\"",
								len, VARDATA_ANY(key_t)),
						 errdetail("Only roles with the privileges of the role that made the key may reset it.")));
			ok_creator = creator;
			continue;
		}
		limiter_remove_locked(e);
		PG_RETURN_BOOL(true);
	}
}

/*
 * singleton_rate_limit_purge(role regrole DEFAULT NULL): forget the state
 * of every limiter key of every database, or of the keys one role made.
 * For administrators (revoked from PUBLIC).  Returns how many were removed.
 */
Datum
singleton_rate_limit_purge(PG_FUNCTION_ARGS)
{
	LimiterFilter f = {0};

	singleton_attach();
	if (!PG_ARGISNULL(0))
	{
		f.creator = PG_GETARG_OID(0);
		if (!OidIsValid(f.creator))
			PG_RETURN_INT64(0);
	}
	PG_RETURN_INT64(limiter_remove_matching(&f));
}
