/*
 * config_base_url_no_host_test.c - BASE_URL=https:// (no host) was accepted
 * and became "https:" (found by tests/fuzz/config_fuzz.c).
 *
 * finish() in config.c checks the "http://" / "https://" prefix first and then
 * strips trailing '/', so "https://", "http://" and "https:////" pass the check
 * and end up as "https:" / "http:", a base URL every upstream request then
 * fails on.  They must be refused at load time like any other bad BASE_URL,
 * and so must an empty host followed by a path, query or fragment
 * ("https:///v1beta").
 */
#include "test.h"

#include "config/config.h"

static const char *base_url;

static char *fake_getenv(const char *name)
{
    static char tokens[] = "sk-1";

    if (strcmp(name, "ALLOWED_TOKENS") == 0)
        return tokens;
    if (strcmp(name, "BASE_URL") == 0)
        return (char *)base_url;
    return NULL;
}

static void test_no_host(void **state)
{
    static const char *const bad[] = {"https://",        "http://",   "https:////",   "http:///",
                                      "https:///v1beta", "http://?x", "https://#frag"};
    char err[512];

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct gb_config *c;

        base_url = bad[i];
        err[0] = '\0';
        c = gb_config_load("/dev/null", fake_getenv, err, sizeof err);
        if (c != NULL)
            fail_msg("BASE_URL=%s accepted as \"%s\"", bad[i], c->base_url);
        assert_non_null(strstr(err, "BASE_URL"));
    }
    /* a host is enough; trailing slashes still go */
    base_url = "http://h///";
    struct gb_config *c = gb_config_load("/dev/null", fake_getenv, err, sizeof err);
    assert_non_null(c);
    assert_string_equal(c->base_url, "http://h");
    gb_config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_host),
    };
    return cmocka_run_group_tests_name("issue config_base_url_no_host", tests, NULL, NULL);
}
