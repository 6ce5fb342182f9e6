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
extern int	singleton_job_max_attempts;
extern int	singleton_job_max_timeout;	/* ms; 0 = no cap */
extern int	singleton_job_role_worker_share;
extern int	singleton_job_role_max_queued;

/* Defaults of the job caps (also used by the GUC definitions). */
#define SINGLETON_JOB_MAX_ATTEMPTS_DEFAULT	10
#define SINGLETON_JOB_MAX_ATTEMPTS_LIMIT	1000
#define SINGLETON_JOB_MAX_QUEUED_DEFAULT	1000

/* One concurrent run: which run, and the pid of its worker once started. */
typedef struct RunSlot
{
	int64		run_id;			/* 0 = free */
	int			pid;			/* 0 until the worker has started */
	Oid			owner;			/* the job's owner, for the reaper's reason */
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

/*
 * A stretch of our own bookkeeping SQL run as the bootstrap superuser, with
 * search_path pinned and as a security-restricted operation (jobs.c).
 */
typedef struct SingletonPrivileged
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
} SingletonPrivileged;

/* Why a job's owner cannot run it now (sqlerrcode 0: it can). */
typedef struct JobOwnerProblem
{
	int			sqlerrcode;
	bool		gone;			/* the role that made the job no longer exists */
	char	   *message;
} JobOwnerProblem;

/* jobs.c */
extern char *singleton_extension_schema(void);
extern void singleton_begin_privileged(SingletonPrivileged *p);
extern void singleton_end_privileged(SingletonPrivileged *p);
extern bool singleton_job_owner_problem(Oid role, const char *created_as, Oid dboid,
										JobOwnerProblem *problem);
extern int	singleton_job_role_worker_cap(void);
extern void jobs_append_stats(StringInfo buf);
extern void jobs_append_health(StringInfo buf);

#endif							/* SINGLETON_WORKER_H */
