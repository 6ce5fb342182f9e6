/*-------------------------------------------------------------------------
 *
 * singleton.c
 *		Module initialisation: GUCs, shared memory, lazy attachment.
 *
 * The fixed part of shared memory is requested in shmem_request_hook and
 * initialised in shmem_startup_hook under AddinShmemInitLock.  The DSA area
 * is created in place at the end of that fixed part, and both dshash tables
 * are created there too while the area is limited to its in-place size, so
 * the postmaster never creates a DSM segment.  Backends attach lazily on
 * their first call.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_database.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "singleton.h"
#include "quota.h"
#include "registry.h"
#include "worker.h"

SINGLETON_MODULE_MAGIC("1.1");

/* Size of the DSA area's first segment, carved out of the fixed part. */
#define SINGLETON_DSA_INPLACE_SIZE	(256 * 1024)

int			singleton_memory_limit_mb = 64;
int			singleton_max_value_size = 1024 * 1024;
int			singleton_wait_timeout = SINGLETON_WAIT_TIMEOUT_DEFAULT;
int			singleton_ops_per_second = 0;

SingletonShared *singleton_shared = NULL;
SingletonCounterSlot *singleton_slots = NULL;
int64	   *singleton_rl_ring = NULL;
static char *singleton_dsa_place = NULL;

dsa_area   *singleton_area = NULL;
dshash_table *singleton_registry = NULL;
dshash_table *singleton_limiters = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static object_access_hook_type prev_object_access_hook = NULL;

/* A database this transaction drops: its entries go when it commits. */
static Oid	dropping_database = InvalidOid;
static bool drop_callback_registered = false;

void		_PG_init(void);

/* The tranche is filled in at run time. */
static const dshash_parameters registry_params = {
	.key_size = sizeof(SingletonKey),
	.entry_size = sizeof(RegistryEntry),
	.compare_function = singleton_key_compare,
	.hash_function = singleton_key_hash,
	SINGLETON_DSHASH_COPY
};

static const dshash_parameters limiter_params = {
	.key_size = sizeof(SingletonKey),
	.entry_size = sizeof(LimiterEntry),
	.compare_function = singleton_key_compare,
	.hash_function = singleton_key_hash,
	SINGLETON_DSHASH_COPY
};

static int
counter_slot_count(void)
{
	/* one slot per backend PGPROC, plus one shared overflow slot */
	return MaxBackends + 1;
}

static Size
singleton_shmem_size(void)
{
	Size		size;

	size = MAXALIGN(sizeof(SingletonShared));
	size = add_size(size, mul_size(counter_slot_count(), sizeof(SingletonCounterSlot)));
	size = add_size(size, MAXALIGN(mul_size(SINGLETON_RATE_LIMIT_MAX, sizeof(int64))));
	size = add_size(size, SINGLETON_DSA_INPLACE_SIZE);
	size = add_size(size, worker_shmem_size());
	size = add_size(size, quota_shmem_size());
	return size;
}

static void
singleton_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(singleton_shmem_size());
}

