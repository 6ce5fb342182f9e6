/*-------------------------------------------------------------------------
 *
 * registry.c
 *		The registry store: set, get, has, delete, clear, incr, entries,
 *		and the entry operations the features above build on (claims for
 *		factories, images for persistence).
 *
 * Entries live in a dshash table in the area (area.c), keyed by (database,
 * name).  Locking (src/README has the whole protocol): an entry is read
 * under its partition lock in shared mode and written under it in
 * exclusive mode.  Under a partition lock this file only copies bytes into
 * memory allocated before the lock was taken, bumps atomics, swaps DSA
 * pointers, deletes items and frees chunks.  Anything that can fail
 * (allocation, privilege checks, jsonb construction, errors) happens with
 * no lock held; a step that needs one of those releases the lock, does it,
 * and looks the entry up again.  RegistryShared: generation and
 * entry_count are atomics, handle is set at startup, entry_cv are
 * condition variables.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/int.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "admission.h"
#include "area.h"
#include "common.h"
#include "quota.h"
#include "registry.h"

PG_FUNCTION_INFO_V1(singleton_set);
PG_FUNCTION_INFO_V1(singleton_get);
PG_FUNCTION_INFO_V1(singleton_has);
PG_FUNCTION_INFO_V1(singleton_delete);
PG_FUNCTION_INFO_V1(singleton_clear);
PG_FUNCTION_INFO_V1(singleton_incr);
PG_FUNCTION_INFO_V1(singleton_entries);

/* What a read found. */
typedef enum ReadState
{
	READ_ABSENT,
	READ_READY,
	READ_INITIALIZING
} ReadState;

#define READ_BUFFER_INITIAL 256

/* The type label of counters singleton_incr creates. */
#define REGISTRY_COUNTER_TYPE	"counter"

int			singleton_max_value_size = 1024 * 1024;

typedef struct RegistryShared
{
	dshash_table_handle handle;	/* set at startup */
	pg_atomic_uint64 generation;	/* source of entry write generations */
	pg_atomic_uint32 entry_count;	/* entries, all databases */
	ConditionVariable entry_cv[REGISTRY_ENTRY_CVS];	/* see singleton_registry_entry_cv */
} RegistryShared;

static RegistryShared *registry = NULL;
static dshash_table *registry_table = NULL;

static const dshash_parameters registry_params = SINGLETON_TABLE_PARAMS(sizeof(RegistryEntry));

Size
singleton_registry_shmem_size(void)
{
	return MAXALIGN(sizeof(RegistryShared));
}

/* new_area: the area being created, or NULL if it exists already. */
void
singleton_registry_shmem_init(dsa_area *new_area)
{
	bool		found;
	int			i;

	registry = ShmemInitStruct("singleton registry", singleton_registry_shmem_size(), &found);
	registry_table = NULL;
	if (found || new_area == NULL)
		return;
	registry->handle = singleton_area_create_table(new_area, &registry_params);
	pg_atomic_init_u64(&registry->generation, 0);
	pg_atomic_init_u32(&registry->entry_count, 0);
	for (i = 0; i < REGISTRY_ENTRY_CVS; i++)
		ConditionVariableInit(&registry->entry_cv[i]);
}

/* Attach this backend to the registry, once; waits for the load gate. */
void
singleton_registry_attach(void)
{
	if (likely(registry_table != NULL))
		return;
	singleton_area_attach();
	registry_table = singleton_area_attach_table(&registry_params, registry->handle);
}

/*
 * The condition variable that sessions waiting for a name's state to change
 * (a claim to end) sleep on; several names share one.
 */
ConditionVariable *
singleton_registry_entry_cv(Oid dbid, const char *name, int len)
{
	SingletonKey key;

	singleton_lookup_key(&key, dbid, name, len);
	return &registry->entry_cv[singleton_key_hash(&key, sizeof(key), NULL) % REGISTRY_ENTRY_CVS];
}

uint32
singleton_registry_entry_count(void)
{
	return pg_atomic_read_u32(&registry->entry_count);
}

static inline uint64
next_generation(void)
{
	return pg_atomic_add_fetch_u64(&registry->generation, 1);
}

static inline Size
entry_chunk_size(const RegistryEntry *e)
{
	return (Size) SINGLETON_KEY_LEN(&e->key) + e->typelen + e->valuelen;
}

static inline char *
entry_chunk(const RegistryEntry *e)
{
	return (char *) dsa_get_address(singleton_area, e->key.name);
}

void
singleton_check_name(const char *name, int len)
{
	if (len < 1 || len > SINGLETON_NAME_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("singleton name must be between 1 and %d bytes long",
						SINGLETON_NAME_MAX),
				 errdetail("The name is %d bytes long.", len)));
}

void
singleton_check_type(const char *type, int len)
{
	if (len < 1 || len > SINGLETON_TYPE_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("singleton type must be between 1 and %d bytes long",
						SINGLETON_TYPE_MAX),
				 errdetail("The type is %d bytes long.", len)));
}

static void
error_permission(const char *name, int len)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for singleton \"%.*s\"", len, name),
			 errdetail("Only roles with the privileges of the entry's owner may do this.")));
}

static void
error_initializing(const char *name, int len)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_IN_USE),
			 errmsg("singleton \"%.*s\" is being initialized", len, name),
			 errhint("Retry once its factory has finished.")));
}

/* Check, outside any lock, that the current role may act as "owner". */
static void
require_privs_of(Oid owner, const char *name, int len)
{
	if (!has_privs_of_role(GetUserId(), owner))
		error_permission(name, len);
}

/* jsonb_typeof of a value, as the default type label. */
const char *
singleton_jsonb_type_label(Jsonb *jb)
{
	JsonbValue	v;

	if (JB_ROOT_IS_SCALAR(jb) && JsonbExtractScalar(&jb->root, &v))
		return JsonbTypeName(&v);
	return JB_ROOT_IS_OBJECT(jb) ? "object" : "array";
}

