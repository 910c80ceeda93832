/*
 * translate_response_fuzz.c - libFuzzer target for the response side of the
 * Gemini -> OpenAI translation: gb_chat_response_from_gemini, the stream
 * translator (gb_chat_stream_init/event/finish/release) and the helpers around
 * them (api/openai_chat.h), gb_models_to_openai (api/openai_models.h),
 * gb_embeddings_append/response (api/openai_embeddings.h), and the JSON string
 * writer the stream uses (core/jsonw.h).
 *
 * Input: the whole input is tried as one JSON value (a generateContent answer,
 * a model list, a batchEmbedContents answer, or the JSON array that
 * streamGenerateContent sends without alt=sse).  The stream events are: the
 * array's elements, or the object itself, or else the input's lines ('\n' is
 * the separator byte; a leading "data:" and blanks are dropped, so the
 * recorded .sse fixtures are seeds as they are).  Options (show_thinking,
 * show_search_link, include_usage, base64) come from the input's hash.
 *
 * Checked, besides ASan/UBSan and leaks:
 *   - gb_chat_response_from_gemini never returns NULL (only out-of-memory may)
 *     and its result dumps (valid UTF-8): one or more choices, finish_reason
 *     from the documented set, usage present;
 *   - the stream output is a sequence of "data: <json>\n\n" chunks, each a
 *     chat.completion.chunk with our id and at most one choice whose index is
 *     0..GB_CHAT_MAX_CHOICES-1; the first chunk of a choice, and only that one,
 *     carries role; after finish, "data: [DONE]\n\n" ends the output, a second
 *     finish writes nothing and an event is refused with GB_EINVAL;
 *   - gb_models_to_openai: unique ids, every listed search model has its twin;
 *   - gb_embeddings_append: 0 or GB_EINVAL, nothing appended on GB_EINVAL,
 *     indexes first_index + i;
 *   - gb_jsonw_string: the bytes jansson's JSON_COMPACT dump gives for the input
 *     (when it is valid UTF-8), and text that parses back to the input;
 *   - the scanned fast path (api/gemini_scan.h) against the general one: what
 *     gb_gem_scan accepts, jansson parses; gb_chat_response_write writes the
 *     bytes of the dumped gb_chat_response_from_gemini, with the same usage and
 *     emptiness; and a stream fed as text through gb_chat_stream_text (jansson
 *     only where it answers GB_EAGAIN) writes the same bytes, event by event,
 *     as one fed parsed events through gb_chat_stream_event.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/gemini_scan.h"
#include "api/openai_chat.h"
#include "api/openai_embeddings.h"
#include "api/openai_models.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/jsonw.h"
#include "fuzz.h"

/* Bound of the translated stream, in bytes (inputs are far smaller). */
#define STREAM_OUT_MAX (4u * 1024 * 1024)
/* Most stream events taken from one input. */
#define EVENTS_MAX 256

static const char *const search_models[] = {"gemini-2.5-flash", "gemini-2.5-pro", NULL};
static const char completion_id[] = "chatcmpl-fuzz0123456789";

static int dumps_ok(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    int ok = s != NULL;

    free(s);
    return ok;
}

static int finish_reason_ok(const json_t *fr)
{
    static const char *const ok[] = {"stop", "length", "content_filter", "tool_calls"};
    const char *s = json_string_value(fr);

    if (json_is_null(fr))
        return 1;
    for (size_t i = 0; s != NULL && i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(s, ok[i]) == 0)
            return 1;
    return 0;
}

/* ---- whole reply ---------------------------------------------------------------- */

