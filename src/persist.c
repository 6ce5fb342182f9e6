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
 * (RegistryImage, then name, type and value bytes), and a trailer with the
 * entry count and a CRC-32C of everything before the CRC.  It is written to a temporary file,
 * fsynced and renamed into place (durable_rename).  Entries are copied one
 * at a time under their partition lock and written after it is released.
 * Every record is validated (lengths, kind, jsonb structure) before
 * anything of the file enters shared memory.  A file that is truncated,
 * corrupt, inconsistent or of another format is moved aside with a WARNING
 * and the registry starts empty; loading never fails startup.  A good file
 * that was not loaded in full (the registry filled up, it could not be
 * read, or singleton.persist was off at startup) is moved aside before the
 * next snapshot is written, so it is kept whole while snapshots go on.  A
 * load that raises any other error is retried by restarting the worker (up
 * to LOAD_ATTEMPTS times); query cancels are held off while loading.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/xact.h"
#include "datatype/timestamp.h"
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
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "area.h"
#include "common.h"
#include "compat.h"
#include "persist.h"
#include "registry.h"

PGDLLEXPORT void singleton_persist_main(Datum main_arg);

#define SNAPSHOT_FILE		"singleton.snapshot"
#define SNAPSHOT_TMP		"singleton.snapshot.tmp"
#define SNAPSHOT_MAGIC		0x53474C54	/* "SGLT" */
#define SNAPSHOT_VERSION	1

/* Load attempts before the registry opens without (the rest of) the file. */
#define LOAD_ATTEMPTS		3

/*
 * numeric.c's on-disk format (private to it): the top bits of the first
 * header word are 00 or 01 (long format, positive or negative), 10 (short
 * format) or 11 (special values); digits are base 10000.
 */
#define NUMERIC_FORMAT_MASK		0xC000
#define NUMERIC_SHORT_FORMAT	0x8000
#define NUMERIC_SPECIAL_FORMAT	0xC000
#define NUMERIC_DIGIT_BASE		10000

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

#define PERSIST_ERROR_LEN	256

typedef struct PersistShared
{
	pg_atomic_uint32 unloaded_file;	/* the file holds what the registry does
									 * not: move it aside before writing */
	pg_atomic_uint32 load_failures;	/* load attempts that raised an error */
	slock_t		mutex;			/* protects the fields below */
	int			pid;
	TimestampTz last_snapshot;
	uint64		last_entries;
	uint64		last_bytes;
	char		last_error[PERSIST_ERROR_LEN];
} PersistShared;

static PersistShared *persist = NULL;

static bool loader_registered(void);

Size
singleton_persist_shmem_size(void)
{
	return MAXALIGN(sizeof(PersistShared));
}

/* After the area's init (it may open the area's gate). */
void
singleton_persist_shmem_init(void)
{
	bool		found;

	persist = ShmemInitStruct("singleton persist", singleton_persist_shmem_size(), &found);
	if (found)
		return;
	memset(persist, 0, sizeof(PersistShared));
	pg_atomic_init_u32(&persist->unloaded_file, 0);
	pg_atomic_init_u32(&persist->load_failures, 0);
	SpinLockInit(&persist->mutex);
	/* with nobody to load the snapshot, nobody may wait for it */
	if (!loader_registered())
		singleton_area_open_gate();
}


void
singleton_persist_register_worker(void)
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
	singleton_area_open_gate();
}

/*
 * Is the persist worker among the postmaster's registered background
 * workers?  Called in the postmaster when shared memory is set up.  It is
 * not when max_worker_processes left no room for it, or in binary-upgrade
 * mode; then no load will ever happen.
 */
static bool
loader_registered(void)
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

static void
set_error(const char *msg)
{
	SpinLockAcquire(&persist->mutex);
	strlcpy(persist->last_error, msg ? msg : "",
			sizeof(persist->last_error));
	SpinLockRelease(&persist->mutex);
}

/*
 * Move the snapshot file aside, keeping it for inspection or recovery, as
 * "singleton.snapshot.<kind>.<epoch>".  Returns false if it could not be
 * moved (it is then still in place).
 */
