/*
 * openai_embeddings_test.c - tests for src/api/openai_embeddings.c.
 *
 * Requests are table rows {OpenAI body, expected batchEmbedContents body}
 * and {OpenAI body, expected error}; answers are the recorded Gemini and
 * OpenAI bodies in ../shared/fixtures: the base64 encoding is checked by
 * turning OpenAI's own base64 vector into a Gemini answer and getting the
 * same string back.  JSON is written with ' for " as in openai_chat_test.c.
 */
#include "test.h"
#include "test_json.h"

#include <jansson.h>

#include "api/openai_embeddings.h"
#include "core/err.h"

/* Parses JSON written with ' for " (the rows never need a literal '). */

/* ---- request ------------------------------------------------------------ */

static const struct {
    const char *name;
    const char *in;
    const char *want; /* body, or a fixture path when it starts with "gemini/" */
    const char *model;
    size_t n;
    int dimensions;
    int base64;
} req_rows[] = {
    {"two inputs with dimensions (the recorded request)",
     "{'model':'gemini-embedding-2','input':['First text','Second text'],'dimensions':768}",
     "gemini/batch-embed-contents.request.json", "gemini-embedding-2", 2, 768, 0},
    {"one string, models/ prefix, base64",
     "{'model':'models/text-embedding-004','input':'hello','encoding_format':'base64',"
     "'user':'u1'}",
     "{'requests':[{'model':'models/text-embedding-004','content':{'parts':[{'text':"
     "'hello'}]}}]}",
     "text-embedding-004", 1, 0, 1},
    {"the openai SDK's request",
     "{'encoding_format':'base64','input':['Hello, world!'],"
     "'model':'gemini-embedding-001'}",
     "{'requests':[{'model':'models/gemini-embedding-001','content':{'parts':[{'text':"
     "'Hello, world!'}]}}]}",
     "gemini-embedding-001", 1, 0, 1},
    {"nulls count as absent, float format",
     "{'model':'m','input':'x','dimensions':null,'encoding_format':null}",
     "{'requests':[{'model':'models/m','content':{'parts':[{'text':'x'}]}}]}", "m", 1, 0, 0},
    {"explicit float format", "{'model':'m','input':['x'],'encoding_format':'float'}",
     "{'requests':[{'model':'models/m','content':{'parts':[{'text':'x'}]}}]}", "m", 1, 0, 0},
};

static void test_request_rows(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof req_rows / sizeof req_rows[0]; i++) {
        json_t *in = j(req_rows[i].in);
        json_t *want = strncmp(req_rows[i].want, "gemini/", 7) == 0 ? fixture_json(req_rows[i].want)
                                                                    : j(req_rows[i].want);
        struct gb_embed_req req;
        struct gb_chat_err err;
        json_t *got = gb_embeddings_request_to_gemini(in, &req, &err);

        if (got == NULL)
            fail_msg("%s: %s (%s)", req_rows[i].name, err.message, err.param);
        assert_json_eq(got, want, req_rows[i].name);
        assert_string_equal(req.model, req_rows[i].model);
        assert_string_equal(req.client_model, json_string_value(json_object_get(in, "model")));
        assert_int_equal(req.n, req_rows[i].n);
        assert_int_equal(req.dimensions, req_rows[i].dimensions);
        assert_int_equal(req.base64, req_rows[i].base64);
        assert_int_equal(gb_embeddings_batches(&req), 1);
        json_decref(got);
        json_decref(want);
        json_decref(in);
    }
}

static const struct {
    const char *in;
    const char *param;
    const char *message;
} err_rows[] = {
    {"['x']", "", "request body must be a json object"},
    {"{'input':'x'}", "model", "model must be a non-empty string"},
    {"{'model':'','input':'x'}", "model", "non-empty"},
    {"{'model':'models/','input':'x'}", "model", "non-empty"},
    {"{'model':3,'input':'x'}", "model", "non-empty"},
    {"{'model':'m'}", "input", "input must be a string or an array of strings"},
    {"{'model':'m','input':''}", "input", "input must not be empty"},
    {"{'model':'m','input':[]}", "input", "input must not be empty"},
    {"{'model':'m','input':[1,2,3]}", "input", "token array inputs are not supported: send text"},
    {"{'model':'m','input':[[1,2],[3]]}", "input", "token array inputs are not supported"},
    {"{'model':'m','input':['a','']}", "input[1]", "must not be empty strings"},
    {"{'model':'m','input':['a',null]}", "input[1]", "input items must be strings"},
    {"{'model':'m','input':{'text':'a'}}", "input", "string or an array of strings"},
    {"{'model':'m','input':'x','dimensions':0}", "dimensions", "positive integer"},
    {"{'model':'m','input':'x','dimensions':1.5}", "dimensions", "positive integer"},
    {"{'model':'m','input':'x','dimensions':'8'}", "dimensions", "positive integer"},
    {"{'model':'m','input':'x','dimensions':4294967296}", "dimensions", "positive integer"},
    {"{'model':'m','input':'x','encoding_format':'hex'}", "encoding_format",
     "encoding_format must be float or base64"},
    {"{'model':'m','input':'x','encoding_format':1}", "encoding_format", "float or base64"},
};

