/*
 * jscan.h - a strict, allocation-free pull scanner over JSON text, for the
 * hot paths that read a few fields of a known shape (Gemini answers and
 * stream events) and found jansson's tree building to be most of their cost.
 *
 * The caller walks the text in order: enter an object or array, take keys
 * or items one by one, and read or skip each value.  Every byte the caller
 * walks over is validated; gb_jscan_finish checks that nothing but
 * whitespace follows.
 *
 * The scanner never accepts what jansson (json_loadb, flags 0) refuses,
 * and reads every value it accepts the way jansson does.  Where the two
 * could differ it refuses instead (GB_JSCAN_NO): integers beyond 18
 * digits, real numbers with an exponent above 300 in size, "\u0000" in
 * strings, nesting deeper than GB_JSCAN_MAX_DEPTH, keys with escapes.  A
 * refusal means "not for the fast path", not "invalid JSON": callers hand
 * such text to jansson.  Nothing is allocated; decoded strings go into a
 * caller's gb_buf.
 */
#ifndef GB_CORE_JSCAN_H
#define GB_CORE_JSCAN_H

#include <stddef.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"

/* Deepest nesting the scanner follows. */
#define GB_JSCAN_MAX_DEPTH 64

/* Returned for anything the scanner will not take (GB_EPARSE). */
#define GB_JSCAN_NO GB_EPARSE

/* What the next value is, from its first byte. */
enum gb_jtype {
    GB_JT_BAD = 0, /* end of text or a byte no value starts with */
    GB_JT_OBJECT,
    GB_JT_ARRAY,
    GB_JT_STRING,
    GB_JT_NUMBER,
    GB_JT_TRUE,
    GB_JT_FALSE,
    GB_JT_NULL
};

struct gb_jscan {
    const char *p;   /* private: next byte */
    const char *end; /* private: one past the last byte */
    int depth;       /* private: open containers */
    int first;       /* private: 1 until the open container's first member */
};

/* Starts a scan of p[0..n).  The text must outlive the scan. */
void gb_jscan_init(struct gb_jscan *j, const char *p, size_t n);

/* Skips whitespace and says what the next value is (consumes nothing). */
enum gb_jtype gb_jscan_peek(struct gb_jscan *j);

/* Consumes the '{' (gb_jscan_object) or '[' (gb_jscan_array) that opens
 * the next value.  0 or GB_JSCAN_NO. */
int gb_jscan_object(struct gb_jscan *j);
int gb_jscan_array(struct gb_jscan *j);

/*
 * Next member of the open object: returns 1 with *key and *klen pointing at
 * the key's bytes in the text (a key with an escape is refused) and the
 * ':' consumed, so the value comes next; the caller must read or skip it
 * before asking again.  Returns 0 once the object's '}' is consumed.
 */
int gb_jscan_key(struct gb_jscan *j, const char **key, size_t *klen);

/* Next element of the open array: 1 when a value follows (read or skip
 * it), 0 once the ']' is consumed. */
int gb_jscan_item(struct gb_jscan *j);

/* Validates and steps over the next value, whatever it is. */
int gb_jscan_skip(struct gb_jscan *j);

/* Reads the next value, a string, decoding its escapes into out (appended;
 * out NULL only validates).  0, GB_JSCAN_NO, or GB_ETOOBIG / GB_ENOMEM
 * from the buffer. */
int gb_jscan_string(struct gb_jscan *j, struct gb_buf *out);

/* Reads the next value, a string without escapes: *s and *n point at its
 * bytes in the text (valid UTF-8, no control characters), which are then
 * its decoded value.  A string with a backslash is refused. */
int gb_jscan_plain(struct gb_jscan *j, const char **s, size_t *n);

/* Reads the next value, an integer without fraction or exponent (as
 * jansson reads it: a json_integer), into *v. */
int gb_jscan_int(struct gb_jscan *j, long long *v);

/* Reads true or false into *v (1 or 0). */
int gb_jscan_bool(struct gb_jscan *j, int *v);

/* 0 when only whitespace is left and every container was closed. */
int gb_jscan_finish(struct gb_jscan *j);

/* 1 when key[0..klen) is the NUL-terminated s (inline: with a literal s
 * the length is known at compile time). */
static inline int gb_jscan_is(const char *key, size_t klen, const char *s)
{
    return strlen(s) == klen && memcmp(key, s, klen) == 0;
}

#endif
