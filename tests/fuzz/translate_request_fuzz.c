/*
 * translate_request_fuzz.c - libFuzzer target for the request side of the
 * OpenAI -> Gemini translation: gb_chat_request_to_gemini (api/openai_chat.h),
 * gb_embeddings_request_to_gemini and gb_embeddings_batch
 * (api/openai_embeddings.h), and gb_schema_clean (api/schema.h).
 *
 * The input is parsed with json_loadb as the gateway parses a client body (flags
 * 0); anything jansson accepts goes to all three translators, whatever its
 * shape, since a client may send any JSON.  The gb_chat_opts (safety settings,
 * thinking budget map, code execution, show_thinking, search links) are picked
 * by the input's hash.  Checked, besides ASan/UBSan and leaks:
 *   - a refused request has a message (and NUL-terminated message and param);
 *   - an accepted chat request: model names non-empty and within
 *     GB_MODEL_NAME_MAX, n in 1..GB_CHAT_MAX_CHOICES, flags 0 or 1, the body
 *     dumps as JSON (so every string in it is valid UTF-8), its placeholder
 *     count equals out->remote_parts and each is {"_gb_fetch": "http..."},
 *     and generationConfig, when present, is a non-empty object;
 *   - an accepted embeddings request: n in 1..GB_EMBED_INPUTS_MAX, the first
 *     body holds min(n, GB_EMBED_BATCH_MAX) requests, every later batch the
 *     right count, an empty range gives NULL;
 *   - gb_schema_clean: an object that dumps, whose keywords are all on the
 *     whitelist of schema.h (recursively through properties, items, anyOf),
 *     with string-only enums and types from the six Gemini types; and
 *     cleaning the result again changes nothing;
 *   - gb_chat_request_scan (the tree-less path for common requests) against
 *     the general one, on the raw input: what it takes, jansson parses and
 *     gb_chat_request_to_gemini accepts, with the same gb_chat_req and the
 *     bytes gb_chat_body_dumps writes for the translated body.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/openai_chat.h"
#include "api/openai_embeddings.h"
#include "api/schema.h"
#include "core/buf.h"
#include "core/jsonw.h"
#include "fuzz.h"

/* Option values, built once (read-only afterwards). */
static json_t *safety;     /* a safetySettings array */
static json_t *budget_map; /* model -> thinkingBudget */
static char *safety_text;  /* safety, dumped */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    safety = json_pack("[{s:s,s:s}]", "category", "HARM_CATEGORY_HARASSMENT", "threshold", "OFF");
    budget_map = json_pack("{s:i,s:i,s:i}", "gemini-2.5-flash", 1024, "gemini-2.5-pro", -1,
                           "gemini-2.5-flash-lite", 0);
    safety_text = gb_jsonw_dumps(safety, NULL);
    FUZZ_CHECK(safety != NULL && budget_map != NULL && safety_text != NULL, "option values");
    return 0;
}

static int dumps_ok(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    int ok = s != NULL;

    free(s);
    return ok;
}

static void check_err(const struct gb_chat_err *err)
{
    FUZZ_CHECK(memchr(err->message, '\0', sizeof err->message) != NULL, "message terminated");
    FUZZ_CHECK(memchr(err->param, '\0', sizeof err->param) != NULL, "param terminated");
    FUZZ_CHECK(err->message[0] != '\0', "a refused request says why");
}

/* ---- chat ------------------------------------------------------------------ */

static void fuzz_chat(const json_t *root, uint64_t h)
{
    struct gb_chat_opts opts = {
        .safety_settings = (h & 1) ? safety : NULL,
        .code_execution = (h >> 1) & 1,
        .show_search_link = (h >> 2) & 1,
        .thinking_budget_map = (h >> 3) & 1 ? budget_map : NULL,
        .show_thinking = (h >> 4) & 1,
    };
    struct gb_chat_req out;
    struct gb_chat_err err;
    json_t *body, *gc, *parts[4];
    size_t n, got;

    memset(&out, 0xa5, sizeof out); /* the translator must fill what it reports */
    memset(&err, 0, sizeof err);
    body = gb_chat_request_to_gemini(root, (h >> 5) & 1 ? &opts : NULL, &out, &err);
    if (body == NULL) {
        check_err(&err);
        return;
    }
    FUZZ_CHECK(json_is_object(body), "chat body is an object");
    FUZZ_CHECK(dumps_ok(body), "chat body dumps (valid UTF-8 everywhere)");
    FUZZ_CHECK(memchr(out.model, '\0', sizeof out.model) != NULL, "model terminated");
    FUZZ_CHECK(memchr(out.client_model, '\0', sizeof out.client_model) != NULL,
               "client_model terminated");
    FUZZ_CHECK(out.model[0] != '\0' && out.client_model[0] != '\0', "model names not empty");
    FUZZ_CHECK(out.stream == 0 || out.stream == 1, "stream flag");
    FUZZ_CHECK(out.include_usage == 0 || out.include_usage == 1, "include_usage flag");
    FUZZ_CHECK(out.search == 0 || out.search == 1, "search flag");
    FUZZ_CHECK(out.builtin_dropped == 0 || out.builtin_dropped == 1, "builtin_dropped flag");
    FUZZ_CHECK(out.n >= 1 && out.n <= GB_CHAT_MAX_CHOICES, "n in range");
    if (out.search)
        FUZZ_CHECK(strlen(out.client_model) > strlen(out.model), "-search removed from model");
    gc = json_object_get(body, "generationConfig");
    if (gc != NULL)
        FUZZ_CHECK(json_is_object(gc) && json_object_size(gc) > 0,
                   "generationConfig absent when empty");

    n = gb_chat_remote_parts(body, NULL, 0);
    FUZZ_CHECK(n == out.remote_parts, "placeholder count matches out->remote_parts");
    got = gb_chat_remote_parts(body, parts, 4);
    FUZZ_CHECK(got == n, "placeholder count does not depend on max");
    for (size_t i = 0; i < n && i < 4; i++) {
        const char *url = json_string_value(json_object_get(parts[i], GB_CHAT_FETCH_KEY));
        FUZZ_CHECK(url != NULL && strncasecmp(url, "http", 4) == 0, "placeholder holds a url");
    }
    json_decref(body);
}