static void test_request_errors(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof err_rows / sizeof err_rows[0]; i++) {
        json_t *in = j(err_rows[i].in);
        struct gb_embed_req req;
        struct gb_chat_err err;

        if (gb_embeddings_request_to_gemini(in, &req, &err) != NULL)
            fail_msg("row %zu (%s): expected an error", i, err_rows[i].in);
        if (strcmp(err.param, err_rows[i].param) != 0 ||
            strstr(err.message, err_rows[i].message) == NULL)
            fail_msg("row %zu (%s): got '%s' / '%s'", i, err_rows[i].in, err.param, err.message);
        json_decref(in);
    }
}

/* Exactly GB_EMBED_INPUTS_MAX inputs pass, one more does not. */
static void test_request_input_limit(void **state)
{
    json_t *in = json_pack("{s:s,s:[]}", "model", "m", "input"), *got;
    struct gb_embed_req req;
    struct gb_chat_err err;
    size_t i;

    (void)state;
    for (i = 0; i < GB_EMBED_INPUTS_MAX; i++)
        json_array_append_new(json_object_get(in, "input"), json_string("t"));
    got = gb_embeddings_request_to_gemini(in, &req, &err);
    assert_non_null(got);
    assert_int_equal(req.n, GB_EMBED_INPUTS_MAX);
    json_decref(got);
    json_array_append_new(json_object_get(in, "input"), json_string("t"));
    assert_null(gb_embeddings_request_to_gemini(in, &req, &err));
    assert_string_equal(err.param, "input");
    assert_non_null(strstr(err.message, "at most 2048"));
    json_decref(in);
}

/* Checks that body holds the requests for inputs "t<from>".."t<to-1>". */
static void assert_batch(const json_t *body, size_t from, size_t to)
{
    const json_t *reqs = json_object_get(body, "requests"), *r;
    char want[32];
    size_t i;

    assert_int_equal(json_array_size(reqs), to - from);
    json_array_foreach(reqs, i, r)
    {
        const json_t *parts = json_object_get(json_object_get(r, "content"), "parts");

        snprintf(want, sizeof want, "t%zu", from + i);
        assert_string_equal(json_string_value(json_object_get(json_array_get(parts, 0), "text")),
                            want);
        assert_string_equal(json_string_value(json_object_get(r, "model")), "models/m");
        assert_int_equal(json_integer_value(json_object_get(r, "outputDimensionality")), 256);
    }
}

/* 250 inputs: batches [0,100) [100,200) [200,250), in order. */
static void test_batches(void **state)
{
    json_t *in = json_pack("{s:s,s:[],s:i}", "model", "m", "input", "dimensions", 256), *b;
    struct gb_embed_req req;
    struct gb_chat_err err;
    char t[32];
    size_t i;

    (void)state;
    for (i = 0; i < 250; i++) {
        snprintf(t, sizeof t, "t%zu", i);
        json_array_append_new(json_object_get(in, "input"), json_string(t));
    }
    b = gb_embeddings_request_to_gemini(in, &req, &err);
    assert_non_null(b);
    assert_int_equal(req.n, 250);
    assert_int_equal(gb_embeddings_batches(&req), 3);
    assert_batch(b, 0, GB_EMBED_BATCH_MAX);
    json_decref(b);
    b = gb_embeddings_batch(in, &req, 100, 200);
    assert_batch(b, 100, 200);
    json_decref(b);
    b = gb_embeddings_batch(in, &req, 200, 300);
    assert_batch(b, 200, 250);
    json_decref(b);
    assert_null(gb_embeddings_batch(in, &req, 250, 300));
    assert_null(gb_embeddings_batch(in, &req, 10, 10));
    req.n = 100;
    assert_int_equal(gb_embeddings_batches(&req), 1);
    req.n = 101;
    assert_int_equal(gb_embeddings_batches(&req), 2);
    json_decref(in);
}