static void fuzz_response(const json_t *root, const struct gb_chat_req *req,
                          const struct gb_chat_opts *opts)
{
    json_t *resp, *choices, *c, *u;
    size_t i;

    resp = gb_chat_response_from_gemini(root, req, opts, completion_id, 1700000000);
    FUZZ_CHECK(resp != NULL, "gb_chat_response_from_gemini is NULL only on out-of-memory");
    FUZZ_CHECK(dumps_ok(resp), "the reply dumps (valid UTF-8 everywhere)");
    choices = json_object_get(resp, "choices");
    FUZZ_CHECK(json_array_size(choices) >= 1, "at least one choice");
    json_array_foreach(choices, i, c)
    {
        FUZZ_CHECK(finish_reason_ok(json_object_get(c, "finish_reason")), "finish_reason");
        FUZZ_CHECK(json_is_object(json_object_get(c, "message")), "choice has a message");
    }
    FUZZ_CHECK(json_is_object(json_object_get(resp, "usage")), "usage always present");
    json_decref(resp);

    i = (size_t)gb_chat_response_is_empty(root);
    FUZZ_CHECK(i == 0 || i == 1, "is_empty is 0 or 1");
    u = gb_chat_usage_from_gemini(json_object_get(root, "usageMetadata"));
    FUZZ_CHECK((u != NULL) == (json_object_get(root, "usageMetadata") != NULL),
               "usage NULL for NULL");
    json_decref(u);
}

/* ---- stream ---------------------------------------------------------------------- */

/* Checks the chunks in out[from, len); role_seen tracks the first chunk of each
 * choice across calls.  Returns the offset after the last chunk. */
static size_t check_chunks(const struct gb_buf *out, size_t from, unsigned char *role_seen,
                           int *done)
{
    const char *p = out->data, *end, *q;

    if (p == NULL)
        return 0;
    end = p + out->len;
    for (p += from; p < end; p = q + 2) {
        json_t *chunk, *choices, *ch, *delta;
        json_int_t idx;

        FUZZ_CHECK(!*done, "nothing after [DONE]");
        FUZZ_CHECK(end - p >= 6 && memcmp(p, "data: ", 6) == 0, "chunk starts with \"data: \"");
        q = memmem(p, (size_t)(end - p), "\n\n", 2);
        FUZZ_CHECK(q != NULL, "chunk ends with a blank line");
        if (q - p == 12 && memcmp(p + 6, "[DONE]", 6) == 0) {
            *done = 1;
            continue;
        }
        chunk = json_loadb(p + 6, (size_t)(q - p - 6), 0, NULL);
        FUZZ_CHECK(json_is_object(chunk), "chunk is a JSON object");
        FUZZ_CHECK(json_is_string(json_object_get(chunk, "id")) &&
                       strcmp(json_string_value(json_object_get(chunk, "id")), completion_id) == 0,
                   "chunk id");
        FUZZ_CHECK(strcmp(json_string_value(json_object_get(chunk, "object")),
                          "chat.completion.chunk") == 0,
                   "chunk object");
        choices = json_object_get(chunk, "choices");
        FUZZ_CHECK(json_array_size(choices) <= 1, "one choice per chunk");
        if (json_array_size(choices) == 0) {
            FUZZ_CHECK(json_is_object(json_object_get(chunk, "usage")), "usage chunk");
        } else {
            ch = json_array_get(choices, 0);
            FUZZ_CHECK(json_is_integer(json_object_get(ch, "index")), "choice index");
            idx = json_integer_value(json_object_get(ch, "index"));
            FUZZ_CHECK(idx >= 0 && idx < GB_CHAT_MAX_CHOICES, "choice index in range");
            delta = json_object_get(ch, "delta");
            FUZZ_CHECK(json_is_object(delta), "delta");
            FUZZ_CHECK(finish_reason_ok(json_object_get(ch, "finish_reason")), "finish_reason");
            if (json_object_get(delta, "role") != NULL) {
                FUZZ_CHECK(!role_seen[idx], "role only in the first chunk of a choice");
                role_seen[idx] = 1;
            } else {
                FUZZ_CHECK(role_seen[idx], "the first chunk of a choice carries role");
            }
        }
        json_decref(chunk);
    }
    return out->len;
}

/* One stream event: its text, and jansson's reading of it (NULL when not
 * JSON). */
struct event {
    const char *text;
    size_t len;
    json_t *json;
};

