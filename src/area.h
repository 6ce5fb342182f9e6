/*-------------------------------------------------------------------------
 *
 * area.h
 *		The bottom layer of singleton's shared memory: the DSA area that
 *		holds the stores' tables and chunks, its memory accounting, the key
 *		type of every table, the load gate and the per-backend counter slots.
 *
 * Every store (registry.c, limiter.c) keeps its dshash table in this area,
 * keyed by SingletonKey, and allocates its chunks through
 * singleton_area_alloc, so memory is charged to a role and counted once.
 * The locking protocol of all shared objects is in src/README (LOCKING).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SINGLETON_AREA_H
#define SINGLETON_AREA_H

#include "postgres.h"

#include "common.h"
#include "lib/dshash.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "utils/dsa.h"

/* GUC (singleton.c): cap of the area, in MB */
extern int	singleton_memory_limit_mb;

/*
 * Keys of every table in the area: database plus a name of up to 255 bytes.
 * PostgreSQL 15's dshash has fixed-size keys only, so the name lives in a
 * DSA chunk and the key holds its pointer.  A lookup key instead carries a
 * backend-local char pointer in the same field, flagged in namelen; the
 * hash and compare functions resolve either form.  The chunk a stored key
 * points to must start with the name bytes: a store may swap key.name for
 * another chunk that starts with the same bytes (same hash, same order)
 * under the entry's partition lock, never for other bytes.
 */
typedef struct SingletonKey
{
	Oid			dbid;
	uint32		namelen;		/* length | tag << 16, | SINGLETON_KEY_LOCAL
								 * for lookups */
	dsa_pointer name;			/* DSA chunk, or (uintptr_t) char * */
} SingletonKey;

#define SINGLETON_KEY_LOCAL 0x80000000U
#define SINGLETON_KEY_LEN(k)	((k)->namelen & 0xFFFF)
/* length and tag: what a stored key keeps of its lookup key's namelen */
#define SINGLETON_KEY_SHAPE(k)	((k)->namelen & ~SINGLETON_KEY_LOCAL)

/*
 * A 15-bit tag of a name, kept in the key beside its length so that most
 * comparisons with another name of the same length (a neighbour in the
 * same hash bucket) end without following the name's DSA pointer, a cache
 * miss in a large table.  Names of one shape differ most in their last
 * bytes (counters, ids), so those and the middle byte make the tag.
 */
static inline uint32
singleton_name_tag(const char *name, int len)
{
	const unsigned char *b = (const unsigned char *) name;
	uint32		t;

	if (len <= 0)
		return 0;
	t = b[len - 1] ^ ((uint32) b[len >> 1] << 7);
	if (len > 1)
		t ^= (uint32) b[len - 2] << 4;
	return t & 0x7FFF;
}

extern int	singleton_key_compare(const void *a, const void *b, size_t size, void *arg);
extern dshash_hash singleton_key_hash(const void *v, size_t size, void *arg);

static inline void
singleton_lookup_key(SingletonKey *key, Oid dbid, const char *name, int len)
{
	key->dbid = dbid;
	key->namelen = (uint32) len | singleton_name_tag(name, len) << 16 | SINGLETON_KEY_LOCAL;
	key->name = (dsa_pointer) (uintptr_t) name;
}

/* dshash_parameters of a table of the area with items of this size. */
#define SINGLETON_TABLE_PARAMS(item_size) { \
	.key_size = sizeof(SingletonKey), \
	.entry_size = (item_size), \
	.compare_function = singleton_key_compare, \
	.hash_function = singleton_key_hash, \
	SINGLETON_DSHASH_COPY \
}

/*
 * Bytes dshash spends per item before the entry (its private header,
 * dshash_table_item: a next pointer and the hash), counted in the memory a
 * store's item uses.
 */
#define SINGLETON_DSHASH_ITEM_HEADER	16

/*
 * Per-backend counters.  Each slot belongs to one PGPROC index and is
 * written with atomic adds, so the hot path never bounces a shared cache
 * line between cores; readers sum the slots.  Processes without a PGPROC
 * index in range share the last slot, which is why every field is atomic.
 * Slots outlive their backends: the sums are totals since server start.
 */
typedef struct SingletonCounters
{
	pg_atomic_uint64 gets;
	pg_atomic_uint64 hits;
	pg_atomic_uint64 misses;
	pg_atomic_uint64 sets;
	pg_atomic_uint64 deletes;
	pg_atomic_uint64 incrs;
	pg_atomic_uint64 factory_runs;
	pg_atomic_uint64 factory_failures;
	pg_atomic_uint64 factory_waits;
	pg_atomic_uint64 factory_wait_us;
	pg_atomic_uint64 limiter_allowed;
	pg_atomic_uint64 limiter_refused;
} SingletonCounters;

#define SINGLETON_CACHE_LINE_PAIR	128

typedef union SingletonCounterSlot
{
	SingletonCounters c;
	char		pad[SINGLETON_CACHE_LINE_PAIR];	/* own cache lines per slot */
} SingletonCounterSlot;

/* The area's fixed shared state (in the main shared memory segment). */
typedef struct SingletonAreaShared
{
	int			tranche_id;		/* set at startup, then read-only */
	size_t		memory_limit;	/* bytes, set at startup, then read-only */
	pg_atomic_uint64 memory_used;	/* bytes charged for items and chunks */
	pg_atomic_uint32 full;		/* an allocation failed; cleared on free */
	pg_atomic_uint32 open;		/* the gate: the snapshot load is over */
	ConditionVariable open_cv;	/* broadcast when the gate opens */
	int			nslots;			/* counter slots, set at startup */
} SingletonAreaShared;

extern SingletonAreaShared *singleton_area_shared;
extern SingletonCounterSlot *singleton_counter_slots;
extern dsa_area *singleton_area;	/* this backend's mapping, once attached */

/* Start-up (postmaster, under AddinShmemInitLock). */
extern Size singleton_area_shmem_size(void);
extern dsa_area *singleton_area_shmem_init(bool *found);
extern dshash_table_handle singleton_area_create_table(dsa_area *area,
													   const dshash_parameters *params);
extern void singleton_area_shmem_done(dsa_area *area);

/* Backends. */
extern void singleton_require_loaded(void);
extern void singleton_area_attach(void);
extern dshash_table *singleton_area_attach_table(const dshash_parameters *params,
												 dshash_table_handle handle);
extern void singleton_area_open_gate(void);
extern void singleton_area_pass_gate(void);
extern bool singleton_area_gate_is_open(void);

extern void singleton_area_check_share(Oid role, Size request);
extern dsa_pointer singleton_area_alloc(Oid role, Size size);
extern void singleton_area_free(dsa_pointer dp, Size size, Oid role);
extern void singleton_area_account(Oid role, int64 delta);
pg_noreturn extern void singleton_area_error_full(Size request);
extern void *singleton_area_find_or_insert(dshash_table *table, SingletonKey *key,
										   bool *found, Size item_size,
										   dsa_pointer chunk, Size chunk_size,
										   Oid chunk_role);

extern SingletonCounters *singleton_my_counters(void);

#define SINGLETON_COUNT(field, n) \
	pg_atomic_fetch_add_u64(&singleton_my_counters()->field, (n))

#endif							/* SINGLETON_AREA_H */
