/*-------------------------------------------------------------------------
 *
 * admission.c
 *		The registry's own limiter: singleton.rate_limit admissions per
 *		second across the instance, each role at most its share.
 *
 * A true sliding window.  A ring in fixed shared memory holds the monotonic
 * times of the last singleton.rate_limit admissions; an operation is
 * admitted when the oldest of them is more than one second old, so no
 * one-second interval ever admits more than the limit.  O(1) per operation
 * under a spinlock that covers a handful of instructions.  With the limit
 * at 0 the check is one read of a backend-local integer.  Before the
 * window, each role's own share of it is checked (quota.c), so that a flood
 * by one role leaves room for the others.
 *
 * Locking: AdmissionShared.mutex (a spinlock) protects limit, filled, pos
 * and ring; refused is an atomic.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/shmem.h"
#include "storage/spin.h"

#include "admission.h"
#include "area.h"
#include "common.h"
#include "quota.h"

PG_FUNCTION_INFO_V1(singleton_reset);

int			singleton_ops_per_second = 0;

typedef struct AdmissionShared
{
	slock_t		mutex;			/* protects limit, filled, pos, ring */
	int			limit;			/* limit the ring is set up for */
	int			filled;			/* admissions recorded, <= limit */
	int			pos;			/* next slot; the oldest once full */
	pg_atomic_uint64 refused;	/* refusals since start or reset */
	int64		ring[FLEXIBLE_ARRAY_MEMBER];	/* SINGLETON_RATE_LIMIT_MAX */
} AdmissionShared;

static AdmissionShared *admission = NULL;

Size
singleton_admission_shmem_size(void)
{
	return add_size(offsetof(AdmissionShared, ring),
					mul_size(SINGLETON_RATE_LIMIT_MAX, sizeof(int64)));
}

void
singleton_admission_shmem_init(void)
{
	bool		found;

	admission = ShmemInitStruct("singleton admission", singleton_admission_shmem_size(), &found);
	if (found)
		return;
	SpinLockInit(&admission->mutex);
	admission->limit = 0;
	admission->filled = 0;
	admission->pos = 0;
	pg_atomic_init_u64(&admission->refused, 0);
}

/* Record an admission at now in the window, if it has room.  Spinlock held. */
static bool
window_admit(AdmissionShared *a, int64 now, int limit)
{
	if (a->limit != limit)
	{
		/* the setting changed: start a fresh window of the new size */
		a->limit = limit;
		a->filled = 0;
		a->pos = 0;
	}
	if (a->filled < limit)
	{
		a->ring[a->filled++] = now;
		a->pos = a->filled % limit;
		return true;
	}
	if (now - a->ring[a->pos] > SINGLETON_NS_PER_SECOND)
	{
		a->ring[a->pos] = now;
		a->pos = (a->pos + 1) % limit;
		return true;
	}
	return false;
}

bool
singleton_admission_admit(void)
{
	int			limit = singleton_ops_per_second;
	int64		now;
	bool		admit;

	if (likely(limit <= 0))
		return true;

	now = (int64) singleton_now_ns();
	/* the role's own share first, so one role cannot take the whole window */
	if (!singleton_quota_admit(GetUserId(), now, limit))
	{
		pg_atomic_fetch_add_u64(&admission->refused, 1);
		return false;
	}
	SpinLockAcquire(&admission->mutex);
	admit = window_admit(admission, now, limit);
	SpinLockRelease(&admission->mutex);

	if (!admit)
	{
		singleton_quota_admit_refund(GetUserId(), limit);
		pg_atomic_fetch_add_u64(&admission->refused, 1);
	}
	return admit;
}

uint64
singleton_admission_refused_count(void)
{
	return pg_atomic_read_u64(&admission->refused);
}

void
singleton_admission_require(const char *what)
{
	if (!singleton_admission_admit())
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("singleton rate limit of %d operations per second exceeded",
						singleton_ops_per_second),
				 errdetail("%s was refused.", what),
				 errhint("Retry later, or raise singleton.rate_limit.")));
}

/*
 * Clear the registry limiter's window and refusal count.  Never refused
 * itself: it is the way out of a saturated limiter.
 */
Datum
singleton_reset(PG_FUNCTION_ARGS)
{
	singleton_area_attach();
	SpinLockAcquire(&admission->mutex);
	admission->filled = 0;
	admission->pos = 0;
	SpinLockRelease(&admission->mutex);
	pg_atomic_write_u64(&admission->refused, 0);
	PG_RETURN_BOOL(true);
}
