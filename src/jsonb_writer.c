/*-------------------------------------------------------------------------
 *
 * jsonb_writer.c
 *		Writing jsonb's binary form directly.
 *
 * singleton_stats() returns objects with a million keys.  Built as a
 * JsonbValue tree and converted, each pair costs two 32-byte JsonbValues
 * before a byte of the result is written; this writes the result in one
 * pass instead, in the layout convertToJsonb produces (utils/jsonb.h
 * documents it; it is the on-disk format, so it does not change between
 * releases): a container header, the children's JEntries (every
 * JB_OFFSET_STRIDE'th holding an end offset, the others a length), then
 * the children's data, numerics and containers aligned to 4 bytes.
 * Callers give object keys in jsonb's order and without duplicates.
 * Backend-local; no shared state.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "jsonb_writer.h"

/* jsonb's key order: shorter first, then bytewise. */
int
singleton_jsonb_key_cmp(const char *a, int alen, const char *b, int blen)
{
	if (alen != blen)
		return alen < blen ? -1 : 1;
	return memcmp(a, b, alen);
}

/* A buffer that starts with room for the varlena header. */
void
singleton_jsonb_writer_init(StringInfo buf, Size expected)
{
	initStringInfo(buf);
	enlargeStringInfo(buf, Min(expected, MaxAllocSize / 2));
	buf->len = VARHDRSZ;
}

/* Pad with zero bytes to a 4-byte boundary; returns the padding. */
static int
pad_to_int(StringInfo buf)
{
	int			pad = INTALIGN(buf->len) - buf->len;

	if (pad > 0)
	{
		enlargeStringInfo(buf, pad);
		memset(buf->data + buf->len, 0, pad);
		buf->len += pad;
	}
	return pad;
}

/* Record the next child's JEntry: its type and how many bytes it took. */
static void
add_entry(JsonbWriterContainer *c, StringInfo buf, uint32 type, int len)
{
	uint32		meta;

	c->datalen += len;
	if (c->datalen > JENTRY_OFFLENMASK)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("total size of jsonb object elements exceeds the maximum of %d bytes",
						JENTRY_OFFLENMASK)));
	Assert(c->next < c->nentries);
	if (c->next % JB_OFFSET_STRIDE == 0)
		meta = type | JENTRY_HAS_OFF | (uint32) c->datalen;
	else
		meta = type | (uint32) len;
	memcpy(buf->data + c->jentries + c->next * sizeof(JEntry), &meta, sizeof(JEntry));
	c->next++;
}

void
singleton_jsonb_open(StringInfo buf, JsonbWriterContainer *c, int count, bool object)
{
	uint32		header = (uint32) count | (object ? JB_FOBJECT : JB_FARRAY);

	if ((uint32) count > JB_CMASK)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("number of jsonb object pairs exceeds the maximum allowed (%zu)",
						(Size) JB_CMASK)));
	c->base = buf->len;
	pad_to_int(buf);
	appendBinaryStringInfo(buf, (char *) &header, sizeof(header));
	c->nentries = object ? 2 * count : count;
	c->next = 0;
	c->datalen = 0;
	enlargeStringInfo(buf, c->nentries * sizeof(JEntry));
	c->jentries = buf->len;
	buf->len += c->nentries * sizeof(JEntry);
}

/* Close c, a child of parent (NULL for the root). */
void
singleton_jsonb_close(StringInfo buf, JsonbWriterContainer *c, JsonbWriterContainer *parent)
{
	int			total = buf->len - c->base;

	Assert(c->next == c->nentries);
	if (total > JENTRY_OFFLENMASK)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("total size of jsonb object elements exceeds the maximum of %d bytes",
						JENTRY_OFFLENMASK)));
	if (parent != NULL)
		add_entry(parent, buf, JENTRY_ISCONTAINER, total);
}

void
singleton_jsonb_string(StringInfo buf, JsonbWriterContainer *c, const char *s, int len)
{
	appendBinaryStringInfo(buf, s, len);
	add_entry(c, buf, JENTRY_ISSTRING, len);
}

void
singleton_jsonb_numeric(StringInfo buf, JsonbWriterContainer *c, Numeric num)
{
	int			pad = pad_to_int(buf);
	int			len = VARSIZE_ANY(num);

	appendBinaryStringInfo(buf, (char *) num, len);
	add_entry(c, buf, JENTRY_ISNUMERIC, pad + len);
}

void
singleton_jsonb_null(StringInfo buf, JsonbWriterContainer *c)
{
	add_entry(c, buf, JENTRY_ISNULL, 0);
}

/*
 * A scalar, or a container as a JsonbIterator returns it (jbvBinary,
 * without its alignment padding): copied as it is.
 */
void
singleton_jsonb_value(StringInfo buf, JsonbWriterContainer *c, const JsonbValue *v)
{
	int			pad;

	switch (v->type)
	{
		case jbvNull:
			singleton_jsonb_null(buf, c);
			break;
		case jbvBool:
			add_entry(c, buf, v->val.boolean ? JENTRY_ISBOOL_TRUE : JENTRY_ISBOOL_FALSE, 0);
			break;
		case jbvString:
			singleton_jsonb_string(buf, c, v->val.string.val, v->val.string.len);
			break;
		case jbvNumeric:
			singleton_jsonb_numeric(buf, c, v->val.numeric);
			break;
		case jbvBinary:
			pad = pad_to_int(buf);
			appendBinaryStringInfo(buf, (char *) v->val.binary.data, v->val.binary.len);
			add_entry(c, buf, JENTRY_ISCONTAINER, pad + v->val.binary.len);
			break;
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
}

Jsonb *
singleton_jsonb_finish(StringInfo buf)
{
	Jsonb	   *res = (Jsonb *) buf->data;

	SET_VARSIZE(res, buf->len);
	return res;
}