static Jsonb *
jsonb_from_int64(int64 v)
{
	JsonbValue	jv;

	jv.type = jbvNumeric;
	jv.val.numeric = int64_to_numeric(v);
	return JsonbValueToJsonb(&jv);
}

/*
 * If jb is a JSON number that is an integer in bigint range, set *result.
 * "exact" also requires the text form to have no fractional part, so that
 * storing it inline does not change how it reads back.
 */
static bool
jsonb_as_int64(Jsonb *jb, bool exact, int64 *result, bool *out_of_range)
{
	JsonbValue	v;
	char	   *str;
	char	   *dot;
	char	   *end;
	long long	parsed;

	*out_of_range = false;
	if (!JB_ROOT_IS_SCALAR(jb) || !JsonbExtractScalar(&jb->root, &v) ||
		v.type != jbvNumeric)
		return false;
	str = DatumGetCString(DirectFunctionCall1(numeric_out,
											  NumericGetDatum(v.val.numeric)));
	dot = strchr(str, '.');
	if (dot != NULL)
	{
		const char *p;

		if (exact)
			return false;
		for (p = dot + 1; *p; p++)
			if (*p != '0')
				return false;
		*dot = '\0';
	}
	errno = 0;
	parsed = strtoll(str, &end, 10);
	if (*end != '\0' || end == str)
		return false;
	if (errno == ERANGE)
	{
		*out_of_range = true;
		return false;
	}
	*result = (int64) parsed;
	return true;
}

/*
 * Allocate and fill the DSA chunk of an entry: name, type label, value,
 * charged to role.  Raises the registry-full error when the area has no
 * room.  Whether the role may use that much more is the caller's check
 * (singleton_area_check_share), made before.
 */
static dsa_pointer
chunk_build(Oid role, const char *name, int namelen, const char *type,
			int typelen, const void *value, uint32 valuelen)
{
	dsa_pointer dp = singleton_area_alloc(role, (Size) namelen + typelen + valuelen);
	char	   *p = dsa_get_address(singleton_area, dp);

	memcpy(p, name, namelen);
	memcpy(p + namelen, type, typelen);
	if (valuelen > 0)
		memcpy(p + namelen + typelen, value, valuelen);
	return dp;
}

/* dshash_find_or_insert in the registry, OOM-safe (see area.c). */
static RegistryEntry *
find_or_insert(SingletonKey *key, bool *found, dsa_pointer chunk, Size chunk_size,
			   Oid chunk_role)
{
	return singleton_area_find_or_insert(registry_table, key, found, REGISTRY_ENTRY_OVERHEAD,
										 chunk, chunk_size, chunk_role);
}

/* Remove a locked entry; releases the lock, then frees its chunk. */
static void
remove_locked_entry(RegistryEntry *e)
{
	dsa_pointer chunk = e->key.name;
	Size		size = entry_chunk_size(e);
	Oid			owner = e->owner;

	dshash_delete_entry(registry_table, e);
	singleton_area_free(chunk, size, owner);
	singleton_area_account(owner, -(int64) REGISTRY_ENTRY_OVERHEAD);
	pg_atomic_fetch_sub_u32(&registry->entry_count, 1);
}

/*
 * Read an entry of the current database.  On READ_READY, *value is a fresh
 * palloc'd copy, and the entry's access count was bumped if count_access.
 * Private entries raise 42501 for roles without the owner's privileges.
 */
static ReadState
read_entry(const char *name, int len, bool count_access, Jsonb **value,
		   int *creator_pid, Oid *owner_out)
{
	SingletonKey key;
	Oid			ok_owner = GetUserId();
	Size		bufsize = READ_BUFFER_INITIAL;
	char	   *buf = NULL;
	TimestampTz now = count_access ? GetCurrentTimestamp() : 0;

	singleton_lookup_key(&key, MyDatabaseId, name, len);
	for (;;)
	{
		RegistryEntry *e;
		uint8		kind;
		int64		ival;

		if (buf == NULL)
			buf = palloc(bufsize);

		e = dshash_find(registry_table, &key, false);
		if (e == NULL)
		{
			pfree(buf);
			return READ_ABSENT;
		}
		if (e->state == ENTRY_INITIALIZING)
		{
			if (creator_pid)
				*creator_pid = e->creator_pid;
			dshash_release_lock(registry_table, e);
			pfree(buf);
			return READ_INITIALIZING;
		}
		if (e->private && e->owner != ok_owner)
		{
			Oid			owner = e->owner;

			dshash_release_lock(registry_table, e);
			require_privs_of(owner, name, len);
			ok_owner = owner;
			continue;
		}
		if (e->kind == VALUE_JSONB && e->valuelen > bufsize)
		{
			bufsize = e->valuelen;
			dshash_release_lock(registry_table, e);
			pfree(buf);
			buf = NULL;
			continue;
		}

		kind = e->kind;
		ival = e->ival;
		if (owner_out)
			*owner_out = e->owner;
		if (kind == VALUE_JSONB)
			memcpy(buf, entry_chunk(e) + len + e->typelen, e->valuelen);
		if (count_access)
		{
			pg_atomic_fetch_add_u64(&e->access_count, 1);
			pg_atomic_write_u64(&e->last_access, (uint64) now);
		}
		dshash_release_lock(registry_table, e);

		if (kind == VALUE_INT)
		{
			pfree(buf);
			*value = jsonb_from_int64(ival);
		}
		else
			*value = (Jsonb *) buf;
		return READ_READY;
	}
}

