/*
 * jsonw.h - writing JSON text straight into a gb_buf, for the hot paths
 * where building a jansson tree only to dump it costs more than the rest of
 * the request (stream chunks).  Output matches jansson's JSON_COMPACT bytes:
 * strings escape '"', '\\' and control characters (\b \f \n \r \t, others
 * \u00XX), and keep UTF-8 as it is.
 */
#ifndef GB_CORE_JSONW_H
#define GB_CORE_JSONW_H

#include <jansson.h>
#include <stddef.h>

#include "core/buf.h"

/* Appends s[0..n) as a JSON string, quotes included.  Returns 0 or GB_E*. */
int gb_jsonw_string(struct gb_buf *b, const char *s, size_t n);

/* Same for a NUL-terminated string. */
int gb_jsonw_cstring(struct gb_buf *b, const char *s);

/* Appends an integer in decimal, as jansson prints one (no snprintf). */
int gb_jsonw_integer(struct gb_buf *b, long long v);

/* Appends a jansson value as compact JSON, the bytes json_dumps(v,
 * JSON_COMPACT) gives, keys in insertion order, without jansson's per-node
 * snprintf loop check (the cost of dumping on the request path).  Values
 * must not contain cycles (trees the gateway builds never do).  Returns 0
 * or GB_E*. */
int gb_jsonw_value(struct gb_buf *b, const json_t *v);

/* Deepest nesting of '[' and '{' in JSON text p[0..n) (brackets inside
 * strings do not count), without parsing it: a few instructions a byte.
 * Used to refuse absurdly nested bodies before a recursive parser sees
 * them. */
size_t gb_json_depth(const char *p, size_t n);

/* Dumps v as gb_jsonw_value does into a malloc'd NUL-terminated string
 * (free() it); *len gets its length when len is not NULL.  NULL on
 * failure. */
char *gb_jsonw_dumps(const json_t *v, size_t *len);

#endif
