/*-------------------------------------------------------------------------
 *
 * quota.c
 *		Per-role shares of the registry: of its memory, and of its rate
 *		limit.
 *
 * Every byte the registry allocates (entries and their chunks, per-key
 * limiter state) is charged to a role: an entry's owner, a limiter key's
 * creator.  A role that is not a superuser may use at most
 * singleton.role_memory_share percent of singleton.memory_limit, so that
 * one role filling the area cannot make every other role's writes fail.
 *
 * The counters live in a fixed open-addressing table in the main shared
 * memory segment: a slot is claimed for a role with a compare-and-swap on
 * its role field and never given back, and bytes are atomic.  No lock is
 * taken, so charging is allowed anywhere, also under a dshash partition
 * lock.  Roles beyond the table's size share one overflow slot (and so one
 * share).  The share is checked before an allocation and charged after it;
 * concurrent writers of one role may overshoot it by at most one value each.
 *
 * The registry's admission limiter (admission.c) also gives each role that is
 * not a superuser at most singleton.rate_limit_role_share percent of
 * singleton.rate_limit per second, so one role's flood cannot take every
 * admission: a per-role GCRA bucket (one theoretical arrival time, updated
 * with compare-and-swap) checked before the instance-wide window.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"

#include "common.h"
#include "quota.h"

/* Distinct roles with their own counter; a power of two. */
#define QUOTA_SLOTS		4096
#define PERCENT			100

typedef struct QuotaSlot
{
	pg_atomic_uint32 role;		/* InvalidOid while free; set once */
	pg_atomic_uint64 bytes;		/* bytes charged to the role */
	pg_atomic_uint64 admit_tat_ns;	/* rate limit: theoretical arrival time */
} QuotaSlot;

/* QUOTA_SLOTS slots, then the overflow slot. */
static QuotaSlot *quota_slots = NULL;

int			singleton_role_memory_share = 50;
int			singleton_rate_limit_role_share = 50;

Size
singleton_quota_shmem_size(void)
{
	return mul_size(QUOTA_SLOTS + 1, sizeof(QuotaSlot));
}

void
singleton_quota_shmem_init(void)
{
	bool		found;
	int			i;

	quota_slots = ShmemInitStruct("singleton quota", singleton_quota_shmem_size(), &found);
	if (!found)
	{
		for (i = 0; i <= QUOTA_SLOTS; i++)
		{
			pg_atomic_init_u32(&quota_slots[i].role, InvalidOid);
			pg_atomic_init_u64(&quota_slots[i].bytes, 0);
			pg_atomic_init_u64(&quota_slots[i].admit_tat_ns, 0);
		}
	}
}

/* The role's slot, claiming a free one if needed. */
static QuotaSlot *
quota_slot(Oid role)
{
	uint32		start = murmurhash32(role) & (QUOTA_SLOTS - 1);
	uint32		i;

	for (i = 0; i < QUOTA_SLOTS; i++)
	{
		QuotaSlot  *slot = &quota_slots[(start + i) & (QUOTA_SLOTS - 1)];
		uint32		cur = pg_atomic_read_u32(&slot->role);

		if (cur == role)
			return slot;
		if (cur == InvalidOid)
		{
			uint32		expected = InvalidOid;

			if (pg_atomic_compare_exchange_u32(&slot->role, &expected, role) ||
				expected == role)
				return slot;
		}
	}
	return &quota_slots[QUOTA_SLOTS];
}

/* Add (or, negative, take back) bytes charged to a role.  Never fails. */
void
singleton_quota_charge(Oid role, int64 delta)
{
	QuotaSlot  *slot = quota_slot(role);

	if (delta >= 0)
		pg_atomic_fetch_add_u64(&slot->bytes, (uint64) delta);
	else
		pg_atomic_fetch_sub_u64(&slot->bytes, (uint64) -delta);
}

uint64
singleton_quota_used(Oid role)
{
	return pg_atomic_read_u64(&quota_slot(role)->bytes);
}

/*
 * Raise the registry-full error (53200) if charging request more bytes to
 * role would take it past its share.  Superusers have no share.  Call
 * before allocating, outside any lock.
 */
void
singleton_quota_check(Oid role, Size request, Size memory_limit)
{
	uint64		share;
	uint64		used;

	if (request == 0 || singleton_role_memory_share >= PERCENT || superuser_arg(role))
		return;
	share = (uint64) memory_limit / PERCENT * singleton_role_memory_share;
	used = singleton_quota_used(role);
	if (used + request > share)
	{
		const char *name = GetUserNameFromId(role, true);

		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("role \"%s\" has used its share of the singleton registry",
						name ? name : "?"),
				 errdetail("A request for %zu bytes would take the role past %llu bytes (singleton.role_memory_share = %d%% of singleton.memory_limit); it uses %llu bytes.",
						   request, (unsigned long long) share,
						   singleton_role_memory_share, (unsigned long long) used),
				 errhint("Delete entries or limiter keys of this role, or raise singleton.role_memory_share.")));
	}
}

/*
 * Time between two admissions of one role: its share of limit admissions a
 * second, which may be less than one (1 a second at 50% is one every 2 s;
 * rounding it up to 1 would give one role the whole limit).
 */
static int64
admit_interval_ns(int limit)
{
	int64		per_100s = (int64) Max(limit, 1) * singleton_rate_limit_role_share;

	return SINGLETON_NS_PER_SECOND * PERCENT / per_100s;
}

/*
 * May role take one more of the registry's admissions in the second up to
 * now_ns, given limit admissions per second for the instance?  Superusers
 * and a share of 100 always may.  A role that may is charged for it; see
 * singleton_quota_admit_refund.
 */
bool
singleton_quota_admit(Oid role, int64 now_ns, int limit)
{
	QuotaSlot  *slot;
	int64		interval;
	int64		tolerance;
	uint64		tat;

	if (singleton_rate_limit_role_share >= PERCENT || superuser_arg(role))
		return true;
	interval = admit_interval_ns(limit);
	/* a share below one call a second still admits one call per interval */
	tolerance = Max(interval, SINGLETON_NS_PER_SECOND);
	slot = quota_slot(role);
	tat = pg_atomic_read_u64(&slot->admit_tat_ns);
	for (;;)
	{
		int64		new_tat = Max((int64) tat, now_ns) + interval;

		/* at most the share's admissions in any one second */
		if (new_tat - now_ns > tolerance)
			return false;
		if (pg_atomic_compare_exchange_u64(&slot->admit_tat_ns, &tat, (uint64) new_tat))
			return true;
	}
}

/* Give back an admission singleton_quota_admit charged (the instance refused it). */
void
singleton_quota_admit_refund(Oid role, int limit)
{
	if (singleton_rate_limit_role_share >= PERCENT || superuser_arg(role))
		return;
	pg_atomic_fetch_sub_u64(&quota_slot(role)->admit_tat_ns, (uint64) admit_interval_ns(limit));
}