/* Is the entry initializing?  Sets *creator_pid if so; copies nothing. */
bool
singleton_registry_initializing(const char *name, int len, int *creator_pid)
{
	SingletonKey key;
	RegistryEntry *e;
	bool		initializing;

	singleton_lookup_key(&key, MyDatabaseId, name, len);
	e = dshash_find(registry_table, &key, false);
	if (e == NULL)
		return false;
	initializing = (e->state == ENTRY_INITIALIZING);
	if (initializing)
		*creator_pid = e->creator_pid;
	dshash_release_lock(registry_table, e);
	return initializing;
}

/* Read for singleton_get(name): counted; an initializing entry reads as absent. */
Jsonb *
singleton_registry_read(const char *name, int len, bool count_access)
{
	Jsonb	   *value = NULL;

	return read_entry(name, len, count_access, &value, NULL, NULL) == READ_READY ? value : NULL;
}

/*
 * Store a value (set, or a factory's result) into a locked entry.  The
 * caller frees the chunk it replaced after unlocking.
 */
static void
fill_ready(RegistryEntry *e, dsa_pointer chunk, int typelen, uint8 kind,
		   int64 ival, uint32 valuelen, bool private, TimestampTz now)
{
	e->key.name = chunk;
	e->typelen = (uint8) typelen;
	e->kind = kind;
	e->ival = ival;
	e->valuelen = valuelen;
	e->private = private;
	e->state = ENTRY_READY;
	e->creator_pid = 0;
	e->updated_at = now;
	e->generation = next_generation();
	pg_atomic_write_u64(&e->access_count, 0);
	pg_atomic_write_u64(&e->last_access, 0);
}

/* Fields of a new entry that a fill does not set. */
static void
init_new_entry(RegistryEntry *e, int namelen, Oid owner, TimestampTz now)
{
	Assert(SINGLETON_KEY_LEN(&e->key) == namelen);
	e->key.namelen = SINGLETON_KEY_SHAPE(&e->key);	/* no longer local */
	e->owner = owner;
	e->created_at = now;
	e->factory_us = -1;
	pg_atomic_init_u64(&e->access_count, 0);
	pg_atomic_init_u64(&e->last_access, 0);
	pg_atomic_fetch_add_u32(&registry->entry_count, 1);
	singleton_area_account(owner, REGISTRY_ENTRY_OVERHEAD);
}

/* Work out how a value is stored: inline integer or jsonb bytes. */
static void
classify_value(Jsonb *value, uint8 *kind, int64 *ival, uint32 *valuelen)
{
	bool		oor;

	if (jsonb_as_int64(value, true, ival, &oor))
	{
		*kind = VALUE_INT;
		*valuelen = 0;
	}
	else
	{
		*kind = VALUE_JSONB;
		*ival = 0;
		*valuelen = VARSIZE(value);
	}
}

void
singleton_check_value_size(Jsonb *value)
{
	if (VARSIZE(value) > (Size) singleton_max_value_size)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("singleton value is too large"),
				 errdetail("The value is %u bytes; singleton.max_value_size is %d bytes.",
						   (unsigned) VARSIZE(value), singleton_max_value_size)));
}

/*
 * Before writing chunk_size bytes under a name: check the share of the role
 * they will count for (an existing entry's owner, whoever writes it; else
 * the writer), for what the write adds.  So a role at its share may still
 * replace its entries with values no larger.  A look without a write lock;
 * the entry may change before the write, which the share tolerates.
 */
static void
check_share_for_write(const char *name, int len, Oid writer, Size chunk_size)
{
	SingletonKey key;
	RegistryEntry *e;
	Oid			charged = writer;
	Size		had = 0;
	Size		adds = REGISTRY_ENTRY_OVERHEAD + chunk_size;

	singleton_lookup_key(&key, MyDatabaseId, name, len);
	e = dshash_find(registry_table, &key, false);
	if (e != NULL)
	{
		charged = e->owner;
		had = entry_chunk_size(e);
		dshash_release_lock(registry_table, e);
		adds = chunk_size > had ? chunk_size - had : 0;
		/* a refusal names the owner's usage: only for roles that may write */
		if (charged != writer)
			require_privs_of(charged, name, len);
	}
	singleton_area_check_share(charged, adds);
}

/*
 * Create or replace an entry of the current database.  Returns true if the
 * entry was initializing (so waiters must be woken).
 */
static bool
store_value(const char *name, int len, Jsonb *value, const char *type,
			bool private)
{
	SingletonKey key;
	Oid			userid = GetUserId();
	Oid			ok_owner = userid;
	int			typelen = strlen(type);
	uint8		kind;
	int64		ival;
	uint32		valuelen;
	dsa_pointer chunk;
	Size		chunk_size;
	Oid			entry_owner;

	classify_value(value, &kind, &ival, &valuelen);
	chunk_size = (Size) len + typelen + valuelen;
	check_share_for_write(name, len, userid, chunk_size);
	chunk = chunk_build(userid, name, len, type, typelen, value, valuelen);

	singleton_lookup_key(&key, MyDatabaseId, name, len);
	for (;;)
	{
		RegistryEntry *e;
		bool		found;
		dsa_pointer old = InvalidDsaPointer;
		Size		old_size = 0;
		bool		was_initializing = false;
		TimestampTz now = GetCurrentTimestamp();

		e = find_or_insert(&key, &found, chunk, chunk_size, userid);
		if (found)
		{
			if (e->owner != ok_owner)
			{
				Oid			owner = e->owner;

				dshash_release_lock(registry_table, e);
				PG_TRY();
				{
					require_privs_of(owner, name, len);
				}
				PG_CATCH();
				{
					singleton_area_free(chunk, chunk_size, userid);
					PG_RE_THROW();
				}
				PG_END_TRY();
				ok_owner = owner;
				continue;
			}
			old = e->key.name;
			old_size = entry_chunk_size(e);
			was_initializing = (e->state == ENTRY_INITIALIZING);
		}
		else
			init_new_entry(e, len, userid, now);

		{
			int32		displaced_pid = was_initializing ? e->creator_pid : 0;

			fill_ready(e, chunk, typelen, kind, ival, valuelen, private, now);
			/* tell the displaced creator that a set, not a delete, ended it */
			e->creator_pid = displaced_pid;
		}
		entry_owner = e->owner;
		dshash_release_lock(registry_table, e);

		/* the entry's bytes are its owner's, whoever wrote them */
		if (entry_owner != userid)
		{
			singleton_quota_charge(userid, -(int64) chunk_size);
			singleton_quota_charge(entry_owner, (int64) chunk_size);
		}
		if (DsaPointerIsValid(old))
			singleton_area_free(old, old_size, entry_owner);
		return was_initializing;
	}
}

