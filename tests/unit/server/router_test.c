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
        /* escaped unreserved bytes and ':' are decoded, others stay */
        {"/v1beta/models/gemini-2.5-flash%3AgenerateContent",
         "/v1beta/models/gemini-2.5-flash:generateContent"},
        {"/v1/chat/%63ompletions%2d%5F%7e%2E", "/v1/chat/completions-_~."},
        {"/v1/models/models%2Fgemini%20x%3f%25", "/v1/models/models%2Fgemini%20x%3f%25"},
        {"/a%2", "/a%2"},
        {"/a%zz%", "/a%zz%"},
        {"/a%", "/a%"},
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
