/*
 * jsonw.h - writing JSON text straight into a gb_buf, for the hot paths
 * where building a jansson tree only to dump it costs more than the rest of
 * the request (stream chunks).  Output matches jansson's JSON_COMPACT bytes:
 * strings escape '"', '\\' and control characters (\b \f \n \r \t, others
 * \u00XX), and keep UTF-8 as it is.
 */
#ifndef GB_CORE_JSONW_H
#define GB_CORE_JSONW_H

#include <stddef.h>

#include "core/buf.h"

/* Appends s[0..n) as a JSON string, quotes included.  Returns 0 or GB_E*. */
int gb_jsonw_string(struct gb_buf *b, const char *s, size_t n);

/* Same for a NUL-terminated string. */
int gb_jsonw_cstring(struct gb_buf *b, const char *s);

#endif
