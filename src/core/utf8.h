/*
 * utf8.h - one UTF-8 check for the whole project (the JSON scanner, the
 * metrics label cleaner, the store's text cleaner), by jansson's rules: no
 * overlong forms, no surrogates, nothing above U+10FFFF.
 */
#ifndef GB_CORE_UTF8_H
#define GB_CORE_UTF8_H

#include <stddef.h>

/* Longest UTF-8 sequence, in bytes. */
#define GB_UTF8_MAX 4

/* Length of the valid UTF-8 sequence at p, of which at most n bytes may be
 * read (n >= 1), or 0 when p does not start one.  An ASCII byte (NUL
 * included) is a sequence of 1.  Reads no byte past the first one that
 * breaks the sequence, so with n = GB_UTF8_MAX it stops at a string's
 * terminating NUL. */
size_t gb_utf8_seq(const unsigned char *p, size_t n);

#endif
