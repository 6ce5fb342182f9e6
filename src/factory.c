/*-------------------------------------------------------------------------
 *
 * factory.c
 *		singleton_get(name, factory): lazy creation that runs once.
 *
 * The first caller claims the name by publishing an initializing entry
 * (singleton_registry_claim), holds no lock, runs the factory query
 * through SPI as the calling role and stores the result.  Other callers
 * sleep on a condition variable, holding no lock, until the entry is ready
 * or gone; if it is gone (the factory failed) one of them claims it next.
 *
 * A claim is remembered in a small backend-local array, tagged with the
 * subtransaction that made it.  If the factory fails, the claim is dropped
 * by the (sub)transaction abort callback, which runs after the abort has
 * released all LWLocks; if the backend exits (pg_terminate_backend), by a
 * before_shmem_exit callback.  Either way the waiters are woken.
 *
 * Deadlock detection needs to know whom each waiting session waits for:
 * FactoryShared has one slot per PGPROC, written by its own backend
 * (atomics), read by waiters looking for cycles.  A process without a
 * PGPROC index publishes nothing (it runs no SQL).  This file takes no
 * partition lock; the registry store does that.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "admission.h"
#include "area.h"
#include "common.h"
#include "factory.h"
#include "registry.h"

PG_FUNCTION_INFO_V1(singleton_get_factory);

#define MAX_PENDING_CLAIMS	32

/* How often a waiter re-checks that the creator is alive. */
#define FACTORY_RECHECK_MS	1000

typedef struct PendingClaim
{
	Oid			dbid;
	int			len;
	char		name[SINGLETON_NAME_MAX + 1];
	uint64		generation;
	SubTransactionId subid;
} PendingClaim;

static PendingClaim pending[MAX_PENDING_CLAIMS];
static int	npending = 0;

int			singleton_wait_timeout = SINGLETON_WAIT_TIMEOUT_DEFAULT;

/* Who a backend's factory wait waits for, for deadlock detection. */
typedef struct FactoryWaitSlot
{
	pg_atomic_uint32 pid;		/* the backend, once it has used a factory */
	pg_atomic_uint32 waiting_for_pid;	/* the creator it waits for, or 0 */
} FactoryWaitSlot;

typedef struct FactoryShared
{
	int			nslots;			/* MaxBackends, set at startup */
	FactoryWaitSlot slots[FLEXIBLE_ARRAY_MEMBER];
} FactoryShared;

static FactoryShared *factory_shared = NULL;
static bool backend_initialized = false;

Size
singleton_factory_shmem_size(void)
{
	return add_size(offsetof(FactoryShared, slots),
					mul_size(MaxBackends, sizeof(FactoryWaitSlot)));
}

void
singleton_factory_shmem_init(void)
{
	bool		found;
	int			i;

	factory_shared = ShmemInitStruct("singleton factory", singleton_factory_shmem_size(), &found);
	if (found)
		return;
	factory_shared->nslots = MaxBackends;
	for (i = 0; i < MaxBackends; i++)
	{
		pg_atomic_init_u32(&factory_shared->slots[i].pid, 0);
		pg_atomic_init_u32(&factory_shared->slots[i].waiting_for_pid, 0);
	}
}

/* This backend's wait slot, or NULL if it has no PGPROC index. */
static FactoryWaitSlot *
my_wait_slot(void)
{
	int			i = SINGLETON_MY_PROC_INDEX();

	return (i >= 0 && i < factory_shared->nslots) ? &factory_shared->slots[i] : NULL;
}

/* Publish whom this backend waits for (0: nobody). */
static void
set_waiting_for(int pid)
{
	FactoryWaitSlot *slot = my_wait_slot();

	if (slot == NULL)
		return;
	pg_atomic_write_u32(&slot->waiting_for_pid, (uint32) pid);
	/* publish the edge before anyone may look for cycles through it */
	pg_memory_barrier();
}

static void
wake_waiters(Oid dbid, const char *name, int len)
{
	ConditionVariableBroadcast(singleton_registry_entry_cv(dbid, name, len));
}

/* Drop claims made at or below subid (all if subid is invalid). */
static void
abandon_claims(SubTransactionId subid)
{
	while (npending > 0)
	{
		PendingClaim *p = &pending[npending - 1];

		if (subid != InvalidSubTransactionId && p->subid < subid)
			break;
		/* forget the claim only once it is gone, so a failure here retries */
		if (singleton_registry_abandon_claim(p->dbid, p->name, p->len, p->generation))
			wake_waiters(p->dbid, p->name, p->len);
		npending--;
	}
}

