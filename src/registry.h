/*-------------------------------------------------------------------------
 *
 * registry.h
 *		The registry store: its entry layout and the interface the features
 *		above it (factory.c, persist.c, stats.c) use.
 *
 * An entry is a dshash item of the area keyed by (database, name).  Its DSA
 * chunk holds the name, then the type label, then the jsonb value; the key
 * points at the chunk, so replacing a value swaps the chunk under the
 * partition lock (the new chunk starts with the same name bytes, as
 * area.h requires).  Integer values that are used as counters are kept
 * inline (VALUE_INT) so singleton_incr never allocates under the lock.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SINGLETON_REGISTRY_H
#define SINGLETON_REGISTRY_H

#include "area.h"
#include "common.h"
#include "storage/condition_variable.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

/* GUC (singleton.c) */
extern int	singleton_max_value_size;

/* Condition variables for waits on names' states, shared by hashing. */
#define REGISTRY_ENTRY_CVS	32

#define ENTRY_READY			0
#define ENTRY_INITIALIZING	1

#define VALUE_JSONB			0
#define VALUE_INT			1

/*
 * A registry entry: every field is protected by its dshash partition lock,
 * but access_count and last_access, atomics bumped under the shared lock.
 */
typedef struct RegistryEntry
{
	SingletonKey key;			/* key.name is the chunk: name, type, value */
	Oid			owner;
	uint8		state;			/* ENTRY_READY or ENTRY_INITIALIZING */
	uint8		kind;			/* VALUE_JSONB or VALUE_INT */
	uint8		typelen;
	bool		private;
	int32		creator_pid;	/* factory running, while initializing; once
								 * ready, the creator a set displaced, or 0 */
	uint32		valuelen;		/* jsonb bytes in the chunk */
	int64		ival;			/* the value, when kind is VALUE_INT */
	TimestampTz created_at;
	TimestampTz updated_at;
	pg_atomic_uint64 access_count;
	pg_atomic_uint64 last_access;	/* TimestampTz; 0 = never read */
	uint64		generation;		/* changes on every write */
	int64		factory_us;		/* factory duration, -1 if none ran */
} RegistryEntry;

/* Exact shared bytes one entry occupies: dshash item, entry, chunk. */
#define REGISTRY_ENTRY_OVERHEAD \
	(SINGLETON_DSHASH_ITEM_HEADER + MAXALIGN(sizeof(RegistryEntry)))

/*
 * A copy of one entry's metadata, taken without allocating under locks.
 * name and type point into the text block allocated with the array.
 */
typedef struct EntrySnapshot
{
	const char *name;			/* NUL-terminated */
	const char *type;			/* NUL-terminated */
	Oid			dbid;
	Oid			owner;
	uint16		namelen;
	bool		private;
	uint8		state;
	int32		creator_pid;
	int64		size_bytes;
	uint64		access_count;
	TimestampTz created_at;
	TimestampTz updated_at;
	TimestampTz last_access;
	int64		factory_us;
	uint64		generation;
} EntrySnapshot;

extern void singleton_check_name(const char *name, int len);
extern Jsonb *singleton_registry_read(const char *name, int len, bool count_access);
extern Size singleton_registry_shmem_size(void);
extern void singleton_registry_shmem_init(dsa_area *new_area);
extern void singleton_registry_attach(void);
extern ConditionVariable *singleton_registry_entry_cv(Oid dbid, const char *name, int len);
extern uint32 singleton_registry_entry_count(void);
extern EntrySnapshot *singleton_registry_snapshot(Oid dbid, int *count);
extern void singleton_registry_purge_database(Oid dbid);

/* Remembered has_privs_of_role answers, for scans over many entries. */
#define OWNER_PRIV_CACHE_SIZE 64
typedef struct OwnerPrivCache
{
	int			n;
	Oid			owner[OWNER_PRIV_CACHE_SIZE];
	bool		allowed[OWNER_PRIV_CACHE_SIZE];
} OwnerPrivCache;

extern bool singleton_registry_has_owner_privs(Oid owner, OwnerPrivCache *cache);
extern bool singleton_registry_hides_usage(const EntrySnapshot *s, OwnerPrivCache *cache);

/*
 * An entry's image, besides its name, type and value: what the store
 * exports and imports (persist.c writes it to the snapshot file as is).
 */
typedef struct RegistryImage
{
	Oid			dbid;
	Oid			owner;
	uint8		kind;
	uint8		private;
	uint8		typelen;
	uint8		pad;
	uint32		namelen;
	uint32		valuelen;
	int64		ival;
	TimestampTz created_at;
	TimestampTz updated_at;
	TimestampTz last_access;
	uint64		access_count;
	int64		factory_us;
} RegistryImage;

extern bool singleton_registry_copy_image(Oid dbid, const char *name, int len,
								RegistryImage *rec, char **buf, Size *bufsize);
extern bool singleton_registry_restore_image(const RegistryImage *rec, const char *bytes);
extern void singleton_check_type(const char *type, int len);
extern void singleton_check_value_size(Jsonb *value);
extern const char *singleton_jsonb_type_label(Jsonb *jb);
extern bool singleton_registry_initializing(const char *name, int len, int *creator_pid);

/* What singleton_registry_claim found. */
typedef enum ClaimProbe
{
	PROBE_READY,				/* value returned */
	PROBE_CLAIMED,				/* caller now owns an initializing entry */
	PROBE_BUSY					/* another backend is initializing it */
} ClaimProbe;

extern ClaimProbe singleton_registry_claim(const char *name, int len,
										   Jsonb **value, Oid *owner,
										   int *creator_pid, uint64 *generation);
/* What became of a claim's value. */
typedef enum ClaimOutcome
{
	CLAIM_STORED,				/* it is the entry's value now */
	CLAIM_DISPLACED,			/* a singleton_set replaced the flight */
	CLAIM_FORGOTTEN				/* the flight was deleted */
} ClaimOutcome;

extern ClaimOutcome singleton_registry_complete_claim(const char *name, int len,
												uint64 generation, Jsonb *value,
												const char *type, bool private,
												int64 factory_us);
extern bool singleton_registry_abandon_claim(Oid dbid, const char *name, int len,
									 uint64 generation);
extern bool singleton_registry_remove_stale_claim(const char *name, int len, int creator_pid);

#endif							/* SINGLETON_REGISTRY_H */