/* Splits the input into events: one per line. */
static size_t line_events(const uint8_t *data, size_t size, struct event *ev, size_t max)
{
    size_t n = 0, i = 0;

    while (i < size && n < max) {
        const uint8_t *nl = memchr(data + i, '\n', size - i);
        size_t j = nl ? (size_t)(nl - data) : size, a = i, b = j;

        while (a < b && (data[a] == ' ' || data[a] == '\t' || data[a] == '\r'))
            a++;
        if (b - a >= 5 && memcmp(data + a, "data:", 5) == 0)
            a += 5;
        ev[n].text = (const char *)data + a;
        ev[n].len = b - a;
        ev[n].json = json_loadb(ev[n].text, ev[n].len, 0, NULL);
        n++;
        i = j + 1;
    }
    return n;
}

/* The scan against the general path for a whole reply. */
static void fuzz_scanned_response(const char *text, size_t len, const json_t *root,
                                  const struct gb_chat_req *req, const struct gb_chat_opts *opts)
{
    struct gb_gem_event ev;
    struct gb_gem_usage u;
    struct gb_buf out;
    json_t *resp;
    char *want;
    size_t want_len;

    gb_gem_init(&ev);
    if (gb_gem_scan(&ev, text, len, opts->show_thinking, opts->show_search_link) == 0) {
        FUZZ_CHECK(json_is_object(root), "what the scan accepts, jansson parses as an object");
        FUZZ_CHECK(gb_gem_is_empty(&ev) == gb_chat_response_is_empty(root), "same emptiness");
        gb_chat_usage_read(json_object_get(root, "usageMetadata"), &u);
        FUZZ_CHECK(ev.has_usage == json_is_object(json_object_get(root, "usageMetadata")),
                   "usage seen alike");
        FUZZ_CHECK(ev.usage.prompt == u.prompt && ev.usage.candidates == u.candidates &&
                       ev.usage.thoughts == u.thoughts && ev.usage.total == u.total &&
                       ev.usage.cached == u.cached && ev.usage.has_total == u.has_total &&
                       ev.usage.has_thoughts == u.has_thoughts &&
                       ev.usage.has_cached == u.has_cached,
                   "same usage counts");
        resp = gb_chat_response_from_gemini(root, req, opts, completion_id, 1700000000);
        want = resp ? gb_jsonw_dumps(resp, &want_len) : NULL;
        FUZZ_CHECK(want != NULL, "the general reply dumps");
        gb_buf_init(&out, SIZE_MAX);
        FUZZ_CHECK(gb_chat_response_write(&ev, req, completion_id, 1700000000, &out) == 0,
                   "the scanned reply is written");
        FUZZ_CHECK(out.len == want_len && memcmp(out.data, want, want_len) == 0,
                   "the scanned reply has the general reply's bytes");
        gb_buf_release(&out);
        free(want);
        json_decref(resp);
    }
    gb_gem_release(&ev);
}

