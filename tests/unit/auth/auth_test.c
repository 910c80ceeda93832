/* auth_test.c - token extraction order and comparison. */
#include "test.h"

#include "auth/auth.h"

static void test_extract(void **state)
{
    size_t len;
    const char *t;

    (void)state;
    t = gb_auth_extract("Bearer  sk-1 ", "g", "q", &len);
    assert_int_equal(len, 4);
    assert_memory_equal(t, "sk-1", 4);
    t = gb_auth_extract("bearer sk-2", NULL, NULL, &len);
    assert_memory_equal(t, "sk-2", 4);
    t = gb_auth_extract("Basic abc", "goog", NULL, &len); /* not Bearer: next source */
    assert_memory_equal(t, "goog", 4);
    t = gb_auth_extract(NULL, NULL, "query", &len);
    assert_memory_equal(t, "query", 5);
    assert_null(gb_auth_extract("Bearer ", "", NULL, &len));
    assert_null(gb_auth_extract(NULL, NULL, NULL, &len));
}

static void test_check(void **state)
{
    struct gb_strlist allowed;

    (void)state;
    assert_int_equal(gb_strlist_parse("sk-a,sk-bb", &allowed), 0);
    assert_true(gb_auth_check(&allowed, "sk-bb", 5));
    assert_true(gb_auth_check(&allowed, "sk-a", 4));
    assert_false(gb_auth_check(&allowed, "sk-b", 4));   /* prefix */
    assert_false(gb_auth_check(&allowed, "sk-bbb", 6)); /* longer */
    assert_false(gb_auth_check(&allowed, "", 0));
    assert_false(gb_auth_check(&allowed, NULL, 0));
    gb_strlist_release(&allowed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extract),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