static bool
set_aside(const char *kind, const char *why, const char *then)
{
	char		aside[MAXPGPATH];

	snprintf(aside, sizeof(aside), "%s.%s." INT64_FORMAT, SNAPSHOT_FILE, kind,
			 (int64) time(NULL));
	if (rename(SNAPSHOT_FILE, aside) != 0)
	{
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not rename file \"%s\" to \"%s\": %m", SNAPSHOT_FILE, aside)));
		return false;
	}
	ereport(WARNING,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("singleton snapshot file \"%s\" is %s; %s", SNAPSHOT_FILE, why, then),
			 errdetail("The file was moved to \"%s\".", aside)));
	return true;
}

/* A bad file: kept aside, and the registry starts empty.  Returns false. */
static bool
quarantine(const char *why)
{
	(void) set_aside("bad", why, "starting with an empty registry");
	return false;
}

static void
set_error(const char *msg);

/*
 * A good-looking file that was not (fully) loaded must not be overwritten
 * by the next snapshot, which would hold less: remember that it must be
 * moved aside first (see preserve_unloaded_file).  Snapshots go on, so a
 * registry changed or cleared since is saved again.
 */
static void
keep_unloaded_file(const char *why)
{
	ereport(WARNING,
			(errmsg("singleton snapshot file \"%s\" was %s; it is kept aside before the next snapshot",
					SNAPSHOT_FILE, why)));
	pg_atomic_write_u32(&persist->unloaded_file, 1);
}

/*
 * Before writing a snapshot: move a file that was not fully loaded aside.
 * Returns false if it is still in place (then no snapshot may be written).
 */
static bool
preserve_unloaded_file(void)
{
	struct stat st;

	if (!pg_atomic_read_u32(&persist->unloaded_file))
		return true;
	if ((stat(SNAPSHOT_FILE, &st) != 0 && errno == ENOENT) ||
		set_aside("unloaded", "not fully loaded", "the next snapshot holds what the registry holds now"))
	{
		pg_atomic_write_u32(&persist->unloaded_file, 0);
		return true;
	}
	set_error("the snapshot file was not fully loaded and could not be moved aside; no snapshot is written until it can be");
	return false;
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
					 errmsg("could not open file \"%s\": %m", SNAPSHOT_FILE)));
			keep_unloaded_file("unreadable");
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
 * Is this a sound jsonb numeric of exactly len bytes at p (unaligned)?  A
 * plain varlena with a 4-byte header, then numeric.c's header: 2 bytes in
 * the short format, 4 in the long one (sign bits 00 or 01).  The special
 * format (NaN, infinities) has no JSON form and is refused, and so is a
 * digit outside 0..NBASE-1: numeric code asserts on both.
 */
static bool
jsonb_numeric_sound(const char *p, Size len)
{
	uint32		vh;
	uint16		nh;
	Size		hdr;
	Size		off;

	if (len < VARHDRSZ + sizeof(uint16))
		return false;
	memcpy(&vh, p, sizeof(uint32));
	memcpy(&nh, p + VARHDRSZ, sizeof(uint16));
	if (!VARATT_IS_4B_U(&vh) || VARSIZE(&vh) > len)
		return false;
	switch (nh & NUMERIC_FORMAT_MASK)
	{
		case NUMERIC_SHORT_FORMAT:
			hdr = VARHDRSZ + sizeof(uint16);
			break;
		case NUMERIC_SPECIAL_FORMAT:
			return false;
		default:
			hdr = VARHDRSZ + 2 * sizeof(uint16);
			break;
	}
	if (VARSIZE(&vh) < hdr || (VARSIZE(&vh) - hdr) % sizeof(int16) != 0)
		return false;
	for (off = hdr; off < VARSIZE(&vh); off += sizeof(int16))
	{
		int16		digit;

		memcpy(&digit, p + off, sizeof(int16));
		if (digit < 0 || digit >= NUMERIC_DIGIT_BASE)
			return false;
	}
	return true;
}

/*
 * Is this a sound jsonb container of exactly len bytes?  Checks everything
 * the jsonb code trusts when it reads one: the header's kind and count,
 * that each child's end offset stays inside the container and never moves
 * back, that object keys are strings in jsonb's order (shorter first, then
 * bytewise, no duplicates), that a scalar root holds a scalar, that
 * numerics and nested containers fit after their alignment padding,
 * recursively.  String encoding is not checked: a wrong one gives wrong
 * text, never a read out of bounds.  base need not be aligned.
 */
