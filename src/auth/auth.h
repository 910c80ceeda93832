/*
 * auth.h - client token extraction and constant-time checking.
 *
 * A client presents its token as "Authorization: Bearer T", as
 * "x-goog-api-key: T" or as "?key=T" (DESIGN.md §4.1).  The token is compared
 * against every allowed token in time that does not depend on where the
 * first difference is.
 */
#ifndef GB_AUTH_AUTH_H
#define GB_AUTH_AUTH_H

#include <stddef.h>

#include "config/config.h"

/* Longest token accepted, in bytes. */
#define GB_TOKEN_MAX 512

/*
 * Picks the client's token from the three places, in this order:
 * Authorization (scheme "Bearer", case-insensitive), x-goog-api-key, the
 * decoded "key" query parameter.  Any argument may be NULL.  Returns a
 * pointer to the token inside one of the arguments (borrowed), with *len set,
 * or NULL when none is present.
 */
const char *gb_auth_extract(const char *authorization, const char *goog_api_key,
                            const char *query_key, size_t *len);

/* 1 when token[0..len) equals one of the allowed tokens, else 0. */
int gb_auth_check(const struct gb_strlist *allowed, const char *token, size_t len);

/* Compares two byte strings in constant time for a given length; 1 if equal. */
int gb_auth_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif
