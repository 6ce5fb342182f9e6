/*-------------------------------------------------------------------------
 *
 * area.c
 *		The bottom layer: the DSA area of the stores, memory accounting,
 *		the key type, the load gate and the per-backend counter slots.
 *
 * The fixed part (SingletonAreaShared, the counter slots and the DSA
 * area's first segment) lives in the main shared memory segment.  The area
 * is created in place there at startup, limited to that segment while the
 * stores create their tables (so the postmaster never creates a DSM
 * segment), then capped at singleton.memory_limit.  Backends attach
 * lazily, after the gate has opened.
 *
 * Locking: memory_used, full and open are atomics; open_cv is a condition
 * variable; the rest is written at startup only.  The DSA area has its own
 * locks, which rank after the stores' partition locks (see src/README).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/memutils.h"

#include "area.h"
#include "compat.h"
#include "quota.h"

/* Size of the DSA area's first segment, carved out of the fixed part. */
#define AREA_INPLACE_SIZE	(256 * 1024)

#define BYTES_PER_MB		((size_t) 1024 * 1024)

int			singleton_memory_limit_mb = 64;

SingletonAreaShared *singleton_area_shared = NULL;
SingletonCounterSlot *singleton_counter_slots = NULL;
dsa_area   *singleton_area = NULL;

static char *area_place = NULL;

/* This process may use the area before the gate opens (the loader). */
static bool passed_gate = false;

static int
counter_slot_count(void)
{
	/* one slot per backend PGPROC, plus one shared overflow slot */
	return MaxBackends + 1;
}

Size
singleton_area_shmem_size(void)
{
	Size		size = MAXALIGN(sizeof(SingletonAreaShared));

	size = add_size(size, mul_size(counter_slot_count(), sizeof(SingletonCounterSlot)));
	return add_size(size, AREA_INPLACE_SIZE);
}

static void
init_counter_slots(int nslots)
{
	int			i;

	memset(singleton_counter_slots, 0, nslots * sizeof(SingletonCounterSlot));
	for (i = 0; i < nslots; i++)
	{
		SingletonCounters *c = &singleton_counter_slots[i].c;

		pg_atomic_init_u64(&c->gets, 0);
		pg_atomic_init_u64(&c->hits, 0);
		pg_atomic_init_u64(&c->misses, 0);
		pg_atomic_init_u64(&c->sets, 0);
		pg_atomic_init_u64(&c->deletes, 0);
		pg_atomic_init_u64(&c->incrs, 0);
		pg_atomic_init_u64(&c->factory_runs, 0);
		pg_atomic_init_u64(&c->factory_failures, 0);
		pg_atomic_init_u64(&c->factory_waits, 0);
		pg_atomic_init_u64(&c->factory_wait_us, 0);
		pg_atomic_init_u64(&c->limiter_allowed, 0);
		pg_atomic_init_u64(&c->limiter_refused, 0);
	}
}

/*
 * Carve the fixed part and, the first time, create the area in place.
 * Returns the postmaster's temporary mapping of a new area (the stores
 * create their tables in it, then singleton_area_shmem_done), or NULL if
 * the area already existed.  Caller holds AddinShmemInitLock.
 */
dsa_area *
singleton_area_shmem_init(bool *found)
{
	char	   *base;
	SingletonAreaShared *s;
	dsa_area   *area;

	/* after a crash-restart the postmaster must forget the old segment */
	singleton_area = NULL;
	base = ShmemInitStruct("singleton area", singleton_area_shmem_size(), found);
	singleton_area_shared = s = (SingletonAreaShared *) base;
	base += MAXALIGN(sizeof(SingletonAreaShared));
	singleton_counter_slots = (SingletonCounterSlot *) base;
	base += counter_slot_count() * sizeof(SingletonCounterSlot);
	area_place = base;
	if (*found)
		return NULL;

	memset(s, 0, sizeof(SingletonAreaShared));
	s->memory_limit = (size_t) singleton_memory_limit_mb * BYTES_PER_MB;
	s->nslots = counter_slot_count();
	pg_atomic_init_u64(&s->memory_used, 0);
	pg_atomic_init_u32(&s->full, 0);
	pg_atomic_init_u32(&s->open, 0);
	ConditionVariableInit(&s->open_cv);
	init_counter_slots(s->nslots);

	s->tranche_id = LWLockNewTrancheId();
	LWLockRegisterTranche(s->tranche_id, "singleton");
	area = dsa_create_in_place(area_place, AREA_INPLACE_SIZE, s->tranche_id, NULL);
	dsa_pin(area);
	/* keep the tables' control data in the in-place segment */
	dsa_set_size_limit(area, AREA_INPLACE_SIZE);
	return area;
}