/* ---- response ----------------------------------------------------------- */

/* The recorded float answer: values as numbers, indexes from first_index,
 * OpenAI's key order. */
static void test_append_floats(void **state)
{
    json_t *gem = fixture_json("gemini/batch-embed-contents.json");
    json_t *data = json_array();
    const json_t *e;
    size_t i;

    (void)state;
    assert_int_equal(gb_embeddings_append(data, gem, 100, 0), 0);
    assert_int_equal(json_array_size(data), 2);
    json_array_foreach(data, i, e)
    {
        void *it = json_object_iter((json_t *)e);

        assert_string_equal(json_object_iter_key(it), "object");
        it = json_object_iter_next((json_t *)e, it);
        assert_string_equal(json_object_iter_key(it), "index");
        it = json_object_iter_next((json_t *)e, it);
        assert_string_equal(json_object_iter_key(it), "embedding");
        assert_string_equal(json_string_value(json_object_get(e, "object")), "embedding");
        assert_int_equal(json_integer_value(json_object_get(e, "index")), 100 + i);
        assert_json_eq(
            json_object_get(e, "embedding"),
            json_object_get(json_array_get(json_object_get(gem, "embeddings"), i), "values"),
            "vector");
    }
    assert_int_equal(gb_embeddings_prompt_tokens(gem), 4);
    json_decref(data);
    json_decref(gem);
}

static const unsigned char b64_dec[256] = {
    ['A'] = 0,  ['B'] = 1,  ['C'] = 2,  ['D'] = 3,  ['E'] = 4,  ['F'] = 5,  ['G'] = 6,  ['H'] = 7,
    ['I'] = 8,  ['J'] = 9,  ['K'] = 10, ['L'] = 11, ['M'] = 12, ['N'] = 13, ['O'] = 14, ['P'] = 15,
    ['Q'] = 16, ['R'] = 17, ['S'] = 18, ['T'] = 19, ['U'] = 20, ['V'] = 21, ['W'] = 22, ['X'] = 23,
    ['Y'] = 24, ['Z'] = 25, ['a'] = 26, ['b'] = 27, ['c'] = 28, ['d'] = 29, ['e'] = 30, ['f'] = 31,
    ['g'] = 32, ['h'] = 33, ['i'] = 34, ['j'] = 35, ['k'] = 36, ['l'] = 37, ['m'] = 38, ['n'] = 39,
    ['o'] = 40, ['p'] = 41, ['q'] = 42, ['r'] = 43, ['s'] = 44, ['t'] = 45, ['u'] = 46, ['v'] = 47,
    ['w'] = 48, ['x'] = 49, ['y'] = 50, ['z'] = 51, ['0'] = 52, ['1'] = 53, ['2'] = 54, ['3'] = 55,
    ['4'] = 56, ['5'] = 57, ['6'] = 58, ['7'] = 59, ['8'] = 60, ['9'] = 61, ['+'] = 62, ['/'] = 63,
};

/* OpenAI's base64 vector -> float32 values -> a Gemini answer written as
 * JSON text -> our base64: the same string, and the whole reply equal to
 * the recorded one. */
