/*-------------------------------------------------------------------------
 *
 * singleton.h
 *		Declarations shared by the singleton extension's source files.
 *
 * Shared memory has two parts.  A fixed part in the main segment (the
 * SingletonShared struct, per-backend counter slots, the registry rate
 * limiter's ring and the in-place DSA control area) is sized at postmaster
 * start.  The dynamic part is a DSA area, capped by singleton.memory_limit,
 * that holds two dshash tables: the registry and the per-key rate limiters.
 *
 * Locking: entries are protected by their dshash partition lock.  The
 * registry limiter's ring is protected by a spinlock.  Counters are atomics
 * in per-backend slots, each written by one backend only.  No lock is ever
 * held across anything that can ERROR on purpose, allocate, run SQL or sleep.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SINGLETON_H
#define SINGLETON_H

#include "postgres.h"

#include "compat.h"
#include "fmgr.h"
#include "lib/dshash.h"
#include "lib/stringinfo.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/condition_variable.h"
#include "storage/spin.h"
#include "utils/dsa.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

/* Limits that are part of the documented interface. */
#define SINGLETON_NAME_MAX			255
#define SINGLETON_TYPE_MAX			63
#define SINGLETON_RATE_LIMIT_MAX	100000
#define SINGLETON_FACTORY_CVS		32
#define SINGLETON_WAIT_TIMEOUT_DEFAULT	60000	/* ms */

/* GUCs (singleton.c) */
extern int	singleton_memory_limit_mb;
extern int	singleton_max_value_size;
extern int	singleton_wait_timeout;
extern int	singleton_ops_per_second;

/*
 * Per-backend counters.  Each slot is written by the backend that owns the
 * PGPROC index (with uncontended atomic adds) and summed by readers, so the hot
 * path never bounces a shared cache line between cores.  Slots outlive their
 * backends: the sums are instance totals since server start.
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
	/* factory deadlock detection: who this backend waits for, if anyone */
	pg_atomic_uint32 pid;
	pg_atomic_uint32 waiting_for_pid;
} SingletonCounters;

typedef union SingletonCounterSlot
{
	SingletonCounters c;
	char		pad[128];		/* keep each slot on its own cache lines */
} SingletonCounterSlot;

typedef struct SingletonShared
{
	int			tranche_id;		/* for the DSA area and both dshash tables */
	size_t		memory_limit;	/* bytes, fixed at start */
	dshash_table_handle registry_handle;
	dshash_table_handle limiter_handle;

	pg_atomic_uint64 memory_used;	/* bytes requested for entries and keys */
	pg_atomic_uint64 generation;	/* source of entry write generations */
	pg_atomic_uint32 entry_count;	/* registry entries, all databases */
	pg_atomic_uint32 limiter_keys;	/* per-key limiter states */
	pg_atomic_uint64 limiter_last_sweep_ns;
	pg_atomic_uint32 full;		/* an allocation failed; cleared on free */

	/* registry rate limiter: ring of the last rl_limit admission times */
	slock_t		rl_mutex;
	int			rl_limit;		/* limit the ring is set up for */
	int			rl_filled;		/* admissions recorded, <= rl_limit */
	int			rl_pos;			/* next slot; the oldest once full */
	pg_atomic_uint64 rate_limited_count;

	ConditionVariable factory_cv[SINGLETON_FACTORY_CVS];

	/* persistence (persist.c); the mutex protects all but the atomic */
	struct
	{
		pg_atomic_uint32 loaded;	/* snapshot load over (or skipped) */
		pg_atomic_uint32 unloaded_file;	/* the file holds what the registry
										 * does not: move it aside before
										 * writing over it */
		pg_atomic_uint32 load_failures;	/* load attempts that raised an error */
		ConditionVariable load_cv;
		slock_t		mutex;
		int			pid;
		TimestampTz last_snapshot;
		uint64		last_entries;
		uint64		last_bytes;
		char		last_error[256];
	}			persist;

	int			nslots;			/* counter slots (MaxBackends + 1) */
} SingletonShared;

