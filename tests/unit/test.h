/*
 * test.h - common includes and helpers for the cmocka unit tests.
 *
 * Unit tests mirror src/: tests/unit/<area>/<mod>_test.c tests
 * src/<area>/<mod>.c (STYLE.md rule 22).  They link against build/libgb.a.
 */
#ifndef GB_TESTS_UNIT_TEST_H
#define GB_TESTS_UNIT_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four above first */
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Directory of the recorded upstream bodies, relative to the repository
 * root (tests run from there); override with GB_FIXTURES. */
#define GB_FIXTURES_DEFAULT "../shared/fixtures"

/* Reads a file (path relative to the repository root) into a malloc'd,
 * NUL-terminated buffer; fails the test when it cannot. */
static inline char *gb_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data;
    long n;

    if (f == NULL)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc((size_t)n + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
    data[n] = '\0';
    fclose(f);
    if (len != NULL)
        *len = (size_t)n;
    return data;
}

/* Reads a fixture file (e.g. "gemini/stream-text.sse") into a malloc'd,
 * NUL-terminated buffer; fails the test when it cannot. */
static inline char *gb_test_read_fixture(const char *rel, size_t *len)
{
    const char *dir = getenv("GB_FIXTURES");
    char path[1024];

    snprintf(path, sizeof path, "%s/%s", dir ? dir : GB_FIXTURES_DEFAULT, rel);
    return gb_test_read_file(path, len);
}

#endif