Datum
singleton_set(PG_FUNCTION_ARGS)
{
	text	   *name;
	Jsonb	   *value;
	char	   *type;
	bool		private;
	int			len;

	singleton_registry_attach();
	singleton_require_arg(fcinfo, 0, "singleton name");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("singleton value must not be null"),
				 errhint("Use 'null'::jsonb to store a JSON null.")));
	name = PG_GETARG_TEXT_PP(0);
	len = VARSIZE_ANY_EXHDR(name);
	singleton_check_name(VARDATA_ANY(name), len);
	value = PG_GETARG_JSONB_P(1);
	singleton_check_value_size(value);
	if (PG_ARGISNULL(2))
		type = pstrdup(singleton_jsonb_type_label(value));
	else
	{
		type = text_to_cstring(PG_GETARG_TEXT_PP(2));
		singleton_check_type(type, strlen(type));
	}
	private = PG_ARGISNULL(3) ? false : PG_GETARG_BOOL(3);

	singleton_admission_require("singleton_set");

	if (store_value(VARDATA_ANY(name), len, value, type, private))
		ConditionVariableBroadcast(singleton_registry_entry_cv(MyDatabaseId, VARDATA_ANY(name), len));
	SINGLETON_COUNT(sets, 1);
	PG_RETURN_VOID();
}

Datum
singleton_get(PG_FUNCTION_ARGS)
{
	text	   *name;
	int			len;
	Jsonb	   *value;

	singleton_registry_attach();
	singleton_require_arg(fcinfo, 0, "singleton name");
	name = PG_GETARG_TEXT_PP(0);
	len = VARSIZE_ANY_EXHDR(name);
	singleton_check_name(VARDATA_ANY(name), len);
	singleton_admission_require("singleton_get");

	SINGLETON_COUNT(gets, 1);
	value = singleton_registry_read(VARDATA_ANY(name), len, true);
	if (value == NULL)
	{
		SINGLETON_COUNT(misses, 1);
		PG_RETURN_NULL();
	}
	SINGLETON_COUNT(hits, 1);
	PG_RETURN_JSONB_P(value);
}

Datum
singleton_has(PG_FUNCTION_ARGS)
{
	text	   *name;
	int			len;
	SingletonKey key;
	RegistryEntry *e;
	bool		result = false;

	singleton_registry_attach();
	singleton_require_arg(fcinfo, 0, "singleton name");
	name = PG_GETARG_TEXT_PP(0);
	len = VARSIZE_ANY_EXHDR(name);
	singleton_check_name(VARDATA_ANY(name), len);
	if (!singleton_admission_admit())
		PG_RETURN_BOOL(false);

	singleton_lookup_key(&key, MyDatabaseId, VARDATA_ANY(name), len);
	e = dshash_find(registry_table, &key, false);
	if (e != NULL)
	{
		result = (e->state == ENTRY_READY);
		dshash_release_lock(registry_table, e);
	}
	PG_RETURN_BOOL(result);
}

Datum
singleton_delete(PG_FUNCTION_ARGS)
{
	text	   *name;
	const char *str;
	int			len;
	SingletonKey key;
	Oid			ok_owner = GetUserId();
	bool		was_initializing;

	singleton_registry_attach();
	singleton_require_arg(fcinfo, 0, "singleton name");
	name = PG_GETARG_TEXT_PP(0);
	str = VARDATA_ANY(name);
	len = VARSIZE_ANY_EXHDR(name);
	singleton_check_name(str, len);
	if (!singleton_admission_admit())
		PG_RETURN_BOOL(false);

	singleton_lookup_key(&key, MyDatabaseId, str, len);
	for (;;)
	{
		RegistryEntry *e = dshash_find(registry_table, &key, true);

		if (e == NULL)
			PG_RETURN_BOOL(false);
		if (e->owner != ok_owner)
		{
			Oid			owner = e->owner;

			dshash_release_lock(registry_table, e);
			require_privs_of(owner, str, len);
			ok_owner = owner;
			continue;
		}
		/*
		 * An initializing entry is a flight: deleting it (only a role with
		 * the creator's privileges gets here) abandons the flight.  The
		 * creator's factory then stores nothing, and waiters start anew.
		 */
		was_initializing = (e->state == ENTRY_INITIALIZING);
		remove_locked_entry(e);
		if (was_initializing)
			ConditionVariableBroadcast(singleton_registry_entry_cv(MyDatabaseId, str, len));
		SINGLETON_COUNT(deletes, 1);
		PG_RETURN_BOOL(true);
	}
}

/*
 * Remember privilege answers per owner during one clear, so a registry with
 * many entries of few owners does few catalog lookups.
 */
/*
 * Does the current role have the privileges of "owner"?  has_privs_of_role
 * walks role memberships, so scans over many entries remember the answer
 * for the first owners they meet.
 */
bool
singleton_registry_has_owner_privs(Oid owner, OwnerPrivCache *cache)
{
	int			i;
	bool		allowed;

	if (owner == GetUserId())
		return true;
	for (i = 0; i < cache->n; i++)
		if (cache->owner[i] == owner)
			return cache->allowed[i];
	allowed = has_privs_of_role(GetUserId(), owner);
	if (cache->n < OWNER_PRIV_CACHE_SIZE)
	{
		cache->owner[cache->n] = owner;
		cache->allowed[cache->n] = allowed;
		cache->n++;
	}
	return allowed;
}