/* Fixed shared memory, set up by singleton.c */
extern SingletonShared *singleton_shared;
extern SingletonCounterSlot *singleton_slots;
extern int64 *singleton_rl_ring;

/* Backend-local attachment to the dynamic part. */
extern dsa_area *singleton_area;
extern dshash_table *singleton_registry;
extern dshash_table *singleton_limiters;

/* singleton.c */
extern void singleton_require_loaded(void);
extern void singleton_attach(void);
extern void singleton_require_arg(FunctionCallInfo fcinfo, int argno,
								  const char *what);
extern SingletonCounters *singleton_my_counters(void);
pg_noreturn extern void singleton_error_full(Size request);
extern uint64 singleton_now_ns(void);

/* What a process of ours waits for, shown in pg_stat_activity. */
typedef enum SingletonWait
{
	SINGLETON_WAIT_FACTORY,		/* another session's factory */
	SINGLETON_WAIT_LOAD,		/* the snapshot load at startup */
	SINGLETON_WAIT_LAUNCHER,	/* the job launcher's idle loop */
	SINGLETON_WAIT_PERSIST,		/* the persist worker's idle loop */
	SINGLETON_WAIT_JOB,			/* singleton_job_wait, for a run to finish */
	SINGLETON_WAIT_COUNT
} SingletonWait;

extern uint32 singleton_wait_event(SingletonWait which);
extern void singleton_register_worker(const char *name, const char *function,
									  BgWorkerStartTime start_time, int flags);

#define SINGLETON_COUNT(field, n) \
	pg_atomic_fetch_add_u64(&singleton_my_counters()->field, (n))

/*
 * Keys of both dshash tables: database plus a name of up to 255 bytes.
 * PostgreSQL 15's dshash has fixed-size keys only, so the name lives in a
 * DSA chunk and the key holds its pointer.  A lookup key instead carries a
 * backend-local char pointer in the same field, flagged in namelen; the
 * hash and compare functions resolve either form.
 */
typedef struct SingletonKey
{
	Oid			dbid;
	uint32		namelen;		/* length, | SINGLETON_KEY_LOCAL for lookups */
	dsa_pointer name;			/* DSA chunk, or (uintptr_t) char * */
} SingletonKey;

#define SINGLETON_KEY_LOCAL 0x80000000U

extern int	singleton_key_compare(const void *a, const void *b, size_t size, void *arg);
extern dshash_hash singleton_key_hash(const void *v, size_t size, void *arg);

static inline void
singleton_lookup_key(SingletonKey *key, Oid dbid, const char *name, int len)
{
	key->dbid = dbid;
	key->namelen = (uint32) len | SINGLETON_KEY_LOCAL;
	key->name = (dsa_pointer) (uintptr_t) name;
}

/* Bytes dshash spends per item before the entry (its private header). */
#define SINGLETON_DSHASH_ITEM_HEADER	16

/* registry.c */
extern void singleton_check_name(const char *name, int len);
extern Jsonb *registry_read(const char *name, int len, bool count_access);

/* ratelimit.c */
extern bool ratelimit_admit(void);
extern void ratelimit_require(const char *what);
extern void limiter_purge_database(Oid dbid);

/* factory.c */
extern void factory_init_backend(void);

/* persist.c */
extern bool singleton_persist;
extern int	singleton_persist_interval;
extern void persist_register_worker(void);
extern bool persist_loader_registered(void);
extern void persist_wait_for_load(void);
extern void persist_append_health(StringInfo buf, bool show_bytes);

/* The condition variable factory waiters of one name sleep on. */
static inline ConditionVariable *
singleton_factory_cv(Oid dbid, const char *name, int len)
{
	SingletonKey key;

	singleton_lookup_key(&key, dbid, name, len);
	return &singleton_shared->factory_cv[singleton_key_hash(&key, sizeof(key), NULL) %
										 SINGLETON_FACTORY_CVS];
}

#endif							/* SINGLETON_H */
