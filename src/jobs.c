/*-------------------------------------------------------------------------
 *
 * jobs.c
 *		SQL-side helpers of the job handler: the writes behind the job API
 *		(with the one validation of a job's settings), singleton_job_wait,
 *		waking the launcher when a run is queued and waiters when a run is
 *		stopped, and the jobs/worker parts of stats and health.
 *
 * The job API is SQL (singleton--1.0.sql, updated by the upgrade scripts)
 * over two tables guarded by row-level security, so each role manages only
 * its own jobs; the SQL functions call the C ones here.
 *
 * singleton_job_wait sleeps on singleton_worker->run_done, broadcast after
 * every commit that gives a run its final status (worker.c, and here at
 * commit for singleton_job_stop); it holds no lock while it sleeps.
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
#include "catalog/pg_authid.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/procarray.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "area.h"
#include "common.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(singleton_worker_wake);
PG_FUNCTION_INFO_V1(singleton_job_database_check);
PG_FUNCTION_INFO_V1(singleton_xid_is_current);
PG_FUNCTION_INFO_V1(singleton_job_insert);
PG_FUNCTION_INFO_V1(singleton_job_modify);
PG_FUNCTION_INFO_V1(singleton_job_remove);
PG_FUNCTION_INFO_V1(singleton_run_queue);
PG_FUNCTION_INFO_V1(singleton_run_cancel);
PG_FUNCTION_INFO_V1(singleton_job_wait);

static void wake_launcher_at_commit(void);

int			singleton_job_max_attempts = SINGLETON_JOB_MAX_ATTEMPTS_DEFAULT;
int			singleton_job_max_timeout = 0;
int			singleton_job_role_worker_share = 50;
int			singleton_job_role_max_queued = SINGLETON_JOB_MAX_QUEUED_DEFAULT;
int			singleton_job_role_max_jobs = SINGLETON_JOB_MAX_JOBS_DEFAULT;

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

/*
 * Our bookkeeping runs as the bootstrap superuser.  The session belongs to
 * someone else (a job's owner in a run worker, any role in a session), who
 * controls its search_path, so every privileged step pins search_path to
 * pg_catalog and runs as a security-restricted operation: nothing another
 * role defined can be reached with the superuser's rights.  Must be undone
 * with singleton_end_privileged in the same transaction; an abort undoes it
 * too.
 */
void
singleton_begin_privileged(SingletonPrivileged *p)
{
	GetUserIdAndSecContext(&p->save_userid, &p->save_sec_context);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   p->save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	p->save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
}

void
singleton_end_privileged(SingletonPrivileged *p)
{
	AtEOXact_GUC(true, p->save_nestlevel);
	SetUserIdAndSecContext(p->save_userid, p->save_sec_context);
}

/*
 * The caller's search_path may lead to a schema another role can create
 * in: pin it for our queries run as the caller (which qualify every
 * function and operator as well).  Undo with AtEOXact_GUC(true, level).
 */
static int
pin_search_path(void)
{
	int			nestlevel = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	return nestlevel;
}

/*
 * Can this role run a job in database dboid now?  The checks PostgreSQL
 * makes when the run worker connects as the role (LOGIN, CONNECT), plus
 * the ones it makes only for password logins (VALID UNTIL), plus identity:
 * created_as (if not NULL) is the name the role had when it made the job,
 * so a job whose owner was dropped, and whose OID another role got (say
 * after a dump and restore), is never run as that other role.  Fills
 * *problem and returns true if the role cannot.  Needs a transaction.
 */
