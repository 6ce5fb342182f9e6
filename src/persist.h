/*-------------------------------------------------------------------------
 *
 * persist.h
 *		Snapshots of the registry: a feature on the registry store
 *		(persist.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SINGLETON_PERSIST_H
#define SINGLETON_PERSIST_H

#include "postgres.h"

#include "lib/stringinfo.h"

/* GUCs (singleton.c) */
extern bool singleton_persist;
extern int	singleton_persist_interval;

extern Size singleton_persist_shmem_size(void);
extern void singleton_persist_shmem_init(void);
extern void singleton_persist_register_worker(void);
extern void singleton_persist_append_health(StringInfo buf, bool show_bytes);

#endif							/* SINGLETON_PERSIST_H */
