/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The job launcher (execution handler) and the per-run workers.
 *
 * One launcher per instance connects to singleton.database once recovery
 * has finished (so never on a hot standby).  In a loop it reaps finished
 * run workers, marks runs that are "running" without a live worker as
 * failed (after a restart or crash) and queues their retries, starts one
 * dynamic worker per queued run in FIFO order up to singleton.max_workers,
 * and prunes old history.  Sessions wake it through its latch when they
 * queue a run (at commit); otherwise it looks once a second.
 *
 * A run worker connects as the job's owner, so the command runs with the
 * owner's identity and privileges, with the job's timeout as
 * statement_timeout.  Success is recorded in the same transaction as the
 * command, and only while the run is still "running": a run stopped
 * meanwhile is rolled back and stays "cancelled".  Failures are recorded in
 * a new transaction.  Bookkeeping statements run as the bootstrap superuser
 * (row-level security on the tables stops owners from writing them).
 *
 * Shared state: a slot per concurrent run (run id, worker pid) and the
 * launcher's pid and latch, protected by a spinlock; and a condition
 * variable broadcast whenever a run's final status has committed, which
 * singleton_job_wait sleeps on (see worker.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "portability/instr_time.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "common.h"
#include "worker.h"

PGDLLEXPORT void singleton_launcher_main(Datum main_arg);
PGDLLEXPORT void singleton_run_main(Datum main_arg);

char	   *singleton_database = NULL;
int			singleton_max_workers = 4;
int			singleton_job_history = 7 * 24 * 3600;

SingletonWorkerShared *singleton_worker = NULL;

const char *const singleton_run_status_names[SINGLETON_RUN_STATUS_COUNT] = {
	[SINGLETON_RUN_QUEUED] = SINGLETON_RUN_QUEUED_NAME,
	[SINGLETON_RUN_RUNNING] = SINGLETON_RUN_RUNNING_NAME,
	[SINGLETON_RUN_SUCCEEDED] = SINGLETON_RUN_SUCCEEDED_NAME,
	[SINGLETON_RUN_FAILED] = SINGLETON_RUN_FAILED_NAME,
	[SINGLETON_RUN_CANCELLED] = SINGLETON_RUN_CANCELLED_NAME,
	[SINGLETON_RUN_TIMED_OUT] = SINGLETON_RUN_TIMED_OUT_NAME,
};

/* How often the launcher looks without being woken, and prunes history. */
#define LAUNCHER_NAPTIME_MS		1000
#define PRUNE_INTERVAL_MS		10000

/* What a run worker is told by the launcher. */
typedef struct RunArgs
{
	Oid			dboid;
	Oid			owner;
	int64		run_id;
	int			slot;
} RunArgs;

/*
 * statement_timeout is armed by postgres.c for client queries only; a run
 * worker arms the same timer around its command, so the cancel reads
 * "canceling statement due to statement timeout" as usual.
 */
static void
arm_statement_timeout(int64 ms)
{
	enable_timeout_after(STATEMENT_TIMEOUT, (int) Min(ms, (int64) INT_MAX));
}

static void
disarm_statement_timeout(void)
{
	disable_timeout(STATEMENT_TIMEOUT, false);
}

/* Launcher-local handles of the run workers it started, by slot. */
static BackgroundWorkerHandle **run_handles = NULL;

Size
singleton_worker_shmem_size(void)
{
	return add_size(offsetof(SingletonWorkerShared, slots),
					mul_size(singleton_max_workers, sizeof(RunSlot)));
}

void
singleton_worker_shmem_init(void)
{
	bool		found;

	singleton_worker = ShmemInitStruct("singleton worker", singleton_worker_shmem_size(), &found);
	if (!found)
	{
		memset(singleton_worker, 0, singleton_worker_shmem_size());
		SpinLockInit(&singleton_worker->mutex);
		ConditionVariableInit(&singleton_worker->run_done);
		singleton_worker->nslots = singleton_max_workers;
	}
}

/* A status by its SQL label; elog if the enum and worker.h disagree. */
SingletonRunStatus
singleton_run_status_from_name(const char *name)
{
	int			i;

	for (i = 0; i < SINGLETON_RUN_STATUS_COUNT; i++)
		if (strcmp(name, singleton_run_status_names[i]) == 0)
			return (SingletonRunStatus) i;
	elog(ERROR, "unknown job run status \"%s\"", name);
	pg_unreachable();
}

void
singleton_worker_register_launcher(void)
{
	/* never on a hot standby: starts once recovery has finished */
	singleton_register_worker("singleton job launcher", "singleton_launcher_main",
							  BgWorkerStart_RecoveryFinished,
							  BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION);
}

/* Set the launcher's latch, if it runs. */
void
singleton_worker_wake_launcher(void)
{
	Latch	   *latch = NULL;

	if (singleton_worker == NULL)
		return;
	SpinLockAcquire(&singleton_worker->mutex);
	if (singleton_worker->launcher_pid != 0)
		latch = singleton_worker->launcher_latch;
	SpinLockRelease(&singleton_worker->mutex);
	if (latch)
		SetLatch(latch);
}

/*
 * Wake every singleton_job_wait: some run's final status has committed
 * (waiters re-read their run, so a wake-up for another run costs a look).
 */
void
singleton_worker_broadcast_run_done(void)
{
	if (singleton_worker != NULL)
		ConditionVariableBroadcast(&singleton_worker->run_done);
}

/*
 * Mark a run finished with the given status and error, if it is still
 * running, and queue its next attempt when it failed or timed out, retry
 * is set and attempts remain (at most singleton.job_max_attempts for a job
 * whose owner is not a superuser).  One statement, so a crash cannot split
 * it.  Caller has a transaction, SPI and a snapshot, and runs as a
 * superuser; once that commits, it calls singleton_worker_broadcast_run_done.
 */
static void
finish_run(const char *schema, int64 run_id, SingletonRunStatus status,
		   const char *error, const char *result, bool retry)
{
	char	   *sql;
	Oid			types[6] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, BOOLOID, INT4OID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	/*
	 * A row another transaction holds (a stop not yet committed, a job being
	 * deleted) is skipped, not waited for: the launcher must not stall on a
	 * user's lock.  A run left "running" so is failed by fail_orphans later.
	 */
	sql = psprintf("WITH f AS ("
				   " UPDATE %s.singleton_job_run SET status = $2::%s.singleton_run_status,"
				   "        finished_at = clock_timestamp(), error = $3, result = $4"
				   " WHERE id = (SELECT l.id FROM %s.singleton_job_run l"
				   "             WHERE l.id = $1 AND l.status = " SINGLETON_RUN_SQL(RUNNING)
				   "             FOR UPDATE SKIP LOCKED)"
				   " RETURNING job_id, attempt)"
				   " INSERT INTO %s.singleton_job_run (job_id, attempt)"
				   " SELECT f.job_id, f.attempt + 1 FROM f JOIN %s.singleton_job j ON j.id = f.job_id"
				   " WHERE $5 AND f.attempt < j.max_attempts"
				   " AND (f.attempt < $6 OR (SELECT a.rolsuper FROM pg_authid a WHERE a.oid = j.owner))"
				   " FOR KEY SHARE OF j SKIP LOCKED",
				   schema, schema, schema, schema, schema);
	/* only failures and timeouts are retried */
	retry = retry && (status == SINGLETON_RUN_FAILED || status == SINGLETON_RUN_TIMED_OUT);
	values[0] = Int64GetDatum(run_id);
	values[1] = CStringGetTextDatum(singleton_run_status_names[status]);
	if (error)
		values[2] = CStringGetTextDatum(error);
	else
		nulls[2] = 'n';
	if (result)
		values[3] = CStringGetTextDatum(result);
	else
		nulls[3] = 'n';
	values[4] = BoolGetDatum(retry);
	values[5] = Int32GetDatum(singleton_job_max_attempts);
	if (SPI_execute_with_args(sql, 6, types, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record the end of run " INT64_FORMAT, run_id);
}

/* "SQLSTATE: message" of an owner problem, as a run's error. */
static char *
problem_error(const JobOwnerProblem *problem)
{
	return psprintf("%s: %s", unpack_sql_state(problem->sqlerrcode), problem->message);
}

static void
begin_tx(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
end_tx(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

static bool
slot_has_run(int64 run_id)
{
	int			i;
	bool		found = false;

	SpinLockAcquire(&singleton_worker->mutex);
	for (i = 0; i < singleton_worker->nslots; i++)
		if (singleton_worker->slots[i].run_id == run_id)
			found = true;
	SpinLockRelease(&singleton_worker->mutex);
	return found;
}

/*
 * A command may catch its query cancel (a statement timeout, a stop) and go
 * on.  Past its deadline, or a grace period after a stop, its worker is
 * terminated, so no run outlives its timeout or its stop by more than the
 * grace period.
 */
static void
terminate_if_overdue(int i)
{
	RunSlot    *slot = &singleton_worker->slots[i];
	TimestampTz now = GetCurrentTimestamp();
	bool		overdue;
	bool		timed_out;

	SpinLockAcquire(&singleton_worker->mutex);
	timed_out = slot->deadline != 0 && now > slot->deadline;
	overdue = !slot->terminated && (timed_out || (slot->stop_at != 0 && now > slot->stop_at));
	if (overdue)
	{
		slot->terminated = true;
		slot->timed_out = timed_out;
	}
	SpinLockRelease(&singleton_worker->mutex);
	if (!overdue || run_handles[i] == NULL)
		return;
	ereport(LOG,
			(errmsg("singleton: terminating the worker of run " INT64_FORMAT ", which ignored its %s",
					slot->run_id, timed_out ? "timeout" : "stop")));
	TerminateBackgroundWorker(run_handles[i]);
}

/*
 * A stop of a run (singleton_job_stop, singleton_job_delete): if its
 * worker ignores the cancel, the launcher terminates it after the grace
 * period.
 */
void
singleton_worker_request_stop(int64 run_id)
{
	TimestampTz at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												 SINGLETON_RUN_KILL_GRACE_MS);
	int			i;

	SpinLockAcquire(&singleton_worker->mutex);
	for (i = 0; i < singleton_worker->nslots; i++)
		if (singleton_worker->slots[i].run_id == run_id && singleton_worker->slots[i].stop_at == 0)
			singleton_worker->slots[i].stop_at = at;
	SpinLockRelease(&singleton_worker->mutex);
}

/*
 * Free the slots of run workers that have exited.  A run still marked
 * running after its worker exited (it died, or could not even connect) is
 * failed here.
 */
static void
reap_workers(const char *schema)
{
	int			i;

	for (i = 0; i < singleton_worker->nslots; i++)
	{
		RunSlot    *slot = &singleton_worker->slots[i];
		int64		run_id;
		int			pid;
		bool		gone;

		SpinLockAcquire(&singleton_worker->mutex);
		run_id = slot->run_id;
		pid = slot->pid;
		SpinLockRelease(&singleton_worker->mutex);
		if (run_id == 0)
			continue;

		if (run_handles[i] != NULL)
		{
			pid_t		hpid;

			gone = (GetBackgroundWorkerPid(run_handles[i], &hpid) == BGWH_STOPPED);
		}
		else
			gone = (pid == 0 || BackendPidGetProc(pid) == NULL);
		if (!gone)
		{
			terminate_if_overdue(i);
			continue;
		}

		begin_tx("singleton: reaping a job worker");
		{
			JobOwnerProblem problem;

			/* a worker that could not connect as the owner says why only in the log */
			if (slot->timed_out)
				finish_run(schema, run_id, SINGLETON_RUN_TIMED_OUT,
						   "57014: canceling statement due to statement timeout (the command ignored the cancel, so its worker was terminated)",
						   NULL, true);
			else if (singleton_job_owner_problem(slot->owner, NULL, MyDatabaseId, &problem))
				finish_run(schema, run_id, SINGLETON_RUN_FAILED, problem_error(&problem),
						   NULL, false);
			else
				finish_run(schema, run_id, SINGLETON_RUN_FAILED,
						   "the job worker exited without recording a result", NULL, true);
		}
		end_tx();
		singleton_worker_broadcast_run_done();

		SpinLockAcquire(&singleton_worker->mutex);
		slot->run_id = 0;
		slot->pid = 0;
		SpinLockRelease(&singleton_worker->mutex);
		if (run_handles[i] != NULL)
		{
			pfree(run_handles[i]);
			run_handles[i] = NULL;
		}
	}
}

/*
 * Runs marked running that no slot knows of were cut off by a restart or
 * crash: fail them (and queue retries).
 */
static void
fail_orphans(const char *schema)
{
	char	   *sql;
	uint64		i;
	int64	   *orphans;
	uint64		n;

	begin_tx("singleton: checking for interrupted runs");
	sql = psprintf("SELECT id FROM %s.singleton_job_run WHERE status = " SINGLETON_RUN_SQL(RUNNING),
				   schema);
	if (SPI_execute(sql, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not list running jobs");
	n = SPI_processed;
	orphans = palloc(sizeof(int64) * (n + 1));
	for (i = 0; i < n; i++)
	{
		bool		isnull;

		orphans[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
												 SPI_tuptable->tupdesc, 1, &isnull));
	}
	for (i = 0; i < n; i++)
	{
		if (slot_has_run(orphans[i]))
			continue;
		finish_run(schema, orphans[i], SINGLETON_RUN_FAILED,
				   "the run was interrupted: the server restarted or its worker was lost", NULL, true);
		elog(LOG, "singleton: run " INT64_FORMAT " was interrupted and is marked failed",
			 orphans[i]);
	}
	end_tx();
	if (n > 0)
		singleton_worker_broadcast_run_done();
}

static int
free_slot(void)
{
	int			i;
	int			found = -1;

	SpinLockAcquire(&singleton_worker->mutex);
	for (i = 0; i < singleton_worker->nslots && found < 0; i++)
		if (singleton_worker->slots[i].run_id == 0)
			found = i;
	SpinLockRelease(&singleton_worker->mutex);
	return found;
}

/*
 * Runs each owner has executing, from the launcher's own slots (a stopped
 * run whose worker has not exited yet still holds its slot), as the two
 * arrays claim_next_run passes to SQL.
 */
static void
busy_owners(Datum *owners_array, Datum *counts_array)
{
	Datum		owners[SINGLETON_MAX_WORKERS_LIMIT];
	Datum		counts[SINGLETON_MAX_WORKERS_LIMIT];
	int			n = 0;
	int			i;
	int			k;

	SpinLockAcquire(&singleton_worker->mutex);
	for (i = 0; i < singleton_worker->nslots; i++)
	{
		RunSlot    *slot = &singleton_worker->slots[i];

		if (slot->run_id == 0)
			continue;
		for (k = 0; k < n && DatumGetObjectId(owners[k]) != slot->owner; k++)
			;
		if (k == n)
		{
			owners[n] = ObjectIdGetDatum(slot->owner);
			counts[n++] = Int32GetDatum(0);
		}
		counts[k] = Int32GetDatum(DatumGetInt32(counts[k]) + 1);
	}
	SpinLockRelease(&singleton_worker->mutex);
	*owners_array = PointerGetDatum(construct_array(owners, n, OIDOID, sizeof(Oid), true,
													TYPALIGN_INT));
	*counts_array = PointerGetDatum(construct_array(counts, n, INT4OID, sizeof(int32), true,
													TYPALIGN_INT));
}

/*
 * The next run to start: among the oldest queued run of each enabled job,
 * the one whose owner has the fewest runs executing, oldest first, skipping
 * owners (not superusers) already at singleton.job_role_worker_share.  The
 * oldest queued run of each job is found by a loose scan ordered by
 * (job_id, id), which only the queued-runs index can serve: one probe per
 * job with queued runs, so the cost grows neither with how many runs wait
 * (however they are spread over jobs) nor with how many jobs are idle.  The
 * lock is taken in the order of preference, skipping rows another
 * transaction holds (however many a user locks, the others are claimed).  A run row another transaction
 * holds is skipped.  Claims the run as running and returns its id, owner
 * and the owner's name when it made the job; 0 if none.  Caller has a
 * transaction and SPI.
 */
static int64
claim_next_run(const char *schema, Oid *owner, char **owner_name, int64 *job_id)
{
	char	   *sql;
	Oid			types[3] = {INT4OID, OIDARRAYOID, INT4ARRAYOID};
	Datum		values[3];
	bool		isnull;

	sql = psprintf("WITH RECURSIVE heads(job_id, id) AS ("
				   "  (SELECT job_id, id FROM %s.singleton_job_run"
				   "   WHERE status = " SINGLETON_RUN_SQL(QUEUED) " ORDER BY job_id, id LIMIT 1)"
				   "  UNION ALL"
				   "  SELECT n.job_id, n.id FROM heads,"
				   "  LATERAL (SELECT r.job_id, r.id FROM %s.singleton_job_run r"
				   "           WHERE r.status = " SINGLETON_RUN_SQL(QUEUED) " AND r.job_id > heads.job_id"
				   "           ORDER BY r.job_id, r.id LIMIT 1) n),"
				   " busy AS (SELECT * FROM unnest($2, $3) AS b(owner, n)),"
				   " pick AS ("
				   "  SELECT q.id FROM heads h"
				   "  JOIN %s.singleton_job j ON j.id = h.job_id AND j.enabled"
				   "  JOIN %s.singleton_job_run q ON q.id = h.id"
				   "  LEFT JOIN busy b ON b.owner = j.owner::oid"
				   "  WHERE q.status = " SINGLETON_RUN_SQL(QUEUED)
				   "    AND (coalesce(b.n, 0) < $1"
				   "         OR (SELECT a.rolsuper FROM pg_authid a WHERE a.oid = j.owner))"
				   "  ORDER BY coalesce(b.n, 0), q.id"
				   "  LIMIT 1 FOR UPDATE OF q SKIP LOCKED)"
				   " UPDATE %s.singleton_job_run r SET status = " SINGLETON_RUN_SQL(RUNNING) ","
				   "        started_at = clock_timestamp()"
				   " FROM pick, %s.singleton_job j"
				   " WHERE r.id = pick.id AND j.id = r.job_id"
				   " RETURNING r.id, j.owner::oid, j.owner_name::text, j.id",
				   schema, schema, schema, schema, schema, schema);
	values[0] = Int32GetDatum(singleton_job_role_worker_cap());
	busy_owners(&values[1], &values[2]);
	if (SPI_execute_with_args(sql, 3, types, values, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not claim a queued run");
	if (SPI_processed == 0)
		return 0;
	*owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (isnull)
		*owner = InvalidOid;
	*owner_name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	*job_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * A claimed run whose owner cannot run it fails at once, without retries,
 * with the reason; a job whose owner is gone is also disabled, so it never
 * starts a worker again.  Caller has a transaction and SPI.
 */
static void
refuse_run(const char *schema, int64 run_id, int64 job_id, const JobOwnerProblem *problem)
{
	char	   *error = problem_error(problem);

	if (problem->gone)
	{
		Oid			types[2] = {INT8OID, TEXTOID};
		Datum		values[2];

		values[0] = Int64GetDatum(job_id);
		values[1] = CStringGetTextDatum(error);
		/* a job row a user holds stays enabled for now: its next run is refused too */
		if (SPI_execute_with_args(psprintf("UPDATE %s.singleton_job SET enabled = false, disabled_reason = $2"
										   " WHERE id = (SELECT l.id FROM %s.singleton_job l WHERE l.id = $1"
										   "             FOR UPDATE SKIP LOCKED)", schema, schema),
								  2, types, values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not disable job " INT64_FORMAT, job_id);
	}
	finish_run(schema, run_id, SINGLETON_RUN_FAILED, error, NULL, false);
	ereport(LOG,
			(errmsg("singleton: run " INT64_FORMAT " of job " INT64_FORMAT " not started: %s",
					run_id, job_id, error)));
}

/*
 * Start the background worker of a claimed run in a taken slot.  If no
 * background worker slot is free, put the run back in the queue, free the
 * slot, warn and return false.
 */
static bool
start_run_worker(const char *schema, int slot, int64 run_id, Oid owner)
{
	BackgroundWorker bgw;
	RunArgs		args;
	char	   *sql;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	bgw.bgw_notify_pid = MyProcPid;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "singleton");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "singleton_run_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "singleton job run " INT64_FORMAT, run_id);
	snprintf(bgw.bgw_type, BGW_MAXLEN, "singleton job run");
	args.dboid = MyDatabaseId;
	args.owner = owner;
	args.run_id = run_id;
	args.slot = slot;
	memcpy(bgw.bgw_extra, &args, sizeof(args));
	if (RegisterDynamicBackgroundWorker(&bgw, &run_handles[slot]))
		return true;

	begin_tx("singleton: requeueing a run");
	sql = psprintf("UPDATE %s.singleton_job_run SET status = " SINGLETON_RUN_SQL(QUEUED) ", started_at = NULL"
				   " WHERE id = " INT64_FORMAT " AND status = " SINGLETON_RUN_SQL(RUNNING), schema, run_id);
	SPI_execute(sql, false, 0);
	end_tx();
	SpinLockAcquire(&singleton_worker->mutex);
	singleton_worker->slots[slot].run_id = 0;
	SpinLockRelease(&singleton_worker->mutex);
	run_handles[slot] = NULL;
	ereport(WARNING,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("could not start a singleton job worker"),
			 errhint("Raise max_worker_processes above singleton.max_workers plus one.")));
	return false;
}

/* Start workers for queued runs, fairly across owners, while slots are free. */
static void
dispatch(const char *schema)
{
	for (;;)
	{
		int			slot = free_slot();
		int64		run_id;
		int64		job_id = 0;
		Oid			owner = InvalidOid;
		char	   *owner_name = NULL;
		JobOwnerProblem problem;

		if (slot < 0)
			return;

		begin_tx("singleton: dispatching a run");
		run_id = claim_next_run(schema, &owner, &owner_name, &job_id);
		if (run_id == 0)
		{
			end_tx();
			return;
		}
		/* never connect as the bootstrap superuser, or as a stranger, by accident */
		if (!OidIsValid(owner) || owner_name == NULL)
		{
			finish_run(schema, run_id, SINGLETON_RUN_FAILED, "the job has no owner", NULL, false);
			end_tx();
			singleton_worker_broadcast_run_done();
			continue;
		}
		if (singleton_job_owner_problem(owner, owner_name, MyDatabaseId, &problem))
		{
			refuse_run(schema, run_id, job_id, &problem);
			end_tx();
			singleton_worker_broadcast_run_done();
			continue;
		}

		/* the slot is taken before the claim commits, so no check sees an orphan */
		SpinLockAcquire(&singleton_worker->mutex);
		singleton_worker->slots[slot].run_id = run_id;
		singleton_worker->slots[slot].pid = 0;
		singleton_worker->slots[slot].owner = owner;
		singleton_worker->slots[slot].deadline = 0;
		singleton_worker->slots[slot].stop_at = 0;
		singleton_worker->slots[slot].terminated = false;
		singleton_worker->slots[slot].timed_out = false;
		SpinLockRelease(&singleton_worker->mutex);
		end_tx();

		if (!start_run_worker(schema, slot, run_id, owner))
			return;
	}
}

static void
prune_history(const char *schema)
{
	char	   *sql;

	if (singleton_job_history <= 0)
		return;
	begin_tx("singleton: pruning job history");
	/* rows a user's transaction holds (a job being deleted) are left for later */
	sql = psprintf("DELETE FROM %s.singleton_job_run WHERE id IN ("
				   " SELECT id FROM %s.singleton_job_run"
				   " WHERE status NOT IN " SINGLETON_RUN_ACTIVE_SQL
				   " AND finished_at < clock_timestamp() - make_interval(secs => %d)"
				   " FOR UPDATE SKIP LOCKED)",
				   schema, schema, singleton_job_history);
	SPI_execute(sql, false, 0);
	end_tx();
}

static void
launcher_exit(int code, Datum arg)
{
	SpinLockAcquire(&singleton_worker->mutex);
	singleton_worker->launcher_pid = 0;
	singleton_worker->launcher_latch = NULL;
	SpinLockRelease(&singleton_worker->mutex);
}

/* What the launcher carries from one cycle to the next. */
typedef struct LauncherState
{
	bool		orphans_checked;
	TimestampTz last_prune;
	MemoryContext cycle_cxt;	/* reset at the start of every cycle */
} LauncherState;

/* One cycle: reap, fail orphans now and then, dispatch, prune. */
static void
launcher_cycle(LauncherState *st)
{
	char	   *schema;

	StartTransactionCommand();
	schema = singleton_extension_schema();
	if (schema)
		schema = MemoryContextStrdup(st->cycle_cxt, schema);
	CommitTransactionCommand();
	if (schema == NULL)
		return;

	reap_workers(schema);
	/* at start, then now and then: restored or stray "running" rows */
	if (!st->orphans_checked ||
		TimestampDifferenceExceeds(st->last_prune, GetCurrentTimestamp(), PRUNE_INTERVAL_MS))
	{
		fail_orphans(schema);
		st->orphans_checked = true;
	}
	dispatch(schema);
	if (TimestampDifferenceExceeds(st->last_prune, GetCurrentTimestamp(), PRUNE_INTERVAL_MS))
	{
		/* first, so that a prune that fails is not retried every cycle */
		st->last_prune = GetCurrentTimestamp();
		prune_history(schema);
	}
}

void
singleton_launcher_main(Datum main_arg)
{
	LauncherState st = {0};

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	SpinLockAcquire(&singleton_worker->mutex);
	singleton_worker->launcher_pid = MyProcPid;
	singleton_worker->launcher_latch = MyLatch;
	SpinLockRelease(&singleton_worker->mutex);
	before_shmem_exit(launcher_exit, (Datum) 0);

	run_handles = MemoryContextAllocZero(TopMemoryContext,
										 sizeof(BackgroundWorkerHandle *) * singleton_worker->nslots);
	st.cycle_cxt = AllocSetContextCreate(TopMemoryContext, "singleton launcher cycle",
										 ALLOCSET_SMALL_SIZES);

	BackgroundWorkerInitializeConnection(singleton_database, NULL, 0);
	pgstat_report_appname("singleton job launcher");
	/* the launcher is a superuser: resolve names in pg_catalog only */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	/* a lock a user holds must not stall dispatch for long (we skip most) */
	SetConfigOption("lock_timeout", "1000", PGC_SUSET, PGC_S_OVERRIDE);

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextReset(st.cycle_cxt);

		/*
		 * An error in one cycle (say, the extension being dropped under us)
		 * is logged and the next cycle starts afresh; the launcher stays up.
		 */
		PG_TRY();
		{
			launcher_cycle(&st);
		}
		PG_CATCH();
		{
			EmitErrorReport();
			FlushErrorState();
			/* the abort also releases SPI and snapshots */
			AbortOutOfAnyTransaction();
			pgstat_report_activity(STATE_IDLE, NULL);
		}
		PG_END_TRY();

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 LAUNCHER_NAPTIME_MS,
						 singleton_wait_event(SINGLETON_WAIT_LAUNCHER));
		ResetLatch(MyLatch);
	}
}

static void
run_exit(int code, Datum arg)
{
	int			slot = DatumGetInt32(arg);

	SpinLockAcquire(&singleton_worker->mutex);
	if (singleton_worker->slots[slot].pid == MyProcPid)
		singleton_worker->slots[slot].pid = 0;
	SpinLockRelease(&singleton_worker->mutex);
}

/* Command tag of what SPI_execute ran last, for the run's result. */
static char *
result_tag(int ret, uint64 processed)
{
	const char *tag;

	switch (ret)
	{
		case SPI_OK_SELECT:
		case SPI_OK_SELINTO:
			tag = "SELECT";
			break;
		case SPI_OK_INSERT:
		case SPI_OK_INSERT_RETURNING:
			return psprintf("INSERT 0 " UINT64_FORMAT, processed);
		case SPI_OK_UPDATE:
		case SPI_OK_UPDATE_RETURNING:
			tag = "UPDATE";
			break;
		case SPI_OK_DELETE:
		case SPI_OK_DELETE_RETURNING:
			tag = "DELETE";
			break;
		case SPI_OK_MERGE:
#ifdef SPI_OK_MERGE_RETURNING
		case SPI_OK_MERGE_RETURNING:
#endif
			tag = "MERGE";
			break;
		default:
			return pstrdup("OK");
	}
	return psprintf("%s " UINT64_FORMAT, tag, processed);
}

/* What a run worker is to run, read when it starts. */
typedef struct RunJob
{
	char	   *schema;
	char	   *command;		/* NULL: stopped before it started */
	int64		timeout_ms;		/* 0: none */
} RunJob;

/*
 * Mark the run started (started_at: when the command really starts, not
 * when it was claimed) and read its job.  The tables are protected from
 * the owner, so as superuser.  Allocates in runcxt.  Needs a transaction.
 */
static void
read_run_job(const RunArgs *args, MemoryContext runcxt, RunJob *job)
{
	SingletonPrivileged priv;
	char	   *sql;
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2];
	bool		isnull;
	Datum		t;

	job->command = NULL;
	job->timeout_ms = 0;
	values[0] = Int64GetDatum(args->run_id);
	values[1] = Int32GetDatum(MyProcPid);
	singleton_begin_privileged(&priv);
	sql = psprintf("UPDATE %s.singleton_job_run r SET worker_pid = $2, started_at = clock_timestamp()"
				   " FROM %s.singleton_job j WHERE r.id = $1 AND j.id = r.job_id"
				   " AND r.status = " SINGLETON_RUN_SQL(RUNNING)
				   " RETURNING j.command, (extract(epoch FROM j.timeout) * 1000)::int8",
				   job->schema, job->schema);
	if (SPI_execute_with_args(sql, 2, types, values, NULL, false, 0) == SPI_OK_UPDATE_RETURNING &&
		SPI_processed == 1)
	{
		job->command = MemoryContextStrdup(runcxt,
										   TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0],
																			 SPI_tuptable->tupdesc, 1, &isnull)));
		t = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		job->timeout_ms = isnull ? 0 : DatumGetInt64(t);
		/* the administrator's cap applies to jobs without a timeout too */
		if (singleton_job_max_timeout > 0 && !superuser_arg(args->owner) &&
			(job->timeout_ms <= 0 || job->timeout_ms > singleton_job_max_timeout))
			job->timeout_ms = singleton_job_max_timeout;
	}
	singleton_end_privileged(&priv);
}

/*
 * Run the command in one transaction, with its timeout as statement timeout
 * and a deadline past which the launcher terminates the worker, and record
 * success in that same transaction unless the run was stopped meanwhile.
 */
static void
run_command(const RunArgs *args, const RunJob *job)
{
	SingletonPrivileged priv;
	int			ret;
	char	   *sql;
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];

	begin_tx(job->command);
	if (job->timeout_ms > 0)
	{
		TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														   job->timeout_ms + SINGLETON_RUN_KILL_GRACE_MS);

		SpinLockAcquire(&singleton_worker->mutex);
		singleton_worker->slots[args->slot].deadline = deadline;
		SpinLockRelease(&singleton_worker->mutex);
		arm_statement_timeout(job->timeout_ms);
	}
	ret = SPI_execute(job->command, false, 0);
	disarm_statement_timeout();
	if (ret < 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("job command could not be run: %s", SPI_result_code_string(ret)),
				 errhint("A job command runs in one transaction; it cannot use COMMIT, ROLLBACK or COPY to or from the client.")));
	values[0] = Int64GetDatum(args->run_id);
	values[1] = CStringGetTextDatum(result_tag(ret, SPI_processed));

	singleton_begin_privileged(&priv);
	sql = psprintf("UPDATE %s.singleton_job_run SET status = " SINGLETON_RUN_SQL(SUCCEEDED) ","
				   " finished_at = clock_timestamp(), result = $2"
				   " WHERE id = $1 AND status = " SINGLETON_RUN_SQL(RUNNING), job->schema);
	if (SPI_execute_with_args(sql, 2, types, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not record the end of run " INT64_FORMAT, args->run_id);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("run " INT64_FORMAT " was stopped", args->run_id)));
	singleton_end_privileged(&priv);
	end_tx();
}

/*
 * The command failed (or was cancelled, or timed out): abort it and record
 * why in a new transaction.  Called in PG_CATCH, in runcxt.
 */
static void
record_failure(const RunArgs *args, const RunJob *job, instr_time start)
{
	SingletonPrivileged priv;
	ErrorData  *edata;
	instr_time	elapsed;
	SingletonRunStatus status;
	char	   *error;

	disarm_statement_timeout();
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	/* a cancel that arrived late must not cancel the bookkeeping too */
	QueryCancelPending = false;

	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
		status = (job->timeout_ms > 0 && INSTR_TIME_GET_MILLISEC(elapsed) >= job->timeout_ms) ?
			SINGLETON_RUN_TIMED_OUT : SINGLETON_RUN_CANCELLED;
	else
		status = SINGLETON_RUN_FAILED;
	error = psprintf("%s: %s", unpack_sql_state(edata->sqlerrcode), edata->message);

	/* a stopped run is already "cancelled"; finish_run leaves it so */
	begin_tx("singleton: recording a failed run");
	singleton_begin_privileged(&priv);
	finish_run(job->schema, args->run_id, status, error, NULL, true);
	singleton_end_privileged(&priv);
	end_tx();
}

void
singleton_run_main(Datum main_arg)
{
	RunArgs		args;
	RunJob		job;
	instr_time	start;
	MemoryContext runcxt;

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	SpinLockAcquire(&singleton_worker->mutex);
	singleton_worker->slots[args.slot].pid = MyProcPid;
	SpinLockRelease(&singleton_worker->mutex);
	before_shmem_exit(run_exit, Int32GetDatum(args.slot));

	/* the command runs in the owner's identity: connect as the owner */
	BackgroundWorkerInitializeConnectionByOid(args.dboid, args.owner, 0);
	pgstat_report_appname("singleton job run");
	runcxt = AllocSetContextCreate(TopMemoryContext, "singleton run", ALLOCSET_DEFAULT_SIZES);

	begin_tx("singleton: starting a run");
	job.schema = singleton_extension_schema();
	if (job.schema == NULL)
	{
		/* the extension was dropped after the run was handed out */
		end_tx();
		proc_exit(0);
	}
	job.schema = MemoryContextStrdup(runcxt, job.schema);
	read_run_job(&args, runcxt, &job);
	end_tx();
	if (job.command == NULL)
		proc_exit(0);			/* stopped before it started */

	INSTR_TIME_SET_CURRENT(start);
	PG_TRY();
	{
		run_command(&args, &job);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(runcxt);
		record_failure(&args, &job, start);
	}
	PG_END_TRY();

	/* the run's end has committed, in either branch */
	singleton_worker_broadcast_run_done();
	singleton_worker_wake_launcher();
	proc_exit(0);
}