/* ---- embeddings -------------------------------------------------------------- */

static void fuzz_embeddings(const json_t *root)
{
    struct gb_embed_req out;
    struct gb_chat_err err;
    json_t *body, *b;
    size_t batches, from, want;

    memset(&out, 0xa5, sizeof out);
    memset(&err, 0, sizeof err);
    body = gb_embeddings_request_to_gemini(root, &out, &err);
    if (body == NULL) {
        check_err(&err);
        return;
    }
    FUZZ_CHECK(dumps_ok(body), "embeddings body dumps");
    FUZZ_CHECK(memchr(out.model, '\0', sizeof out.model) != NULL, "model terminated");
    FUZZ_CHECK(out.model[0] != '\0', "model not empty");
    FUZZ_CHECK(out.n >= 1 && out.n <= GB_EMBED_INPUTS_MAX, "n in range");
    FUZZ_CHECK(out.dimensions >= 0 && (out.base64 == 0 || out.base64 == 1), "flags");
    want = out.n < GB_EMBED_BATCH_MAX ? out.n : GB_EMBED_BATCH_MAX;
    FUZZ_CHECK(json_array_size(json_object_get(body, "requests")) == want, "first batch size");
    batches = gb_embeddings_batches(&out);
    FUZZ_CHECK(batches == (out.n + GB_EMBED_BATCH_MAX - 1) / GB_EMBED_BATCH_MAX, "batch count");
    for (size_t k = 1; k < batches; k++) {
        from = k * GB_EMBED_BATCH_MAX;
        want = out.n - from < GB_EMBED_BATCH_MAX ? out.n - from : GB_EMBED_BATCH_MAX;
        b = gb_embeddings_batch(root, &out, from, from + GB_EMBED_BATCH_MAX);
        FUZZ_CHECK(b != NULL, "later batch");
        FUZZ_CHECK(json_array_size(json_object_get(b, "requests")) == want, "later batch size");
        json_decref(b);
    }
    /* the last input alone, to clamped to n, and an empty range */
    b = gb_embeddings_batch(root, &out, out.n - 1, SIZE_MAX);
    FUZZ_CHECK(b != NULL && json_array_size(json_object_get(b, "requests")) == 1, "clamped batch");
    json_decref(b);
    FUZZ_CHECK(gb_embeddings_batch(root, &out, out.n, out.n + 1) == NULL, "empty range is NULL");
    json_decref(body);
}

/* ---- schema -------------------------------------------------------------------- */

static int in_list(const char *s, const char *const *list)
{
    for (; *list != NULL; list++)
        if (strcmp(s, *list) == 0)
            return 1;
    return 0;
}