static bool
jsonb_container_sound(const char *base, Size len, bool root)
{
	uint32		header;
	uint32		count;
	Size		nchildren;
	const char *data;
	Size		datalen;
	Size		end = 0;
	Size		i;
	Size		prev_key = 0;
	Size		prev_key_len = 0;

	check_stack_depth();
	if (len < sizeof(uint32))
		return false;
	memcpy(&header, base, sizeof(uint32));
	count = header & JB_CMASK;
	if (((header & JB_FOBJECT) != 0) == ((header & JB_FARRAY) != 0))
		return false;			/* exactly one of object and array */
	if ((header & JB_FSCALAR) && (!root || !(header & JB_FARRAY) || count != 1))
		return false;
	nchildren = (header & JB_FOBJECT) ? (Size) count * 2 : count;
	if (nchildren > (len - sizeof(uint32)) / sizeof(JEntry))
		return false;
	data = base + sizeof(uint32) + nchildren * sizeof(JEntry);
	datalen = len - sizeof(uint32) - nchildren * sizeof(JEntry);

	for (i = 0; i < nchildren; i++)
	{
		JEntry		je;
		Size		start = end;
		Size		at;
		uint32		type;

		memcpy(&je, base + sizeof(uint32) + i * sizeof(JEntry), sizeof(JEntry));
		end = JBE_HAS_OFF(je) ? JBE_OFFLENFLD(je) : start + JBE_OFFLENFLD(je);
		if (end < start || end > datalen)
			return false;
		type = je & JENTRY_TYPEMASK;
		if ((header & JB_FOBJECT) && i < count)
		{
			/* keys: strings, each after the one before in jsonb's order */
			if (type != JENTRY_ISSTRING)
				return false;
			if (i > 0 && (end - start < prev_key_len ||
						  (end - start == prev_key_len &&
						   memcmp(data + prev_key, data + start, prev_key_len) >= 0)))
				return false;
			prev_key = start;
			prev_key_len = end - start;
		}
		if ((header & JB_FSCALAR) && type == JENTRY_ISCONTAINER)
			return false;		/* a scalar root holds a scalar */
		at = INTALIGN(start);
		switch (type)
		{
			case JENTRY_ISSTRING:
			case JENTRY_ISBOOL_FALSE:
			case JENTRY_ISBOOL_TRUE:
			case JENTRY_ISNULL:
				break;
			case JENTRY_ISNUMERIC:
				if (at > end || !jsonb_numeric_sound(data + at, end - at))
					return false;
				break;
			case JENTRY_ISCONTAINER:
				if (at > end || !jsonb_container_sound(data + at, end - at, false))
					return false;
				break;
			default:
				return false;
		}
	}
	return end == datalen;
}

/*
 * Is a snapshot record sound, and do its name, type and value bytes fit in
 * the avail bytes after it?  Nothing from the file enters shared memory
 * unless this holds (database and owner are checked when loading).
 */
static bool
record_sound(const RegistryImage *rec, const char *bytes, Size avail)
{
	Size		need = (Size) rec->namelen + rec->typelen + rec->valuelen;
	const char *value = bytes + rec->namelen + rec->typelen;

	if (rec->namelen < 1 || rec->namelen > SINGLETON_NAME_MAX ||
		rec->typelen < 1 || rec->typelen > SINGLETON_TYPE_MAX ||
		rec->private > 1 || rec->valuelen > MaxAllocSize ||
		rec->factory_us < -1 || need > avail ||
		!OidIsValid(rec->dbid) || !OidIsValid(rec->owner) ||
		!IS_VALID_TIMESTAMP(rec->created_at) || !IS_VALID_TIMESTAMP(rec->updated_at) ||
		(rec->last_access != 0 && !IS_VALID_TIMESTAMP(rec->last_access)))
		return false;
	/* names and types are C strings to the rest of the code: no NUL inside */
	if (memchr(bytes, '\0', rec->namelen + rec->typelen) != NULL)
		return false;
	if (rec->kind == VALUE_INT)
		return true;			/* value bytes, if any, are never read */
	if (rec->kind != VALUE_JSONB)
		return false;
	/* a jsonb datum with a 4-byte header stating exactly its length */
	if (rec->valuelen < VARHDRSZ + sizeof(uint32))
		return false;
	{
		uint32		vh;

		memcpy(&vh, value, sizeof(uint32));
		if (!VARATT_IS_4B_U(&vh) || VARSIZE(&vh) != rec->valuelen)
			return false;
	}
	return jsonb_container_sound(value + VARHDRSZ, rec->valuelen - VARHDRSZ, true);
}

