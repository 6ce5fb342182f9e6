/*-------------------------------------------------------------------------
 *
 * worker.h
 *		The job launcher and run workers (worker.c) and their SQL helpers
 *		(jobs.c).
 *
 * Locking: SingletonWorkerShared's mutex (a spinlock) protects the
 * launcher's pid and latch and the run slots; it is held only to copy a few
 * fields.  run_done is a condition variable, which needs no lock of ours:
 * waiters re-read the run from the tables after every wake-up.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SINGLETON_WORKER_H
#define SINGLETON_WORKER_H

#include "lib/stringinfo.h"
#include "storage/condition_variable.h"
#include "datatype/timestamp.h"
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
extern int	singleton_job_role_max_jobs;

/* Defaults of the job caps (also used by the GUC definitions). */
#define SINGLETON_JOB_MAX_ATTEMPTS_DEFAULT	10
#define SINGLETON_JOB_MAX_ATTEMPTS_LIMIT	1000
#define SINGLETON_JOB_MAX_QUEUED_DEFAULT	1000
#define SINGLETON_JOB_MAX_JOBS_DEFAULT		1000
/* Longest job command, bytes (a documented limit). */
#define SINGLETON_JOB_COMMAND_MAX			(1024 * 1024)

/* One concurrent run: which run, and the pid of its worker once started. */
typedef struct RunSlot
{
	int64		run_id;			/* 0 = free */
	int			pid;			/* 0 until the worker has started */
	Oid			owner;			/* the job's owner: shares, reasons */
	TimestampTz deadline;		/* past it (timeout and grace), the launcher
								 * terminates the worker; 0 = none */
	TimestampTz stop_at;		/* the same after a stop; 0 = none */
	bool		terminated;		/* the launcher terminated the worker */
	bool		timed_out;		/* ... because of its deadline */
} RunSlot;

/* What a command that ignores its cancel gets before it is terminated. */
#define SINGLETON_RUN_KILL_GRACE_MS	2000
#define SINGLETON_MAX_WORKERS_LIMIT	64

typedef struct SingletonWorkerShared
{
	/* broadcast after a run's final status commits (no lock) */
	ConditionVariable run_done;
	slock_t		mutex;			/* protects everything below */
	int			launcher_pid;
	Latch	   *launcher_latch;
	int			nslots;			/* singleton.max_workers */
	RunSlot		slots[FLEXIBLE_ARRAY_MEMBER];
} SingletonWorkerShared;

/*
 * The status of a run: the SQL enum singleton_run_status, made by
 * singleton--1.0--1.1.sql with these labels in this order.  SQL the
 * extension runs splices the names in with SINGLETON_RUN_SQL.
 */
typedef enum SingletonRunStatus
{
	SINGLETON_RUN_QUEUED,
	SINGLETON_RUN_RUNNING,
	SINGLETON_RUN_SUCCEEDED,
	SINGLETON_RUN_FAILED,
	SINGLETON_RUN_CANCELLED,
	SINGLETON_RUN_TIMED_OUT,
	SINGLETON_RUN_STATUS_COUNT
} SingletonRunStatus;

#define SINGLETON_RUN_QUEUED_NAME		"queued"
#define SINGLETON_RUN_RUNNING_NAME		"running"
#define SINGLETON_RUN_SUCCEEDED_NAME	"succeeded"
#define SINGLETON_RUN_FAILED_NAME		"failed"
#define SINGLETON_RUN_CANCELLED_NAME	"cancelled"
#define SINGLETON_RUN_TIMED_OUT_NAME	"timed_out"

/* A status as an SQL literal: SINGLETON_RUN_SQL(QUEUED) is "'queued'". */
#define SINGLETON_RUN_SQL(status)		"'" SINGLETON_RUN_##status##_NAME "'"

/* The statuses of a run that has not finished, as an SQL list. */
#define SINGLETON_RUN_ACTIVE_SQL \
	"(" SINGLETON_RUN_SQL(QUEUED) ", " SINGLETON_RUN_SQL(RUNNING) ")"

/* Names by SingletonRunStatus (worker.c). */
extern const char *const singleton_run_status_names[SINGLETON_RUN_STATUS_COUNT];
extern SingletonRunStatus singleton_run_status_from_name(const char *name);

extern SingletonWorkerShared *singleton_worker;

extern Size singleton_worker_shmem_size(void);
extern void singleton_worker_shmem_init(void);
extern void singleton_worker_register_launcher(void);
extern void singleton_worker_wake_launcher(void);
extern void singleton_worker_request_stop(int64 run_id);
extern void singleton_worker_broadcast_run_done(void);

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
extern void singleton_run_done_at_commit(void);
extern void singleton_jobs_append_stats(StringInfo buf);
extern void singleton_jobs_append_health(StringInfo buf);

#endif							/* SINGLETON_WORKER_H */