static void fuzz_stream(const struct event *ev, size_t nev, const struct gb_chat_req *req,
                        const struct gb_chat_opts *opts, int skip_empty)
{
    struct gb_chat_stream s, t;
    struct gb_buf out, fast;
    unsigned char role_seen[GB_CHAT_MAX_CHOICES] = {0};
    size_t checked = 0, len;
    int done = 0, rc = 0, rt;

    gb_buf_init(&out, STREAM_OUT_MAX);
    gb_buf_init(&fast, STREAM_OUT_MAX);
    gb_chat_stream_init(&s, req, opts, completion_id, 1700000000);
    gb_chat_stream_init(&t, req, opts, completion_id, 1700000000);
    for (size_t i = 0; i < nev && rc == 0; i++) {
        if (ev[i].json == NULL)
            rc = 0;
        else if (skip_empty && gb_chat_response_is_empty(ev[i].json))
            rc = 0;
        else
            rc = gb_chat_stream_event(&s, ev[i].json, &out);
        FUZZ_CHECK(rc == 0 || rc == GB_ETOOBIG, "stream event returns 0 or GB_ETOOBIG");
        checked = check_chunks(&out, checked, role_seen, &done);
        /* the same event as text, the way the chat route feeds it */
        rt = gb_chat_stream_text(&t, ev[i].text, ev[i].len, skip_empty, &fast);
        if (rt == GB_EAGAIN) {
            rt = 0;
            if (ev[i].json != NULL && !(skip_empty && gb_chat_response_is_empty(ev[i].json)))
                rt = gb_chat_stream_event(&t, ev[i].json, &fast);
        } else {
            FUZZ_CHECK(ev[i].json != NULL, "what the scan accepts, jansson parses");
        }
        FUZZ_CHECK(rt == rc, "the scanned stream returns what the general one does");
        FUZZ_CHECK(fast.len == out.len &&
                       (out.len == 0 || memcmp(fast.data, out.data, out.len) == 0),
                   "the scanned stream writes the general stream's bytes");
    }
    rc = gb_chat_stream_finish(&s, &out);
    FUZZ_CHECK(rc == 0 || rc == GB_ETOOBIG, "finish returns 0 or GB_ETOOBIG");
    checked = check_chunks(&out, checked, role_seen, &done);
    rt = gb_chat_stream_finish(&t, &fast);
    FUZZ_CHECK(rt == rc && fast.len == out.len &&
                   (out.len == 0 || memcmp(fast.data, out.data, out.len) == 0),
               "the scanned stream ends as the general one");
    if (rc == 0) {
        FUZZ_CHECK(done, "the output ends with [DONE]");
        len = out.len;
        FUZZ_CHECK(gb_chat_stream_finish(&s, &out) == 0 && out.len == len,
                   "a second finish writes nothing");
        for (size_t i = 0; i < nev; i++) {
            if (ev[i].json == NULL)
                continue;
            FUZZ_CHECK(gb_chat_stream_event(&s, ev[i].json, &out) == GB_EINVAL && out.len == len,
                       "an event after finish is refused");
            FUZZ_CHECK(gb_chat_stream_text(&t, ev[i].text, ev[i].len, 0, &fast) == GB_EINVAL,
                       "a text event after finish is refused");
            break;
        }
    }
    gb_chat_stream_release(&s);
    gb_chat_stream_release(&t);
    gb_buf_release(&out);
    gb_buf_release(&fast);
}

/* ---- models, embeddings ---------------------------------------------------------------- */

static void fuzz_models(const json_t *root)
{
    const json_t *models = json_is_array(root) ? root : json_object_get(root, "models");
    json_t *list = gb_models_to_openai(models, search_models, 2, 1700000000), *m, *seen;
    char twin[GB_MODEL_NAME_MAX + 16];
    size_t i;

    FUZZ_CHECK(list != NULL, "gb_models_to_openai is NULL only on out-of-memory");
    FUZZ_CHECK(dumps_ok(list), "model list dumps");
    seen = json_object();
    FUZZ_CHECK(seen != NULL, "seen");
    json_array_foreach(json_object_get(list, "data"), i, m)
    {
        const char *id = json_string_value(json_object_get(m, "id"));

        FUZZ_CHECK(id != NULL, "model id is a string");
        FUZZ_CHECK(json_object_get(seen, id) == NULL, "model ids are unique");
        json_object_set_new(seen, id, json_true());
    }
    for (size_t k = 0; search_models[k] != NULL; k++) {
        snprintf(twin, sizeof twin, "%s-search", search_models[k]);
        if (json_object_get(seen, search_models[k]) != NULL)
            FUZZ_CHECK(json_object_get(seen, twin) != NULL, "a search model has its twin");
    }
    json_decref(seen);
    json_decref(list);
}