/*
 * Load the snapshot into the registry.  Runs in the persist worker, inside
 * a transaction (catalog look-ups of databases and roles), with interrupts
 * held off by the caller.
 */
/*
 * Is the file in data sound as a whole: header, checksum, and records that
 * add up exactly?  Quarantines it and returns false if not.
 */
static bool
snapshot_sound(const char *data, Size size, SnapshotTrailer *trailer)
{
	SnapshotHeader hdr;
	pg_crc32c	crc;
	Size		pos = sizeof(SnapshotHeader);
	Size		end;
	uint64		i;

	if (size < sizeof(SnapshotHeader) + sizeof(SnapshotTrailer))
		return quarantine("truncated");
	memcpy(&hdr, data, sizeof(hdr));
	if (hdr.magic != SNAPSHOT_MAGIC)
		return quarantine("not a singleton snapshot");
	if (hdr.version != SNAPSHOT_VERSION)
		return quarantine("of an unsupported format version");
	memcpy(trailer, data + size - sizeof(SnapshotTrailer), sizeof(*trailer));
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, data, size - sizeof(SnapshotTrailer) + TRAILER_CRC_OFFSET);
	FIN_CRC32C(crc);
	if (!EQ_CRC32C(crc, trailer->crc))
		return quarantine("corrupt (checksum mismatch)");
	end = size - sizeof(SnapshotTrailer);
	for (i = 0; i < trailer->count; i++)
	{
		RegistryImage rec;

		if (pos + sizeof(rec) > end)
			break;
		memcpy(&rec, data + pos, sizeof(rec));
		if (!record_sound(&rec, data + pos + sizeof(rec), end - pos - sizeof(rec)))
			break;
		pos += sizeof(rec) + (Size) rec.namelen + rec.typelen + rec.valuelen;
	}
	if (i != trailer->count || pos != end)
	{
		ereport(LOG,
				(errmsg("singleton snapshot record " UINT64_FORMAT " is not sound", i + 1)));
		return quarantine("inconsistent");
	}
	return true;
}

/* What restoring the records did. */
typedef struct LoadCounts
{
	uint64		loaded;
	uint64		skipped;		/* database or owner gone */
	uint64		existing;		/* set since startup: kept */
	bool		partial;		/* the registry filled up */
} LoadCounts;

/*
 * Restore one record.  A full registry (or no shared memory left to grow
 * it) keeps what fitted: returns false.  Anything else is not a reason to
 * open the registry half loaded: the error goes up and the load is retried.
 */
static bool
restore_record(const RegistryImage *rec, const char *bytes, LoadCounts *counts)
{
	if (!SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(rec->dbid)) ||
		!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(rec->owner)))
	{
		counts->skipped++;
		return true;
	}
	PG_TRY();
	{
		if (singleton_registry_restore_image(rec, bytes))
			counts->loaded++;
		else
			counts->existing++;
	}
	PG_CATCH();
	{
		int			code = geterrcode();

		if (code != ERRCODE_OUT_OF_MEMORY && code != ERRCODE_DISK_FULL)
			PG_RE_THROW();
		EmitErrorReport();
		FlushErrorState();
		/* the ERROR dropped the caller's interrupt holdoff: restore it */
		HOLD_INTERRUPTS();
		counts->partial = true;
	}
	PG_END_TRY();
	return !counts->partial;
}

