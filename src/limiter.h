/*-------------------------------------------------------------------------
 *
 * limiter.h
 *		The per-key GCRA limiters: a store in the area (limiter.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SINGLETON_LIMITER_H
#define SINGLETON_LIMITER_H

#include "postgres.h"

#include "area.h"

/* One key's state: a dshash item of the limiter table. */
typedef struct LimiterEntry
{
	SingletonKey key;			/* key.name is a chunk holding the key text */
	int64		tat_ns;			/* GCRA theoretical arrival time */
	Oid			creator;		/* the role charged for it */
} LimiterEntry;

/* Exact shared bytes of one key besides its text: dshash item and entry. */
#define LIMITER_ENTRY_OVERHEAD \
	(SINGLETON_DSHASH_ITEM_HEADER + MAXALIGN(sizeof(LimiterEntry)))

extern Size singleton_limiter_shmem_size(void);
extern void singleton_limiter_shmem_init(dsa_area *new_area);
extern void singleton_limiter_purge_database(Oid dbid);
extern uint32 singleton_limiter_key_count(void);

#endif							/* SINGLETON_LIMITER_H */
