/*-------------------------------------------------------------------------
 *
 * persist.c
 *		Snapshots of the registry to a file, and loading them at startup.
 *
 * A background worker ("singleton persist") with shared-memory access and
 * a connection to no database (enough to read pg_database and pg_authid)
 * starts once the server is consistent, so also on a hot standby.  It loads
 * the snapshot file once per shared-memory lifetime (at start, and again
 * after a crash reinitialised shared memory), then writes a snapshot every
 * singleton.persist_interval and a last one when it is told to stop at a
 * clean shutdown.  Every other process (sessions, factories, job runs)
 * waits for the load before its first registry operation, however long it
 * takes: a write before the load could take over a name the snapshot gives
 * to another role.  If the worker could not be registered at all, there is
 * no load and nothing to wait for.
 *
 * The file: a header (magic, format version), one record per ready entry
 * (PersistRecord, then name, type and value bytes), and a trailer with the
 * entry count and a CRC-32C of everything before the CRC.  It is written to a temporary file,
 * fsynced and renamed into place (durable_rename).  Entries are copied one
 * at a time under their partition lock and written after it is released.
 * A file that is truncated, corrupt or of another format is moved aside
 * with a WARNING and the registry starts empty; loading never fails startup.
 * A good file that could not be loaded in full (the registry filled up) is
 * moved aside too, so that it is kept whole while snapshots go on.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/pg_crc32c.h"
#include "postmaster/bgworker.h"
#include "postmaster/bgworker_internals.h"
#include "postmaster/interrupt.h"
#include "storage/condition_variable.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "singleton.h"
#include "registry.h"

PGDLLEXPORT void singleton_persist_main(Datum main_arg);

#define SNAPSHOT_FILE		"singleton.snapshot"
#define SNAPSHOT_TMP		"singleton.snapshot.tmp"
#define SNAPSHOT_MAGIC		0x53474C54	/* "SGLT" */
#define SNAPSHOT_VERSION	1

bool		singleton_persist = true;
int			singleton_persist_interval = 60;

typedef struct SnapshotHeader
{
	uint32		magic;
	uint32		version;
} SnapshotHeader;

typedef struct SnapshotTrailer
{
	uint64		count;
	pg_crc32c	crc;			/* of header, records and count */
} SnapshotTrailer;

#define TRAILER_CRC_OFFSET	offsetof(SnapshotTrailer, crc)

static volatile sig_atomic_t shutdown_requested = false;

/* This process is the persist worker, which does the load. */
static bool am_loader = false;

/*
 * Set when the snapshot could not be loaded in full for a reason other than
 * a bad file (unreadable, out of memory, registry full): writing a new
 * snapshot then would replace the good file with less.  Until a restart.
 */
static bool writes_paused = false;

void
persist_register_worker(void)
{
	/* consistent state, so it also runs (and loads) on a hot standby */
	singleton_register_worker("singleton persist", "singleton_persist_main",
							  BgWorkerStart_ConsistentState,
							  BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION);
}

/* The load is over (done, skipped or failed): let backends go ahead. */
static void
finish_load(void)
{
	pg_atomic_write_u32(&singleton_shared->persist.loaded, 1);
	ConditionVariableBroadcast(&singleton_shared->persist.load_cv);
}

/*
 * Is the persist worker among the postmaster's registered background
 * workers?  Called in the postmaster when shared memory is set up.  It is
 * not when max_worker_processes left no room for it, or in binary-upgrade
 * mode; then no load will ever happen.
 */
bool
persist_loader_registered(void)
{
	SINGLETON_BGW_ITER it;

	SINGLETON_BGW_FOREACH(it)
	{
		RegisteredBgWorker *rw = SINGLETON_BGW_CURRENT(it);

		if (strcmp(rw->rw_worker.bgw_library_name, "singleton") == 0 &&
			strcmp(rw->rw_worker.bgw_function_name, "singleton_persist_main") == 0)
			return true;
	}
	return false;
}

/*
 * Called by every process but the loader before its first registry
 * operation: wait until the snapshot has been loaded.  There is no time
 * limit (the load of a large registry takes seconds), but the wait can be
 * cancelled like any query.  If the worker dies while loading, it is
 * restarted and loads again.
 */
void
persist_wait_for_load(void)
{
	if (am_loader || pg_atomic_read_u32(&singleton_shared->persist.loaded) ||
		!IsUnderPostmaster)
		return;
	ConditionVariablePrepareToSleep(&singleton_shared->persist.load_cv);
	while (!pg_atomic_read_u32(&singleton_shared->persist.loaded))
		(void) ConditionVariableTimedSleep(&singleton_shared->persist.load_cv, 1000,
										   singleton_wait_event(SINGLETON_WAIT_LOAD));
	ConditionVariableCancelSleep();
}

