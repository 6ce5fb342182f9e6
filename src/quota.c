/*-------------------------------------------------------------------------
 *
 * quota.c
 *		Shared memory used per role, and each role's share of the registry.
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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"

#include "singleton.h"
#include "quota.h"

/* Distinct roles with their own counter; a power of two. */
#define QUOTA_SLOTS		4096

typedef struct QuotaSlot
{
	pg_atomic_uint32 role;		/* InvalidOid while free; set once */
	pg_atomic_uint64 bytes;		/* bytes charged to the role */
} QuotaSlot;

/* QUOTA_SLOTS slots, then the overflow slot. */
static QuotaSlot *quota_slots = NULL;

int			singleton_role_memory_share = 50;

Size
quota_shmem_size(void)
{
	return mul_size(QUOTA_SLOTS + 1, sizeof(QuotaSlot));
}

void
quota_shmem_init(void)
{
	bool		found;
	int			i;

	quota_slots = ShmemInitStruct("singleton quota", quota_shmem_size(), &found);
	if (!found)
	{
		for (i = 0; i <= QUOTA_SLOTS; i++)
		{
			pg_atomic_init_u32(&quota_slots[i].role, InvalidOid);
			pg_atomic_init_u64(&quota_slots[i].bytes, 0);
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
quota_charge(Oid role, int64 delta)
{
	QuotaSlot  *slot = quota_slot(role);

	if (delta >= 0)
		pg_atomic_fetch_add_u64(&slot->bytes, (uint64) delta);
	else
		pg_atomic_fetch_sub_u64(&slot->bytes, (uint64) -delta);
}

uint64
quota_used(Oid role)
{
	return pg_atomic_read_u64(&quota_slot(role)->bytes);
}

/*
 * Raise the registry-full error (53200) if charging request more bytes to
 * role would take it past its share.  Superusers have no share.  Call
 * before allocating, outside any lock.
 */
void
quota_check(Oid role, Size request)
{
	uint64		share;
	uint64		used;

	if (singleton_role_memory_share >= 100 || superuser_arg(role))
		return;
	share = (uint64) singleton_shared->memory_limit / 100 * singleton_role_memory_share;
	used = quota_used(role);
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
