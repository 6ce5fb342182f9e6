/*-------------------------------------------------------------------------
 *
 * worker.h
 *		The job launcher and run workers (worker.c) and their SQL helpers
 *		(jobs.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SINGLETON_WORKER_H
#define SINGLETON_WORKER_H

#include "lib/stringinfo.h"
#include "storage/latch.h"
#include "storage/spin.h"

/* GUCs */
extern char *singleton_database;
extern int	singleton_max_workers;
extern int	singleton_job_history;

/* One concurrent run: which run, and the pid of its worker once started. */
typedef struct RunSlot
{
	int64		run_id;			/* 0 = free */
	int			pid;			/* 0 until the worker has started */
} RunSlot;

typedef struct SingletonWorkerShared
{
	slock_t		mutex;			/* protects everything below */
	int			launcher_pid;
	Latch	   *launcher_latch;
	int			nslots;			/* singleton.max_workers */
	RunSlot		slots[FLEXIBLE_ARRAY_MEMBER];
} SingletonWorkerShared;

extern SingletonWorkerShared *singleton_worker;

extern Size worker_shmem_size(void);
extern void worker_shmem_init(void);
extern void worker_register_launcher(void);
extern void worker_wake_launcher(void);

/* jobs.c */
extern char *singleton_extension_schema(void);
extern void jobs_append_stats(StringInfo buf);
extern void jobs_append_health(StringInfo buf);

#endif							/* SINGLETON_WORKER_H */