static void
set_error(const char *msg)
{
	SpinLockAcquire(&singleton_shared->persist.mutex);
	strlcpy(singleton_shared->persist.last_error, msg ? msg : "",
			sizeof(singleton_shared->persist.last_error));
	SpinLockRelease(&singleton_shared->persist.mutex);
}

/* Move a bad snapshot aside, keeping it for inspection. */
static void
quarantine(const char *why)
{
	char		aside[MAXPGPATH];

	snprintf(aside, sizeof(aside), "%s.bad." INT64_FORMAT, SNAPSHOT_FILE,
			 (int64) time(NULL));
	ereport(WARNING,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("singleton snapshot file \"%s\" is %s; starting with an empty registry",
					SNAPSHOT_FILE, why),
			 errdetail("The file was moved to \"%s\".", aside)));
	if (rename(SNAPSHOT_FILE, aside) != 0)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not rename file \"%s\" to \"%s\": %m", SNAPSHOT_FILE, aside)));
}

static void
set_error(const char *msg);

static void
pause_writes(const char *why)
{
	char		msg[256];

	writes_paused = true;
	snprintf(msg, sizeof(msg), "%s; snapshots are paused until restart", why);
	set_error(msg);
}

/* Read the whole file; NULL if it does not exist. */
static char *
read_file(Size *size)
{
	int			fd;
	struct stat st;
	char	   *data;
	Size		done = 0;

	fd = OpenTransientFile(SNAPSHOT_FILE, O_RDONLY | PG_BINARY);
	if (fd < 0)
	{
		if (errno != ENOENT)
		{
			ereport(WARNING,
					(errcode_for_file_access(),
					 errmsg("could not open file \"%s\": %m", SNAPSHOT_FILE),
					 errdetail("Snapshots are paused until the server restarts, so the file is not overwritten.")));
			pause_writes("the snapshot could not be read");
		}
		return NULL;
	}
	if (fstat(fd, &st) != 0)
	{
		CloseTransientFile(fd);
		return NULL;
	}
	data = palloc_extended(Max(st.st_size, 1), MCXT_ALLOC_HUGE);
	while (done < (Size) st.st_size)
	{
		ssize_t		r = read(fd, data + done, st.st_size - done);

		if (r <= 0)
			break;
		done += r;
	}
	CloseTransientFile(fd);
	*size = done;
	return data;
}

/*
 * Load the snapshot into the registry.  Runs in the persist worker, inside
 * a transaction (catalog look-ups of databases and roles).
 */
static void
load_snapshot(void)
{
	Size		size = 0;
	char	   *data;
	SnapshotHeader hdr;
	SnapshotTrailer trailer;
	pg_crc32c	crc;
	Size		pos;
	Size		end;
	uint64		i;
	uint64		loaded = 0;
	uint64		skipped = 0;
	uint64		existing = 0;

	data = read_file(&size);
	if (data == NULL)
		return;

	/* check everything before trusting anything */
	if (size < sizeof(SnapshotHeader) + sizeof(SnapshotTrailer))
	{
		quarantine("truncated");
		return;
	}
	memcpy(&hdr, data, sizeof(hdr));
	if (hdr.magic != SNAPSHOT_MAGIC)
	{
		quarantine("not a singleton snapshot");
		return;
	}
	if (hdr.version != SNAPSHOT_VERSION)
	{
		quarantine("of an unsupported format version");
		return;
	}
	memcpy(&trailer, data + size - sizeof(SnapshotTrailer), sizeof(trailer));
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, data, size - sizeof(SnapshotTrailer) + TRAILER_CRC_OFFSET);
	FIN_CRC32C(crc);
	if (!EQ_CRC32C(crc, trailer.crc))
	{
		quarantine("corrupt (checksum mismatch)");
		return;
	}
	end = size - sizeof(SnapshotTrailer);
	/* the record structure must add up exactly */
	pos = sizeof(SnapshotHeader);
	for (i = 0; i < trailer.count; i++)
	{
		PersistRecord rec;

		if (pos + sizeof(rec) > end)
			break;
		memcpy(&rec, data + pos, sizeof(rec));
		if (rec.namelen < 1 || rec.namelen > SINGLETON_NAME_MAX ||
			rec.typelen > SINGLETON_TYPE_MAX || rec.kind > 1)
			break;
		pos += sizeof(rec) + (Size) rec.namelen + rec.typelen + rec.valuelen;
	}
	if (i != trailer.count || pos != end)
	{
		quarantine("inconsistent");
		return;
	}

	pos = sizeof(SnapshotHeader);
	for (i = 0; i < trailer.count; i++)
	{
		PersistRecord rec;
		const char *bytes;

		memcpy(&rec, data + pos, sizeof(rec));
		bytes = data + pos + sizeof(rec);
		pos += sizeof(rec) + (Size) rec.namelen + rec.typelen + rec.valuelen;

		if (!SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(rec.dbid)) ||
			!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(rec.owner)))
		{
			skipped++;
			continue;
		}
		PG_TRY();
		{
			if (registry_restore_entry(&rec, bytes))
				loaded++;
			else
				existing++;
		}
		PG_CATCH();
		{
			/* the registry is full: keep what fitted */
			EmitErrorReport();
			FlushErrorState();
			ereport(WARNING,
					(errmsg("singleton snapshot only partly loaded: " UINT64_FORMAT " of " UINT64_FORMAT " entries",
							loaded, trailer.count),
					 errdetail("Snapshots are paused until the server restarts, so the file is not overwritten.")));
			pause_writes("the snapshot was only partly loaded");
			break;
		}
		PG_END_TRY();
	}
	ereport(LOG,
			(errmsg("singleton loaded " UINT64_FORMAT " entries from \"%s\"", loaded, SNAPSHOT_FILE)));
	if (skipped > 0)
		ereport(LOG,
				(errmsg("singleton skipped " UINT64_FORMAT " snapshot entries whose database or owner role no longer exists",
						skipped)));
	if (existing > 0)
		ereport(LOG,
				(errmsg("singleton kept " UINT64_FORMAT " entries set since startup over their snapshot copies",
						existing)));
	pfree(data);
}

