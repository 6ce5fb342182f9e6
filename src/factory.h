/*-------------------------------------------------------------------------
 *
 * factory.h
 *		singleton_get(name, factory): a feature on the registry store.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SINGLETON_FACTORY_H
#define SINGLETON_FACTORY_H

#include "postgres.h"

#define SINGLETON_WAIT_TIMEOUT_DEFAULT	60000	/* ms */

/* GUC (singleton.c): ms to wait for another session's factory, 0 = no limit */
extern int	singleton_wait_timeout;

extern Size singleton_factory_shmem_size(void);
extern void singleton_factory_shmem_init(void);

#endif							/* SINGLETON_FACTORY_H */
