/*-------------------------------------------------------------------------
 *
 * common.h
 *		Small utilities every layer of singleton may use: the documented
 *		limits, the rule for NULL arguments, named wait events, background
 *		worker registration and the monotonic clock.
 *
 * This header includes no other singleton header but compat.h; see
 * src/README for the layers and the locking protocol.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SINGLETON_COMMON_H
#define SINGLETON_COMMON_H

#include "postgres.h"

#include "compat.h"
#include "fmgr.h"
#include "postmaster/bgworker.h"

/* Limits that are part of the documented interface. */
#define SINGLETON_NAME_MAX			255
#define SINGLETON_TYPE_MAX			63

#define SINGLETON_NS_PER_SECOND		INT64CONST(1000000000)

/* What a process of ours waits for, shown in pg_stat_activity. */
typedef enum SingletonWait
{
	SINGLETON_WAIT_FACTORY,		/* another session's factory */
	SINGLETON_WAIT_LOAD,		/* the snapshot load at startup */
	SINGLETON_WAIT_LAUNCHER,	/* the job launcher's idle loop */
	SINGLETON_WAIT_PERSIST,		/* the persist worker's idle loop */
	SINGLETON_WAIT_JOB,			/* singleton_job_wait, for a run to finish */
	SINGLETON_WAIT_COUNT
} SingletonWait;

extern void singleton_require_arg(FunctionCallInfo fcinfo, int argno,
								  const char *what);
extern uint32 singleton_wait_event(SingletonWait which);
extern void singleton_register_worker(const char *name, const char *function,
									  BgWorkerStartTime start_time, int flags);
extern uint64 singleton_now_ns(void);

#endif							/* SINGLETON_COMMON_H */
