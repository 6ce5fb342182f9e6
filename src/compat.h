/*-------------------------------------------------------------------------
 *
 * compat.h
 *		Every difference between the PostgreSQL majors singleton supports
 *		(15 to 18), in one place.
 *
 * Feature tests are used where the server headers define a macro for the
 * feature; PG_VERSION_NUM where they do not.  What differs:
 *
 *	- 17 renamed BackendId (1-based, storage/backendid.h) to ProcNumber
 *	  (0-based, storage/procnumber.h): SINGLETON_MY_PROC_INDEX() is 0-based.
 *	- 17 added dshash_parameters.copy_function, before tranche_id; callers
 *	  must use designated initializers and SINGLETON_DSHASH_COPY.
 *	- 16 folded the per-kind ACL checks (pg_database_aclcheck and so on)
 *	  into object_aclcheck.
 *	- 17 added named custom wait events (WaitEventExtensionNew); 15 and 16
 *	  report every wait as "Extension".
 *	- 17 added infinite intervals (INTERVAL_NOT_FINITE) and
 *	  SPI_OK_MERGE_RETURNING, and made the postmaster's list of registered
 *	  background workers a dlist (an slist before).
 *	- 18 replaced pg_attribute_noreturn() (after a declaration) with
 *	  pg_noreturn (before it), and added PG_MODULE_MAGIC_EXT.
 *
 * Nothing else in src/ tests PG_VERSION_NUM.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SINGLETON_COMPAT_H
#define SINGLETON_COMPAT_H

#include "postgres.h"

#include "catalog/pg_database.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "lib/dshash.h"
#include "miscadmin.h"
#include "utils/acl.h"

#if PG_VERSION_NUM < 150000
#error "singleton needs PostgreSQL 15 or later"
#endif

/* Declaration prefix for functions that do not return. */
#ifndef pg_noreturn
#define pg_noreturn pg_attribute_noreturn()
#endif

/* This process's 0-based index among PGPROCs (negative if it has none). */
#if PG_VERSION_NUM >= 170000
#include "storage/procnumber.h"
#define SINGLETON_MY_PROC_INDEX()	((int) MyProcNumber)
#else
#include "storage/backendid.h"
#define SINGLETON_MY_PROC_INDEX()	((int) MyBackendId - 1)
#endif

/* dshash copies keys with this function since 17 (a field to set). */
#if PG_VERSION_NUM >= 170000
#define SINGLETON_DSHASH_COPY		.copy_function = dshash_memcpy,
#else
#define SINGLETON_DSHASH_COPY
#endif

/* Privilege check on a database. */
#if PG_VERSION_NUM >= 160000
#define SINGLETON_DATABASE_ACLCHECK(db, role, mode) \
	object_aclcheck(DatabaseRelationId, (db), (role), (mode))
#else
#define SINGLETON_DATABASE_ACLCHECK(db, role, mode) \
	pg_database_aclcheck((db), (role), (mode))
#endif

/* Named custom wait events. */
#if PG_VERSION_NUM >= 170000
#define SINGLETON_NAMED_WAIT_EVENTS 1
#endif

/* Infinite intervals exist since 17. */
#ifdef INTERVAL_NOT_FINITE
#define SINGLETON_INTERVAL_IS_FINITE(i)	(!INTERVAL_NOT_FINITE(i))
#else
#define SINGLETON_INTERVAL_IS_FINITE(i)	true
#endif

/* Iterating over the postmaster's registered background workers. */
#if PG_VERSION_NUM >= 170000
#define SINGLETON_BGW_ITER				dlist_iter
#define SINGLETON_BGW_FOREACH(it)		dlist_foreach(it, &BackgroundWorkerList)
#define SINGLETON_BGW_CURRENT(it)		dlist_container(RegisteredBgWorker, rw_lnode, (it).cur)
#else
#define SINGLETON_BGW_ITER				slist_iter
#define SINGLETON_BGW_FOREACH(it)		slist_foreach(it, &BackgroundWorkerList)
#define SINGLETON_BGW_CURRENT(it)		slist_container(RegisteredBgWorker, rw_lnode, (it).cur)
#endif

/* Module magic; 18 can also carry the name and version. */
#ifdef PG_MODULE_MAGIC_EXT
#define SINGLETON_MODULE_MAGIC(ver) \
	PG_MODULE_MAGIC_EXT(.name = "singleton", .version = (ver))
#else
#define SINGLETON_MODULE_MAGIC(ver) PG_MODULE_MAGIC
#endif

#endif							/* SINGLETON_COMPAT_H */