static void
factory_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		abandon_claims(InvalidSubTransactionId);
		set_waiting_for(0);
	}
}

static void
factory_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		abandon_claims(mySubid);
		set_waiting_for(0);
	}
}

static void
factory_on_exit(int code, Datum arg)
{
	FactoryWaitSlot *slot = my_wait_slot();

	if (npending > 0)
	{
		/*
		 * A FATAL (say, pg_terminate_backend) while a factory runs: abort the
		 * transaction as ShutdownPostgres would, which releases every lock and
		 * drops the claims through our abort callback; drop what is left.
		 */
		AbortOutOfAnyTransaction();
		abandon_claims(InvalidSubTransactionId);
	}
	if (slot != NULL)
	{
		pg_atomic_write_u32(&slot->waiting_for_pid, 0);
		pg_atomic_write_u32(&slot->pid, 0);
	}
}

/* Once per backend, before its first factory call. */
static void
init_backend(void)
{
	FactoryWaitSlot *slot = my_wait_slot();

	if (backend_initialized)
		return;
	if (slot != NULL)
	{
		pg_atomic_write_u32(&slot->pid, MyProcPid);
		pg_atomic_write_u32(&slot->waiting_for_pid, 0);
	}
	RegisterXactCallback(factory_xact_callback, NULL);
	RegisterSubXactCallback(factory_subxact_callback, NULL);
	before_shmem_exit(factory_on_exit, (Datum) 0);
	backend_initialized = true;
}

/* The pid a backend waits for in a factory wait, or 0. */
static int
factory_wait_target(int pid)
{
	int			i;

	for (i = 0; i < factory_shared->nslots; i++)
	{
		FactoryWaitSlot *slot = &factory_shared->slots[i];

		if ((int) pg_atomic_read_u32(&slot->pid) == pid)
			return (int) pg_atomic_read_u32(&slot->waiting_for_pid);
	}
	return 0;
}

/*
 * Would waiting for creator_pid close a cycle?  Edges are factory waits
 * (from the wait slots) and heavyweight-lock waits (pg_blocking_pids),
 * so a factory blocked on a lock this session holds is found too: the
 * lock manager's own detector cannot see a condition-variable wait.
 */
#define DEADLOCK_MAX_NODES 64

static bool
factory_deadlock(int creator_pid)
{
	int			queue[DEADLOCK_MAX_NODES];
	int			nqueue = 0;
	int			next = 0;
	bool		found = false;
	MemoryContext cxt;
	MemoryContext old;

	/* pg_blocking_pids allocates; keep a long wait from accumulating it */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "singleton deadlock check",
								ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);

	queue[nqueue++] = creator_pid;
	while (next < nqueue)
	{
		int			pid = queue[next++];
		int			target = factory_wait_target(pid);
		ArrayType  *blockers;
		Datum	   *elems;
		int			nelems;
		int			i;
		int			j;
		int			candidates[DEADLOCK_MAX_NODES + 1];
		int			ncandidates = 0;

		if (target != 0)
			candidates[ncandidates++] = target;
		blockers = DatumGetArrayTypeP(DirectFunctionCall1(pg_blocking_pids,
														  Int32GetDatum(pid)));
		deconstruct_array(blockers, INT4OID, sizeof(int32), true, TYPALIGN_INT,
						  &elems, NULL, &nelems);
		for (i = 0; i < nelems && ncandidates < DEADLOCK_MAX_NODES; i++)
			candidates[ncandidates++] = DatumGetInt32(elems[i]);

		for (i = 0; i < ncandidates; i++)
		{
			bool		seen = false;

			if (candidates[i] == MyProcPid)
				found = true;
			for (j = 0; j < nqueue; j++)
				if (queue[j] == candidates[i])
					seen = true;
			if (!seen && nqueue < DEADLOCK_MAX_NODES)
				queue[nqueue++] = candidates[i];
		}
		if (found)
			break;
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return found;
}

/*
 * Sleep until the entry is no longer initializing.  Honours interrupts,
 * statement_timeout and singleton.wait_timeout.
 */
