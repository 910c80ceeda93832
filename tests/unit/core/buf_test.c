/*
 * buf_test.c - unit tests for src/core/buf.c, the bounded byte buffer.
 *
 * Each limit is tested on both sides (exactly max, max + 1), and every
 * failed append checks that the contents were left as they were.
 */
#include "test.h"

#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

/* Asserts the buffer holds exactly the n bytes of s, NUL-terminated. */
static void assert_buf(const struct gb_buf *b, const char *s, size_t n)
{
    assert_int_equal(b->len, n);
    assert_non_null(b->data);
    assert_memory_equal(b->data, s, n);
    assert_int_equal(b->data[n], '\0');
}

static void test_init_is_empty(void **state)
{
    struct gb_buf b;
    size_t len = 99;

    (void)state;
    gb_buf_init(&b, 16);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_null(gb_buf_take(&b, &len));
    assert_int_equal(len, 0);
    gb_buf_release(&b);
}

static void test_append_exactly_limit(void **state)
{
    struct gb_buf b;

    (void)state;
    gb_buf_init(&b, 8);
    assert_int_equal(gb_buf_append(&b, "0123", 4), 0);
    assert_int_equal(gb_buf_append(&b, "4567", 4), 0);
    assert_buf(&b, "01234567", 8);
    /* nothing more fits, but appending nothing is fine */
    assert_int_equal(gb_buf_append(&b, NULL, 0), 0);
    assert_buf(&b, "01234567", 8);
    gb_buf_release(&b);
}

static void test_append_over_limit_keeps_contents(void **state)
{
    struct gb_buf b;

    (void)state;
    gb_buf_init(&b, 8);
    assert_int_equal(gb_buf_append(&b, "0123456", 7), 0);
    assert_int_equal(gb_buf_append(&b, "ab", 2), GB_ETOOBIG);
    assert_buf(&b, "0123456", 7);
    assert_int_equal(gb_buf_append(&b, "a", 1), 0);
    assert_int_equal(gb_buf_append(&b, "b", 1), GB_ETOOBIG);
    assert_buf(&b, "0123456a", 8);
    /* a length that would wrap len + n must not slip past the check */
    assert_int_equal(gb_buf_append(&b, "x", SIZE_MAX), GB_ETOOBIG);
    assert_buf(&b, "0123456a", 8);
    gb_buf_release(&b);
}

static void test_append_limit_plus_one_on_empty(void **state)
{
    struct gb_buf b;

    (void)state;
    gb_buf_init(&b, 8);
    assert_int_equal(gb_buf_append(&b, "012345678", 9), GB_ETOOBIG);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    gb_buf_release(&b);
}

static void test_zero_max(void **state)
{
    struct gb_buf b;

    (void)state;
    gb_buf_init(&b, 0);
    assert_int_equal(gb_buf_append(&b, "", 0), 0);
    assert_buf(&b, "", 0);
    assert_int_equal(gb_buf_append(&b, "a", 1), GB_ETOOBIG);
    assert_buf(&b, "", 0);
    gb_buf_release(&b);
}

/* Growth past the first allocation and past several doublings. */
static void test_append_grows(void **state)
{
    struct gb_buf b;
    char chunk[100];
    size_t i;

    (void)state;
    gb_buf_init(&b, 100000);
    for (i = 0; i < 1000; i++) {
        memset(chunk, 'a' + (int)(i % 26), sizeof chunk);
        assert_int_equal(gb_buf_append(&b, chunk, sizeof chunk), 0);
    }
    assert_int_equal(b.len, 100000);
    for (i = 0; i < 1000; i++)
        assert_int_equal(b.data[i * 100 + 99], 'a' + (int)(i % 26));
    assert_int_equal(b.data[b.len], '\0');
    assert_int_equal(gb_buf_append(&b, "x", 1), GB_ETOOBIG);
    gb_buf_release(&b);
}

/* A buffer with no practical limit: max + 1 must not wrap to 0 (it did:
 * grow() capped the allocation at max + 1 == 0 bytes, then wrote past it). */
static void test_unbounded_max(void **state)
{
    struct gb_buf b;

    (void)state;
    gb_buf_init(&b, SIZE_MAX);
    assert_int_equal(gb_buf_append(&b, "hello", 5), 0);
    assert_int_equal(gb_buf_printf(&b, " %d", 42), 0);
    assert_buf(&b, "hello 42", 8);
    gb_buf_release(&b);
}

static void test_puts(void **state)
{
    struct gb_buf b;

    (void)state;
    gb_buf_init(&b, 6);
    assert_int_equal(gb_buf_puts(&b, "abc"), 0);
    assert_int_equal(gb_buf_puts(&b, ""), 0);
    assert_int_equal(gb_buf_puts(&b, "defg"), GB_ETOOBIG);
    assert_buf(&b, "abc", 3);
    assert_int_equal(gb_buf_puts(&b, "def"), 0);
    assert_buf(&b, "abcdef", 6);
    gb_buf_release(&b);
}

static void test_printf(void **state)
{
    struct gb_buf b;

    (void)state;
    gb_buf_init(&b, 64);
    assert_int_equal(gb_buf_printf(&b, "%s=%d", "n", 7), 0);
    assert_int_equal(gb_buf_printf(&b, ",%s", ""), 0);
    assert_int_equal(gb_buf_printf(&b, "%05u", 42u), 0);
    assert_buf(&b, "n=7,00042", 9);
    gb_buf_release(&b);
}

