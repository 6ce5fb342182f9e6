/*-------------------------------------------------------------------------
 *
 * common.c
 *		Utilities of every layer: the NULL-argument rule, wait events,
 *		background worker registration, the monotonic clock.
 *
 * No shared state.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "utils/wait_event.h"

#include "common.h"

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

uint64
singleton_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64) ts.tv_sec * (uint64) SINGLETON_NS_PER_SECOND + (uint64) ts.tv_nsec;
}
