/*
 * router_fuzz.c - libFuzzer target for gb_router_normalize (src/server/router.h).
 *
 * The input, up to its first NUL byte, is the request URI as evhttp hands it
 * over.  It is normalised into a buffer that always fits (input length + 2) and
 * into a small heap block of exactly 0..SMALL_MAX-1 bytes (size from the
 * input's hash), so ASan catches a write past its end.  Checked:
 *   - with room enough the call succeeds; the result starts with '/', has no
 *     "//", no trailing '/' (except "/" itself), no '?' or '#', and is the
 *     input's path part (an absolute-form target's path) with runs of '/'
 *     squeezed (rebuilt independently here);
 *   - normalising the result again gives the same result;
 *   - in the small buffer: GB_ETOOBIG, or the same result; GB_ETOOBIG when
 *     the result does not fit (length + 1 > size), and otherwise only when the
 *     one byte more of a trailing '/' (dropped at the end) did not fit: the
 *     loop writes the '/' before it knows it is the last byte.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "fuzz.h"
#include "server/router.h"

/* The small buffer is 0..SMALL_MAX-1 bytes. */
#define SMALL_MAX 64

/* The byte "%XX" at p decodes to when it is unreserved or ':', else -1. */
static int plain_decode(const char *p)
{
    char hex[3] = {p[1], p[1] != '\0' ? p[2] : '\0', '\0'};
    int c;

    if (!isxdigit((unsigned char)hex[0]) || !isxdigit((unsigned char)hex[1]))
        return -1;
    c = (int)strtol(hex, NULL, 16);
    return isalnum(c) || (c != 0 && strchr("-._~:", c) != NULL) ? c : -1;
}

/* The expected result, built the plain way: an absolute-form target
 * ("http://host/path", RFC 9112 3.2.2) loses its scheme and authority; then
 * "/" + the path part (before '?' or '#'), runs of '/' squeezed, escaped
 * unreserved bytes and ':' decoded, trailing '/' dropped. */
static void expected(const char *uri, char *out)
{
    const char *p = uri;
    size_t n = 0;
    int c;

    if (strncasecmp(p, "http://", 7) == 0 || strncasecmp(p, "https://", 8) == 0) {
        p += p[4] == ':' ? 7 : 8;
        while (*p != '\0' && *p != '/' && *p != '?' && *p != '#')
            p++;
    }
    out[n++] = '/';
    for (; *p != '\0' && *p != '?' && *p != '#'; p++) {
        if (*p == '%' && (c = plain_decode(p)) >= 0) {
            out[n++] = (char)c;
            p += 2;
        } else if (!(*p == '/' && out[n - 1] == '/')) {
            out[n++] = *p;
        }
    }
    if (n > 1 && out[n - 1] == '/')
        n--;
    out[n] = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *uri = malloc(size + 1), *out = malloc(size + 2), *want = malloc(size + 2);
    char *again = malloc(size + 2), *small;
    size_t n, small_len = (size_t)(fuzz_hash(data, size) % SMALL_MAX);
    int rc;

    /* exactly small_len bytes, so that ASan sees a write past the end */
    small = malloc(small_len);
    FUZZ_CHECK(uri && out && want && again && small, "malloc");
    memcpy(uri, data, size);
    uri[size] = '\0';

    rc = gb_router_normalize(uri, out, size + 2);
    FUZZ_CHECK(rc == 0, "fits in input length + 2 bytes");
    n = strlen(out);
    FUZZ_CHECK(n >= 1, "never empty");
    FUZZ_CHECK(out[0] == '/', "starts with '/'");
    FUZZ_CHECK(strstr(out, "//") == NULL, "no \"//\"");
    FUZZ_CHECK(n == 1 || out[n - 1] != '/', "no trailing '/'");
    FUZZ_CHECK(strpbrk(out, "?#") == NULL, "no query or fragment");
    expected(uri, want);
    FUZZ_CHECK(strcmp(out, want) == 0, "path part with '/' runs squeezed");

    /* a decoded byte may complete a new escape ("%%341" -> "%41"), so only
     * a result without '%' is sure to be its own normal form */
    if (strchr(out, '%') == NULL)
        FUZZ_CHECK(gb_router_normalize(out, again, size + 2) == 0 && strcmp(again, out) == 0,
                   "idempotent");

    rc = gb_router_normalize(uri, small, small_len);
    if (n + 1 > small_len)
        FUZZ_CHECK(rc == GB_ETOOBIG, "GB_ETOOBIG when it does not fit");
    else if (rc == GB_ETOOBIG)
        FUZZ_CHECK(n + 2 > small_len && n > 1, "GB_ETOOBIG only for the dropped trailing '/'");
    else
        FUZZ_CHECK(rc == 0 && strcmp(small, out) == 0, "same result when it fits");

    free(uri);
    free(out);
    free(want);
    free(again);
    free(small);
    return 0;
}
