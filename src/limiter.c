/*-------------------------------------------------------------------------
 *
 * limiter.c
 *		Per-key GCRA limiters (singleton_rate_limit), as redis-cell's
 *		CL.THROTTLE: a store in the area.
 *
 * State is one theoretical arrival time per (database, key) in a dshash
 * table in the area, updated under the key's partition lock with pure
 * integer arithmetic (128-bit nanoseconds).  A key whose bucket is full
 * again carries no information and is deleted, on its next use or by a
 * sweep that runs at most once a second.  Each key's text chunk and item
 * are charged to the role that made it (quota.c via area.c).
 *
 * Locking: a key is read and written under its partition lock (exclusive);
 * scans lock one partition at a time.  Under a partition lock this file
 * does arithmetic, deletes items and frees chunks (the area's locks rank
 * after partition locks, as in dshash itself); it allocates only before.
 * LimiterShared: keys and last_sweep_ns are atomics, handle is set at
 * startup.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "datatype/timestamp.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "area.h"
#include "common.h"
#include "compat.h"
#include "limiter.h"

PG_FUNCTION_INFO_V1(singleton_rate_limit);
PG_FUNCTION_INFO_V1(singleton_rate_limit_reset);
PG_FUNCTION_INFO_V1(singleton_rate_limit_purge);

#define LIMITER_NS_PER_US	1000
/* Durations are clamped here (about 146 years) so stored times fit int64. */
#define LIMITER_NS_MAX	(INT64CONST(1) << 62)

typedef struct LimiterShared
{
	dshash_table_handle handle;	/* set at startup */
	pg_atomic_uint32 keys;		/* keys with state, all databases */
	pg_atomic_uint64 last_sweep_ns; /* when a backend last swept */
} LimiterShared;

static LimiterShared *limiter = NULL;
static dshash_table *limiter_table = NULL;

static const dshash_parameters limiter_params = SINGLETON_TABLE_PARAMS(sizeof(LimiterEntry));

Size
singleton_limiter_shmem_size(void)
{
	return MAXALIGN(sizeof(LimiterShared));
}

/* new_area: the area being created, or NULL if it exists already. */
void
singleton_limiter_shmem_init(dsa_area *new_area)
{
	bool		found;

	limiter = ShmemInitStruct("singleton limiter", singleton_limiter_shmem_size(), &found);
	limiter_table = NULL;
	if (found || new_area == NULL)
		return;
	limiter->handle = singleton_area_create_table(new_area, &limiter_params);
	pg_atomic_init_u32(&limiter->keys, 0);
	pg_atomic_init_u64(&limiter->last_sweep_ns, 0);
}

static void
limiter_attach(void)
{
	if (likely(limiter_table != NULL))
		return;
	singleton_area_attach();
	limiter_table = singleton_area_attach_table(&limiter_params, limiter->handle);
}

/*
 * Give back what a limiter key held, once it is out of the table: its key
 * text chunk and its share of memory.  Takes no lock.
 */
static void
limiter_release(dsa_pointer chunk, Size len, Oid creator)
{
	singleton_area_free(chunk, len, creator);
	singleton_area_account(creator, -(int64) LIMITER_ENTRY_OVERHEAD);
	pg_atomic_fetch_sub_u32(&limiter->keys, 1);
}