bool
singleton_job_owner_problem(Oid role, const char *created_as, Oid dboid,
							JobOwnerProblem *problem)
{
	HeapTuple	tuple;
	Form_pg_authid form;
	Datum		until;
	bool		isnull;

	memset(problem, 0, sizeof(*problem));
	tuple = SearchSysCache1(AUTHOID, ObjectIdGetDatum(role));
	if (!HeapTupleIsValid(tuple))
	{
		problem->sqlerrcode = ERRCODE_UNDEFINED_OBJECT;
		problem->gone = true;
		problem->message = created_as ?
			psprintf("role \"%s\" that owns the job no longer exists", created_as) :
			psprintf("role with OID %u that owns the job no longer exists", role);
		return true;
	}
	form = (Form_pg_authid) GETSTRUCT(tuple);
	if (created_as != NULL && strcmp(NameStr(form->rolname), created_as) != 0)
	{
		problem->sqlerrcode = ERRCODE_UNDEFINED_OBJECT;
		problem->gone = true;
		problem->message = psprintf("role \"%s\" that owns the job no longer exists (its OID now belongs to role \"%s\")",
									created_as, NameStr(form->rolname));
	}
	else if (form->rolconnlimit == 0)
	{
		problem->sqlerrcode = ERRCODE_TOO_MANY_CONNECTIONS;
		problem->message = psprintf("role \"%s\" allows no connections (CONNECTION LIMIT 0)",
									NameStr(form->rolname));
	}
	else if (!form->rolcanlogin)
	{
		problem->sqlerrcode = ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
		problem->message = psprintf("role \"%s\" is not permitted to log in",
									NameStr(form->rolname));
	}
	else
	{
		until = SysCacheGetAttr(AUTHOID, tuple, Anum_pg_authid_rolvaliduntil, &isnull);
		if (!isnull && DatumGetTimestampTz(until) < GetCurrentTimestamp())
		{
			problem->sqlerrcode = ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
			problem->message = psprintf("role \"%s\" is no longer valid (VALID UNTIL %s)",
										NameStr(form->rolname),
										timestamptz_to_str(DatumGetTimestampTz(until)));
		}
		else if (SINGLETON_DATABASE_ACLCHECK(dboid, role, ACL_CONNECT) != ACLCHECK_OK)
		{
			char	   *dbname = get_database_name(dboid);

			problem->sqlerrcode = ERRCODE_INSUFFICIENT_PRIVILEGE;
			problem->message = psprintf("role \"%s\" may not connect to database \"%s\"",
										NameStr(form->rolname), dbname ? dbname : "?");
		}
	}
	ReleaseSysCache(tuple);
	return problem->sqlerrcode != 0;
}

/* How many runs of one role's jobs may execute at once. */
int
singleton_job_role_worker_cap(void)
{
	return Max(1, (singleton_max_workers * singleton_job_role_worker_share + 99) / 100);
}

/* An interval as milliseconds, as extract(epoch) counts it. */
static double
interval_ms(Interval *i)
{
	return (double) i->time / 1000.0 +
		((double) i->month * DAYS_PER_MONTH + i->day) * (double) SECS_PER_DAY * 1000.0;
}

/*
 * A job's settings as _singleton_job_insert or _singleton_job_modify got
 * them.  NULL (or has_max_attempts false) means not given: unchanged, or
 * for a new job's timeout, none.
 */
typedef struct JobSettings
{
	text	   *name;
	text	   *command;
	Interval   *timeout;
	bool		has_max_attempts;
	int32		max_attempts;
	Oid			new_owner;		/* a new job's owner; InvalidOid if changing */
} JobSettings;

/* The settings of one call, from its arguments from argno on. */
static void
job_settings_from_args(FunctionCallInfo fcinfo, int argno, bool has_name, JobSettings *s)
{
	memset(s, 0, sizeof(*s));
	if (has_name)
		s->name = PG_GETARG_TEXT_PP(argno++);
	if (!PG_ARGISNULL(argno))
		s->command = PG_GETARG_TEXT_PP(argno);
	argno++;
	if (!PG_ARGISNULL(argno))
		s->timeout = PG_GETARG_INTERVAL_P(argno);
	argno++;
	s->has_max_attempts = !PG_ARGISNULL(argno);
	if (s->has_max_attempts)
		s->max_attempts = PG_GETARG_INT32(argno);
}

/* Is the text empty or only spaces (as btrim(t) = '' in SQL)? */
static bool
text_is_blank(text *t)
{
	const char *p = VARDATA_ANY(t);
	int			len = VARSIZE_ANY_EXHDR(t);
	int			i;

	for (i = 0; i < len; i++)
		if (p[i] != ' ')
			return false;
	return true;
}

static int
interval_compare(Interval *a, Interval *b)
{
	return DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(a),
											 IntervalPGetDatum(b)));
}

/*
 * The statement timer counts whole milliseconds in an int: a job's timeout
 * is between 1 millisecond and 24 days.
 */
#define JOB_TIMEOUT_MIN_USECS	(USECS_PER_SEC / 1000)
#define JOB_TIMEOUT_MAX_DAYS	24

