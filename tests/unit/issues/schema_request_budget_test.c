/*
 * schema_request_budget_test.c - tool schemas whose $refs fan out cost a
 * worker CPU in proportion to the nodes they expand to.  The node cap was
 * per schema (20000), so one 1.3 KB schema of "$ref":"#" took ~100 ms to
 * clean (a libFuzzer timeout in tests/fuzz/translate_request_fuzz.c), and a
 * request with many such tools multiplied it.  Now each schema stops at
 * GB_SCHEMA_MAX_NODES and all the schemas of one request together at
 * GB_SCHEMA_REQUEST_NODES.
 */
#include "test.h"
#include "test_schema.h"

#include <jansson.h>

#include "api/openai_chat.h"
#include "api/schema.h"

#define TOOLS 12

static void test_one_request_shares_one_budget(void **state)
{
    json_t *tools = json_array(), *oai, *gem, *decls, *d;
    struct gb_chat_req out;
    struct gb_chat_err err;
    size_t i, total = 0;

    (void)state;
    for (int t = 0; t < TOOLS; t++) {
        char name[16];
        snprintf(name, sizeof name, "f%d", t);
        json_array_append_new(tools,
                              json_pack("{s:s,s:{s:s,s:o}}", "type", "function", "function", "name",
                                        name, "parameters", gb_test_fan_out_schema()));
    }
    oai = json_pack("{s:s,s:[{s:s,s:s}],s:o}", "model", "gemini-2.5-flash", "messages", "role",
                    "user", "content", "hi", "tools", tools);
    memset(&out, 0, sizeof out);
    memset(&err, 0, sizeof err);
    gem = gb_chat_request_to_gemini(oai, NULL, &out, &err);
    assert_non_null(gem);
    decls =
        json_object_get(json_array_get(json_object_get(gem, "tools"), 0), "functionDeclarations");
    assert_int_equal(json_array_size(decls), TOOLS);
    json_array_foreach(decls, i, d)
    {
        total += gb_test_count_nodes(json_object_get(d, "parameters"));
    }
    /* without the shared budget: TOOLS x GB_SCHEMA_MAX_NODES */
    assert_true(total <= GB_SCHEMA_REQUEST_NODES + TOOLS * 40 * (GB_SCHEMA_REF_DEPTH + 2));
    /* the first tools got their full share */
    assert_true(gb_test_count_nodes(json_object_get(json_array_get(decls, 0), "parameters")) >
                40 * 40);
    json_decref(gem);
    json_decref(oai);
}

static void test_budget_drops_by_what_was_built(void **state)
{
    json_t *in = gb_test_fan_out_schema(), *a, *b;
    size_t budget = 3000, left;

    (void)state;
    a = gb_schema_clean_budget(in, &budget);
    assert_non_null(a);
    left = budget;
    assert_true(left < 3000);
    b = gb_schema_clean_budget(in, &budget);
    assert_non_null(b);
    assert_true(budget <= left);
    assert_true(gb_test_count_nodes(a) + gb_test_count_nodes(b) <=
                3000 + 2 * 40 * (GB_SCHEMA_REF_DEPTH + 2));
    json_decref(a);
    json_decref(b);
    json_decref(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_request_shares_one_budget),
        cmocka_unit_test(test_budget_drops_by_what_was_built),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