static void fuzz_embeddings(const json_t *root, uint64_t h)
{
    json_t *data = json_array(), *e, *reply;
    size_t first = (size_t)((h >> 20) % 300), i;
    int b64 = (h >> 19) & 1;
    int rc = gb_embeddings_append(data, root, first, b64);

    FUZZ_CHECK(rc == 0 || rc == GB_EINVAL, "append returns 0 or GB_EINVAL");
    if (rc == GB_EINVAL)
        FUZZ_CHECK(json_array_size(data) == 0, "nothing appended on GB_EINVAL");
    else
        FUZZ_CHECK(json_array_size(data) == json_array_size(json_object_get(root, "embeddings")),
                   "one entry per embedding");
    json_array_foreach(data, i, e)
    {
        FUZZ_CHECK(json_integer_value(json_object_get(e, "index")) == (json_int_t)(first + i),
                   "index is first_index + i");
        FUZZ_CHECK(b64 ? json_is_string(json_object_get(e, "embedding"))
                       : json_is_array(json_object_get(e, "embedding")),
                   "embedding type");
    }
    reply = gb_embeddings_response(data, "text-embedding-004", gb_embeddings_prompt_tokens(root));
    FUZZ_CHECK(reply != NULL && dumps_ok(reply), "embeddings reply");
    json_decref(reply);
}

/* ---- jsonw --------------------------------------------------------------------------- */

static void fuzz_jsonw(const uint8_t *data, size_t size)
{
    json_t *js = json_stringn((const char *)data, size); /* NULL: not valid UTF-8 */
    struct gb_buf b;
    char *dumped;
    json_t *back;

    if (js == NULL)
        return;
    gb_buf_init(&b, SIZE_MAX);
    FUZZ_CHECK(gb_jsonw_string(&b, (const char *)data, size) == 0, "jsonw");
    back = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    FUZZ_CHECK(back != NULL && json_equal(back, js), "jsonw output parses back to the input");
    dumped = json_dumps(js, JSON_COMPACT | JSON_ENCODE_ANY);
    FUZZ_CHECK(dumped != NULL && strlen(dumped) == b.len && memcmp(dumped, b.data, b.len) == 0,
               "jsonw writes the bytes jansson dumps");
    free(dumped);
    json_decref(back);
    json_decref(js);
    gb_buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t h = fuzz_hash(data, size);
    struct gb_chat_opts opts = {
        .show_search_link = h & 1,
        .show_thinking = (h >> 1) & 1,
    };
    struct gb_chat_req req = {
        .model = "gemini-2.5-flash",
        .client_model = "gemini-2.5-flash",
        .stream = 1,
        .include_usage = (h >> 2) & 1,
        .n = 1 + (int)((h >> 3) % GB_CHAT_MAX_CHOICES),
    };
    json_t *root = json_loadb((const char *)data, size, 0, NULL);
    struct event ev[EVENTS_MAX];
    char *dumped[EVENTS_MAX];
    size_t nev = 0, ndumped = 0;

    fuzz_jsonw(data, size);
    fuzz_scanned_response((const char *)data, size, root, &req, &opts);
    if (json_is_object(root)) {
        fuzz_response(root, &req, &opts);
        ev[nev++] = (struct event){(const char *)data, size, json_incref(root)};
    } else if (json_is_array(root)) {
        json_t *e;
        size_t i;
        json_array_foreach(root, i, e)
        {
            if (nev == EVENTS_MAX)
                break;
            if (json_is_object(e) && i < 4)
                fuzz_response(e, &req, &opts);
            /* the element's text, as jansson writes it */
            dumped[ndumped] = json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY);
            if (dumped[ndumped] == NULL)
                continue;
            ev[nev++] = (struct event){dumped[ndumped], strlen(dumped[ndumped]), json_incref(e)};
            ndumped++;
        }
    } else {
        nev = line_events(data, size, ev, EVENTS_MAX);
        for (size_t i = 0, tried = 0; i < nev && tried < 4; i++) {
            if (json_is_object(ev[i].json)) {
                fuzz_response(ev[i].json, &req, &opts);
                fuzz_scanned_response(ev[i].text, ev[i].len, ev[i].json, &req, &opts);
                tried++;
            }
        }
    }
    fuzz_stream(ev, nev, &req, (h >> 6) & 1 ? &opts : NULL, (h >> 7) & 1);
    if (root != NULL) {
        fuzz_models(root);
        fuzz_embeddings(root, h);
    }
    for (size_t i = 0; i < nev; i++)
        json_decref(ev[i].json);
    for (size_t i = 0; i < ndumped; i++)
        free(dumped[i]);
    json_decref(root);
    return 0;
}