static void test_append_base64_fixture(void **state)
{
    json_t *ref = fixture_json("openai/embeddings-base64.json");
    const json_t *e0 = json_array_get(json_object_get(ref, "data"), 0);
    const char *s = json_string_value(json_object_get(e0, "embedding"));
    size_t len = strlen(s), i, nbytes = 0;
    unsigned char *bytes = malloc(len);
    json_t *values = json_array(), *gem, *parsed, *data = json_array(), *reply;
    char *text;
    uint32_t acc = 0;
    int bits = 0;

    (void)state;
    for (i = 0; i < len && s[i] != '='; i++) {
        acc = (acc << 6) | b64_dec[(unsigned char)s[i]];
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            bytes[nbytes++] = (unsigned char)(acc >> bits);
        }
    }
    assert_int_equal(nbytes % 4, 0);
    for (i = 0; i < nbytes; i += 4) {
        uint32_t u = (uint32_t)bytes[i] | (uint32_t)bytes[i + 1] << 8 |
                     (uint32_t)bytes[i + 2] << 16 | (uint32_t)bytes[i + 3] << 24;
        float f;

        memcpy(&f, &u, sizeof f);
        json_array_append_new(values, json_real(f));
    }
    gem = json_pack("{s:[{s:o}],s:{s:i}}", "embeddings", "values", values, "usageMetadata",
                    "promptTokenCount", 4);
    text = json_dumps(gem, JSON_COMPACT);
    parsed = json_loads(text, 0, NULL);
    assert_non_null(parsed);
    assert_int_equal(gb_embeddings_append(data, parsed, 0, 1), 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(data, 0), "embedding")),
                        s);
    reply =
        gb_embeddings_response(data, "text-embedding-3-small", gb_embeddings_prompt_tokens(parsed));
    assert_json_eq(reply, ref, "base64 reply");
    json_decref(reply);
    json_decref(parsed);
    free(text);
    json_decref(gem);
    free(bytes);
    json_decref(ref);
}

/* Values that are not float32 are rounded to nearest, little-endian. */
static const struct {
    const char *values;
    const char *want;
} b64_rows[] = {
    {"[0.1]", "zczMPQ=="},
    {"[1.0,-2.5]", "AACAPwAAIMA="},
    {"[0.1,1,-0.011345503]", "zczMPQAAgD994jm8"},
    {"[]", ""},
};

static void test_append_base64_rows(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof b64_rows / sizeof b64_rows[0]; i++) {
        json_t *gem = json_pack("{s:[{s:o}]}", "embeddings", "values", j(b64_rows[i].values));
        json_t *data = json_array();

        assert_int_equal(gb_embeddings_append(data, gem, 0, 1), 0);
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(data, 0), "embedding")),
            b64_rows[i].want);
        json_decref(data);
        json_decref(gem);
    }
}

/* The recorded OpenAI float reply, rebuilt from a Gemini answer with its
 * vectors. */
static void test_response_floats_fixture(void **state)
{
    json_t *ref = fixture_json("openai/embeddings.json");
    json_t *gem = json_pack("{s:[]}", "embeddings"), *data = json_array(), *reply;
    const json_t *e;
    size_t i;

    (void)state;
    json_array_foreach(json_object_get(ref, "data"), i, e)
    {
        json_array_append_new(json_object_get(gem, "embeddings"),
                              json_pack("{s:O}", "values", json_object_get(e, "embedding")));
    }
    assert_int_equal(gb_embeddings_append(data, gem, 0, 0), 0);
    reply = gb_embeddings_response(data, "text-embedding-3-small", 12);
    assert_json_eq(reply, ref, "float reply");
    json_decref(reply);
    json_decref(gem);
    json_decref(ref);
}

static const char *const bad_answers[] = {
    "{}",
    "{'embeddings':{}}",
    "{'embeddings':[{'values':'x'}]}",
    "{'embeddings':[{'values':[0.5]},{'values':[1,'a']}]}",
    "{'embeddings':[{}]}",
};

static void test_append_bad_answers(void **state)
{
    json_t *empty = j("{'embeddings':[]}"), *data = json_array();
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bad_answers / sizeof bad_answers[0]; i++) {
        json_t *gem = j(bad_answers[i]);

        assert_int_equal(gb_embeddings_append(data, gem, 0, i % 2), GB_EINVAL);
        assert_int_equal(json_array_size(data), 0);
        json_decref(gem);
    }
    assert_int_equal(gb_embeddings_append(data, empty, 0, 0), 0);
    assert_int_equal(json_array_size(data), 0);
    assert_int_equal(gb_embeddings_append(NULL, empty, 0, 0), GB_EINVAL);
    assert_int_equal(gb_embeddings_prompt_tokens(empty), 0);
    json_decref(empty);
    json_decref(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_rows),        cmocka_unit_test(test_request_errors),
        cmocka_unit_test(test_request_input_limit), cmocka_unit_test(test_batches),
        cmocka_unit_test(test_append_floats),       cmocka_unit_test(test_append_base64_fixture),
        cmocka_unit_test(test_append_base64_rows),  cmocka_unit_test(test_response_floats_fixture),
        cmocka_unit_test(test_append_bad_answers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