static void test_printf_limit(void **state)
{
    struct gb_buf b;

    (void)state;
    gb_buf_init(&b, 10);
    assert_int_equal(gb_buf_printf(&b, "%d", 12345), 0);
    /* 6 more would make 11 */
    assert_int_equal(gb_buf_printf(&b, "%s", "abcdef"), GB_ETOOBIG);
    assert_buf(&b, "12345", 5);
    /* exactly 5 more makes 10 */
    assert_int_equal(gb_buf_printf(&b, "%s", "abcde"), 0);
    assert_buf(&b, "12345abcde", 10);
    assert_int_equal(gb_buf_printf(&b, "%c", 'x'), GB_ETOOBIG);
    assert_buf(&b, "12345abcde", 10);
    gb_buf_release(&b);
}

/* Formatted text longer than the first allocation. */
static void test_printf_grows(void **state)
{
    struct gb_buf b;
    char want[1001];

    (void)state;
    memset(want, 'z', 1000);
    want[1000] = '\0';
    gb_buf_init(&b, 4096);
    assert_int_equal(gb_buf_puts(&b, "z"), 0);
    assert_int_equal(gb_buf_printf(&b, "%.*s", 999, want), 0);
    assert_buf(&b, want, 1000);
    gb_buf_release(&b);
}

static void test_consume(void **state)
{
    struct gb_buf b;

    (void)state;
    gb_buf_init(&b, 32);
    gb_buf_consume(&b, 5); /* on an empty, never-allocated buffer */
    assert_null(b.data);
    assert_int_equal(gb_buf_puts(&b, "hello world"), 0);
    gb_buf_consume(&b, 0);
    assert_buf(&b, "hello world", 11);
    gb_buf_consume(&b, 6);
    assert_buf(&b, "world", 5);
    gb_buf_consume(&b, 4);
    assert_buf(&b, "d", 1);
    gb_buf_consume(&b, 1);
    assert_buf(&b, "", 0);
    assert_int_equal(gb_buf_puts(&b, "again"), 0);
    gb_buf_consume(&b, 1000);
    assert_buf(&b, "", 0);
    /* consuming frees room under the limit */
    assert_int_equal(gb_buf_append(&b, "0123456789abcdef0123456789abcdef", 32), 0);
    gb_buf_consume(&b, 16);
    assert_int_equal(gb_buf_append(&b, "ghijklmnopqrstuv", 16), 0);
    assert_buf(&b, "0123456789abcdefghijklmnopqrstuv", 32);
    gb_buf_release(&b);
}

static void test_reset(void **state)
{
    struct gb_buf b;
    char *before;

    (void)state;
    gb_buf_init(&b, 8);
    gb_buf_reset(&b); /* never allocated */
    assert_null(b.data);
    assert_int_equal(gb_buf_puts(&b, "12345678"), 0);
    before = b.data;
    gb_buf_reset(&b);
    assert_buf(&b, "", 0);
    assert_ptr_equal(b.data, before); /* memory kept */
    /* the limit applies to the new contents, not to what was there */
    assert_int_equal(gb_buf_puts(&b, "abcdefgh"), 0);
    assert_buf(&b, "abcdefgh", 8);
    gb_buf_release(&b);
}

static void test_take(void **state)
{
    struct gb_buf b;
    size_t len = 0;
    char *p;

    (void)state;
    gb_buf_init(&b, 16);
    assert_int_equal(gb_buf_puts(&b, "owned"), 0);
    p = gb_buf_take(&b, &len);
    assert_non_null(p);
    assert_int_equal(len, 5);
    assert_string_equal(p, "owned");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    free(p);
    /* the buffer is reusable, with the same limit */
    assert_int_equal(gb_buf_puts(&b, "0123456789abcdef"), 0);
    assert_int_equal(gb_buf_puts(&b, "x"), GB_ETOOBIG);
    p = gb_buf_take(&b, NULL);
    assert_string_equal(p, "0123456789abcdef");
    free(p);
    gb_buf_release(&b);
}

static void test_release_reuse(void **state)
{
    struct gb_buf b;

    (void)state;
    gb_buf_init(&b, 4);
    gb_buf_release(&b); /* never allocated */
    assert_int_equal(gb_buf_puts(&b, "ab"), 0);
    gb_buf_release(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(gb_buf_puts(&b, "abcd"), 0);
    assert_int_equal(gb_buf_puts(&b, "e"), GB_ETOOBIG);
    assert_buf(&b, "abcd", 4);
    gb_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_is_empty),
        cmocka_unit_test(test_append_exactly_limit),
        cmocka_unit_test(test_append_over_limit_keeps_contents),
        cmocka_unit_test(test_append_limit_plus_one_on_empty),
        cmocka_unit_test(test_zero_max),
        cmocka_unit_test(test_append_grows),
        cmocka_unit_test(test_unbounded_max),
        cmocka_unit_test(test_puts),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_printf_limit),
        cmocka_unit_test(test_printf_grows),
        cmocka_unit_test(test_consume),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_take),
        cmocka_unit_test(test_release_reuse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