/* Every node of a cleaned schema holds only what schema.h lists. */
static void check_clean(const json_t *s, int depth)
{
    static const char *const keys[] = {
        "type",        "nullable",         "format",    "enum",          "properties",
        "required",    "propertyOrdering", "items",     "anyOf",         "title",
        "description", "pattern",          "minimum",   "maximum",       "minItems",
        "maxItems",    "minLength",        "maxLength", "minProperties", "maxProperties",
        NULL};
    static const char *const types[] = {"string", "number", "integer", "boolean",
                                        "array",  "object", NULL};
    const char *k, *type;
    json_t *v, *e;
    size_t i;

    FUZZ_CHECK(json_is_object(s), "schema node is an object");
    FUZZ_CHECK(depth < 10000, "schema depth");
    json_object_foreach((json_t *)s, k, v)
    {
        FUZZ_CHECK(in_list(k, keys), "only whitelisted keywords");
    }
    v = json_object_get(s, "type");
    type = json_string_value(v);
    if (v != NULL) {
        char low[16];
        size_t n;

        FUZZ_CHECK(type != NULL && (n = strlen(type)) < sizeof low, "type is a short string");
        for (i = 0; i <= n; i++)
            low[i] = (char)(type[i] >= 'A' && type[i] <= 'Z' ? type[i] + 32 : type[i]);
        FUZZ_CHECK(in_list(low, types), "type is a Gemini type");
        type = NULL;
        for (i = 0; types[i] != NULL; i++)
            if (strcmp(low, types[i]) == 0)
                type = types[i];
    }
    if ((v = json_object_get(s, "nullable")) != NULL)
        FUZZ_CHECK(json_is_boolean(v), "nullable is a boolean");
    if ((v = json_object_get(s, "enum")) != NULL) {
        FUZZ_CHECK(json_is_array(v), "enum is an array");
        FUZZ_CHECK(type == NULL || strcmp(type, "string") == 0, "enum only on strings");
        json_array_foreach(v, i, e)
        {
            FUZZ_CHECK(json_is_string(e), "enum values are strings");
        }
    }
    if ((v = json_object_get(s, "properties")) != NULL) {
        FUZZ_CHECK(json_is_object(v) && json_object_size(v) > 0, "properties non-empty");
        json_object_foreach(v, k, e)
        {
            check_clean(e, depth + 1);
        }
    }
    if ((v = json_object_get(s, "required")) != NULL) {
        FUZZ_CHECK(json_is_array(v) && json_array_size(v) > 0, "required non-empty");
        json_array_foreach(v, i, e)
        {
            FUZZ_CHECK(json_is_string(e) && json_object_get(json_object_get(s, "properties"),
                                                            json_string_value(e)) != NULL,
                       "required names a property");
        }
    }
    if ((v = json_object_get(s, "items")) != NULL)
        check_clean(v, depth + 1);
    if ((v = json_object_get(s, "anyOf")) != NULL) {
        FUZZ_CHECK(json_is_array(v), "anyOf is an array");
        json_array_foreach(v, i, e)
        {
            check_clean(e, depth + 1);
        }
    }
}

static void fuzz_schema(const json_t *root)
{
    json_t *clean = gb_schema_clean(root), *again;

    FUZZ_CHECK(clean != NULL, "gb_schema_clean returns a schema");
    FUZZ_CHECK(dumps_ok(clean), "cleaned schema dumps");
    check_clean(clean, 0);
    (void)gb_schema_is_empty_object(clean);
    again = gb_schema_clean(clean);
    FUZZ_CHECK(again != NULL && json_equal(again, clean), "cleaning a cleaned schema is a no-op");
    json_decref(again);
    json_decref(clean);
}

/* The scanned request against the general path. */
static void fuzz_scan(const uint8_t *data, size_t size, const json_t *root, uint64_t h)
{
    struct gb_chat_opts opts = {
        .safety_settings = (h & 1) ? safety : NULL,
        .code_execution = (h >> 1) & 1,
        .thinking_budget_map = (h >> 3) & 1 ? budget_map : NULL,
        .show_thinking = (h >> 4) & 1,
    };
    struct gb_chat_req fast, slow;
    struct gb_chat_err err;
    struct gb_buf b;
    json_t *body;
    char *want;
    size_t wlen;

    gb_buf_init(&b, SIZE_MAX);
    if (gb_chat_request_scan((const char *)data, size, &opts,
                             opts.safety_settings ? safety_text : NULL, &fast, &b) != 0) {
        gb_buf_release(&b);
        return;
    }
    FUZZ_CHECK(root != NULL, "what the scan takes, jansson parses");
    body = gb_chat_request_to_gemini(root, &opts, &slow, &err);
    FUZZ_CHECK(body != NULL, "what the scan takes, the general path accepts");
    FUZZ_CHECK(memcmp(&fast, &slow, sizeof fast) == 0, "the same gb_chat_req");
    want = gb_chat_body_dumps(body, opts.safety_settings, safety_text, &wlen);
    FUZZ_CHECK(want != NULL && wlen == b.len && memcmp(want, b.data, wlen) == 0,
               "the scanned body has the general body's bytes");
    free(want);
    json_decref(body);
    gb_buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *root = json_loadb((const char *)data, size, 0, NULL);

    fuzz_scan(data, size, root, fuzz_hash(data, size));
    if (root == NULL)
        return 0;
    fuzz_chat(root, fuzz_hash(data, size));
    fuzz_embeddings(root);
    fuzz_schema(root);
    /* tool parameters and response schemas are where clients put schemas */
    {
        json_t *tools = json_object_get(root, "tools"), *t;
        size_t i;

        json_array_foreach(tools, i, t)
        {
            json_t *p = json_object_get(json_object_get(t, "function"), "parameters");
            if (p != NULL)
                fuzz_schema(p);
        }
    }
    json_decref(root);
    return 0;
}