static void
wait_for_factory(const char *name, int len, int creator_pid,
				 TimestampTz wait_start)
{
	ConditionVariable *cv = singleton_registry_entry_cv(MyDatabaseId, name, len);
	TimestampTz last_check = GetCurrentTimestamp();	/* no check before a full interval */
	int			cycle_seen = 0;

	set_waiting_for(creator_pid);

	ConditionVariablePrepareToSleep(cv);
	for (;;)
	{
		long		sleep_ms = FACTORY_RECHECK_MS;
		int			pid = creator_pid;

		/* re-check after preparing to sleep, so no wakeup is missed */
		if (!singleton_registry_initializing(name, len, &creator_pid))
			break;
		if (creator_pid != pid)
		{
			/* another session took over the creation */
			set_waiting_for(creator_pid);
			cycle_seen = 0;
		}

		if (BackendPidGetProc(creator_pid) == NULL)
		{
			/* the creator is gone without cleaning up: take its place */
			if (singleton_registry_remove_stale_claim(name, len, creator_pid))
				wake_waiters(MyDatabaseId, name, len);
			break;
		}

		/*
		 * Look for a cycle once per recheck interval however often we are
		 * woken, and report it only if it is still there one interval later:
		 * a session that has just been woken may not have cleared its edge.
		 */
		if (TimestampDifferenceExceeds(last_check, GetCurrentTimestamp(), FACTORY_RECHECK_MS))
		{
			last_check = GetCurrentTimestamp();
			cycle_seen = factory_deadlock(creator_pid) ? cycle_seen + 1 : 0;
			if (cycle_seen >= 2)
				ereport(ERROR,
						(errcode(ERRCODE_T_R_DEADLOCK_DETECTED),
						 errmsg("deadlock detected while waiting for singleton \"%.*s\"",
								len, name),
						 errdetail("Process %d runs the factory of \"%.*s\" and waits, directly or through other sessions, for this session.",
								   creator_pid, len, name)));
		}

		if (singleton_wait_timeout > 0)
		{
			long		waited_ms;

			waited_ms = (long) ((GetCurrentTimestamp() - wait_start) / 1000);
			if (waited_ms >= singleton_wait_timeout)
				ereport(ERROR,
						(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
						 errmsg("timed out waiting for the factory of singleton \"%.*s\"",
								len, name),
						 errdetail("Process %d is still running it after %d ms.",
								   creator_pid, singleton_wait_timeout),
						 errhint("Raise singleton.wait_timeout, or set it to 0 to wait without a limit.")));
			sleep_ms = Min(sleep_ms, singleton_wait_timeout - waited_ms);
		}

		(void) ConditionVariableTimedSleep(cv, sleep_ms,
										  singleton_wait_event(SINGLETON_WAIT_FACTORY));
	}
	ConditionVariableCancelSleep();
	set_waiting_for(0);
}

static void
factory_shape_error(const char *name, int len, int sqlstate, int shape)
{
	const char *hint = "A factory must be a query that returns exactly one row with one column.";

	switch (shape)
	{
		case 0:
			ereport(ERROR,
					(errcode(sqlstate),
					 errmsg("factory of singleton \"%.*s\" did not return rows", len, name),
					 errhint("%s", hint)));
			break;
		case 1:
			ereport(ERROR,
					(errcode(sqlstate),
					 errmsg("factory of singleton \"%.*s\" returned no row", len, name),
					 errhint("%s", hint)));
			break;
		case 2:
			ereport(ERROR,
					(errcode(sqlstate),
					 errmsg("factory of singleton \"%.*s\" returned more than one row", len, name),
					 errhint("%s", hint)));
			break;
		default:
			ereport(ERROR,
					(errcode(sqlstate),
					 errmsg("factory of singleton \"%.*s\" returned %d columns", len, name, shape - 10),
					 errhint("%s", hint)));
			break;
	}
}

/*
 * Run the factory query as the current role and return its value as jsonb,
 * allocated in the caller's memory context.
 */