static bool
write_all(int fd, const void *buf, Size len, pg_crc32c *crc)
{
	COMP_CRC32C(*crc, buf, len);
	errno = 0;
	if (write(fd, buf, len) != (ssize_t) len)
	{
		if (errno == 0)
			errno = ENOSPC;
		return false;
	}
	return true;
}

/*
 * Write a snapshot of every ready entry.  Failures are a WARNING and are
 * remembered for singleton_health(); they never raise an ERROR.
 */
static void
write_snapshot(void)
{
	EntrySnapshot *keys;
	int			n;
	int			i;
	int			fd;
	SnapshotHeader hdr;
	SnapshotTrailer trailer;
	pg_crc32c	crc;
	char	   *buf;
	Size		bufsize = 1024;
	uint64		bytes = sizeof(SnapshotHeader) + sizeof(SnapshotTrailer);
	MemoryContext cxt;
	MemoryContext old;

	cxt = AllocSetContextCreate(CurrentMemoryContext, "singleton snapshot", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);

	keys = registry_snapshot(InvalidOid, &n);
	buf = palloc(bufsize);

	fd = OpenTransientFile(SNAPSHOT_TMP, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);
	if (fd < 0)
		goto fail;

	INIT_CRC32C(crc);
	hdr.magic = SNAPSHOT_MAGIC;
	hdr.version = SNAPSHOT_VERSION;
	if (!write_all(fd, &hdr, sizeof(hdr), &crc))
		goto fail_close;

	trailer.count = 0;
	for (i = 0; i < n; i++)
	{
		PersistRecord rec;
		Size		len;

		if (keys[i].state != ENTRY_READY)
			continue;
		if (!registry_copy_entry(keys[i].dbid, keys[i].name, strlen(keys[i].name),
								 &rec, &buf, &bufsize))
			continue;			/* deleted meanwhile */
		len = (Size) rec.namelen + rec.typelen + rec.valuelen;
		if (!write_all(fd, &rec, sizeof(rec), &crc) ||
			!write_all(fd, buf, len, &crc))
			goto fail_close;
		trailer.count++;
		bytes += sizeof(rec) + len;
	}
	COMP_CRC32C(crc, &trailer.count, sizeof(trailer.count));
	FIN_CRC32C(crc);
	trailer.crc = crc;
	errno = 0;
	if (write(fd, &trailer, sizeof(trailer)) != sizeof(trailer))
	{
		if (errno == 0)
			errno = ENOSPC;
		goto fail_close;
	}

	if (pg_fsync(fd) != 0)
		goto fail_close;
	if (CloseTransientFile(fd) != 0)
		goto fail;
	if (durable_rename(SNAPSHOT_TMP, SNAPSHOT_FILE, WARNING) != 0)
		goto fail;

	SpinLockAcquire(&singleton_shared->persist.mutex);
	singleton_shared->persist.last_snapshot = GetCurrentTimestamp();
	singleton_shared->persist.last_entries = trailer.count;
	singleton_shared->persist.last_bytes = bytes;
	singleton_shared->persist.last_error[0] = '\0';
	SpinLockRelease(&singleton_shared->persist.mutex);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return;

fail_close:
	{
		int			save_errno = errno;

		CloseTransientFile(fd);
		errno = save_errno;
	}
fail:
	{
		char		msg[256];

		snprintf(msg, sizeof(msg), "could not write file \"%s\": %s",
				 SNAPSHOT_TMP, strerror(errno));
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("singleton snapshot failed: %s", msg)));
		set_error(msg);
		unlink(SNAPSHOT_TMP);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

