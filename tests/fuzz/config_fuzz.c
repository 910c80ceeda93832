/*
 * config_fuzz.c - libFuzzer target for the .env reader and the value parsers
 * (src/config/config.h): gb_config_load + gb_config_free, gb_strlist_parse.
 *
 * The input is written to a memfd (no file on disk) and loaded as the .env
 * file through /proc/self/fd/N, with a fake environment: empty, or (chosen by
 * the input's hash) holding only ALLOWED_TOKENS, so both a failed load and a
 * full one are reached whatever the file says.  Then the input, up to its
 * first NUL byte, is parsed as a list value.  Checked, besides ASan/UBSan and
 * leaks:
 *   - a failed load writes a message; a good one has at least one allowed
 *     token, an admin token, an http(s) base URL with a host and without a
 *     trailing '/', port
 *     0..65535, workers >= 1, and lists without empty or NULL entries;
 *   - gb_strlist_parse: 0 or GB_EPARSE; entries non-empty with no blanks at
 *     either end, no ',' in an a,b entry; gb_strlist_has finds each entry.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config/config.h"
#include "core/err.h"
#include "fuzz.h"

/* Which fake environment this input runs with (set before each load). */
static int env_has_tokens;

static char *fake_getenv(const char *name)
{
    static char tokens[] = "fuzz-token";

    if (env_has_tokens && strcmp(name, "ALLOWED_TOKENS") == 0)
        return tokens;
    return NULL;
}

static void check_list(const struct gb_strlist *l, int comma_form)
{
    FUZZ_CHECK(l->n == 0 || l->v != NULL, "list has storage");
    for (size_t i = 0; i < l->n; i++) {
        const char *s = l->v[i];
        size_t n;

        FUZZ_CHECK(s != NULL && (n = strlen(s)) > 0, "no empty list entry");
        FUZZ_CHECK(!isspace((unsigned char)s[0]) && !isspace((unsigned char)s[n - 1]),
                   "entries are trimmed");
        FUZZ_CHECK(!comma_form || strchr(s, ',') == NULL, "a,b entries hold no comma");
        FUZZ_CHECK(gb_strlist_has(l, s), "gb_strlist_has finds an entry");
    }
}

static void fuzz_load(const uint8_t *data, size_t size, uint64_t h)
{
    char path[64], err[512];
    struct gb_config *c;
    size_t scheme;
    int fd = memfd_create("gb-fuzz-env", MFD_CLOEXEC);
    size_t n;

    FUZZ_CHECK(fd >= 0, "memfd_create");
    for (size_t off = 0; off < size;) {
        ssize_t w = write(fd, data + off, size - off);
        FUZZ_CHECK(w > 0, "write to memfd");
        off += (size_t)w;
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    env_has_tokens = (int)(h & 1);
    err[0] = '\0';
    c = gb_config_load(path, fake_getenv, err, sizeof err);
    close(fd);
    if (c == NULL) {
        FUZZ_CHECK(err[0] != '\0', "a failed load says why");
        FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL, "message terminated");
        return;
    }
    FUZZ_CHECK(c->allowed_tokens.n >= 1, "at least one allowed token");
    FUZZ_CHECK(c->auth_token != NULL && c->auth_token[0] != '\0', "admin token set");
    FUZZ_CHECK(c->base_url != NULL, "base URL set");
    n = strlen(c->base_url);
    scheme = strncmp(c->base_url, "https://", 8) == 0  ? 8
             : strncmp(c->base_url, "http://", 7) == 0 ? 7
                                                       : 0;
    FUZZ_CHECK(scheme > 0 && n > scheme && strchr("/?#", c->base_url[scheme]) == NULL,
               "base URL is http(s):// and a host");
    FUZZ_CHECK(n > 0 && c->base_url[n - 1] != '/', "base URL has no trailing '/'");
    FUZZ_CHECK(c->port >= 0 && c->port <= 65535, "port in range");
    FUZZ_CHECK(c->workers >= 1, "workers resolved");
    FUZZ_CHECK(c->safety_settings == NULL || json_is_array(c->safety_settings),
               "safety settings are an array");
    FUZZ_CHECK(c->thinking_budget_map == NULL || json_is_object(c->thinking_budget_map),
               "thinking budget map is an object");
    check_list(&c->api_keys, 0);
    check_list(&c->allowed_tokens, 0);
    check_list(&c->search_models, 0);
    check_list(&c->allowed_origins, 0);
    gb_config_free(c);
}

static void fuzz_strlist(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    struct gb_strlist l;
    const char *p;
    int rc;

    FUZZ_CHECK(s != NULL, "malloc");
    memcpy(s, data, size);
    s[size] = '\0';
    rc = gb_strlist_parse(s, &l);
    FUZZ_CHECK(rc == 0 || rc == GB_EPARSE, "strlist returns 0 or GB_EPARSE");
    if (rc == 0) {
        for (p = s; isspace((unsigned char)*p); p++)
            ;
        check_list(&l, *p != '[');
        gb_strlist_release(&l);
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_load(data, size, fuzz_hash(data, size));
    fuzz_strlist(data, size);
    return 0;
}