static Jsonb *
run_factory(const char *name, int len, const char *query)
{
	MemoryContext caller = CurrentMemoryContext;
	Jsonb	   *result;
	Jsonb	   *converted;
	TupleDesc	desc;
	Datum		d;
	bool		isnull;
	Oid			typid;
	int			ret;

	SPI_connect();
	ret = SPI_execute(query, false, 2);
	if (ret < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("factory of singleton \"%.*s\" could not be run: %s",
						len, name, SPI_result_code_string(ret))));
	if (SPI_tuptable == NULL)
		factory_shape_error(name, len, ERRCODE_INVALID_PARAMETER_VALUE, 0);
	if (SPI_processed == 0)
		factory_shape_error(name, len, ERRCODE_INVALID_PARAMETER_VALUE, 1);
	if (SPI_processed > 1)
		factory_shape_error(name, len, ERRCODE_CARDINALITY_VIOLATION, 2);
	desc = SPI_tuptable->tupdesc;
	if (desc->natts != 1)
		factory_shape_error(name, len, ERRCODE_INVALID_PARAMETER_VALUE,
							10 + desc->natts);

	d = SPI_getbinval(SPI_tuptable->vals[0], desc, 1, &isnull);
	typid = SPI_gettypeid(desc, 1);
	/* void and the like have no JSON form (record has one) */
	if (get_typtype(typid) == TYPTYPE_PSEUDO && typid != RECORDOID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("factory of singleton \"%.*s\" returned a value of type %s",
						len, name, format_type_be(typid)),
				 errhint("A factory must return a value that has a JSON form, such as SELECT 1 or SELECT pg_sleep(0)::text.")));
	if (isnull)
	{
		JsonbValue	jv;

		jv.type = jbvNull;
		converted = JsonbValueToJsonb(&jv);
	}
	else if (typid == JSONBOID)
		converted = DatumGetJsonbP(d);
	else
	{
		/* convert as to_jsonb would; the value is a parameter, not SQL */
		Datum		arg = d;

		ret = SPI_execute_with_args("SELECT pg_catalog.to_jsonb($1)",
									1, &typid, &arg, NULL, true, 1);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not convert factory result to jsonb");
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		converted = DatumGetJsonbP(d);
	}

	result = MemoryContextAlloc(caller, VARSIZE(converted));
	memcpy(result, converted, VARSIZE(converted));
	SPI_finish();
	return result;
}

static void
push_claim(const char *name, int len, uint64 generation)
{
	PendingClaim *p;

	if (npending >= MAX_PENDING_CLAIMS)
	{
		/* give the claim back before complaining */
		if (singleton_registry_abandon_claim(MyDatabaseId, name, len, generation))
			wake_waiters(MyDatabaseId, name, len);
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many nested singleton factories"),
				 errdetail("At most %d factories may run inside one another.",
						   MAX_PENDING_CLAIMS)));
	}
	p = &pending[npending];
	p->dbid = MyDatabaseId;
	p->len = len;
	memcpy(p->name, name, len);
	p->name[len] = '\0';
	p->generation = generation;
	p->subid = GetCurrentSubTransactionId();
	npending++;
}

static bool
is_claimed_here(const char *name, int len)
{
	int			i;

	for (i = 0; i < npending; i++)
		if (pending[i].dbid == MyDatabaseId && pending[i].len == len &&
			memcmp(pending[i].name, name, len) == 0)
			return true;
	return false;
}

/* The arguments of one singleton_get(name, factory, ...) call. */
typedef struct FactoryCall
{
	const char *name;
	int			len;
	char	   *query;
	char	   *type;			/* NULL: from the value */
	bool		private;
} FactoryCall;

static void
read_factory_call(FunctionCallInfo fcinfo, FactoryCall *c)
{
	text	   *name_t;

	singleton_require_arg(fcinfo, 0, "singleton name");
	singleton_require_arg(fcinfo, 1, "singleton factory");
	name_t = PG_GETARG_TEXT_PP(0);
	c->name = VARDATA_ANY(name_t);
	c->len = VARSIZE_ANY_EXHDR(name_t);
	singleton_check_name(c->name, c->len);
	c->query = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (c->query[strspn(c->query, " \t\r\n")] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("singleton factory must not be empty")));
	c->type = NULL;
	if (!PG_ARGISNULL(2))
	{
		c->type = text_to_cstring(PG_GETARG_TEXT_PP(2));
		singleton_check_type(c->type, strlen(c->type));
	}
	c->private = PG_ARGISNULL(3) ? false : PG_GETARG_BOOL(3);
}

/*
 * A caller that asks for a private entry must not be handed a value another
 * role put there first (say, to poison a secret).
 */
