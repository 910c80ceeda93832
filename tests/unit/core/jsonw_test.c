/* jsonw_test.c - gb_jsonw_value writes exactly what json_dumps(JSON_COMPACT) writes. */
#include "test.h"

#include <jansson.h>

#include "core/jsonw.h"

static void same_as_jansson(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &err);
    char *want, *got;
    size_t len = 0;

    if (v == NULL)
        fail_msg("bad test input %s: %s", text, err.text);
    want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    got = gb_jsonw_dumps(v, &len);
    assert_non_null(got);
    assert_string_equal(got, want);
    assert_int_equal(len, strlen(want));
    free(want);
    free(got);
    json_decref(v);
}

static void test_table(void **state)
{
    static const char *const rows[] = {
        "{}",
        "[]",
        "null",
        "true",
        "false",
        "0",
        "-1",
        "9223372036854775807",
        "-9223372036854775808",
        "1.5",
        "-0.0",
        "1e300",
        "0.1",
        "3.0",
        "123456789.123",
        "\"\"",
        "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0001\\u001f é 你好 🎉\"",
        "{\"b\":1,\"a\":[1,2,{\"c\":null}],\"\":\"\"}",
        "[[[]],{},{\"x\":{\"y\":{\"z\":[true,false]}}}]",
        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}],\"role\":\"model\"},"
        "\"finishReason\":\"STOP\",\"avgLogprobs\":-0.0001856483577284962}]}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        same_as_jansson(rows[i]);
}

static void test_fixtures(void **state)
{
    static const char *const files[] = {
        "gemini/generate-content-grounding-google-search.json",
        "gemini/generate-content-code-execution.json",
        "gemini/models-list.json",
        "openai/chat-completion-tool-calls.json",
        "gemini/embed-content.json",
    };

    (void)state;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *text = gb_test_read_fixture(files[i], NULL);
        same_as_jansson(text);
        free(text);
    }
}

static void test_bounded(void **state)
{
    json_t *v = json_pack("{s:s}", "k", "0123456789");
    struct gb_buf b;

    (void)state;
    gb_buf_init(&b, 8);
    assert_true(gb_jsonw_value(&b, v) < 0);
    gb_buf_release(&b);
    json_decref(v);
}

static void test_depth(void **state)
{
    static const struct {
        const char *text;
        size_t depth;
    } rows[] = {
        {"", 0},
        {"1", 0},
        {"{}", 1},
        {"[[]]", 2},
        {"{\"a\":[{\"b\":[]}]}", 4},
        {"\"[[[[\"", 0},     /* brackets in strings do not count */
        {"[\"\\\"[[\"]", 1}, /* nor after an escaped quote */
        {"]]]][", 1},        /* stray closers never go below zero */
        {"[[[", 3},          /* cut-off text: the depth reached */
    };

    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (gb_json_depth(rows[i].text, strlen(rows[i].text)) != rows[i].depth)
            fail_msg("depth of %s: %zu, want %zu", rows[i].text,
                     gb_json_depth(rows[i].text, strlen(rows[i].text)), rows[i].depth);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_depth),
    };
    return cmocka_run_group_tests_name("jsonw", tests, NULL, NULL);
}
