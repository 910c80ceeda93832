/*
 * test_json.h - helpers shared by the JSON translation tests: JSON written
 * with single quotes, fixtures parsed, trees compared with a readable
 * failure.
 */
#ifndef GB_TESTS_UNIT_TEST_JSON_H
#define GB_TESTS_UNIT_TEST_JSON_H

#include <jansson.h>

#include "test.h"

/* Parses JSON written with ' for " (test tables stay readable); fails the
 * test on bad input.  New reference. */
static inline json_t *j(const char *sq)
{
    char *s = strdup(sq);
    json_error_t e;
    json_t *v;
    char *p;

    assert_non_null(s);
    for (p = s; *p; p++) {
        if (*p == '\'')
            *p = '"';
    }
    v = json_loads(s, JSON_DECODE_ANY, &e);
    if (v == NULL)
        fail_msg("bad test json (%s) at %d: %s", e.text, e.position, s);
    free(s);
    return v;
}

/* Parses a recorded fixture (path under ../shared/fixtures).  New reference. */
static inline json_t *fixture_json(const char *rel)
{
    char *data = gb_test_read_fixture(rel, NULL);
    json_error_t e;
    json_t *v = json_loads(data, 0, &e);

    if (v == NULL)
        fail_msg("fixture %s: %s", rel, e.text);
    free(data);
    return v;
}

/* Fails the test, printing both trees, when got and want differ. */
static inline void assert_json_eq(const json_t *got, const json_t *want, const char *what)
{
    if (!json_equal(got, want)) {
        char *g = got ? json_dumps(got, JSON_COMPACT) : NULL;
        char *w = json_dumps(want, JSON_COMPACT);

        print_error("%s\n  got:  %s\n  want: %s\n", what, g ? g : "(null)", w);
        free(g);
        free(w);
        fail();
    }
}

#endif
