/*
 * gemini_native.c - the native Gemini API through the key pool, byte for
 * byte: GET /models, GET /models/{m}, POST /models/{m}:{generateContent,
 * streamGenerateContent, countTokens, embedContent, batchEmbedContents}.
 *
 * Nothing is parsed or re-encoded: the client's body goes upstream as it
 * came (borrowed from evhttp's input buffer, not copied), the query passes
 * through without the client's "key", and the answer comes back with the
 * upstream's status, content type and bytes.  Streams are relayed chunk by
 * chunk as they arrive.  Only the failure policy looks at error bodies.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/routes.h"
#include "core/buf.h"
#include "server/worker.h"
#include "upstream/upstream.h"

/* The model actions we relay, and whether each streams. */
static const struct {
    const char *name;
    int stream;
} actions[] = {
    {"generateContent", 0}, {"streamGenerateContent", 1}, {"countTokens", 0},
    {"embedContent", 0},    {"batchEmbedContents", 0},
};

/* Token counts for the request log, without parsing the answer: the last
 * "usageMetadata" object is found by name and only its top-level integer
 * members are read, in one pass (a jansson parse of just that object cost
 * more than the rest of the relay).  In a stream every event carries the
 * running totals, so the last one seen wins; an object split across two
 * reads is skipped (the next event has it). */
/* Byte classes for the walks outside strings (usage scan, whole check). */
enum { JC_OTHER, JC_QUOTE, JC_OPEN, JC_CLOSE };
static const unsigned char json_class[256] = {
    ['"'] = JC_QUOTE, ['{'] = JC_OPEN, ['['] = JC_OPEN, ['}'] = JC_CLOSE, [']'] = JC_CLOSE,
};

enum { U_PROMPT, U_CANDIDATES, U_THOUGHTS, U_TOTAL, U_N };

static const struct {
    const char *name;
    size_t len;
} usage_names[U_N] = {
    {"promptTokenCount", 16},
    {"candidatesTokenCount", 20},
    {"thoughtsTokenCount", 18},
    {"totalTokenCount", 15},
};

/* Reads the members of the object at p (just after its '{') into v[];
 * returns 0 when the object closed before end, -1 when it is cut off. */
static int scan_usage_object(const char *p, const char *end, long v[U_N])
{
    int depth = 1;

    while (p < end) {
        unsigned char c = json_class[(unsigned char)*p++];
        if (c == JC_OTHER) {
            continue;
        } else if (c == JC_QUOTE) {
            const char *s = p;
            while (p < end && *p != '"')
                p += *p == '\\' ? 2 : 1;
            if (p >= end)
                return -1;
            size_t n = (size_t)(p - s);
            p++;
            if (depth != 1)
                continue;
            for (int i = 0; i < U_N; i++) {
                if (n != usage_names[i].len || memcmp(s, usage_names[i].name, n) != 0)
                    continue;
                while (p < end &&
                       (*p == ' ' || *p == ':' || *p == '\n' || *p == '\r' || *p == '\t'))
                    p++;
                long x = 0;
                while (p < end && *p >= '0' && *p <= '9' && x < 1000000000000L)
                    x = x * 10 + (*p++ - '0');
                v[i] = x;
                break;
            }
        } else if (c == JC_OPEN) {
            depth++;
        } else if (--depth == 0) { /* JC_CLOSE */
            return 0;
        }
    }
    return -1;
}

int gb_native_usage(const char *p, size_t n, struct gb_native_usage *u)
{
    static const char name[] = "\"usageMetadata\"";
    const char *end = p + n, *m = end, *hit = NULL;
    long v[U_N] = {0};

    /* the last one, searched from the end, where answers keep it: by its
     * 'M', a rare byte in JSON, at offset 6 of the quoted name */
    while (m - p > 6 && (m = memrchr(p + 6, 'M', (size_t)(m - p - 6))) != NULL) {
        if ((size_t)(end - (m - 6)) >= sizeof name - 1 &&
            memcmp(m - 6, name, sizeof name - 1) == 0) {
            hit = m - 6;
            break;
        }
    }
    if (hit == NULL)
        return -1;
    hit += sizeof name - 1;
    while (hit < end &&
           (*hit == ' ' || *hit == ':' || *hit == '\n' || *hit == '\r' || *hit == '\t'))
        hit++;
    if (hit == end || *hit != '{' || scan_usage_object(hit + 1, end, v) < 0)
        return -1;
    u->prompt = v[U_PROMPT];
    u->completion = v[U_CANDIDATES] + v[U_THOUGHTS];
    u->total = v[U_TOTAL];
    return 0;
}