/* Create a table in a new area (startup only); returns its handle. */
dshash_table_handle
singleton_area_create_table(dsa_area *area, const dshash_parameters *params)
{
	dshash_parameters p = *params;
	dshash_table *table;
	dshash_table_handle handle;

	p.tranche_id = singleton_area_shared->tranche_id;
	table = dshash_create(area, &p, area);
	handle = dshash_get_hash_table_handle(table);
	dshash_detach(table);
	return handle;
}

/* The stores have their tables: cap the area and let go of it. */
void
singleton_area_shmem_done(dsa_area *area)
{
	dsa_set_size_limit(area, Max(singleton_area_shared->memory_limit, AREA_INPLACE_SIZE));
	/* the postmaster never touches the area again */
	dsa_detach(area);
}

void
singleton_require_loaded(void)
{
	if (singleton_area_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("singleton must be loaded via shared_preload_libraries"),
				 errhint("Add singleton to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/*
 * The gate: no process but the loader (which passes it) uses the area
 * before the snapshot load is over, so no write can race the load.  The
 * wait has no time limit (loading a large registry takes seconds) but can
 * be cancelled like any query.
 */
void
singleton_area_open_gate(void)
{
	pg_atomic_write_u32(&singleton_area_shared->open, 1);
	ConditionVariableBroadcast(&singleton_area_shared->open_cv);
}

/* The loader uses the area before the gate opens. */
void
singleton_area_pass_gate(void)
{
	passed_gate = true;
}

bool
singleton_area_gate_is_open(void)
{
	return pg_atomic_read_u32(&singleton_area_shared->open) != 0;
}

static void
wait_for_gate(void)
{
	ConditionVariable *cv = &singleton_area_shared->open_cv;

	if (passed_gate || pg_atomic_read_u32(&singleton_area_shared->open) ||
		!IsUnderPostmaster)
		return;
	ConditionVariablePrepareToSleep(cv);
	while (!pg_atomic_read_u32(&singleton_area_shared->open))
		(void) ConditionVariableTimedSleep(cv, 1000, singleton_wait_event(SINGLETON_WAIT_LOAD));
	ConditionVariableCancelSleep();
}

/*
 * Map the area in this backend, once (the mapping survives transaction
 * ends).  The gate wait comes before the mapping the fast path tests, so a
 * cancelled wait is simply waited again by the next call.
 */
void
singleton_area_attach(void)
{
	MemoryContext oldcxt;

	if (likely(singleton_area != NULL))
		return;
	singleton_require_loaded();
	wait_for_gate();
	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	LWLockRegisterTranche(singleton_area_shared->tranche_id, "singleton");
	singleton_area = dsa_attach_in_place(area_place, NULL);
	dsa_pin_mapping(singleton_area);
	MemoryContextSwitchTo(oldcxt);
}

/* Attach one of the area's tables in this backend (area attached). */
dshash_table *
singleton_area_attach_table(const dshash_parameters *params, dshash_table_handle handle)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	dshash_parameters p = *params;
	dshash_table *table;

	p.tranche_id = singleton_area_shared->tranche_id;
	table = dshash_attach(singleton_area, &p, handle, singleton_area);
	MemoryContextSwitchTo(oldcxt);
	return table;
}

/*
 * Raise the registry-full error (53200) if charging request more bytes to
 * role would take it past its share.  Call before allocating, outside any
 * lock.
 */
void
singleton_area_check_share(Oid role, Size request)
{
	singleton_quota_check(role, request, singleton_area_shared->memory_limit);
}

/* Count bytes allocated (delta > 0) or freed, globally and for a role. */
void
singleton_area_account(Oid role, int64 delta)
{
	SingletonAreaShared *s = singleton_area_shared;

	singleton_quota_charge(role, delta);
	if (delta >= 0)
		pg_atomic_fetch_add_u64(&s->memory_used, (uint64) delta);
	else
	{
		pg_atomic_fetch_sub_u64(&s->memory_used, (uint64) -delta);
		/* freed memory makes room again */
		if (pg_atomic_read_u32(&s->full))
			pg_atomic_write_u32(&s->full, 0);
	}
}

void
singleton_area_error_full(Size request)
{
	SingletonAreaShared *s = singleton_area_shared;

	pg_atomic_write_u32(&s->full, 1);
	ereport(ERROR,
			(errcode(ERRCODE_OUT_OF_MEMORY),
			 errmsg("singleton registry is full"),
			 errdetail("A request for %zu bytes could not be met; entries use %llu bytes of the %zu-byte limit.",
					   request, (unsigned long long) pg_atomic_read_u64(&s->memory_used),
					   s->memory_limit),
			 errhint("Delete entries, or raise singleton.memory_limit and restart the server.")));
}

/*
 * A chunk of size bytes charged to role, or the registry-full error
 * (DSA_ALLOC_NO_OOM, then ereport).  Call with no lock of ours held.
 */
dsa_pointer
singleton_area_alloc(Oid role, Size size)
{
	dsa_pointer dp = dsa_allocate_extended(singleton_area, size, DSA_ALLOC_NO_OOM);

	if (!DsaPointerIsValid(dp))
		singleton_area_error_full(size);
	if (pg_atomic_read_u32(&singleton_area_shared->full))
		pg_atomic_write_u32(&singleton_area_shared->full, 0);
	singleton_area_account(role, (int64) size);
	return dp;
}

/* Free a chunk charged to role. */
void
singleton_area_free(dsa_pointer dp, Size size, Oid role)
{
	dsa_free(singleton_area, dp);
	singleton_area_account(role, -(int64) size);
}

/*
 * dshash_find_or_insert, turning "out of DSA memory" inside dshash into the
 * registry-full error, and freeing the caller's chunk on any error.  dshash
 * raises that error with the key's partition lock still held; PostgreSQL's
 * error recovery releases it.  Freeing the chunk meanwhile takes the area's
 * locks after the partition lock, the order dshash itself allocates in.
 * dshash's backend-local state is untouched by a failed insert, so the
 * table handle stays usable.  item_size is what an item costs (for the
 * error's detail).
 */
void *
singleton_area_find_or_insert(dshash_table *table, SingletonKey *key, bool *found,
							  Size item_size, dsa_pointer chunk, Size chunk_size,
							  Oid chunk_role)
{
	MemoryContext mcxt = CurrentMemoryContext;
	void	   *entry = NULL;

	PG_TRY();
	{
		entry = dshash_find_or_insert(table, key, found);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(mcxt);
		if (DsaPointerIsValid(chunk))
			singleton_area_free(chunk, chunk_size, chunk_role);
		edata = CopyErrorData();
		if (edata->sqlerrcode != ERRCODE_OUT_OF_MEMORY)
			PG_RE_THROW();
		FlushErrorState();
		singleton_area_error_full(item_size);
	}
	PG_END_TRY();
	return entry;
}

SingletonCounters *
singleton_my_counters(void)
{
	int			slot = SINGLETON_MY_PROC_INDEX();
	int			last = singleton_area_shared->nslots - 1;

	/* backends are 0..MaxBackends-1; the last slot catches anything else */
	if (slot < 0 || slot >= last)
		slot = last;
	return &singleton_counter_slots[slot].c;
}

static inline const char *
key_name(const SingletonKey *key, dsa_area *area)
{
	if (key->namelen & SINGLETON_KEY_LOCAL)
		return (const char *) (uintptr_t) key->name;
	return (const char *) dsa_get_address(area, key->name);
}

int
singleton_key_compare(const void *a, const void *b, size_t size, void *arg)
{
	const SingletonKey *ka = (const SingletonKey *) a;
	const SingletonKey *kb = (const SingletonKey *) b;
	uint32		sa = SINGLETON_KEY_SHAPE(ka);
	uint32		sb = SINGLETON_KEY_SHAPE(kb);

	if (ka->dbid != kb->dbid)
		return ka->dbid < kb->dbid ? -1 : 1;
	/* different lengths or tags: different names, no need to read them */
	if (sa != sb)
		return sa < sb ? -1 : 1;
	return memcmp(key_name(ka, arg), key_name(kb, arg), SINGLETON_KEY_LEN(ka));
}

dshash_hash
singleton_key_hash(const void *v, size_t size, void *arg)
{
	const SingletonKey *k = (const SingletonKey *) v;

	return hash_combine(murmurhash32(k->dbid),
						hash_bytes((const unsigned char *) key_name(k, arg), SINGLETON_KEY_LEN(k)));
}
