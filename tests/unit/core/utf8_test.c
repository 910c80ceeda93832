/*
 * utf8_test.c - tests for gb_utf8_seq (src/core/utf8.c), the one UTF-8
 * check behind the JSON scanner, the metrics labels and the store's text.
 * Every sequence is also checked against jansson, whose rules it follows.
 */
#include "test.h"

#include <jansson.h>

#include "core/utf8.h"

static void test_sequences(void **state)
{
    static const struct {
        const char *s;
        size_t want;
    } cases[] = {
        {"A", 1},
        {"\x7f", 1},
        {"\xc2\x80", 2},
        {"\xdf\xbf", 2},
        {"\xe0\xa0\x80", 3},
        {"\xe2\x82\xac", 3},
        {"\xed\x9f\xbf", 3},
        {"\xee\x80\x80", 3},
        {"\xef\xbf\xbf", 3},
        {"\xf0\x90\x80\x80", 4},
        {"\xf0\x9f\x98\x80", 4},
        {"\xf4\x8f\xbf\xbf", 4},
        {"\x80", 0},             /* continuation byte */
        {"\xc0\xaf", 0},         /* overlong */
        {"\xc1\xbf", 0},         /* overlong */
        {"\xe0\x9f\xbf", 0},     /* overlong */
        {"\xed\xa0\x80", 0},     /* surrogate */
        {"\xed\xbf\xbf", 0},     /* surrogate */
        {"\xf0\x8f\xbf\xbf", 0}, /* overlong */
        {"\xf4\x90\x80\x80", 0}, /* above U+10FFFF */
        {"\xf5\x80\x80\x80", 0},
        {"\xff", 0},
        {"\xc3\x28", 0},     /* bad continuation */
        {"\xe2\x82\x28", 0}, /* bad continuation */
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const unsigned char *p = (const unsigned char *)cases[i].s;
        size_t n = strlen(cases[i].s);
        json_t *js = json_stringn(cases[i].s, cases[i].want ? cases[i].want : n);

        if (gb_utf8_seq(p, n) != cases[i].want)
            fail_msg("case %zu: %zu, want %zu", i, gb_utf8_seq(p, n), cases[i].want);
        /* jansson agrees: a valid sequence makes a string, an invalid one not */
        assert_int_equal(js != NULL, cases[i].want > 0);
        json_decref(js);
    }
}

/* A sequence cut by n, or by a string's NUL, is invalid, and nothing past
 * the break is read. */
static void test_bounds(void **state)
{
    const unsigned char euro[] = {0xe2, 0x82, 0xac};
    const unsigned char cut[] = {0xe2, 0x00, 0xff, 0xff};

    (void)state;
    assert_int_equal(gb_utf8_seq(euro, 3), 3);
    assert_int_equal(gb_utf8_seq(euro, 2), 0);
    assert_int_equal(gb_utf8_seq(euro, 1), 0);
    assert_int_equal(gb_utf8_seq(cut, GB_UTF8_MAX), 0);
    assert_int_equal(gb_utf8_seq((const unsigned char *)"", 1), 1); /* NUL is ASCII */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequences),
        cmocka_unit_test(test_bounds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
