/*-------------------------------------------------------------------------
 *
 * quota.h
 *		Per-role shares of the registry: of its memory and of its rate limit.
 *		Bottom layer, beside area.h; lock-free (see src/README).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SINGLETON_QUOTA_H
#define SINGLETON_QUOTA_H

#include "postgres.h"

/* GUCs (singleton.c): percent of singleton.memory_limit and of
 * singleton.rate_limit one role may use */
extern int	singleton_role_memory_share;
extern int	singleton_rate_limit_role_share;

extern Size singleton_quota_shmem_size(void);
extern void singleton_quota_shmem_init(void);
extern void singleton_quota_charge(Oid role, int64 delta);
extern uint64 singleton_quota_used(Oid role);
extern void singleton_quota_check(Oid role, Size request, Size memory_limit);
extern bool singleton_quota_admit(Oid role, int64 now_ns, int limit);
extern void singleton_quota_admit_refund(Oid role, int limit);

#endif							/* SINGLETON_QUOTA_H */
