/*
 * embeddings_route.c - POST /v1/embeddings: OpenAI embeddings through Gemini's
 * batchEmbedContents, one upstream call per GB_EMBED_BATCH_MAX inputs (each
 * with its own key and retries), answers appended in order.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/openai_embeddings.h"
#include "api/routes.h"
#include "core/buf.h"
#include "core/jsonw.h"
#include "server/worker.h"
#include "upstream/upstream.h"

static int start_batch(struct gb_req *r)
{
    json_t *body =
        gb_embeddings_batch(r->oai, &r->embed, r->embed_from, r->embed_from + GB_EMBED_BATCH_MAX);
    const char *base = gb_cfg(r->w->ctx)->base_url;
    struct gb_buf u;

    if (body == NULL)
        return -1;
    if (!r->up_payload_borrowed)
        free(r->up_payload);
    r->up_payload = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    if (r->up_payload == NULL)
        return -1;
    r->up_payload_len = strlen(r->up_payload);
    free(r->up_url);
    gb_buf_init(&u, strlen(base) + GB_MODEL_NAME_MAX + 64);
    if (gb_buf_printf(&u, "%s/models/%s:batchEmbedContents", base, r->embed.model) < 0) {
        gb_buf_release(&u);
        r->up_url = NULL;
        return -1;
    }
    r->up_url = gb_buf_take(&u, NULL);
    gb_upstream_start(r);
    return 0;
}

static void on_body(struct gb_req *r)
{
    json_t *ans = json_loadb(r->up_body.data, r->up_body.len, 0, NULL);
    size_t want = r->embed.n - r->embed_from;
    size_t before = json_array_size(r->acc);
    char *s;

    if (want > GB_EMBED_BATCH_MAX)
        want = GB_EMBED_BATCH_MAX;
    if (ans == NULL || gb_embeddings_append(r->acc, ans, r->embed_from, r->embed.base64) < 0 ||
        json_array_size(r->acc) - before != want) {
        json_decref(ans);
        r->error = "bad upstream embeddings";
        gb_req_error(r, 502, "bad_upstream_response", NULL,
                     "the upstream answer holds no (or too few) embeddings");
        return;
    }
    r->embed_tokens += gb_embeddings_prompt_tokens(ans);
    json_decref(ans);
    r->embed_from += want;
    if (r->embed_from < r->embed.n) {
        if (start_batch(r) < 0)
            gb_req_error(r, 500, "internal_error", NULL, "out of memory");
        return;
    }
    json_t *resp = gb_embeddings_response(r->acc, r->embed.client_model, r->embed_tokens);
    r->acc = NULL;
    s = resp ? json_dumps(resp, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(resp);
    if (s == NULL) {
        gb_req_error(r, 500, "internal_error", NULL, "out of memory");
        return;
    }
    gb_req_reply(r, 200, "application/json", s, strlen(s));
    free(s);
}

static const struct gb_route_ops embed_ops = {on_body, NULL, NULL, NULL};

void gb_route_embeddings(struct gb_req *r)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);
    size_t len = evbuffer_get_length(in);
    const char *body = (const char *)evbuffer_pullup(in, -1);
    struct gb_chat_err err = {{0}, {0}};
    json_error_t jerr;
    json_t *first;

    gb_req_set_state(r, GB_REQ_PARSE);
    if (gb_json_depth(body, len) > (size_t)gb_cfg(r->w->ctx)->max_json_depth) {
        gb_req_error(r, 400, "invalid_request_error", NULL,
                     "the JSON body is nested deeper than %ld levels (MAX_JSON_DEPTH)",
                     gb_cfg(r->w->ctx)->max_json_depth);
        return;
    }
    r->oai = len ? json_loadb(body, len, 0, &jerr) : NULL;
    if (!json_is_object(r->oai)) {
        gb_req_error(r, 400, "invalid_json", NULL,
                     len == 0         ? "the request body is empty: expected a JSON object"
                     : r->oai == NULL ? "invalid JSON body: %s"
                                      : "the request body must be a JSON object",
                     r->oai == NULL && len ? jerr.text : "");
        return;
    }
    gb_req_set_state(r, GB_REQ_TRANSLATE);
    first = gb_embeddings_request_to_gemini(r->oai, &r->embed, &err);
    if (first == NULL) {
        int oom = strcmp(err.message, "out of memory") == 0;
        gb_req_error(r, oom ? 500 : 400, oom ? "internal_error" : "invalid_request_error",
                     err.param[0] ? err.param : NULL, "%s", err.message);
        return;
    }
    json_decref(first);
    snprintf(r->model, sizeof r->model, "%s", r->embed.client_model);
    if (!gb_model_name_ok(r->embed.model)) {
        gb_req_error(r, 400, "invalid_request_error", "model",
                     "invalid model name: use letters, digits, '.', '_' and '-' only");
        return;
    }
    r->acc = json_array();
    r->ops = &embed_ops;
    r->pool_model = r->embed.model;
    r->embed_from = 0;
    if (r->acc == NULL || start_batch(r) < 0)
        gb_req_error(r, 500, "internal_error", NULL, "out of memory");
}