static void
load_snapshot(void)
{
	Size		size = 0;
	char	   *data;
	SnapshotTrailer trailer;
	Size		pos = sizeof(SnapshotHeader);
	uint64		i;
	LoadCounts	counts = {0};

	data = read_file(&size);
	if (data == NULL)
		return;
	/* check everything before trusting anything */
	if (!snapshot_sound(data, size, &trailer))
		return;
	for (i = 0; i < trailer.count; i++)
	{
		RegistryImage rec;

		memcpy(&rec, data + pos, sizeof(rec));
		if (!restore_record(&rec, data + pos + sizeof(rec), &counts))
		{
			ereport(WARNING,
					(errmsg("singleton snapshot only partly loaded: " UINT64_FORMAT " of " UINT64_FORMAT " entries",
							counts.loaded, trailer.count)));
			break;
		}
		pos += sizeof(rec) + (Size) rec.namelen + rec.typelen + rec.valuelen;
	}
	ereport(LOG,
			(errmsg("singleton loaded " UINT64_FORMAT " entries from \"%s\"", counts.loaded, SNAPSHOT_FILE)));
	if (counts.skipped > 0)
		ereport(LOG,
				(errmsg("singleton skipped " UINT64_FORMAT " snapshot entries whose database or owner role no longer exists",
						counts.skipped)));
	if (counts.existing > 0)
		ereport(LOG,
				(errmsg("singleton kept " UINT64_FORMAT " entries set since startup over their snapshot copies",
						counts.existing)));
	if (counts.partial)
		keep_unloaded_file("only partly loaded");
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
 * Records go to the file through one buffer: a write(2) per record made
 * writing a million entries a matter of seconds.
 */
#define SNAPSHOT_WRITE_BUFFER	(1024 * 1024)

typedef struct SnapshotWriter
{
	int			fd;
	pg_crc32c  *crc;
	char	   *buf;
	Size		len;
} SnapshotWriter;

static bool
writer_flush(SnapshotWriter *w)
{
	bool		ok = w->len == 0 || write_all(w->fd, w->buf, w->len, w->crc);

	w->len = 0;
	return ok;
}

static bool
writer_append(SnapshotWriter *w, const void *data, Size len)
{
	if (w->len + len > SNAPSHOT_WRITE_BUFFER)
	{
		if (!writer_flush(w))
			return false;
		if (len > SNAPSHOT_WRITE_BUFFER)
			return write_all(w->fd, data, len, w->crc);
	}
	memcpy(w->buf + w->len, data, len);
	w->len += len;
	return true;
}

/*
 * Write the records of every ready entry (an image, then its name, type and
 * value bytes), adding them to crc; counts records and bytes.  False on a
 * write error (errno set).  Failures are a WARNING from the caller and are
 * remembered for singleton_health(); they never raise an ERROR.
 */
static bool
write_records(int fd, pg_crc32c *crc, uint64 *count, uint64 *bytes)
{
	EntrySnapshot *keys;
	int			n;
	int			i;
	Size		bufsize = 1024;
	char	   *buf = palloc(bufsize);
	SnapshotWriter w = {fd, crc, palloc(SNAPSHOT_WRITE_BUFFER), 0};

	keys = singleton_registry_snapshot(InvalidOid, &n);
	*count = 0;
	for (i = 0; i < n; i++)
	{
		RegistryImage rec;
		Size		len;

		if (keys[i].state != ENTRY_READY)
			continue;
		if (!singleton_registry_copy_image(keys[i].dbid, keys[i].name, keys[i].namelen,
								 &rec, &buf, &bufsize))
			continue;			/* deleted meanwhile */
		len = (Size) rec.namelen + rec.typelen + rec.valuelen;
		if (!writer_append(&w, &rec, sizeof(rec)) || !writer_append(&w, buf, len))
			return false;
		(*count)++;
		*bytes += sizeof(rec) + len;
	}
	return writer_flush(&w);
}

static void
write_snapshot(void)
{
	int			fd;
	SnapshotHeader hdr;
	SnapshotTrailer trailer;
	pg_crc32c	crc;
	uint64		bytes = sizeof(SnapshotHeader) + sizeof(SnapshotTrailer);
	MemoryContext cxt;
	MemoryContext old;

	if (!preserve_unloaded_file())
		return;

	cxt = AllocSetContextCreate(CurrentMemoryContext, "singleton snapshot", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);

	fd = OpenTransientFile(SNAPSHOT_TMP, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);
	if (fd < 0)
		goto fail;

	INIT_CRC32C(crc);
	hdr.magic = SNAPSHOT_MAGIC;
	hdr.version = SNAPSHOT_VERSION;
	if (!write_all(fd, &hdr, sizeof(hdr), &crc))
		goto fail_close;

	if (!write_records(fd, &crc, &trailer.count, &bytes))
		goto fail_close;
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

	SpinLockAcquire(&persist->mutex);
	persist->last_snapshot = GetCurrentTimestamp();
	persist->last_entries = trailer.count;
	persist->last_bytes = bytes;
	persist->last_error[0] = '\0';
	SpinLockRelease(&persist->mutex);
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
	SpinLockAcquire(&persist->mutex);
	persist->pid = 0;
	SpinLockRelease(&persist->mutex);
}

/*
 * Load the snapshot.  Query cancels are held off: a load cut short would
 * open the registry with names missing that their owners expect to hold.
 * If the load raises an error anyway, this worker exits and the postmaster
 * starts it again, which loads again (everyone keeps waiting meanwhile);
 * after LOAD_ATTEMPTS failures the file is kept aside and the registry
 * opens with what was loaded, so that an error that always recurs cannot
 * keep every session waiting.
 */
static void
load_or_retry(void)
{
	HOLD_INTERRUPTS();
	StartTransactionCommand();
	PG_TRY();
	{
		load_snapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		uint32		failures;

		EmitErrorReport();
		FlushErrorState();
		/* the ERROR dropped the holdoff taken above: take it again */
		HOLD_INTERRUPTS();
		AbortCurrentTransaction();
		failures = pg_atomic_add_fetch_u32(&persist->load_failures, 1);
		if (failures < LOAD_ATTEMPTS)
		{
			ereport(LOG,
					(errmsg("singleton snapshot load failed (attempt %u of %d); the worker restarts and loads again",
							failures, LOAD_ATTEMPTS)));
			proc_exit(1);
		}
		keep_unloaded_file("not loaded: every load attempt failed");
	}
	PG_END_TRY();
	RESUME_INTERRUPTS();
	/* a cancel sent to the load has nothing left to cancel */
	QueryCancelPending = false;
}

void
singleton_persist_main(Datum main_arg)
{
	TimestampTz last = GetCurrentTimestamp();

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	/* a clean shutdown asks us to stop: write a last snapshot first */
	pqsignal(SIGTERM, persist_sigterm);
	BackgroundWorkerUnblockSignals();

	SpinLockAcquire(&persist->mutex);
	persist->pid = MyProcPid;
	SpinLockRelease(&persist->mutex);
	before_shmem_exit(persist_exit, (Datum) 0);

	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("singleton persist");
	singleton_area_pass_gate();
	singleton_registry_attach();

	if (!singleton_area_gate_is_open())
	{
		if (singleton_persist)
			load_or_retry();
		else
			keep_unloaded_file("not loaded, because singleton.persist was off at startup");
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
		if (singleton_persist && singleton_persist_interval > 0)
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

	if (singleton_persist)
		write_snapshot();
	/* exit code 1: restarted unless the server is shutting down */
	proc_exit(1);
}

/* ", \"persist\": {...}" for singleton_health(). */
void
singleton_persist_append_health(StringInfo buf, bool show_bytes)
{
	TimestampTz last;
	uint64		entries;
	uint64		bytes;
	char		error[256];
	int			pid;

	SpinLockAcquire(&persist->mutex);
	last = persist->last_snapshot;
	entries = persist->last_entries;
	bytes = persist->last_bytes;
	strlcpy(error, persist->last_error, sizeof(error));
	pid = persist->pid;
	SpinLockRelease(&persist->mutex);

	appendStringInfo(buf, ", \"persist\": {\"enabled\": %s, \"interval_s\": %d, \"loaded\": %s, \"worker_pid\": ",
					 singleton_persist ? "true" : "false", singleton_persist_interval,
					 singleton_area_gate_is_open() ? "true" : "false");
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
					 ", \"last_snapshot_bytes\": ", entries);
	if (show_bytes)
		appendStringInfo(buf, UINT64_FORMAT, bytes);
	else
		appendStringInfoString(buf, "null");
	appendStringInfoString(buf, ", \"last_error\": ");
	if (error[0] != '\0')
		escape_json(buf, error);
	else
		appendStringInfoString(buf, "null");
	appendStringInfoChar(buf, '}');
}