static void
singleton_shmem_startup(void)
{
	bool		found;
	char	   *base;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	/* After a crash-restart the postmaster must forget the old segment. */
	singleton_shared = NULL;
	singleton_area = NULL;
	singleton_registry = NULL;
	singleton_limiters = NULL;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);

	base = ShmemInitStruct("singleton", singleton_shmem_size(), &found);
	singleton_shared = (SingletonShared *) base;
	base += MAXALIGN(sizeof(SingletonShared));
	singleton_slots = (SingletonCounterSlot *) base;
	base += counter_slot_count() * sizeof(SingletonCounterSlot);
	singleton_rl_ring = (int64 *) base;
	base += MAXALIGN(SINGLETON_RATE_LIMIT_MAX * sizeof(int64));
	singleton_dsa_place = base;

	if (!found)
	{
		SingletonShared *s = singleton_shared;
		dsa_area   *area;
		dshash_table *table;
		dshash_parameters params;
		int			i;

		memset(s, 0, sizeof(SingletonShared));
		s->memory_limit = (size_t) singleton_memory_limit_mb * 1024 * 1024;
		s->nslots = counter_slot_count();
		pg_atomic_init_u64(&s->memory_used, 0);
		pg_atomic_init_u64(&s->generation, 0);
		pg_atomic_init_u32(&s->entry_count, 0);
		pg_atomic_init_u32(&s->limiter_keys, 0);
		pg_atomic_init_u64(&s->limiter_last_sweep_ns, 0);
		pg_atomic_init_u32(&s->full, 0);
		pg_atomic_init_u64(&s->rate_limited_count, 0);
		SpinLockInit(&s->rl_mutex);
		for (i = 0; i < SINGLETON_FACTORY_CVS; i++)
			ConditionVariableInit(&s->factory_cv[i]);
		pg_atomic_init_u32(&s->persist.loaded, 0);
		pg_atomic_init_u32(&s->persist.unloaded_file, 0);
		pg_atomic_init_u32(&s->persist.load_failures, 0);
		ConditionVariableInit(&s->persist.load_cv);
		SpinLockInit(&s->persist.mutex);

		memset(singleton_slots, 0, s->nslots * sizeof(SingletonCounterSlot));
		for (i = 0; i < s->nslots; i++)
		{
			SingletonCounters *c = &singleton_slots[i].c;

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
			pg_atomic_init_u32(&c->pid, 0);
			pg_atomic_init_u32(&c->waiting_for_pid, 0);
		}

		s->tranche_id = LWLockNewTrancheId();
		LWLockRegisterTranche(s->tranche_id, "singleton");

		area = dsa_create_in_place(singleton_dsa_place,
								   SINGLETON_DSA_INPLACE_SIZE,
								   s->tranche_id, NULL);
		dsa_pin(area);
		/* keep the tables' control data in the in-place segment */
		dsa_set_size_limit(area, SINGLETON_DSA_INPLACE_SIZE);

		params = registry_params;
		params.tranche_id = s->tranche_id;
		table = dshash_create(area, &params, area);
		s->registry_handle = dshash_get_hash_table_handle(table);
		dshash_detach(table);

		params = limiter_params;
		params.tranche_id = s->tranche_id;
		table = dshash_create(area, &params, area);
		s->limiter_handle = dshash_get_hash_table_handle(table);
		dshash_detach(table);

		dsa_set_size_limit(area, Max(s->memory_limit, SINGLETON_DSA_INPLACE_SIZE));
		/* the postmaster never touches the area again */
		dsa_detach(area);
	}

	/* with nobody to load the snapshot, nobody may wait for it */
	if (!found && !persist_loader_registered())
		pg_atomic_write_u32(&singleton_shared->persist.loaded, 1);

	worker_shmem_init();
	quota_shmem_init();
	LWLockRelease(AddinShmemInitLock);
}

/* Forget a dropped database's entries once the drop commits. */
static void
singleton_drop_callback(XactEvent event, void *arg)
{
	if (!OidIsValid(dropping_database))
		return;
	if (event == XACT_EVENT_PRE_COMMIT)
	{
		registry_purge_database(dropping_database);
		limiter_purge_database(dropping_database);
	}
	if (event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_ABORT)
		dropping_database = InvalidOid;
}

/*
 * Entries are keyed by database OID, so they must not outlive their
 * database: DROP DATABASE frees them as it commits, and CREATE DATABASE
 * frees any an earlier database of the same OID left (say, if the server
 * stopped between the two), so that a new database never inherits them.
 */
static void
singleton_object_access(ObjectAccessType access, Oid classId, Oid objectId,
						int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (classId != DatabaseRelationId || singleton_shared == NULL)
		return;
	if (access == OAT_POST_CREATE)
	{
		singleton_attach();
		registry_purge_database(objectId);
		limiter_purge_database(objectId);
	}
	else if (access == OAT_DROP)
	{
		/* attach now, while an error can still stop the drop */
		singleton_attach();
		if (!drop_callback_registered)
		{
			RegisterXactCallback(singleton_drop_callback, NULL);
			drop_callback_registered = true;
		}
		dropping_database = objectId;
	}
}

