/*-------------------------------------------------------------------------
 *
 * quota.h
 *		Shared memory used per role, and each role's share of the registry.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SINGLETON_QUOTA_H
#define SINGLETON_QUOTA_H

#include "postgres.h"

/* GUC: percent of singleton.memory_limit one role may use (singleton.c) */
extern int	singleton_role_memory_share;

extern Size quota_shmem_size(void);
extern void quota_shmem_init(void);
extern void quota_charge(Oid role, int64 delta);
extern uint64 quota_used(Oid role);
extern void quota_check(Oid role, Size request);

#endif							/* SINGLETON_QUOTA_H */