static int
timeout_detail(Interval *timeout)
{
	return errdetail("The timeout given was %s.",
					 DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(timeout))));
}

static void
check_job_timeout(Interval *timeout)
{
	Interval	zero = {0};
	Interval	min = {.time = JOB_TIMEOUT_MIN_USECS};
	Interval	max = {.day = JOB_TIMEOUT_MAX_DAYS};

	if (interval_compare(timeout, &zero) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job timeout must be positive"),
				 timeout_detail(timeout)));
	if (interval_compare(timeout, &min) < 0 || interval_compare(timeout, &max) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job timeout must be between 1 millisecond and 24 days"),
				 timeout_detail(timeout)));
}

/*
 * The administrator's caps on a job's attempts and timeout; superusers'
 * jobs are exempt.
 */
static void
check_job_caps(Oid owner, const JobSettings *s)
{
	if (superuser_arg(owner))
		return;
	if (s->has_max_attempts && s->max_attempts > singleton_job_max_attempts)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_attempts must be at most %d", singleton_job_max_attempts),
				 errdetail("The value given was %d.", s->max_attempts),
				 errhint("An administrator sets the cap with singleton.job_max_attempts.")));
	if (s->timeout != NULL && singleton_job_max_timeout > 0 &&
		interval_ms(s->timeout) > (double) singleton_job_max_timeout)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job timeout must be at most %d ms", singleton_job_max_timeout),
				 errhint("An administrator sets the cap with singleton.job_max_timeout.")));
}

/* Refuse to let the current role make jobs it could not run. */
static void
require_runnable_owner(Oid role)
{
	JobOwnerProblem problem;

	if (singleton_job_owner_problem(role, NULL, MyDatabaseId, &problem))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s, so jobs cannot run as it", problem.message),
				 errhint("Create the job as a role that can log in and connect to this database.")));
}

/*
 * The one validation of a job's settings (the table's CHECK constraints
 * are only a backstop for superusers' direct writes): what was given must
 * be valid, a new job's owner must be able to run it, and the
 * administrator's caps apply for the job's owner, if it is known (a job
 * the caller may not manage is reported absent afterwards).
 */
static void
check_job_settings(const JobSettings *s, Oid owner)
{
	if (s->name != NULL && VARSIZE_ANY_EXHDR(s->name) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job name must not be empty")));
	if (s->command != NULL && text_is_blank(s->command))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job command must not be empty")));
	if (s->command != NULL && VARSIZE_ANY_EXHDR(s->command) > SINGLETON_JOB_COMMAND_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("job command is too long"),
				 errdetail("The command is %zu bytes; at most %d are allowed.",
						   VARSIZE_ANY_EXHDR(s->command), SINGLETON_JOB_COMMAND_MAX)));
	if (s->timeout != NULL)
		check_job_timeout(s->timeout);
	if (s->has_max_attempts && s->max_attempts < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_attempts must be at least 1")));
	if (OidIsValid(s->new_owner))
		require_runnable_owner(s->new_owner);
	if (OidIsValid(owner))
		check_job_caps(owner, s);
}

/* Job functions work only in singleton.database, where the worker runs. */
static void
require_job_database(void)
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
}

/* The extension's schema, or an error; needs a transaction. */
static char *
require_schema(void)
{
	char	   *schema = singleton_extension_schema();

	if (schema == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"singleton\" is not installed in this database")));
	return schema;
}

/*
 * Run one of our fixed statements as the bootstrap superuser; the caller
 * has done SPI_connect.  Returns the SPI result code.
 */
static int
privileged_execute(const char *sql, int nargs, Oid *types, Datum *values,
				   const char *nulls)
{
	SingletonPrivileged priv;
	int			ret;

	singleton_begin_privileged(&priv);
	ret = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);
	singleton_end_privileged(&priv);
	return ret;
}

/*
 * The owner of a job, if it exists and the current role has the owner's
 * privileges (so a job another role cannot see looks absent); InvalidOid
 * otherwise.  *enabled and *name (palloc'd, may be NULL) are filled in.
 */
