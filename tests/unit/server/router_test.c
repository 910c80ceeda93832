/* router_test.c - path normalisation (tolerant routing). */
#include "test.h"

#include "core/err.h"
#include "server/router.h"

static void test_normalize(void **state)
{
    static const char *const rows[][2] = {
        {"/v1/chat/completions", "/v1/chat/completions"},
        {"/v1/chat/completions/", "/v1/chat/completions"},
        {"//v1//models?x=1", "/v1/models"},
        {"/", "/"},
        {"", "/"},
        {"/health#frag", "/health"},
        {"/v1beta/models/gemini-2.5-flash:generateContent?key=x",
         "/v1beta/models/gemini-2.5-flash:generateContent"},
    };
    char out[128];

    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        assert_int_equal(gb_router_normalize(rows[i][0], out, sizeof out), 0);
        assert_string_equal(out, rows[i][1]);
    }
    assert_int_equal(gb_router_normalize("/abcdefgh", out, 8), GB_ETOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
    };
    return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
