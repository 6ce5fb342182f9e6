/*-------------------------------------------------------------------------
 *
 * admission.h
 *		The registry's admission limiter (singleton.rate_limit): a store of
 *		its own in fixed shared memory, with no DSA (admission.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SINGLETON_ADMISSION_H
#define SINGLETON_ADMISSION_H

#include "postgres.h"

#define SINGLETON_RATE_LIMIT_MAX	100000

/* GUC (singleton.c): admissions per second, 0 = off */
extern int	singleton_ops_per_second;

extern Size singleton_admission_shmem_size(void);
extern void singleton_admission_shmem_init(void);
extern bool singleton_admission_admit(void);
extern void singleton_admission_require(const char *what);
extern uint64 singleton_admission_refused_count(void);

#endif							/* SINGLETON_ADMISSION_H */