static Oid
owned_job(const char *schema, int64 job, const char *lock, bool *enabled, char **name)
{
	const char *sql = "SELECT owner::oid, enabled, name FROM %s.singleton_job WHERE id = $1 %s";
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	Oid			owner;
	bool		isnull;

	values[0] = Int64GetDatum(job);
	if (privileged_execute(psprintf(sql, schema, ""), 1, types, values, NULL) != SPI_OK_SELECT)
		elog(ERROR, "could not read job " INT64_FORMAT, job);
	if (SPI_processed != 1)
		return InvalidOid;
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (!has_privs_of_role(GetUserId(), owner))
		return InvalidOid;
	/* lock only a job the caller may manage, then read it again */
	if (lock != NULL)
	{
		if (privileged_execute(psprintf(sql, schema, lock), 1, types, values, NULL) != SPI_OK_SELECT)
			elog(ERROR, "could not lock job " INT64_FORMAT, job);
		if (SPI_processed != 1)
			return InvalidOid;	/* deleted meanwhile */
		owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	if (enabled)
		*enabled = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (name)
		*name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	return owner;
}

static pg_noreturn void
job_not_found(int64 job)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("job " INT64_FORMAT " does not exist", job)));
}

static pg_noreturn void
run_not_found(int64 run)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("job run " INT64_FORMAT " does not exist", run)));
}

/*
 * Serialize the writes that count an owner's jobs or queued runs against a
 * cap, so that concurrent sessions cannot overshoot it: a row per owner in
 * a table PUBLIC cannot touch, locked until the transaction ends.
 */
static void
lock_owner(const char *schema, Oid owner)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1];

	values[0] = ObjectIdGetDatum(owner);
	if (privileged_execute(psprintf("INSERT INTO %s._singleton_job_owner_lock VALUES ($1)"
									" ON CONFLICT (owner) DO UPDATE SET owner = EXCLUDED.owner",
									schema), 1, types, values, NULL) != SPI_OK_INSERT)
		elog(ERROR, "could not lock the jobs of role %u", owner);
}

/* How many rows a counting query of ours found. */
static int64
count_rows(const char *sql, Oid owner)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1];
	bool		isnull;

	values[0] = ObjectIdGetDatum(owner);
	if (privileged_execute(sql, 1, types, values, NULL) != SPI_OK_SELECT)
		elog(ERROR, "could not count the jobs of role %u", owner);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * One of the per-owner caps (superusers have none): count, under the
 * owner's lock, what count_sql counts, and refuse (53400) at cap.  "many"
 * names it in the message, "counted" in the detail.
 */
static void
check_owner_cap(const char *schema, Oid owner, const char *count_sql, int cap,
				const char *many, const char *counted, const char *setting, const char *hint)
{
	int64		n;

	if (superuser_arg(owner))
		return;
	lock_owner(schema, owner);
	n = count_rows(count_sql, owner);
	if (n >= cap)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("role \"%s\" has too many %s", GetUserNameFromId(owner, false), many),
				 errdetail("It has " INT64_FORMAT " %s; %s is %d.", n, counted, setting, cap),
				 errhint("%s", hint)));
}

/* A role that is not a superuser has at most singleton.job_role_max_jobs. */
static void
check_job_count(const char *schema, Oid owner)
{
	check_owner_cap(schema, owner,
					psprintf("SELECT pg_catalog.count(*) FROM %s.singleton_job"
							 " WHERE owner = $1::pg_catalog.regrole", schema),
					singleton_job_role_max_jobs, "jobs", "jobs",
					"singleton.job_role_max_jobs", "Delete jobs it no longer needs.");
}

/* ... and at most singleton.job_role_max_queued queued runs. */
static void
check_queue_length(const char *schema, Oid owner)
{
	/* the queued-runs index makes this one probe per job of the owner */
	check_owner_cap(schema, owner,
					psprintf("SELECT pg_catalog.count(*) FROM %s.singleton_job j"
							 " JOIN %s.singleton_job_run r ON r.job_id = j.id"
							 " WHERE j.owner = $1::pg_catalog.regrole"
							 " AND r.status = " SINGLETON_RUN_SQL(QUEUED), schema, schema),
					singleton_job_role_max_queued, "queued job runs", "queued runs",
					"singleton.job_role_max_queued",
					"Wait for runs to finish, or stop some with singleton_job_stop.");
}

