/*
 * native_whole_test.c - tests for gb_native_whole (src/api/gemini_native.c),
 * the check that a relayed native answer is one whole JSON object.
 *
 * The check skips strings with memchr and counts backslash runs, so it is
 * held against a plain byte-at-a-time walk (reference() below) over every
 * recorded body, every prefix of each, and many random texts made of the
 * bytes that matter (quotes, backslashes, brackets, whitespace).  Whatever
 * jansson accepts as an object must also count as whole.
 */
#include "test.h"

#include "test_gemini_fixtures.h"

#include <jansson.h>

#include "api/routes.h"

/* The byte-at-a-time walk: brackets outside strings balance and close at
 * the end; a backslash in a string skips the next byte. */
static int reference(const char *p, size_t n)
{
    size_t i = 0, depth = 0;
    int in_str = 0, esc = 0, closed = 0;

    while (i < n && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t'))
        i++;
    if (i == n || p[i] != '{')
        return 0;
    for (; i < n; i++) {
        char c = p[i];
        if (closed) {
            if (c != ' ' && c != '\n' && c != '\r' && c != '\t')
                return 0;
        } else if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                return 0;
            closed = --depth == 0;
        }
    }
    return closed;
}

static void check(const char *p, size_t n)
{
    int want = reference(p, n), got = gb_native_whole(p, n);

    if (want != got)
        fail_msg("gb_native_whole says %d, the byte walk %d, for %zu bytes: %.*s", got, want, n,
                 (int)(n > 200 ? 200 : n), p);
}

static void test_recorded_bodies(void **state)
{
    static const char *const files[] = {
        GB_TEST_GEMINI_JSON_FIXTURES,
    };
    (void)state;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        size_t n;
        char *text = gb_test_read_fixture(files[i], &n);
        json_t *v = json_loadb(text, n, 0, NULL);

        assert_non_null(v);
        json_decref(v);
        if (gb_native_whole(text, n) != 1)
            fail_msg("%s: a recorded answer is not whole", files[i]);
        /* every cut is caught, wherever it falls */
        for (size_t k = 0; k < n; k++)
            check(text, k);
        free(text);
    }
}

static void test_hand_cases(void **state)
{
    static const struct {
        const char *text;
        int whole;
    } cases[] = {
        {"{}", 1},
        {" \r\n\t{} \n", 1},
        {"", 0},
        {"   ", 0},
        {"[]", 0},   /* an object, not an array */
        {"{}}", 0},  /* bytes after the object */
        {"{} x", 0}, /* bytes after the object */
        {"{}{}", 0},
        {"{\"a\":\"}\"}", 1},      /* a brace in a string */
        {"{\"a\":\"\\\"}\"}", 1},  /* an escaped quote, then a brace */
        {"{\"a\":\"\\\\\"}", 1},   /* an escaped backslash ends the string */
        {"{\"a\":\"\\\\\\\"}", 0}, /* \\ then \": the string never ends */
        {"{\"a\":\"\\", 0},        /* cut after a backslash */
        {"{\"a\":[1,{\"b\":[]}]}", 1},
        {"{\"a\":[1,{\"b\":[]}]", 0},
        {"{\"a\":]", 1}, /* the walk counts brackets, it does not pair them */
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].text);
        if (gb_native_whole(cases[i].text, n) != cases[i].whole)
            fail_msg("case %zu (%s): want %d", i, cases[i].text, cases[i].whole);
        check(cases[i].text, n);
    }
}

static void test_random_texts(void **state)
{
    static const char alphabet[] = "{}[]\"\\\\\\  \n\"\"ab:,";
    uint64_t x = 0x9e3779b97f4a7c15u;
    char text[64];

    (void)state;
    for (int round = 0; round < 200000; round++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t n = 1 + (size_t)(x % (sizeof text - 1));
        uint64_t y = x;
        text[0] = '{'; /* most texts get past the first byte */
        for (size_t i = 1; i < n; i++) {
            y = y * 6364136223846793005u + 1442695040888963407u;
            text[i] = alphabet[(y >> 33) % (sizeof alphabet - 1)];
        }
        check(text, n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recorded_bodies),
        cmocka_unit_test(test_hand_cases),
        cmocka_unit_test(test_random_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