static void scan_usage(struct gb_req *r, const char *p, size_t n)
{
    struct gb_native_usage u;

    if (gb_native_usage(p, n, &u) < 0)
        return;
    r->prompt_tokens = (int)u.prompt;
    r->completion_tokens = (int)u.completion;
    r->total_tokens = (int)u.total;
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

int gb_native_whole(const char *text, size_t n)
{
    const unsigned char *p = (const unsigned char *)text, *end = p + n;
    size_t depth = 0;

    while (p < end && is_space(*p))
        p++;
    if (p == end || *p != '{')
        return 0;
    for (;;) {
        while (p < end && json_class[*p] == JC_OTHER)
            p++;
        if (p == end)
            return 0;
        switch (json_class[*p++]) {
        case JC_QUOTE:
            /* the closing quote is the first one after an even run of
             * backslashes (the run cannot reach back past p: p[-1] is a
             * quote) */
            for (;;) {
                const unsigned char *q = memchr(p, '"', (size_t)(end - p)), *b;
                if (q == NULL)
                    return 0;
                for (b = q; b > p && b[-1] == '\\'; b--)
                    ;
                p = q + 1;
                if (((q - b) & 1) == 0)
                    break;
            }
            break;
        case JC_OPEN:
            depth++;
            break;
        default: /* JC_CLOSE; depth >= 1, the walk ends when it drops to 0 */
            if (--depth == 0) {
                while (p < end && is_space(*p))
                    p++;
                return p == end;
            }
        }
    }
}

static void on_body(struct gb_req *r)
{
    if (!gb_native_whole(r->up_body.data, r->up_body.len)) {
        /* an empty or cut-off 2xx: not the key's fault, try another */
        if (gb_upstream_retry(r, "incomplete answer") == 0)
            return;
        r->error = "incomplete upstream answer";
        gb_req_error(r, 502, "UNAVAILABLE", NULL,
                     "the upstream answered with an empty or incomplete body on every attempt");
        return;
    }
    scan_usage(r, r->up_body.data, r->up_body.len);
    gb_req_reply(r, (int)r->up_status,
                 r->up_ctype[0] ? r->up_ctype : "application/json; charset=UTF-8", r->up_body.data,
                 r->up_body.len);
}

static const struct gb_route_ops native_ops = {on_body, NULL, NULL, scan_usage};

/* Appends the client's query without its "key" parameter (raw, as sent). */
static int append_query(struct gb_buf *u, const char *query)
{
    const char *p = query, *amp;
    int first = 1, rc = 0;

    while (p != NULL && *p != '\0' && rc == 0) {
        size_t n;
        amp = strchr(p, '&');
        n = amp ? (size_t)(amp - p) : strlen(p);
        if (n > 0 && !(n >= 3 && strncmp(p, "key", 3) == 0 && (n == 3 || p[3] == '='))) {
            rc = gb_buf_append(u, first ? "?" : "&", 1);
            if (rc == 0)
                rc = gb_buf_append(u, p, n);
            first = 0;
        }
        p = amp ? amp + 1 : NULL;
    }
    return rc;
}

static int build_url(struct gb_req *r, const char *rest)
{
    const char *base = gb_cfg(r->w->ctx)->base_url;
    struct gb_buf u;

    gb_buf_init(&u, strlen(base) + strlen(rest) + (r->query ? strlen(r->query) : 0) + 2);
    if (gb_buf_puts(&u, base) < 0 || gb_buf_puts(&u, rest) < 0 || append_query(&u, r->query) < 0) {
        gb_buf_release(&u);
        return -1;
    }
    r->up_url = gb_buf_take(&u, NULL);
    return 0;
}

void gb_route_native(struct gb_req *r, const char *rest, int is_post)
{
    const char *model = NULL, *colon;
    char name[GB_MODEL_NAME_MAX + 1];
    int stream = 0, found = 0;
    size_t n;

    gb_req_set_state(r, GB_REQ_PARSE);
    if (strcmp(rest, "/models") == 0) {
        if (is_post)
            goto not_allowed;
    } else if (strncmp(rest, "/models/", 8) == 0) {
        model = rest + 8;
        colon = strchr(model, ':');
        n = colon ? (size_t)(colon - model) : strlen(model);
        if (n == 0 || n > GB_MODEL_NAME_MAX)
            goto bad_model;
        memcpy(name, model, n);
        name[n] = '\0';
        if (!gb_model_name_ok(name))
            goto bad_model;
        snprintf(r->model, sizeof r->model, "%s", name);
        if (colon == NULL) {
            if (is_post)
                goto not_allowed;
        } else {
            for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++) {
                if (strcmp(colon + 1, actions[i].name) == 0) {
                    stream = actions[i].stream;
                    found = 1;
                }
            }
            if (!found) {
                r->error = "unknown action";
                gb_req_error(r, 404, NULL, NULL, "unknown model action '%s'", colon + 1);
                return;
            }
            if (!is_post)
                goto not_allowed;
        }
    } else {
        r->error = "unknown route";
        gb_req_error(r, 404, NULL, NULL,
                     "unknown route %s %s: this gateway serves the Gemini API under /v1beta (or "
                     "/gemini/v1beta): /models, /models/{model}, /models/{model}:generateContent, "
                     ":streamGenerateContent, :countTokens, :embedContent, :batchEmbedContents; "
                     "and the OpenAI API under /v1 (or /hf/v1)",
                     r->method, r->path);
        return;
    }
    if (build_url(r, rest) < 0) {
        gb_req_error(r, 500, NULL, NULL, "out of memory");
        return;
    }
    if (is_post) {
        struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);
        r->up_payload_len = evbuffer_get_length(in);
        r->up_payload = (char *)evbuffer_pullup(in, -1);
        r->up_payload_borrowed = 1;
        if (r->up_payload == NULL) {
            r->up_payload = "";
            r->up_payload_len = 0;
        }
    }
    r->up_stream = stream;
    r->ops = &native_ops;
    r->pool_model = is_post && r->model[0] ? r->model : NULL;
    gb_upstream_start(r);
    return;
bad_model:
    r->error = "bad model name";
    gb_req_error(r, 400, NULL, NULL,
                 "invalid model name in the path: use letters, digits, '.', '_' and '-' only");
    return;
not_allowed:
    /* model actions take POST, models and the model list GET */
    gb_req_not_allowed(r, strchr(r->path, ':') ? "POST" : "GET, HEAD", NULL);
}
