/*-------------------------------------------------------------------------
 *
 * jobs.c
 *		SQL-side helpers of the job handler: waking the launcher when a run
 *		is queued, and the jobs/worker parts of stats and health.
 *
 * The job API itself is SQL (singleton--1.0.sql, updated by the upgrade
 * scripts) over two tables guarded by row-level security, so each role
 * manages only its own jobs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "singleton.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(singleton_worker_wake);
PG_FUNCTION_INFO_V1(singleton_job_database_check);
PG_FUNCTION_INFO_V1(singleton_xid_is_current);

/*
 * The extension's schema, quoted for splicing into our own fixed queries,
 * or NULL if the extension is not installed in this database.  (PostgreSQL
 * 15 does not export get_extension_schema.)  Needs a transaction.
 */
char *
singleton_extension_schema(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			nsp = InvalidOid;
	char	   *name;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("singleton"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		nsp = ((Form_pg_extension) GETSTRUCT(tuple))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (!OidIsValid(nsp))
		return NULL;
	name = get_namespace_name(nsp);
	if (name == NULL)
		return NULL;			/* schema dropped concurrently */
	return pstrdup(quote_identifier(name));
}

static bool wake_at_commit = false;
static bool xact_callback_registered = false;

static void
jobs_xact_callback(XactEvent event, void *arg)
{
	if (!wake_at_commit)
		return;
	if (event == XACT_EVENT_COMMIT)
		worker_wake_launcher();
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT)
		wake_at_commit = false;
}

/*
 * Wake the launcher once this transaction commits, so it sees the run that
 * was just queued.
 */
Datum
singleton_worker_wake(PG_FUNCTION_ARGS)
{
	singleton_require_loaded();
	if (!xact_callback_registered)
	{
		RegisterXactCallback(jobs_xact_callback, NULL);
		xact_callback_registered = true;
	}
	wake_at_commit = true;
	PG_RETURN_VOID();
}

/* Job functions work only in singleton.database, where the worker runs. */
Datum
singleton_job_database_check(PG_FUNCTION_ARGS)
{
	char	   *dbname;

	singleton_require_loaded();
	dbname = get_database_name(MyDatabaseId);
	if (strcmp(dbname, singleton_database) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("singleton jobs run in database \"%s\", not in \"%s\"",
						singleton_database, dbname),
				 errhint("Connect to the database named by singleton.database, or change that setting and restart the server.")));
	PG_RETURN_VOID();
}

/*
 * Was a row with this xmin written by the current transaction or one of its
 * subtransactions?  Used to refuse waiting for a run that cannot start
 * before the caller commits.
 */
Datum
singleton_xid_is_current(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(TransactionIdIsCurrentTransactionId(DatumGetTransactionId(PG_GETARG_DATUM(0))));
}

static void
append_count(StringInfo buf, const char *key, int64 n, bool *first)
{
	appendStringInfo(buf, "%s\"%s\": " INT64_FORMAT, *first ? "" : ", ", key, n);
	*first = false;
}

/*
 * ", \"jobs\": {...}" for singleton_stats(): runs by status and the mean
 * duration of finished runs, as visible to the caller.  Only in
 * singleton.database; elsewhere "jobs" is null.
 */
void
jobs_append_stats(StringInfo buf)
{
	char	   *schema;
	char	   *sql;
	const char *statuses[] = {"queued", "running", "succeeded", "failed", "cancelled", "timed_out"};
	int64		counts[6] = {0};
	double		mean_ms = 0;
	bool		mean_null = true;
	uint64		i;
	int			j;
	bool		first = true;
	int			nestlevel;

	appendStringInfoString(buf, ", \"jobs\": ");
	if (strcmp(get_database_name(MyDatabaseId), singleton_database) != 0 ||
		(schema = singleton_extension_schema()) == NULL)
	{
		appendStringInfoString(buf, "null");
		return;
	}

	/*
	 * The caller's search_path may lead to a schema another role can create
	 * in: pin it, and qualify every function and operator as well.
	 */
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	SPI_connect();
	sql = psprintf("SELECT status, pg_catalog.count(*) FROM %s.singleton_job_run GROUP BY status", schema);
	if (SPI_execute(sql, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not count job runs");
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *status = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		bool		isnull;
		int64		n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));

		for (j = 0; j < 6; j++)
			if (strcmp(status, statuses[j]) == 0)
				counts[j] = n;
	}
	sql = psprintf("SELECT pg_catalog.avg(pg_catalog.date_part('epoch', finished_at OPERATOR(pg_catalog.-) started_at)"
				   "                      OPERATOR(pg_catalog.*) 1000::pg_catalog.float8)"
				   " FROM %s.singleton_job_run WHERE finished_at IS NOT NULL AND started_at IS NOT NULL",
				   schema);
	if (SPI_execute(sql, true, 0) == SPI_OK_SELECT && SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &mean_null);

		if (!mean_null)
			mean_ms = DatumGetFloat8(d);
	}
	SPI_finish();
	AtEOXact_GUC(true, nestlevel);

	appendStringInfoChar(buf, '{');
	for (j = 0; j < 6; j++)
		append_count(buf, statuses[j], counts[j], &first);
	if (mean_null)
		appendStringInfoString(buf, ", \"mean_run_ms\": null}");
	else
		appendStringInfo(buf, ", \"mean_run_ms\": %.3f}", mean_ms);
}

/* ", \"worker\": {...}" for singleton_health(). */
void
jobs_append_health(StringInfo buf)
{
	int			pid;
	int			active = 0;
	int			i;

	SpinLockAcquire(&singleton_worker->mutex);
	pid = singleton_worker->launcher_pid;
	for (i = 0; i < singleton_worker->nslots; i++)
		if (singleton_worker->slots[i].run_id != 0)
			active++;
	SpinLockRelease(&singleton_worker->mutex);

	if (pid != 0 && BackendPidGetProc(pid) == NULL)
		pid = 0;
	appendStringInfo(buf, ", \"worker\": {\"running\": %s, \"pid\": ",
					 pid != 0 ? "true" : "false");
	if (pid != 0)
		appendStringInfo(buf, "%d", pid);
	else
		appendStringInfoString(buf, "null");
	appendStringInfo(buf, ", \"active_runs\": %d, \"max_workers\": %d, \"database\": ",
					 active, singleton_max_workers);
	escape_json(buf, singleton_database);
	appendStringInfoChar(buf, '}');
}
