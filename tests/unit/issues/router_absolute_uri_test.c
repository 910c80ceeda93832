/*
 * router_absolute_uri_test.c - gb_router_normalize gave paths that do not
 * start with '/' (found by tests/fuzz/router_fuzz.c).
 *
 * evhttp hands over the request target as the client sent it.  For the
 * absolute form, which RFC 9112 section 3.2.2 says a server MUST accept
 * ("GET http://host:8000/health HTTP/1.1"), the gateway normalised the target
 * to "http:/host:8000/health" and answered 404 "unknown route"; "*" and a
 * target without a leading '/' ("health") came out unchanged.  Checked by hand
 * against build/gemini-balance: GET /health -> 200, GET
 * http://localhost:18099/health -> 404.  Every result must start with '/';
 * an absolute-form target routes by its path.
 */
#include "test.h"

#include "core/err.h"
#include "server/router.h"

static void test_absolute_form(void **state)
{
    static const char *const rows[][2] = {
        {"http://localhost:8000/health", "/health"},
        {"https://gw.example.com/v1/chat/completions?x=1", "/v1/chat/completions"},
        {"http://gw.example.com//v1//models/", "/v1/models"},
        {"http://gw.example.com", "/"},
        {"http://gw.example.com?x=1", "/"},
    };
    char out[128];

    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        assert_int_equal(gb_router_normalize(rows[i][0], out, sizeof out), 0);
        assert_string_equal(out, rows[i][1]);
    }
}

static void test_leading_slash(void **state)
{
    static const char *const uris[] = {"*", "health", "v1/models", ":", "a//b/"};
    char out[128];

    (void)state;
    for (size_t i = 0; i < sizeof uris / sizeof uris[0]; i++) {
        assert_int_equal(gb_router_normalize(uris[i], out, sizeof out), 0);
        assert_int_equal(out[0], '/');
        assert_null(strstr(out, "//"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_absolute_form),
        cmocka_unit_test(test_leading_slash),
    };
    return cmocka_run_group_tests_name("issue router_absolute_uri", tests, NULL, NULL);
}
