/*-------------------------------------------------------------------------
 *
 * singleton.c
 *		Module initialisation, the top layer: GUCs, shared memory start-up
 *		and the hook that frees a dropped database's entries.
 *
 * Each module owns its shared struct with its own size and init functions
 * (area.c, quota.c, admission.c, registry.c, limiter.c, factory.c,
 * persist.c, worker.c); this file only calls them, in the order src/README
 * gives.  The area is created in place while the stores create their
 * tables, so the postmaster never creates a DSM segment.  Backends attach
 * lazily on their first call.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_database.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "admission.h"
#include "area.h"
#include "compat.h"
#include "factory.h"
#include "limiter.h"
#include "persist.h"
#include "quota.h"
#include "registry.h"
#include "worker.h"

SINGLETON_MODULE_MAGIC("1.1");

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static object_access_hook_type prev_object_access_hook = NULL;

/* A database this transaction drops: its entries go when it commits. */
static Oid	dropping_database = InvalidOid;
static bool drop_callback_registered = false;

void		_PG_init(void);

static Size
singleton_shmem_size(void)
{
	Size		size = singleton_area_shmem_size();

	size = add_size(size, singleton_quota_shmem_size());
	size = add_size(size, singleton_admission_shmem_size());
	size = add_size(size, singleton_registry_shmem_size());
	size = add_size(size, singleton_limiter_shmem_size());
	size = add_size(size, singleton_factory_shmem_size());
	size = add_size(size, singleton_persist_shmem_size());
	return add_size(size, singleton_worker_shmem_size());
}

static void
singleton_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(singleton_shmem_size());
}

/* Bottom layer first, then the stores (their tables go in a new area). */
static void
singleton_shmem_startup(void)
{
	bool		found;
	dsa_area   *new_area;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	new_area = singleton_area_shmem_init(&found);
	singleton_quota_shmem_init();
	singleton_admission_shmem_init();
	singleton_registry_shmem_init(new_area);
	singleton_limiter_shmem_init(new_area);
	if (new_area != NULL)
		singleton_area_shmem_done(new_area);
	singleton_factory_shmem_init();
	singleton_persist_shmem_init();
	singleton_worker_shmem_init();
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
		singleton_registry_purge_database(dropping_database);
		singleton_limiter_purge_database(dropping_database);
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
	if (classId != DatabaseRelationId || singleton_area_shared == NULL)
		return;
	if (access == OAT_POST_CREATE)
	{
		singleton_registry_purge_database(objectId);
		singleton_limiter_purge_database(objectId);
	}
	else if (access == OAT_DROP)
	{
		/* attach now, while an error can still stop the drop */
		singleton_registry_attach();
		if (!drop_callback_registered)
		{
			RegisterXactCallback(singleton_drop_callback, NULL);
			drop_callback_registered = true;
		}
		dropping_database = objectId;
	}
}

/* Settings that may change while the server runs. */
static void
define_runtime_gucs(void)
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

	DefineCustomIntVariable("singleton.rate_limit",
							"Registry operations admitted per second across the instance; 0 disables the limiter.",
							NULL,
							&singleton_ops_per_second,
							0, 0, SINGLETON_RATE_LIMIT_MAX,
							PGC_SIGHUP,
							0,
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
}

static void
define_job_and_persist_gucs(void)
{
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

	DefineCustomIntVariable("singleton.job_role_max_jobs",
							"Most jobs one role (not a superuser) may own.",
							NULL,
							&singleton_job_role_max_jobs,
							SINGLETON_JOB_MAX_JOBS_DEFAULT, 1, INT_MAX,
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
}

/* Settings fixed at server start: only while preloading. */
static void
define_postmaster_gucs(void)
{
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
							4, 1, SINGLETON_MAX_WORKERS_LIMIT,
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
}

void
_PG_init(void)
{
	define_runtime_gucs();
	define_job_and_persist_gucs();

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
	define_postmaster_gucs();
	MarkGUCPrefixReserved("singleton");

	if (!IsBinaryUpgrade)
	{
		singleton_worker_register_launcher();
		singleton_persist_register_worker();
	}

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = singleton_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = singleton_shmem_startup;
	prev_object_access_hook = object_access_hook;
	object_access_hook = singleton_object_access;
}
