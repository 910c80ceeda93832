/*
 * openai_models_test.c - tests for src/api/openai_models.c.
 *
 * Table rows {Gemini models array, search list, expected OpenAI list} plus
 * the two recorded list pages in ../shared/fixtures/gemini.
 */
#include "test.h"

#include <jansson.h>

#include "api/openai_models.h"

#define CREATED 1700000000LL

/* Parses JSON written with ' for ". */
static json_t *j(const char *sq)
{
    char *s = strdup(sq), *p;
    json_t *v;

    assert_non_null(s);
    for (p = s; *p; p++) {
        if (*p == '\'')
            *p = '"';
    }
    v = json_loads(s, JSON_DECODE_ANY, NULL);
    if (v == NULL)
        fail_msg("bad test json: %s", s);
    free(s);
    return v;
}

static json_t *fixture_models(const char *rel)
{
    char *data = gb_test_read_fixture(rel, NULL);
    json_t *v = json_loads(data, 0, NULL), *models;

    assert_non_null(v);
    models = json_incref(json_object_get(v, "models"));
    assert_true(json_is_array(models));
    json_decref(v);
    free(data);
    return models;
}

#define E(id) "{'id':'" id "','object':'model','created':1700000000,'owned_by':'google'}"

static const struct {
    const char *name;
    const char *models;
    const char *search[3]; /* NULL-terminated */
    const char *want;
} rows[] = {
    {"empty", "[]", {NULL}, "{'object':'list','data':[]}"},
    {"prefix removed",
     "[{'name':'models/gemini-2.5-flash','displayName':'x'},{'name':'models/aqa'}]",
     {NULL},
     "{'object':'list','data':[" E("gemini-2.5-flash") "," E("aqa") "]}"},
    {"search twin follows its model",
     "[{'name':'models/gemini-2.5-flash'},{'name':'models/gemini-2.5-pro'}]",
     {"gemini-2.5-pro", "not-listed", NULL},
     "{'object':'list','data':[" E("gemini-2.5-flash") "," E("gemini-2.5-pro") "," E(
         "gemini-2.5-pro-search") "]}"},
    {"duplicates and nameless entries dropped, bare names kept",
     "[{'name':'models/a'},{'displayName':'no name'},{'name':'a'},{'name':'models/'},"
     "{'name':7},{'name':'tunedModels/b'}]",
     {"a", NULL},
     "{'object':'list','data':[" E("a") "," E("a-search") "," E("tunedModels/b") "]}"},
};

static void test_rows(void **state)
{
    size_t i, n;

    (void)state;
    for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        json_t *models = j(rows[i].models), *want = j(rows[i].want), *got;

        for (n = 0; rows[i].search[n] != NULL; n++)
            ;
        got = gb_models_to_openai(models, rows[i].search, n, CREATED);
        if (!json_equal(got, want)) {
            char *g = json_dumps(got, JSON_COMPACT);

            fail_msg("%s: got %s", rows[i].name, g);
        }
        json_decref(got);
        json_decref(models);
        json_decref(want);
    }
}

static void test_not_an_array(void **state)
{
    json_t *want = j("{'object':'list','data':[]}"), *obj = j("{'models':[]}"), *got;

    (void)state;
    got = gb_models_to_openai(NULL, NULL, 0, CREATED);
    assert_true(json_equal(got, want));
    json_decref(got);
    got = gb_models_to_openai(obj, NULL, 0, CREATED);
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(obj);
    json_decref(want);
}

/* Key order follows OpenAI's list: object, data; id, object, created, owned_by. */
static void test_exact_bytes(void **state)
{
    json_t *models = j("[{'name':'models/gemini-2.0-flash'}]");
    json_t *got = gb_models_to_openai(models, NULL, 0, CREATED);
    char *s = json_dumps(got, JSON_COMPACT);

    (void)state;
    assert_string_equal(s,
                        "{\"object\":\"list\",\"data\":[{\"id\":\"gemini-2.0-flash\","
                        "\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"google\"}]}");
    free(s);
    json_decref(got);
    json_decref(models);
}

/* Both recorded pages, concatenated as the gateway does: every model once,
 * in page order, with search twins where asked. */
static void test_recorded_pages(void **state)
{
    json_t *all = fixture_models("gemini/models-list.json");
    json_t *page2 = fixture_models("gemini/models-list-2.json");
    const char *search[] = {"gemini-2.5-flash", "gemini-2.0-flash"};
    json_t *seen = json_object(), *got, *data;
    const json_t *m, *e;
    size_t i, k = 0;

    (void)state;
    assert_int_equal(json_array_size(all), 50);
    assert_int_equal(json_array_size(page2), 50);
    json_array_extend(all, page2);
    got = gb_models_to_openai(all, search, 2, CREATED);
    data = json_object_get(got, "data");
    assert_string_equal(json_string_value(json_object_get(got, "object")), "list");
    json_array_foreach(all, i, m)
    {
        const char *id = json_string_value(json_object_get(m, "name")) + strlen("models/");

        if (json_object_get(seen, id) != NULL)
            continue; /* page 2 repeats some page-1 models */
        json_object_set_new(seen, id, json_true());
        e = json_array_get(data, k++);
        assert_string_equal(json_string_value(json_object_get(e, "id")), id);
        assert_string_equal(json_string_value(json_object_get(e, "object")), "model");
        assert_int_equal(json_integer_value(json_object_get(e, "created")), CREATED);
        assert_string_equal(json_string_value(json_object_get(e, "owned_by")), "google");
        assert_int_equal(json_object_size(e), 4);
        if (strcmp(id, search[0]) == 0 || strcmp(id, search[1]) == 0) {
            char twin[128];

            snprintf(twin, sizeof twin, "%s-search", id);
            e = json_array_get(data, k++);
            assert_string_equal(json_string_value(json_object_get(e, "id")), twin);
        }
    }
    assert_int_equal(json_array_size(data), k);
    assert_true(json_object_size(seen) < 100); /* the pages do overlap */
    assert_int_equal(k, json_object_size(seen) + 2);
    json_decref(got);
    json_decref(seen);
    json_decref(page2);
    json_decref(all);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_not_an_array),
        cmocka_unit_test(test_exact_bytes),
        cmocka_unit_test(test_recorded_pages),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