/*
 * _singleton_job_insert(name, command, timeout, max_attempts): a new job
 * owned by the current role; returns its id.  A duplicate name of the same
 * owner raises unique_violation.
 */
Datum
singleton_job_insert(PG_FUNCTION_ARGS)
{
	Oid			me = GetUserId();
	char	   *schema;
	char	   *sql;
	Oid			types[6] = {TEXTOID, TEXTOID, INTERVALOID, INT4OID, OIDOID, TEXTOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	int64		id;
	JobSettings settings;

	singleton_require_loaded();
	singleton_require_arg(fcinfo, 0, "job name");
	singleton_require_arg(fcinfo, 1, "job command");
	singleton_require_arg(fcinfo, 3, "max_attempts");
	job_settings_from_args(fcinfo, 0, true, &settings);
	settings.new_owner = me;
	check_job_settings(&settings, me);

	schema = require_schema();
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	if (PG_ARGISNULL(2))
		nulls[2] = 'n';
	else
		values[2] = PG_GETARG_DATUM(2);
	values[3] = PG_GETARG_DATUM(3);
	values[4] = ObjectIdGetDatum(me);
	values[5] = CStringGetTextDatum(GetUserNameFromId(me, false));
	sql = psprintf("INSERT INTO %s.singleton_job (name, command, timeout, max_attempts, owner, owner_name)"
				   " VALUES ($1, $2, $3, $4, $5::pg_catalog.regrole, $6::pg_catalog.name) RETURNING id",
				   schema);
	SPI_connect();
	check_job_count(schema, me);
	if (privileged_execute(sql, 6, types, values, nulls) != SPI_OK_INSERT_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "could not create the job");
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	PG_RETURN_INT64(id);
}

/*
 * _singleton_job_modify(job, command, timeout, max_attempts, enabled):
 * change what is not NULL.  Enabling a job clears the reason it was
 * disabled for (if its owner is still gone, the next run disables it again).
 */
Datum
singleton_job_modify(PG_FUNCTION_ARGS)
{
	int64		job;
	char	   *schema;
	char	   *sql;
	Oid			owner;
	Oid			types[5] = {INT8OID, TEXTOID, INTERVALOID, INT4OID, BOOLOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	int			i;
	JobSettings settings;

	singleton_require_loaded();
	singleton_require_arg(fcinfo, 0, "job");
	job = PG_GETARG_INT64(0);
	job_settings_from_args(fcinfo, 1, false, &settings);
	schema = require_schema();
	SPI_connect();
	owner = owned_job(schema, job, NULL, NULL, NULL);
	check_job_settings(&settings, owner);
	if (!OidIsValid(owner))
		job_not_found(job);
	for (i = 0; i < 5; i++)
	{
		if (PG_ARGISNULL(i))
			nulls[i] = 'n';
		else
			values[i] = PG_GETARG_DATUM(i);
	}
	sql = psprintf("UPDATE %s.singleton_job SET command = coalesce($2, command),"
				   " timeout = coalesce($3, timeout), max_attempts = coalesce($4, max_attempts),"
				   " enabled = coalesce($5, enabled),"
				   " disabled_reason = CASE WHEN $5 THEN NULL ELSE disabled_reason END"
				   " WHERE id = $1", schema);
	if (privileged_execute(sql, 5, types, values, nulls) != SPI_OK_UPDATE)
		elog(ERROR, "could not change job " INT64_FORMAT, job);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * _singleton_job_remove(job): stop a job's active runs and delete it with
 * its history, the job row locked first so that concurrent deletes and
 * queueing wait for each other instead of deadlocking.  Returns the pids of
 * the workers to cancel (possibly none), or NULL if there is no such job
 * the current role may manage.
 */
Datum
singleton_job_remove(PG_FUNCTION_ARGS)
{
	int64		job;
	char	   *schema;
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	Datum	   *pids;
	uint64		i;
	ArrayType  *result;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext spi;

	singleton_require_loaded();
	singleton_require_arg(fcinfo, 0, "job");
	job = PG_GETARG_INT64(0);
	schema = require_schema();
	values[0] = Int64GetDatum(job);
	SPI_connect();
	if (!OidIsValid(owned_job(schema, job, "FOR UPDATE", NULL, NULL)))
	{
		SPI_finish();
		PG_RETURN_NULL();
	}
	if (privileged_execute(psprintf("UPDATE %s.singleton_job_run SET status = " SINGLETON_RUN_SQL(CANCELLED) ","
									" finished_at = pg_catalog.clock_timestamp()"
									" WHERE job_id = $1 AND status IN " SINGLETON_RUN_ACTIVE_SQL
									" RETURNING coalesce(worker_pid, 0), id", schema),
						   1, types, values, NULL) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not stop the runs of job " INT64_FORMAT, job);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		singleton_worker_request_stop(DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
														SPI_tuptable->tupdesc, 2, &isnull)));
	}
	/* the result outlives SPI's memory */
	spi = MemoryContextSwitchTo(caller);
	pids = palloc(sizeof(Datum) * (SPI_processed + 1));
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		pids[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
	}
	result = construct_array(pids, (int) SPI_processed, INT4OID, sizeof(int32), true, TYPALIGN_INT);
	MemoryContextSwitchTo(spi);
	if (privileged_execute(psprintf("DELETE FROM %s.singleton_job WHERE id = $1", schema),
						   1, types, values, NULL) != SPI_OK_DELETE)
		elog(ERROR, "could not delete job " INT64_FORMAT, job);
	/* waiters for its runs must look again: they get 42704 */
	singleton_run_done_at_commit();
	SPI_finish();
	PG_RETURN_ARRAYTYPE_P(result);
}