Datum
singleton_clear(PG_FUNCTION_ARGS)
{
	EntrySnapshot *snap;
	int			n;
	int			i;
	int64		removed = 0;
	OwnerPrivCache cache = {0};

	singleton_registry_attach();
	if (!singleton_admission_admit())
		PG_RETURN_INT64(0);

	snap = singleton_registry_snapshot(MyDatabaseId, &n);
	for (i = 0; i < n; i++)
	{
		SingletonKey key;
		RegistryEntry *e;
		int			len = snap[i].namelen;

		if (snap[i].state != ENTRY_READY ||
			!singleton_registry_has_owner_privs(snap[i].owner, &cache))
			continue;

		singleton_lookup_key(&key, MyDatabaseId, snap[i].name, len);
		e = dshash_find(registry_table, &key, true);
		if (e == NULL)
			continue;
		/* skip it if it changed hands or started initializing meanwhile */
		if (e->state != ENTRY_READY || e->owner != snap[i].owner)
		{
			dshash_release_lock(registry_table, e);
			continue;
		}
		remove_locked_entry(e);
		removed++;
	}
	SINGLETON_COUNT(deletes, removed);
	pfree(snap);
	PG_RETURN_INT64(removed);
}

static void
error_not_integer(const char *name, int len)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("value of singleton \"%.*s\" is not an integer", len, name),
			 errhint("singleton_incr works on entries holding a JSON integer.")));
}

static void
error_out_of_range(const char *name, int len)
{
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("value of singleton \"%.*s\" is out of range for type bigint",
					len, name)));
}

/* One singleton_incr call, across the retries of its loop. */
typedef struct IncrCall
{
	const char *name;
	int			len;
	int64		delta;
	Oid			userid;
	Oid			ok_owner;		/* owner whose privileges were checked */
	dsa_pointer chunk;			/* counter chunk built for a new entry */
	Size		chunk_size;
	char	   *buf;			/* copy of a jsonb value */
	Size		bufsize;
} IncrCall;

/*
 * The name is absent: create the counter with the value delta.  The chunk
 * is built first, without the lock; false means "look again" (the chunk
 * was just built, or another creator won the race).
 */
static bool
incr_create(IncrCall *c, SingletonKey *key, int64 *result)
{
	RegistryEntry *e;
	bool		found;

	if (!DsaPointerIsValid(c->chunk))
	{
		singleton_area_check_share(c->userid, c->chunk_size + REGISTRY_ENTRY_OVERHEAD);
		c->chunk = chunk_build(c->userid, c->name, c->len, REGISTRY_COUNTER_TYPE,
							   strlen(REGISTRY_COUNTER_TYPE), NULL, 0);
		return false;
	}
	/* singleton_incr's PG_CATCH frees the chunk, so do not hand it over */
	e = find_or_insert(key, &found, InvalidDsaPointer, 0, c->userid);
	if (found)
	{
		/* lost a race with another creator: add to theirs */
		dshash_release_lock(registry_table, e);
		return false;
	}
	init_new_entry(e, c->len, c->userid, GetCurrentTimestamp());
	fill_ready(e, c->chunk, strlen(REGISTRY_COUNTER_TYPE), VALUE_INT, c->delta, 0, false,
			   e->created_at);
	dshash_release_lock(registry_table, e);
	c->chunk = InvalidDsaPointer;
	*result = c->delta;
	return true;
}

/* Store an integer into a locked entry and release it. */
static void
incr_store(RegistryEntry *e, int64 value)
{
	e->kind = VALUE_INT;
	e->ival = value;
	e->updated_at = GetCurrentTimestamp();
	e->generation = next_generation();
	dshash_release_lock(registry_table, e);
}

/*
 * A locked entry holding a jsonb value: copy it out, check it is an integer
 * without the lock, then store the sum only if nobody wrote in between.
 * Releases the lock; false means "look again".
 */
static bool
incr_jsonb(IncrCall *c, SingletonKey *key, RegistryEntry *e, int64 *result)
{
	uint64		gen;
	int64		current;
	bool		oor;

	if (e->valuelen > c->bufsize)
	{
		c->bufsize = e->valuelen;
		dshash_release_lock(registry_table, e);
		pfree(c->buf);
		c->buf = palloc(c->bufsize);
		return false;
	}
	gen = e->generation;
	memcpy(c->buf, entry_chunk(e) + c->len + e->typelen, e->valuelen);
	dshash_release_lock(registry_table, e);

	if (!jsonb_as_int64((Jsonb *) c->buf, false, &current, &oor))
	{
		if (oor)
			error_out_of_range(c->name, c->len);
		error_not_integer(c->name, c->len);
	}
	if (pg_add_s64_overflow(current, c->delta, result))
		error_out_of_range(c->name, c->len);

	e = dshash_find(registry_table, key, true);
	if (e == NULL)
		return false;
	if (e->generation != gen || e->kind != VALUE_JSONB)
	{
		dshash_release_lock(registry_table, e);
		return false;
	}
	/* the old jsonb bytes stay in the chunk until the next set */
	incr_store(e, *result);
	return true;
}

