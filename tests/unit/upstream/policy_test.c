/* policy_test.c - DESIGN.md §5 on the recorded Gemini error bodies. */
#include "test.h"

#include "upstream/policy.h"

struct row {
    const char *fixture; /* gemini/<name>, or NULL for no body */
    CURLcode result;
    long status;
    enum gb_key_outcome key;
    int retry, backoff;
    int64_t cooldown_ms;
};

static void test_table(void **state)
{
    static const struct row rows[] = {
        {"generate-content-text.json", CURLE_OK, 200, GB_KEY_OK, 0, 0, 0},
        {"error-400-api-key-invalid.json", CURLE_OK, 400, GB_KEY_FAILED, 1, 0, 0},
        {"error-400-api-key-invalid-stream-array.json", CURLE_OK, 400, GB_KEY_FAILED, 1, 0, 0},
        {"error-400-invalid-argument.json", CURLE_OK, 400, GB_KEY_NEUTRAL, 0, 0, 0},
        {"error-403-permission-denied.json", CURLE_OK, 403, GB_KEY_FAILED, 1, 0, 0},
        {"error-403-permission-denied-leaked-key.json", CURLE_OK, 403, GB_KEY_FAILED, 1, 0, 0},
        {"error-404-model-not-found.json", CURLE_OK, 404, GB_KEY_NEUTRAL, 0, 0, 0},
        {"error-429-resource-exhausted.json", CURLE_OK, 429, GB_KEY_LIMITED, 1, 0, 26000},
        {"error-429-resource-exhausted-help-only.json", CURLE_OK, 429, GB_KEY_LIMITED, 1, 0, 0},
        {"error-500-internal.json", CURLE_OK, 500, GB_KEY_NEUTRAL, 1, 1, 0},
        {"error-503-unavailable-overloaded.json", CURLE_OK, 503, GB_KEY_NEUTRAL, 1, 1, 0},
        {"error-503-unavailable-stream-array.json", CURLE_OK, 503, GB_KEY_NEUTRAL, 1, 1, 0},
        {NULL, CURLE_OPERATION_TIMEDOUT, 0, GB_KEY_NEUTRAL, 1, 1, 0},
        {NULL, CURLE_COULDNT_CONNECT, 0, GB_KEY_NEUTRAL, 1, 1, 0},
        {NULL, CURLE_OK, 401, GB_KEY_FAILED, 1, 0, 0},
    };
    struct gb_verdict v;

    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char rel[256], *body = NULL;
        size_t len = 0;
        if (rows[i].fixture != NULL) {
            snprintf(rel, sizeof rel, "gemini/%s", rows[i].fixture);
            body = gb_test_read_fixture(rel, &len);
        }
        gb_policy_classify(rows[i].result, rows[i].status, body, len, -1, &v);
        if (v.key != rows[i].key || v.retry != rows[i].retry || v.backoff != rows[i].backoff ||
            v.cooldown_ms != rows[i].cooldown_ms)
            fail_msg("row %zu (%s %ld): key %d retry %d backoff %d cooldown %lld", i,
                     rows[i].fixture ? rows[i].fixture : "-", rows[i].status, v.key, v.retry,
                     v.backoff, (long long)v.cooldown_ms);
        free(body);
    }
}

static void test_short_retry_delay_and_retry_after_header(void **state)
{
    struct gb_verdict v;
    size_t len;
    char *body = gb_test_read_fixture("gemini/error-429-quota-retryinfo-short.json", &len);

    (void)state;
    gb_policy_classify(CURLE_OK, 429, body, len, -1, &v);
    assert_int_equal(v.key, GB_KEY_LIMITED);
    assert_true(v.cooldown_ms > 0);
    free(body);
    /* no RetryInfo: the Retry-After header is used */
    gb_policy_classify(CURLE_OK, 429, "{}", 2, 7000, &v);
    assert_int_equal(v.cooldown_ms, 7000);
}

static void test_durations(void **state)
{
    (void)state;
    assert_int_equal(gb_policy_parse_duration("26s"), 26000);
    assert_int_equal(gb_policy_parse_duration("1.5s"), 1500);
    assert_int_equal(gb_policy_parse_duration("0.25s"), 250);
    assert_int_equal(gb_policy_parse_duration("26"), -1);
    assert_int_equal(gb_policy_parse_duration("s"), -1);
    assert_int_equal(gb_policy_parse_duration("-1s"), -1);
    assert_int_equal(gb_policy_parse_duration(NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_short_retry_delay_and_retry_after_header),
        cmocka_unit_test(test_durations),
    };
    return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