/*
 * _singleton_run_queue(job): queue a run of an enabled job the current role
 * may manage and return its id; the launcher is woken at commit.  A role
 * that is not a superuser may have at most singleton.job_role_max_queued
 * runs waiting (counted for the job's owner).
 */
Datum
singleton_run_queue(PG_FUNCTION_ARGS)
{
	int64		job;
	char	   *schema;
	char	   *name = NULL;
	bool		enabled = false;
	Oid			owner;
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	bool		isnull;
	int64		run;

	singleton_require_loaded();
	singleton_require_arg(fcinfo, 0, "job");
	job = PG_GETARG_INT64(0);
	schema = require_schema();
	SPI_connect();
	owner = owned_job(schema, job, "FOR KEY SHARE", &enabled, &name);
	if (!OidIsValid(owner))
		job_not_found(job);
	if (!enabled)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job \"%s\" is disabled", name),
				 errhint("Enable it with singleton_job_update(job, enabled => true).")));
	check_queue_length(schema, owner);
	values[0] = Int64GetDatum(job);
	if (privileged_execute(psprintf("INSERT INTO %s.singleton_job_run (job_id) VALUES ($1) RETURNING id",
									schema), 1, types, values, NULL) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not queue a run of job " INT64_FORMAT, job);
	run = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	wake_launcher_at_commit();
	PG_RETURN_INT64(run);
}

/*
 * _singleton_run_cancel(run): mark a queued or running run cancelled.
 * Returns the pid of its worker to cancel (0 if it has none yet), or -1 if
 * it had already finished; a run the current role may not manage does not
 * exist (42704).
 */
Datum
singleton_run_cancel(PG_FUNCTION_ARGS)
{
	int64		run;
	char	   *schema;
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	bool		isnull;
	Oid			owner;
	int32		pid = -1;

	singleton_require_loaded();
	singleton_require_arg(fcinfo, 0, "run");
	run = PG_GETARG_INT64(0);
	schema = require_schema();
	values[0] = Int64GetDatum(run);
	SPI_connect();
	if (privileged_execute(psprintf("SELECT j.owner::oid FROM %s.singleton_job_run r"
									" JOIN %s.singleton_job j ON j.id = r.job_id WHERE r.id = $1",
									schema, schema), 1, types, values, NULL) != SPI_OK_SELECT)
		elog(ERROR, "could not read run " INT64_FORMAT, run);
	owner = SPI_processed == 1 ?
		DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) :
		InvalidOid;
	if (!OidIsValid(owner) || !has_privs_of_role(GetUserId(), owner))
		run_not_found(run);
	if (privileged_execute(psprintf("UPDATE %s.singleton_job_run SET status = " SINGLETON_RUN_SQL(CANCELLED) ","
									" finished_at = pg_catalog.clock_timestamp()"
									" WHERE id = $1 AND status IN " SINGLETON_RUN_ACTIVE_SQL
									" RETURNING coalesce(worker_pid, 0)", schema),
						   1, types, values, NULL) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not stop run " INT64_FORMAT, run);
	if (SPI_processed == 1)
	{
		pid = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		singleton_run_done_at_commit();
		singleton_worker_request_stop(run);
	}
	SPI_finish();
	PG_RETURN_INT32(pid);
}

