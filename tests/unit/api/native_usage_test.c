/*
 * native_usage_test.c - tests for gb_native_usage (src/api/gemini_native.c),
 * the scan that reads token counts from relayed native answers for the
 * request log without parsing them.
 *
 * Every recorded generateContent body and SSE stream is checked against
 * what jansson reads from the same (last) usageMetadata object, plus hand
 * cases for the traps: nested counts, strings holding braces or the name,
 * bodies cut inside the object.
 */
#include "test.h"

#include "test_gemini_fixtures.h"

#include <jansson.h>

#include "api/routes.h"

/* Counts jansson reads from the last "usageMetadata" of a body (the last
 * SSE event that has one, for streams). */
static int expected(const char *text, struct gb_native_usage *u)
{
    const char *p = text, *line;
    json_t *last = NULL;

    while ((line = strstr(p, "data: ")) != NULL || p == text) {
        json_t *v, *um;
        if (line == NULL) {
            v = json_loads(text, 0, NULL); /* a plain JSON body */
        } else {
            const char *eol = strstr(line, "\n");
            v = json_loadb(line + 6, eol ? (size_t)(eol - line - 6) : strlen(line + 6), 0, NULL);
        }
        um = json_object_get(v, "usageMetadata");
        if (um != NULL) {
            json_decref(last);
            last = json_incref(um);
        }
        json_decref(v);
        if (line == NULL)
            break;
        p = line + 6;
    }
    if (last == NULL)
        return -1;
    u->prompt = (long)json_integer_value(json_object_get(last, "promptTokenCount"));
    u->completion = (long)(json_integer_value(json_object_get(last, "candidatesTokenCount")) +
                           json_integer_value(json_object_get(last, "thoughtsTokenCount")));
    u->total = (long)json_integer_value(json_object_get(last, "totalTokenCount"));
    json_decref(last);
    return 0;
}

static void check_fixture(const char *rel)
{
    size_t n;
    char *text = gb_test_read_fixture(rel, &n);
    struct gb_native_usage want = {-7, -7, -7}, got = {-9, -9, -9};
    int rw = expected(text, &want), rg = gb_native_usage(text, n, &got);

    if (rw != rg)
        fail_msg("%s: scan says %d, jansson %d", rel, rg, rw);
    if (rw == 0 &&
        (want.prompt != got.prompt || want.completion != got.completion || want.total != got.total))
        fail_msg("%s: scan %ld/%ld/%ld, jansson %ld/%ld/%ld", rel, got.prompt, got.completion,
                 got.total, want.prompt, want.completion, want.total);
    free(text);
}

static void test_recorded_bodies(void **state)
{
    static const char *const files[] = {
        GB_TEST_GEMINI_JSON_FIXTURES,         "gemini/stream-text.sse",
        "gemini/stream-thinking.sse",         "gemini/stream-function-call.sse",
        "gemini/stream-code-execution.sse",   "gemini/stream-grounding-google-search.sse",
        "gemini/stream-usage-mid-stream.sse",
    };
    (void)state;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        check_fixture(files[i]);
}

static void test_nested_and_quoted(void **state)
{
    /* "tokenCount" inside promptTokensDetails is not a top-level count; a
     * brace inside a string does not close the object; the name quoted
     * inside a text part is not the object */
    static const char body[] =
        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"say \\\"usageMetadata\\\": {\"}]}}],"
        "\"usageMetadata\": {\"promptTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":999}],"
        "\"note\":\"}{\",\"promptTokenCount\": 12,\n\"candidatesTokenCount\":30,"
        "\"thoughtsTokenCount\":5,\"totalTokenCount\":47}}";
    struct gb_native_usage u;

    (void)state;
    assert_int_equal(gb_native_usage(body, sizeof body - 1, &u), 0);
    assert_int_equal(u.prompt, 12);
    assert_int_equal(u.completion, 35);
    assert_int_equal(u.total, 47);
}

static void test_absent_or_cut(void **state)
{
    static const char whole[] =
        "{\"usageMetadata\":{\"promptTokenCount\":3,\"totalTokenCount\":4}}";
    struct gb_native_usage u = {0, 0, 0};

    (void)state;
    assert_int_equal(gb_native_usage("{\"candidates\":[]}", 17, &u), -1);
    assert_int_equal(gb_native_usage("", 0, &u), -1);
    /* every prefix that ends inside the object is "cut off" */
    for (size_t n = 1; n < sizeof whole - 2; n++)
        assert_int_equal(gb_native_usage(whole, n, &u), -1);
    assert_int_equal(gb_native_usage(whole, sizeof whole - 2, &u), 0);
    assert_int_equal(u.prompt, 3);
    assert_int_equal(u.completion, 0);
    assert_int_equal(u.total, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recorded_bodies),
        cmocka_unit_test(test_nested_and_quoted),
        cmocka_unit_test(test_absent_or_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