/* Remove a key the caller has locked (dshash_find); releases the lock. */
static void
limiter_remove_locked(LimiterEntry *e)
{
	dsa_pointer chunk = e->key.name;
	Size		len = SINGLETON_KEY_LEN(&e->key);
	Oid			creator = e->creator;

	dshash_delete_entry(limiter_table, e);
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

	dshash_seq_init(&status, limiter_table, true);
	while ((e = dshash_seq_next(&status)) != NULL)
	{
		if (all || (f->full_before != 0 && e->tat_ns <= f->full_before) ||
			(OidIsValid(f->dbid) && e->key.dbid == f->dbid) ||
			(OidIsValid(f->creator) && e->creator == f->creator))
		{
			dsa_pointer chunk = e->key.name;
			Size		len = SINGLETON_KEY_LEN(&e->key);
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
	uint64		last = pg_atomic_read_u64(&limiter->last_sweep_ns);
	LimiterFilter f = {.full_before = now};

	if (now - (int64) last < SINGLETON_NS_PER_SECOND ||
		!pg_atomic_compare_exchange_u64(&limiter->last_sweep_ns, &last, (uint64) now))
		return;
	(void) limiter_remove_matching(&f);
}

/* Remove every limiter key of a database (it was dropped, or is new). */
void
singleton_limiter_purge_database(Oid dbid)
{
	LimiterFilter f = {.dbid = dbid};

	limiter_attach();
	(void) limiter_remove_matching(&f);
}

uint32
singleton_limiter_key_count(void)
{
	return pg_atomic_read_u32(&limiter->keys);
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

/* The arguments of one singleton_rate_limit call, checked. */
typedef struct LimiterCall
{
	const char *key;
	int			len;
	int32		max_burst;
	int32		count;
	int128		period_ns;
	int32		quantity;
} LimiterCall;

static void
read_limiter_call(FunctionCallInfo fcinfo, LimiterCall *c)
{
	text	   *key_t;
	Interval   *period;
	int128		period_us;

	singleton_require_arg(fcinfo, 0, "key");
	singleton_require_arg(fcinfo, 1, "max_burst");
	singleton_require_arg(fcinfo, 2, "count_per_period");
	singleton_require_arg(fcinfo, 3, "period");
	key_t = PG_GETARG_TEXT_PP(0);
	c->key = VARDATA_ANY(key_t);
	c->len = VARSIZE_ANY_EXHDR(key_t);
	check_limiter_key(c->len);
	c->max_burst = PG_GETARG_INT32(1);
	c->count = PG_GETARG_INT32(2);
	period = PG_GETARG_INTERVAL_P(3);
	/* quantity is optional: NULL means its default, 1 */
	c->quantity = PG_ARGISNULL(4) ? 1 : PG_GETARG_INT32(4);

	if (c->max_burst < 0 || c->max_burst == PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_burst must be between 0 and %d", PG_INT32_MAX - 1)));
	if (c->count <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("count_per_period must be positive")));
	if (c->quantity < 0)
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
	c->period_ns = Min(period_us * LIMITER_NS_PER_US, (int128) LIMITER_NS_MAX);
}

/*
 * The key's entry, locked, creating it (charged to the caller) unless the
 * call only inspects it; NULL for an absent key that is only inspected.
 */
static LimiterEntry *
find_or_create_key(const LimiterCall *c)
{
	Oid			userid = GetUserId();
	SingletonKey key;
	dsa_pointer chunk = InvalidDsaPointer;
	LimiterEntry *e;
	bool		found;

	singleton_lookup_key(&key, MyDatabaseId, c->key, c->len);
	for (;;)
	{
		e = dshash_find(limiter_table, &key, true);
		if (e != NULL || c->quantity == 0)
			break;				/* an absent key's bucket is full */
		if (DsaPointerIsValid(chunk))
		{
			e = singleton_area_find_or_insert(limiter_table, &key, &found,
											  LIMITER_ENTRY_OVERHEAD, chunk, c->len, userid);
			if (found)
				break;
			e->key.namelen = SINGLETON_KEY_SHAPE(&e->key);
			e->key.name = chunk;
			e->tat_ns = 0;
			e->creator = userid;
			pg_atomic_fetch_add_u32(&limiter->keys, 1);
			singleton_area_account(userid, LIMITER_ENTRY_OVERHEAD);
			return e;
		}
		/* allocate without the lock, then look again */
		singleton_area_check_share(userid, c->len + LIMITER_ENTRY_OVERHEAD);
		chunk = singleton_area_alloc(userid, c->len);
		memcpy(dsa_get_address(singleton_area, chunk), c->key, c->len);
	}
	if (DsaPointerIsValid(chunk))
		singleton_area_free(chunk, c->len, userid);
	return e;
}

static void
put_limiter_result(FunctionCallInfo fcinfo, const GcraResult *r)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		values[5];
	bool		nulls[5];

	memset(nulls, 0, sizeof(nulls));
	values[0] = BoolGetDatum(r->allowed);
	values[1] = Int32GetDatum(r->limit);
	values[2] = Int32GetDatum(r->remaining);
	if (r->retry_after < 0)
		nulls[3] = true;
	else
		values[3] = IntervalPGetDatum(interval_from_ns(r->retry_after));
	values[4] = IntervalPGetDatum(interval_from_ns(Max(r->reset_after, 0)));
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

Datum
singleton_rate_limit(PG_FUNCTION_ARGS)
{
	LimiterCall c;
	LimiterEntry *e;
	GcraResult	r;
	int64		now;

	limiter_attach();
	/* before any token is spent: fails if the caller cannot take a set */
	InitMaterializedSRF(fcinfo, 0);
	read_limiter_call(fcinfo, &c);

	now = (int64) singleton_now_ns();
	limiter_sweep(now);
	e = find_or_create_key(&c);
	gcra_step(e ? e->tat_ns : 0, now, c.max_burst, c.count, c.period_ns, c.quantity, &r);
	if (e != NULL)
	{
		if (r.allowed)
			e->tat_ns = r.new_tat;
		if (e->tat_ns <= now)
			limiter_remove_locked(e);	/* a full bucket needs no state */
		else
			dshash_release_lock(limiter_table, e);
	}
	if (r.allowed)
		SINGLETON_COUNT(limiter_allowed, 1);
	else
		SINGLETON_COUNT(limiter_refused, 1);
	put_limiter_result(fcinfo, &r);
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

	limiter_attach();
	singleton_require_arg(fcinfo, 0, "key");
	key_t = PG_GETARG_TEXT_PP(0);
	len = VARSIZE_ANY_EXHDR(key_t);
	check_limiter_key(len);

	singleton_lookup_key(&key, MyDatabaseId, VARDATA_ANY(key_t), len);
	for (;;)
	{
		LimiterEntry *e = dshash_find(limiter_table, &key, true);

		if (e == NULL)
			PG_RETURN_BOOL(false);
		if (e->creator != ok_creator)
		{
			Oid			creator = e->creator;

			/* check without the lock, then look again */
			dshash_release_lock(limiter_table, e);
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

	limiter_attach();
	if (!PG_ARGISNULL(0))
	{
		f.creator = PG_GETARG_OID(0);
		if (!OidIsValid(f.creator))
			PG_RETURN_INT64(0);
	}
	PG_RETURN_INT64(limiter_remove_matching(&f));
}