/* How long singleton_job_wait sleeps at most without a wake-up. */
#define JOB_WAIT_RECHECK_MS		1000

/* A run as singleton_job_wait looks at it. */
typedef struct RunLook
{
	Datum		row;			/* the singleton_job_run row, in SPI memory */
	SingletonRunStatus status;
	TransactionId xmin;
} RunLook;

/*
 * The plan that reads a run as the caller sees it (row-level security
 * applies), and which singleton_job_wait runs with a new snapshot each time.
 */
static SPIPlanPtr
prepare_run_look(const char *schema)
{
	Oid			types[1] = {INT8OID};
	SPIPlanPtr	plan;

	plan = SPI_prepare(psprintf("SELECT r, r.status::pg_catalog.text, r.xmin"
								" FROM %s.singleton_job_run r WHERE r.id OPERATOR(pg_catalog.=) $1",
								schema), 1, types);
	if (plan == NULL)
		elog(ERROR, "could not prepare to read job runs: %s", SPI_result_code_string(SPI_result));
	return plan;
}

/* Read the run; false if the caller sees no such run. */
static bool
look_at_run(SPIPlanPtr plan, int64 run, RunLook *look)
{
	Datum		values[1] = {Int64GetDatum(run)};
	HeapTuple	tuple;
	TupleDesc	desc;
	bool		isnull;

	if (SPI_tuptable != NULL)
		SPI_freetuptable(SPI_tuptable);
	/* not read-only: in read committed each execution takes a new snapshot */
	if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read job run " INT64_FORMAT, run);
	if (SPI_processed != 1)
		return false;
	tuple = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	look->row = SPI_getbinval(tuple, desc, 1, &isnull);
	look->status = singleton_run_status_from_name(SPI_getvalue(tuple, desc, 2));
	look->xmin = DatumGetTransactionId(SPI_getbinval(tuple, desc, 3, &isnull));
	return true;
}

/*
 * Sleep until the run has finished or the deadline (if any) has passed.
 * Every final status broadcasts singleton_worker->run_done once it has
 * committed; being on the condition variable's list before each look
 * means no broadcast is missed, and the bounded sleep covers changes
 * nobody broadcasts (a superuser's direct write).
 */
static void
sleep_until_finished(SPIPlanPtr plan, int64 run, bool has_deadline,
					 TimestampTz deadline, RunLook *look)
{
	ConditionVariable *cv = &singleton_worker->run_done;

	ConditionVariablePrepareToSleep(cv);
	for (;;)
	{
		long		sleep_ms = JOB_WAIT_RECHECK_MS;

		CHECK_FOR_INTERRUPTS();
		if (!look_at_run(plan, run, look))
			run_not_found(run);
		if (look->status != SINGLETON_RUN_QUEUED && look->status != SINGLETON_RUN_RUNNING)
			break;
		if (has_deadline)
		{
			TimestampTz now = GetCurrentTimestamp();

			if (now >= deadline)
				break;
			sleep_ms = Min(sleep_ms, TimestampDifferenceMilliseconds(now, deadline));
		}
		(void) ConditionVariableTimedSleep(cv, sleep_ms, singleton_wait_event(SINGLETON_WAIT_JOB));
	}
	ConditionVariableCancelSleep();
}

/* The checks singleton_job_wait makes before it waits, in their order. */
static void
check_wait_args(FunctionCallInfo fcinfo)
{
	Interval	zero = {0};

	singleton_require_arg(fcinfo, 0, "run");
	if (!PG_ARGISNULL(1) && interval_compare(PG_GETARG_INTERVAL_P(1), &zero) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("wait timeout must not be negative")));
	/* a fixed snapshot would never see the run finish (1.0 also refused read uncommitted) */
	if (XactIsoLevel != XACT_READ_COMMITTED)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("singleton_job_wait needs the read committed isolation level"),
				 errhint("Wait outside a repeatable read or serializable transaction.")));
}

/*
 * singleton_job_wait(run, timeout): wait (interruptibly) until the run has
 * finished or the timeout (NULL: none) has passed; return the run.
 */