/* The increment itself: a loop until one attempt succeeds or errors. */
static int64
incr_entry(IncrCall *c)
{
	SingletonKey key;
	int64		result = 0;

	singleton_lookup_key(&key, MyDatabaseId, c->name, c->len);
	for (;;)
	{
		RegistryEntry *e = dshash_find(registry_table, &key, true);

		if (e == NULL)
		{
			if (incr_create(c, &key, &result))
				return result;
			continue;
		}
		if (e->owner != c->ok_owner)
		{
			Oid			owner = e->owner;

			dshash_release_lock(registry_table, e);
			require_privs_of(owner, c->name, c->len);
			c->ok_owner = owner;
			continue;
		}
		if (e->state == ENTRY_INITIALIZING)
		{
			dshash_release_lock(registry_table, e);
			error_initializing(c->name, c->len);
		}
		if (e->kind == VALUE_INT)
		{
			if (pg_add_s64_overflow(e->ival, c->delta, &result))
			{
				dshash_release_lock(registry_table, e);
				error_out_of_range(c->name, c->len);
			}
			incr_store(e, result);
			return result;
		}
		if (incr_jsonb(c, &key, e, &result))
			return result;
	}
}

Datum
singleton_incr(PG_FUNCTION_ARGS)
{
	text	   *name;
	IncrCall	c;
	int64		result;

	singleton_registry_attach();
	singleton_require_arg(fcinfo, 0, "singleton name");
	name = PG_GETARG_TEXT_PP(0);
	c.name = VARDATA_ANY(name);
	c.len = VARSIZE_ANY_EXHDR(name);
	/* delta is optional: NULL means its default, 1 */
	c.delta = PG_ARGISNULL(1) ? 1 : PG_GETARG_INT64(1);
	c.userid = GetUserId();
	c.ok_owner = c.userid;
	c.chunk = InvalidDsaPointer;
	c.chunk_size = (Size) c.len + strlen(REGISTRY_COUNTER_TYPE);
	c.bufsize = READ_BUFFER_INITIAL;
	c.buf = palloc(c.bufsize);
	singleton_check_name(c.name, c.len);
	singleton_admission_require("singleton_incr");

	/* a counter chunk built for a new entry must not leak on any error */
	PG_TRY();
	{
		result = incr_entry(&c);
	}
	PG_CATCH();
	{
		if (DsaPointerIsValid(c.chunk))
			singleton_area_free(c.chunk, c.chunk_size, c.userid);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (DsaPointerIsValid(c.chunk))
		singleton_area_free(c.chunk, c.chunk_size, c.userid);
	SINGLETON_COUNT(incrs, 1);
	PG_RETURN_INT64(result);
}

/*
 * Remove every entry of a database that was dropped, or that has just been
 * created with the OID of a dropped one (nothing of it may be inherited).
 * The scan locks one partition at a time.
 */
void
singleton_registry_purge_database(Oid dbid)
{
	dshash_seq_status status;
	RegistryEntry *e;

	singleton_registry_attach();
	dshash_seq_init(&status, registry_table, true);
	while ((e = dshash_seq_next(&status)) != NULL)
	{
		if (e->key.dbid == dbid)
		{
			dsa_pointer chunk = e->key.name;
			Size		size = entry_chunk_size(e);
			Oid			owner = e->owner;

			dshash_delete_current(&status);
			singleton_area_free(chunk, size, owner);
			singleton_area_account(owner, -(int64) REGISTRY_ENTRY_OVERHEAD);
			pg_atomic_fetch_sub_u32(&registry->entry_count, 1);
		}
	}
	dshash_seq_term(&status);
}

/* Bytes of name and type, each NUL-terminated, an entry adds to a snapshot. */
static inline Size
snapshot_text_size(const RegistryEntry *e)
{
	return (Size) SINGLETON_KEY_LEN(&e->key) + e->typelen + 2;
}

/* Entries of dbid (InvalidOid: all) and the text a snapshot needs for them. */
static void
measure_snapshot(Oid dbid, Size *count, Size *text)
{
	dshash_seq_status status;
	RegistryEntry *e;

	*count = 0;
	*text = 0;
	dshash_seq_init(&status, registry_table, false);
	while ((e = dshash_seq_next(&status)) != NULL)
	{
		if (OidIsValid(dbid) && e->key.dbid != dbid)
			continue;
		(*count)++;
		*text += snapshot_text_size(e);
	}
	dshash_seq_term(&status);
}

static void
copy_snapshot_entry(EntrySnapshot *s, RegistryEntry *e, char *text)
{
	const char *chunk = entry_chunk(e);
	int			len = SINGLETON_KEY_LEN(&e->key);

	memcpy(text, chunk, len);
	text[len] = '\0';
	memcpy(text + len + 1, chunk + len, e->typelen);
	text[len + 1 + e->typelen] = '\0';
	s->name = text;
	s->type = text + len + 1;
	s->namelen = len;
	s->dbid = e->key.dbid;
	s->owner = e->owner;
	s->private = e->private;
	s->state = e->state;
	s->creator_pid = e->creator_pid;
	s->size_bytes = REGISTRY_ENTRY_OVERHEAD + entry_chunk_size(e);
	s->access_count = pg_atomic_read_u64(&e->access_count);
	s->created_at = e->created_at;
	s->updated_at = e->updated_at;
	s->last_access = (TimestampTz) pg_atomic_read_u64(&e->last_access);
	s->factory_us = e->factory_us;
	s->generation = e->generation;
}

/*
 * Copy into snap (room for cap entries, then textcap bytes of text) the
 * metadata of every entry of dbid; false if it does not fit.
 */
static bool
copy_snapshot(Oid dbid, EntrySnapshot *snap, Size cap, Size textcap, int *count)
{
	dshash_seq_status status;
	RegistryEntry *e;
	char	   *text = (char *) (snap + cap);
	Size		n = 0;
	Size		used = 0;
	bool		fits = true;

	dshash_seq_init(&status, registry_table, false);
	while ((e = dshash_seq_next(&status)) != NULL)
	{
		if (OidIsValid(dbid) && e->key.dbid != dbid)
			continue;
		if (n >= cap || used + snapshot_text_size(e) > textcap)
		{
			fits = false;
			break;
		}
		copy_snapshot_entry(&snap[n++], e, text + used);
		used += snapshot_text_size(e);
	}
	dshash_seq_term(&status);
	*count = (int) n;
	return fits;
}

/*
 * Copy the metadata of every entry of one database (InvalidOid: of all),
 * with their names and type labels, in one allocation (pfree it).  A first
 * pass measures, then the room is allocated with no lock held and a second
 * pass copies; if entries were added in between, the copy stops and starts
 * over with more room.  Each pass holds one partition lock at a time, in
 * shared mode, for as long as copying that partition's entries takes.
 */
EntrySnapshot *
singleton_registry_snapshot(Oid dbid, int *count)
{
	Size		cap;
	Size		textcap;

	measure_snapshot(dbid, &cap, &textcap);
	/* room for what arrives between the passes */
	cap += cap / 16 + 64;
	textcap += textcap / 16 + 64 * (SINGLETON_NAME_MAX + SINGLETON_TYPE_MAX + 2);
	for (;;)
	{
		EntrySnapshot *snap;

		snap = palloc_extended(cap * sizeof(EntrySnapshot) + textcap, MCXT_ALLOC_HUGE);
		if (copy_snapshot(dbid, snap, cap, textcap, count))
			return snap;
		pfree(snap);
		cap *= 2;
		textcap *= 2;
	}
}

/*
 * A private entry's size, use and timing say something about its value (its
 * length, who reads it when): only roles that may read it see them.
 */
bool
singleton_registry_hides_usage(const EntrySnapshot *s, OwnerPrivCache *cache)
{
	return s->private && !singleton_registry_has_owner_privs(s->owner, cache);
}

Datum
singleton_entries(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	EntrySnapshot *snap;
	int			n;
	int			i;
	OwnerPrivCache cache = {0};

	singleton_registry_attach();
	InitMaterializedSRF(fcinfo, 0);

	snap = singleton_registry_snapshot(MyDatabaseId, &n);
	for (i = 0; i < n; i++)
	{
		EntrySnapshot *s = &snap[i];
		Datum		values[12];
		bool		nulls[12];
		bool		hidden = singleton_registry_hides_usage(s, &cache);

		memset(nulls, 0, sizeof(nulls));
		values[0] = CStringGetTextDatum(s->name);
		values[1] = CStringGetTextDatum(s->type);
		values[2] = ObjectIdGetDatum(s->owner);
		values[3] = BoolGetDatum(s->private);
		values[4] = Int64GetDatum(s->size_bytes);
		nulls[4] = hidden;
		values[5] = Int64GetDatum((int64) s->access_count);
		nulls[5] = hidden;
		values[6] = TimestampTzGetDatum(s->created_at);
		values[7] = TimestampTzGetDatum(s->updated_at);
		values[8] = TimestampTzGetDatum(s->last_access);
		nulls[8] = (s->last_access == 0 || hidden);
		values[9] = CStringGetTextDatum(s->state == ENTRY_READY ? "ready" : "initializing");
		values[10] = Int32GetDatum(s->creator_pid);
		nulls[10] = (s->state != ENTRY_INITIALIZING);
		values[11] = Float8GetDatum(s->factory_us / 1000.0);
		nulls[11] = (s->factory_us < 0 || hidden);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * Claims, for factories (factory.c).  The first caller claims the name by
 * publishing an initializing entry (owner and creator pid, no value); it
 * later completes or abandons it, identified by the generation it was
 * given.  Running the factory, waiting and cleaning up are factory.c's.
 */
ClaimProbe
singleton_registry_claim(const char *name, int len, Jsonb **value,
					   Oid *owner, int *creator_pid, uint64 *generation)
{
	SingletonKey key;
	Oid			userid = GetUserId();

	singleton_lookup_key(&key, MyDatabaseId, name, len);
	for (;;)
	{
		ReadState	st;
		dsa_pointer chunk;
		RegistryEntry *e;
		bool		found;

		st = read_entry(name, len, true, value, creator_pid, owner);
		if (st == READ_READY)
			return PROBE_READY;
		if (st == READ_INITIALIZING)
			return PROBE_BUSY;

		/*
		 * Once an allocation has failed, and until memory is freed, do not
		 * claim: the factory would run only to find no room for its value.
		 */
		if (pg_atomic_read_u32(&singleton_area_shared->full))
			singleton_area_error_full(len);
		singleton_area_check_share(userid, len + REGISTRY_ENTRY_OVERHEAD);
		chunk = chunk_build(userid, name, len, "", 0, NULL, 0);
		e = find_or_insert(&key, &found, chunk, len, userid);
		if (found)
		{
			bool		busy = (e->state == ENTRY_INITIALIZING);

			*creator_pid = e->creator_pid;
			dshash_release_lock(registry_table, e);
			singleton_area_free(chunk, len, userid);
			if (busy)
				return PROBE_BUSY;
			continue;			/* became ready meanwhile: read it */
		}
		init_new_entry(e, len, userid, GetCurrentTimestamp());
		e->key.name = chunk;
		e->typelen = 0;
		e->kind = VALUE_JSONB;
		e->ival = 0;
		e->valuelen = 0;
		e->private = false;
		e->state = ENTRY_INITIALIZING;
		e->creator_pid = MyProcPid;
		e->updated_at = e->created_at;
		e->generation = next_generation();
		*generation = e->generation;
		dshash_release_lock(registry_table, e);
		return PROBE_CLAIMED;
	}
}

/*
 * Store a factory's result into the entry this backend claimed.  If the
 * claim is gone, nothing is stored, and the result says why: a set replaced
 * it (the entry is ready and names this backend as the creator it
 * displaced), or the flight was deleted (forgotten).
 */
ClaimOutcome
singleton_registry_complete_claim(const char *name, int len, uint64 generation,
						  Jsonb *value, const char *type, bool private,
						  int64 factory_us)
{
	SingletonKey key;
	RegistryEntry *e;
	int			typelen = strlen(type);
	uint8		kind;
	int64		ival;
	uint32		valuelen;
	dsa_pointer chunk;
	dsa_pointer old;
	Size		old_size;
	Size		size;
	Oid			userid = GetUserId();
	Oid			owner;

	classify_value(value, &kind, &ival, &valuelen);
	size = (Size) len + typelen + valuelen;
	singleton_area_check_share(userid, size);
	chunk = chunk_build(userid, name, len, type, typelen, value, valuelen);

	singleton_lookup_key(&key, MyDatabaseId, name, len);
	e = dshash_find(registry_table, &key, true);
	if (e == NULL || e->state != ENTRY_INITIALIZING || e->generation != generation)
	{
		ClaimOutcome outcome = CLAIM_FORGOTTEN;

		if (e != NULL)
		{
			if (e->state == ENTRY_READY && e->creator_pid == MyProcPid)
				outcome = CLAIM_DISPLACED;
			dshash_release_lock(registry_table, e);
		}
		singleton_area_free(chunk, size, userid);
		return outcome;
	}
	old = e->key.name;
	old_size = entry_chunk_size(e);
	fill_ready(e, chunk, typelen, kind, ival, valuelen, private,
			   GetCurrentTimestamp());
	e->factory_us = factory_us;
	owner = e->owner;
	dshash_release_lock(registry_table, e);
	if (owner != userid)
	{
		singleton_quota_charge(userid, -(int64) size);
		singleton_quota_charge(owner, (int64) size);
	}
	singleton_area_free(old, old_size, owner);
	return CLAIM_STORED;
}

/*
 * Remove a claim (an initializing entry) if it is still the one meant: with
 * this generation, or (generation 0) made by this creator pid.
 */
static bool
remove_claim(Oid dbid, const char *name, int len, uint64 generation, int creator_pid)
{
	SingletonKey key;
	RegistryEntry *e;

	singleton_lookup_key(&key, dbid, name, len);
	e = dshash_find(registry_table, &key, true);
	if (e == NULL)
		return false;
	if (e->state != ENTRY_INITIALIZING ||
		(generation != 0 ? e->generation != generation : e->creator_pid != creator_pid))
	{
		dshash_release_lock(registry_table, e);
		return false;
	}
	remove_locked_entry(e);
	return true;
}

/* Remove this backend's claim, if it is still there. */
bool
singleton_registry_abandon_claim(Oid dbid, const char *name, int len, uint64 generation)
{
	return remove_claim(dbid, name, len, generation, 0);
}

/* Remove a claim whose creator process no longer exists. */
bool
singleton_registry_remove_stale_claim(const char *name, int len, int creator_pid)
{
	return remove_claim(MyDatabaseId, name, len, 0, creator_pid);
}

/*
 * Copy one ready entry of any database for the snapshot: its metadata into
 * *rec and its chunk (name, type, value) into *buf, which is grown (outside
 * the lock) as needed.  No privilege check and no access counting: this is
 * the server saving its own state.  Returns false if absent or initializing.
 */
bool
singleton_registry_copy_image(Oid dbid, const char *name, int len, RegistryImage *rec,
					char **buf, Size *bufsize)
{
	SingletonKey key;

	singleton_lookup_key(&key, dbid, name, len);
	for (;;)
	{
		RegistryEntry *e = dshash_find(registry_table, &key, false);
		Size		need;

		if (e == NULL)
			return false;
		if (e->state != ENTRY_READY)
		{
			dshash_release_lock(registry_table, e);
			return false;
		}
		need = entry_chunk_size(e);
		if (need > *bufsize)
		{
			dshash_release_lock(registry_table, e);
			*buf = repalloc(*buf, need);
			*bufsize = need;
			continue;
		}
		memset(rec, 0, sizeof(*rec));
		rec->dbid = dbid;
		rec->owner = e->owner;
		rec->kind = e->kind;
		rec->private = e->private ? 1 : 0;
		rec->typelen = e->typelen;
		rec->namelen = (uint32) len;
		rec->valuelen = e->valuelen;
		rec->ival = e->ival;
		rec->created_at = e->created_at;
		rec->updated_at = e->updated_at;
		rec->last_access = (TimestampTz) pg_atomic_read_u64(&e->last_access);
		rec->access_count = pg_atomic_read_u64(&e->access_count);
		rec->factory_us = e->factory_us;
		memcpy(*buf, entry_chunk(e), need);
		dshash_release_lock(registry_table, e);
		return true;
	}
}

/*
 * Re-create an entry from a snapshot record; bytes are its name, type and
 * value.  An entry that already exists (set since startup) wins.  Raises the
 * registry-full error when there is no room.
 */
bool
singleton_registry_restore_image(const RegistryImage *rec, const char *bytes)
{
	SingletonKey key;
	RegistryEntry *e;
	bool		found;
	dsa_pointer chunk;
	Size		size = (Size) rec->namelen + rec->typelen + rec->valuelen;

	/* the share is not enforced here: the entry was there before */
	chunk = chunk_build(rec->owner, bytes, rec->namelen, bytes + rec->namelen, rec->typelen,
						bytes + rec->namelen + rec->typelen, rec->valuelen);

	singleton_lookup_key(&key, rec->dbid, bytes, rec->namelen);
	e = find_or_insert(&key, &found, chunk, size, rec->owner);
	if (found)
	{
		dshash_release_lock(registry_table, e);
		singleton_area_free(chunk, size, rec->owner);
		return false;
	}
	init_new_entry(e, rec->namelen, rec->owner, rec->created_at);
	fill_ready(e, chunk, rec->typelen, rec->kind, rec->ival, rec->valuelen,
			   rec->private != 0, rec->updated_at);
	e->factory_us = rec->factory_us;
	pg_atomic_write_u64(&e->access_count, rec->access_count);
	pg_atomic_write_u64(&e->last_access, (uint64) rec->last_access);
	dshash_release_lock(registry_table, e);
	return true;
}