void
_PG_init(void)
{
	DefineCustomIntVariable("singleton.max_value_size",
							"Maximum size of one registry value.",
							NULL,
							&singleton_max_value_size,
							1024 * 1024, 16, MaxAllocSize,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("singleton.wait_timeout",
							"Maximum time to wait for another session's factory; 0 waits without limit.",
							"A finite default keeps a factory that never ends from holding its waiters forever.",
							&singleton_wait_timeout,
							SINGLETON_WAIT_TIMEOUT_DEFAULT, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("singleton.job_history",
							"Finished job runs older than this are pruned; 0 keeps everything.",
							NULL,
							&singleton_job_history,
							7 * 24 * 3600, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("singleton.job_max_attempts",
							"Cap on max_attempts of jobs owned by roles that are not superusers.",
							NULL,
							&singleton_job_max_attempts,
							SINGLETON_JOB_MAX_ATTEMPTS_DEFAULT, 1, SINGLETON_JOB_MAX_ATTEMPTS_LIMIT,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("singleton.job_max_timeout",
							"Cap on the timeout of runs of jobs owned by roles that are not superusers; 0 sets no cap.",
							"A job without a timeout, or with a longer one, runs with this timeout.",
							&singleton_job_max_timeout,
							0, 0, 24 * 24 * 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("singleton.job_role_worker_share",
							"Percent of singleton.max_workers the runs of one role (not a superuser) may use at once.",
							NULL,
							&singleton_job_role_worker_share,
							50, 1, 100,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("singleton.job_role_max_queued",
							"Most runs one role (not a superuser) may have queued.",
							NULL,
							&singleton_job_role_max_queued,
							SINGLETON_JOB_MAX_QUEUED_DEFAULT, 1, INT_MAX,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("singleton.persist",
							 "Save the registry to a file at shutdown and periodically, and load it at startup.",
							 NULL,
							 &singleton_persist,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("singleton.persist_interval",
							"Time between registry snapshots; 0 saves only at shutdown.",
							NULL,
							&singleton_persist_interval,
							60, 0, INT_MAX / 1000,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("singleton.role_memory_share",
							"Percent of singleton.memory_limit one role (not a superuser) may use.",
							"Entries count for their owner, rate limiter keys for the role that made them.",
							&singleton_role_memory_share,
							50, 1, 100,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("singleton.rate_limit_role_share",
							"Percent of singleton.rate_limit one role (not a superuser) may take per second.",
							NULL,
							&singleton_rate_limit_role_share,
							50, 1, 100,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("singleton.rate_limit",
							"Registry operations admitted per second across the instance; 0 disables the limiter.",
							NULL,
							&singleton_ops_per_second,
							0, 0, SINGLETON_RATE_LIMIT_MAX,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	/*
	 * Without preloading there is no shared memory; every SQL function then
	 * reports that through singleton_require_loaded().  A PGC_POSTMASTER
	 * setting can only be defined while preloading.
	 */
	if (!process_shared_preload_libraries_in_progress)
	{
		MarkGUCPrefixReserved("singleton");
		return;
	}

	DefineCustomStringVariable("singleton.database",
							   "Database the job worker connects to and where the job tables live.",
							   NULL,
							   &singleton_database,
							   "postgres",
							   PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("singleton.max_workers",
							"How many job runs execute at once.",
							NULL,
							&singleton_max_workers,
							4, 1, 64,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("singleton.memory_limit",
							"Maximum shared memory for registry entries and rate limiter keys.",
							NULL,
							&singleton_memory_limit_mb,
							64, 1, 1024 * 1024,
							PGC_POSTMASTER,
							GUC_UNIT_MB,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("singleton");

	if (!IsBinaryUpgrade)
	{
		worker_register_launcher();
		persist_register_worker();
	}

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = singleton_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = singleton_shmem_startup;
	prev_object_access_hook = object_access_hook;
	object_access_hook = singleton_object_access;
}

void
singleton_require_loaded(void)
{
	if (singleton_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("singleton must be loaded via shared_preload_libraries"),
				 errhint("Add singleton to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/*
 * Attach this backend to the DSA area and both tables, once.  The mappings
 * live in TopMemoryContext and survive transaction ends.
 *
 * No process but the loader gets past here before the snapshot load has
 * finished: the wait comes before the attachment that the fast path tests,
 * so a cancelled wait is simply waited again by the next call.
 */
void
singleton_attach(void)
{
	MemoryContext oldcxt;
	dshash_parameters params;

	if (likely(singleton_registry != NULL && singleton_limiters != NULL))
		return;

	singleton_require_loaded();
	persist_wait_for_load();

	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	if (singleton_area == NULL)
	{
		LWLockRegisterTranche(singleton_shared->tranche_id, "singleton");
		singleton_area = dsa_attach_in_place(singleton_dsa_place, NULL);
		dsa_pin_mapping(singleton_area);
		factory_init_backend();
	}
	if (singleton_registry == NULL)
	{
		params = registry_params;
		params.tranche_id = singleton_shared->tranche_id;
		singleton_registry = dshash_attach(singleton_area, &params,
										   singleton_shared->registry_handle,
										   singleton_area);
	}
	if (singleton_limiters == NULL)
	{
		params = limiter_params;
		params.tranche_id = singleton_shared->tranche_id;
		singleton_limiters = dshash_attach(singleton_area, &params,
										   singleton_shared->limiter_handle,
										   singleton_area);
	}
	MemoryContextSwitchTo(oldcxt);
}

/*
 * The rule for NULL arguments of the SQL API: a NULL for a required argument
 * (one without a DEFAULT) raises 22004 naming it; the functions are CALLED ON
 * NULL INPUT, so they call this before fetching such an argument.  A NULL
 * for an optional argument means its default, which the caller supplies.
 */
void
singleton_require_arg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
}

SingletonCounters *
singleton_my_counters(void)
{
	int			slot = SINGLETON_MY_PROC_INDEX();

	/* backends are 0..MaxBackends-1; the last slot catches anything else */
	if (slot < 0 || slot >= singleton_shared->nslots - 1)
		slot = singleton_shared->nslots - 1;
	return &singleton_slots[slot].c;
}

void
singleton_error_full(Size request)
{
	pg_atomic_write_u32(&singleton_shared->full, 1);
	ereport(ERROR,
			(errcode(ERRCODE_OUT_OF_MEMORY),
			 errmsg("singleton registry is full"),
			 errdetail("A request for %zu bytes could not be met; entries use %llu bytes of the %zu-byte limit.",
					   request,
					   (unsigned long long) pg_atomic_read_u64(&singleton_shared->memory_used),
					   singleton_shared->memory_limit),
			 errhint("Delete entries, or raise singleton.memory_limit and restart the server.")));
}

/* Register one of our static background workers (restarted if it dies). */
void
singleton_register_worker(const char *name, const char *function,
						  BgWorkerStartTime start_time, int flags)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = flags;
	bgw.bgw_start_time = start_time;
	bgw.bgw_restart_time = 5;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "singleton");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(bgw.bgw_name, BGW_MAXLEN, "%s", name);
	snprintf(bgw.bgw_type, BGW_MAXLEN, "%s", name);
	RegisterBackgroundWorker(&bgw);
}

/*
 * The wait event to report for one of our waits: a named one on 17 and
 * later (registered once per process), "Extension" before.
 */
uint32
singleton_wait_event(SingletonWait which)
{
#ifdef SINGLETON_NAMED_WAIT_EVENTS
	static const char *const names[SINGLETON_WAIT_COUNT] = {
		[SINGLETON_WAIT_FACTORY] = "SingletonFactory",
		[SINGLETON_WAIT_LOAD] = "SingletonSnapshotLoad",
		[SINGLETON_WAIT_LAUNCHER] = "SingletonLauncherMain",
		[SINGLETON_WAIT_PERSIST] = "SingletonPersistMain",
		[SINGLETON_WAIT_JOB] = "SingletonJobWait",
	};
	static uint32 ids[SINGLETON_WAIT_COUNT];

	if (ids[which] == 0)
		ids[which] = WaitEventExtensionNew(names[which]);
	return ids[which];
#else
	return PG_WAIT_EXTENSION;
#endif
}

uint64
singleton_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64) ts.tv_sec * UINT64CONST(1000000000) + (uint64) ts.tv_nsec;
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
	uint32		la = ka->namelen & ~SINGLETON_KEY_LOCAL;
	uint32		lb = kb->namelen & ~SINGLETON_KEY_LOCAL;

	if (ka->dbid != kb->dbid)
		return ka->dbid < kb->dbid ? -1 : 1;
	if (la != lb)
		return la < lb ? -1 : 1;
	return memcmp(key_name(ka, arg), key_name(kb, arg), la);
}

dshash_hash
singleton_key_hash(const void *v, size_t size, void *arg)
{
	const SingletonKey *k = (const SingletonKey *) v;
	uint32		len = k->namelen & ~SINGLETON_KEY_LOCAL;

	return hash_combine(murmurhash32(k->dbid),
						hash_bytes((const unsigned char *) key_name(k, arg), len));
}
