/*-------------------------------------------------------------------------
 *
 * jsonb_writer.h
 *		Writing jsonb's binary form directly, for results too large to
 *		build as JsonbValue trees first.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SINGLETON_JSONB_WRITER_H
#define SINGLETON_JSONB_WRITER_H

#include "lib/stringinfo.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

/*
 * One open container: an object's n keys are added first, in jsonb key
 * order (singleton_jsonb_key_cmp), then its n values in the same order; an
 * array's elements in order.
 */
typedef struct JsonbWriterContainer
{
	int			base;			/* where its bytes start in the buffer */
	int			jentries;		/* where its JEntry array starts */
	int			nentries;		/* 2 * pairs, or elements */
	int			next;			/* JEntries written so far */
	int			datalen;		/* bytes of children data so far */
} JsonbWriterContainer;

extern int	singleton_jsonb_key_cmp(const char *a, int alen, const char *b, int blen);
extern void singleton_jsonb_writer_init(StringInfo buf, Size expected);
extern void singleton_jsonb_open(StringInfo buf, JsonbWriterContainer *c, int count, bool object);
extern void singleton_jsonb_close(StringInfo buf, JsonbWriterContainer *c,
								  JsonbWriterContainer *parent);
extern void singleton_jsonb_string(StringInfo buf, JsonbWriterContainer *c,
								   const char *s, int len);
extern void singleton_jsonb_numeric(StringInfo buf, JsonbWriterContainer *c, Numeric num);
extern void singleton_jsonb_null(StringInfo buf, JsonbWriterContainer *c);
extern void singleton_jsonb_value(StringInfo buf, JsonbWriterContainer *c, const JsonbValue *v);
extern Jsonb *singleton_jsonb_finish(StringInfo buf);

#endif							/* SINGLETON_JSONB_WRITER_H */