static void
persist_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	shutdown_requested = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

static void
persist_exit(int code, Datum arg)
{
	SpinLockAcquire(&singleton_shared->persist.mutex);
	singleton_shared->persist.pid = 0;
	SpinLockRelease(&singleton_shared->persist.mutex);
}

void
singleton_persist_main(Datum main_arg)
{
	TimestampTz last = GetCurrentTimestamp();

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	/* a clean shutdown asks us to stop: write a last snapshot first */
	pqsignal(SIGTERM, persist_sigterm);
	BackgroundWorkerUnblockSignals();

	SpinLockAcquire(&singleton_shared->persist.mutex);
	singleton_shared->persist.pid = MyProcPid;
	SpinLockRelease(&singleton_shared->persist.mutex);
	before_shmem_exit(persist_exit, (Datum) 0);

	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("singleton persist");
	am_loader = true;
	singleton_attach();

	if (!pg_atomic_read_u32(&singleton_shared->persist.loaded))
	{
		if (singleton_persist)
		{
			StartTransactionCommand();
			PG_TRY();
			{
				load_snapshot();
				CommitTransactionCommand();
			}
			PG_CATCH();
			{
				/* never fail startup over the snapshot, nor lose the file */
				EmitErrorReport();
				FlushErrorState();
				AbortCurrentTransaction();
				pause_writes("the snapshot could not be loaded");
			}
			PG_END_TRY();
		}
		finish_load();
	}

	while (!shutdown_requested)
	{
		int			rc;
		long		timeout = -1;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (singleton_persist && singleton_persist_interval > 0 && !writes_paused)
		{
			if (TimestampDifferenceExceeds(last, GetCurrentTimestamp(),
										   singleton_persist_interval * 1000))
			{
				write_snapshot();
				last = GetCurrentTimestamp();
			}
			timeout = 1000;
		}
		rc = WaitLatch(MyLatch,
					   WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | (timeout >= 0 ? WL_TIMEOUT : 0),
					   timeout, singleton_wait_event(SINGLETON_WAIT_PERSIST));
		(void) rc;
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	if (singleton_persist && !writes_paused)
		write_snapshot();
	/* exit code 1: restarted unless the server is shutting down */
	proc_exit(1);
}

/* ", \"persist\": {...}" for singleton_health(). */
void
persist_append_health(StringInfo buf)
{
	TimestampTz last;
	uint64		entries;
	uint64		bytes;
	char		error[256];
	int			pid;

	SpinLockAcquire(&singleton_shared->persist.mutex);
	last = singleton_shared->persist.last_snapshot;
	entries = singleton_shared->persist.last_entries;
	bytes = singleton_shared->persist.last_bytes;
	strlcpy(error, singleton_shared->persist.last_error, sizeof(error));
	pid = singleton_shared->persist.pid;
	SpinLockRelease(&singleton_shared->persist.mutex);

	appendStringInfo(buf, ", \"persist\": {\"enabled\": %s, \"interval_s\": %d, \"loaded\": %s, \"worker_pid\": ",
					 singleton_persist ? "true" : "false", singleton_persist_interval,
					 pg_atomic_read_u32(&singleton_shared->persist.loaded) ? "true" : "false");
	if (pid != 0)
		appendStringInfo(buf, "%d", pid);
	else
		appendStringInfoString(buf, "null");
	appendStringInfoString(buf, ", \"file\": ");
	escape_json(buf, SNAPSHOT_FILE);
	appendStringInfoString(buf, ", \"last_snapshot\": ");
	if (last != 0)
		escape_json(buf, timestamptz_to_str(last));
	else
		appendStringInfoString(buf, "null");
	appendStringInfo(buf, ", \"last_snapshot_entries\": " UINT64_FORMAT
					 ", \"last_snapshot_bytes\": " UINT64_FORMAT ", \"last_error\": ",
					 entries, bytes);
	if (error[0] != '\0')
		escape_json(buf, error);
	else
		appendStringInfoString(buf, "null");
	appendStringInfoChar(buf, '}');
}
