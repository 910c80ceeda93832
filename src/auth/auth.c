/* auth.c - client token extraction and constant-time comparison. */
#include "auth/auth.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static const char *trimmed(const char *s, size_t *len)
{
    size_t n;

    while (*s == ' ' || *s == '\t')
        s++;
    n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    *len = n;
    return n > 0 ? s : NULL;
}

const char *gb_auth_extract(const char *authorization, const char *goog_api_key,
                            const char *query_key, size_t *len)
{
    const char *t;

    if (authorization != NULL) {
        while (*authorization == ' ')
            authorization++;
        if (strncasecmp(authorization, "Bearer", 6) == 0 &&
            (authorization[6] == ' ' || authorization[6] == '\t')) {
            t = trimmed(authorization + 7, len);
            if (t != NULL)
                return t;
        }
    }
    if (goog_api_key != NULL && (t = trimmed(goog_api_key, len)) != NULL)
        return t;
    if (query_key != NULL && (t = trimmed(query_key, len)) != NULL)
        return t;
    return NULL;
}

int gb_auth_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char diff = alen != blen;
    size_t n = alen < blen ? alen : blen;

    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

int gb_auth_check(const struct gb_strlist *allowed, const char *token, size_t len)
{
    int ok = 0;

    if (token == NULL || len == 0 || len > GB_TOKEN_MAX)
        return 0;
    /* no early exit: the time taken does not tell which token matched */
    for (size_t i = 0; i < allowed->n; i++)
        ok |= gb_auth_equal(token, len, allowed->v[i], strlen(allowed->v[i]));
    return ok;
}