static void
check_ready_owner(const FactoryCall *c, Oid owner)
{
	const char *holder;

	if (!c->private || has_privs_of_role(GetUserId(), owner))
		return;
	holder = GetUserNameFromId(owner, true);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("singleton \"%.*s\" belongs to another role", c->len, c->name),
			 errdetail("A private entry was asked for, but the name is held by role \"%s\".",
					   holder ? holder : "(dropped)"),
			 errhint("Use a name no other role can take, or have an administrator delete the entry.")));
}

/* Wait for another session's claim to end, counting the wait time. */
static void
wait_for_claim(const FactoryCall *c, int creator_pid, TimestampTz wait_start)
{
	PG_TRY();
	{
		wait_for_factory(c->name, c->len, creator_pid, wait_start);
	}
	PG_CATCH();
	{
		SINGLETON_COUNT(factory_wait_us, (uint64) (GetCurrentTimestamp() - wait_start));
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * This session holds the claim: run the factory and store its value.
 * Returns what the caller gets.  On error the claim stays in pending[]; the
 * abort callbacks drop it once the abort has released every lock.
 */
static Jsonb *
run_claimed(const FactoryCall *c, uint64 generation)
{
	instr_time	start;
	instr_time	duration;
	ClaimOutcome outcome = CLAIM_FORGOTTEN;
	Jsonb	   *value = NULL;
	Jsonb	   *current;

	push_claim(c->name, c->len, generation);
	SINGLETON_COUNT(factory_runs, 1);
	PG_TRY();
	{
		INSTR_TIME_SET_CURRENT(start);
		value = run_factory(c->name, c->len, c->query);
		INSTR_TIME_SET_CURRENT(duration);
		INSTR_TIME_SUBTRACT(duration, start);
		singleton_check_value_size(value);
		outcome = singleton_registry_complete_claim(c->name, c->len, generation, value,
										  c->type ? c->type : singleton_jsonb_type_label(value),
										  c->private,
										  (int64) INSTR_TIME_GET_MICROSEC(duration));
	}
	PG_CATCH();
	{
		SINGLETON_COUNT(factory_failures, 1);
		PG_RE_THROW();
	}
	PG_END_TRY();

	npending--;
	wake_waiters(MyDatabaseId, c->name, c->len);
	/* stored, or the flight was deleted: our own value either way */
	if (outcome != CLAIM_DISPLACED)
		return value;
	/* a singleton_set won the race: everyone sees its value */
	current = singleton_registry_read(c->name, c->len, false);
	return current ? current : value;
}

Datum
singleton_get_factory(PG_FUNCTION_ARGS)
{
	FactoryCall c;
	bool		waited = false;
	TimestampTz wait_start = 0;

	singleton_registry_attach();
	init_backend();
	read_factory_call(fcinfo, &c);
	if (is_claimed_here(c.name, c.len))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_RECURSION),
				 errmsg("recursive factory for singleton \"%.*s\"", c.len, c.name),
				 errdetail("Its value was asked for while its own factory was running in this session.")));
	singleton_admission_require("singleton_get");
	SINGLETON_COUNT(gets, 1);

	for (;;)
	{
		Jsonb	   *value = NULL;
		Oid			owner = InvalidOid;
		int			creator_pid = 0;
		uint64		generation = 0;
		ClaimProbe	probe;

		probe = singleton_registry_claim(c.name, c.len, &value, &owner, &creator_pid, &generation);
		if (probe == PROBE_BUSY)
		{
			if (creator_pid == MyProcPid)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_RECURSION),
						 errmsg("recursive factory for singleton \"%.*s\"", c.len, c.name)));
			if (!waited)
			{
				waited = true;
				wait_start = GetCurrentTimestamp();
				SINGLETON_COUNT(factory_waits, 1);
			}
			wait_for_claim(&c, creator_pid, wait_start);
			continue;
		}
		if (waited)
			SINGLETON_COUNT(factory_wait_us, (uint64) (GetCurrentTimestamp() - wait_start));
		if (probe == PROBE_READY)
		{
			check_ready_owner(&c, owner);
			SINGLETON_COUNT(hits, 1);
			PG_RETURN_JSONB_P(value);
		}
		/* PROBE_CLAIMED: this session runs the factory */
		SINGLETON_COUNT(misses, 1);
		PG_RETURN_JSONB_P(run_claimed(&c, generation));
	}
}