Datum
singleton_job_wait(PG_FUNCTION_ARGS)
{
	int64		run;
	char	   *schema;
	int			nestlevel;
	SPIPlanPtr	plan;
	RunLook		look;
	TimestampTz deadline = 0;
	Datum		result;

	check_wait_args(fcinfo);
	run = PG_GETARG_INT64(0);
	schema = require_schema();
	nestlevel = pin_search_path();
	SPI_connect();
	plan = prepare_run_look(schema);
	/* a run queued by this very transaction cannot start before it commits */
	if (look_at_run(plan, run, &look) && look.status == SINGLETON_RUN_QUEUED &&
		TransactionIdIsCurrentTransactionId(look.xmin))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job run " INT64_FORMAT " was queued by this transaction, so it cannot start before the transaction commits", run),
				 errhint("Commit the transaction that called singleton_job_execute, then wait for the run.")));
	require_job_database();
	if (!PG_ARGISNULL(1))
		deadline = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
														   TimestampTzGetDatum(GetCurrentTimestamp()),
														   PG_GETARG_DATUM(1)));
	sleep_until_finished(plan, run, !PG_ARGISNULL(1), deadline, &look);
	result = SPI_datumTransfer(look.row, false, -1);
	SPI_finish();
	AtEOXact_GUC(true, nestlevel);
	PG_RETURN_DATUM(result);
}

/* What to do when the current transaction commits (backend-local). */
static bool wake_at_commit = false;
static bool run_done_at_commit = false;
static bool xact_callback_registered = false;

/*
 * Commit callbacks run once the transaction is visible to new snapshots,
 * so whoever is woken sees what it did.
 */
static void
jobs_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT)
	{
		if (wake_at_commit)
			singleton_worker_wake_launcher();
		if (run_done_at_commit)
			singleton_worker_broadcast_run_done();
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		wake_at_commit = false;
		run_done_at_commit = false;
	}
}

static void
register_xact_callback(void)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(jobs_xact_callback, NULL);
		xact_callback_registered = true;
	}
}

/*
 * Wake the launcher once this transaction commits, so it sees the run that
 * was just queued.
 */
static void
wake_launcher_at_commit(void)
{
	register_xact_callback();
	wake_at_commit = true;
}

/*
 * Wake singleton_job_wait callers once this transaction commits: it gave a
 * run its final status (or deleted runs).
 */
void
singleton_run_done_at_commit(void)
{
	register_xact_callback();
	run_done_at_commit = true;
}

/*
 * _singleton_worker_wake() and _singleton_xid_is_current(xid) of 1.0: 1.1
 * does both in C and drops them, but an installation still on 1.0 calls
 * them through this library.
 */
Datum
singleton_worker_wake(PG_FUNCTION_ARGS)
{
	singleton_require_loaded();
	wake_launcher_at_commit();
	PG_RETURN_VOID();
}

/* Job functions work only in singleton.database, where the worker runs. */
Datum
singleton_job_database_check(PG_FUNCTION_ARGS)
{
	require_job_database();
	PG_RETURN_VOID();
}

/* Was a row with this xmin written by this transaction (1.0 only)? */
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
singleton_jobs_append_stats(StringInfo buf)
{
	char	   *schema;
	char	   *sql;
	int64		counts[SINGLETON_RUN_STATUS_COUNT] = {0};
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

	nestlevel = pin_search_path();
	SPI_connect();
	sql = psprintf("SELECT status::pg_catalog.text, pg_catalog.count(*) FROM %s.singleton_job_run"
				   " GROUP BY status", schema);
	if (SPI_execute(sql, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not count job runs");
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *status = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		bool		isnull;
		int64		n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));

		counts[singleton_run_status_from_name(status)] = n;
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
	for (j = 0; j < SINGLETON_RUN_STATUS_COUNT; j++)
		append_count(buf, singleton_run_status_names[j], counts[j], &first);
	if (mean_null)
		appendStringInfoString(buf, ", \"mean_run_ms\": null}");
	else
		appendStringInfo(buf, ", \"mean_run_ms\": %.3f}", mean_ms);
}

/* ", \"worker\": {...}" for singleton_health(). */
void
singleton_jobs_append_health(StringInfo buf)
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
