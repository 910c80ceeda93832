/*
 * chat_route.c - POST /v1/chat/completions: parse, translate (openai_chat.h),
 * send through the attempt loop (upstream.h), translate the answer back.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <nettle/base64.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/openai_chat.h"
#include "api/routes.h"
#include "core/err.h"
#include "core/jsonw.h"
#include "core/log.h"
#include "core/rand.h"
#include "server/worker.h"
#include "upstream/upstream.h"

/* Most image URLs downloaded for one request. */
#define GB_IMAGE_FETCH_MAX_COUNT 16
/* Time one image download may take, in ms. */
#define GB_IMAGE_FETCH_TIMEOUT_MS 30000
/* Longest image URL named in an error, in bytes. */
#define GB_IMAGE_URL_MAX 2048
/* Random characters in a chat completion id. */
#define GB_CHAT_ID_RAND 24

int gb_model_name_ok(const char *m)
{
    size_t n = 0;

    for (; m[n] != '\0'; n++) {
        char c = m[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return n > 0 && n <= GB_MODEL_NAME_MAX;
}

static void chat_opts(const struct gb_config *cfg, struct gb_chat_opts *o)
{
    memset(o, 0, sizeof *o);
    o->thinking_budget_map = cfg->thinking_budget_map;
    o->show_thinking = cfg->show_thinking;
    o->safety_settings = cfg->safety_settings;
    o->code_execution = cfg->code_execution;
    o->show_search_link = cfg->show_search_link;
}

/* Token counts for the request log, from Gemini's usageMetadata. */
static void take_usage(struct gb_req *r, const struct gb_gem_usage *u)
{
    r->prompt_tokens = (int)u->prompt;
    r->completion_tokens = (int)(u->candidates + u->thoughts);
    r->total_tokens = (int)u->total;
}

/* The answer, when not JSON or empty: another key is tried, or the client
 * learns why not.  Returns 1 when it was either. */
static int bad_answer(struct gb_req *r, int json, int empty)
{
    if (!json) {
        /* a cut-off or garbled 2xx: not the key's fault, try another */
        if (gb_upstream_retry(r, "answer is not JSON") == 0)
            return 1;
        r->error = "upstream answer is not JSON";
        gb_req_error(r, 502, "bad_upstream_response", NULL,
                     "the upstream answer was not JSON on every attempt");
        return 1;
    }
    if (empty) {
        if (gb_upstream_retry(r, "empty answer") == 0)
            return 1;
        r->error = "empty upstream answer";
        gb_req_error(r, 502, "empty_response", NULL,
                     "the upstream answered with an empty response on every attempt");
        return 1;
    }
    return 0;
}

/* FAKE_STREAM_ENABLED: the whole answer has the shape of one stream event,
 * so it goes through the stream translator and out as chunks (ev: scanned,
 * else gem: parsed). */
static void fake_stream_answer(struct gb_req *r, const struct gb_gem_event *ev, const json_t *gem)
{
    int rc;

    if (!r->reply_started)
        gb_req_stream_start(r, NULL);
    rc = ev ? gb_chat_stream_scanned(&r->cs, ev, &r->out)
            : gb_chat_stream_event(&r->cs, gem, &r->out);
    if (rc < 0 || gb_chat_stream_finish(&r->cs, &r->out) < 0)
        r->error = "answer too large";
    gb_req_stream_end(r);
}

/* The common answer (text, thoughts, usage), read by gb_gem_scan and
 * written straight as JSON.  Returns 0 when it was not of that shape. */
static int on_body_scanned(struct gb_req *r, const struct gb_chat_opts *opts, const char *id)
{
    struct gb_gem_event ev;
    struct gb_buf out;

    gb_gem_init(&ev);
    if (gb_gem_scan(&ev, r->up_body.data, r->up_body.len, opts->show_thinking,
                    opts->show_search_link) < 0) {
        gb_gem_release(&ev);
        return 0;
    }
    if (ev.has_usage)
        take_usage(r, &ev.usage);
    if (bad_answer(r, 1, gb_gem_is_empty(&ev))) {
        gb_gem_release(&ev);
        return 1;
    }
    if (r->client_stream) {
        fake_stream_answer(r, &ev, NULL);
        gb_gem_release(&ev);
        return 1;
    }
    gb_buf_init(&out, SIZE_MAX);
    if (gb_chat_response_write(&ev, &r->chat, id, (long long)time(NULL), &out) < 0)
        gb_req_error(r, 500, "internal_error", NULL, "out of memory");
    else
        gb_req_reply(r, 200, "application/json", out.data, out.len);
    gb_buf_release(&out);
    gb_gem_release(&ev);
    return 1;
}

static void on_body(struct gb_req *r)
{
    struct gb_chat_opts opts;
    struct gb_gem_usage u;
    json_t *gem, *resp;
    char id[GB_CHAT_ID_RAND + 16], rnd[GB_CHAT_ID_RAND + 1];
    char *s;

    chat_opts(gb_cfg(r->w->ctx), &opts);
    gb_rand_alnum(rnd, GB_CHAT_ID_RAND);
    snprintf(id, sizeof id, "chatcmpl-%s", rnd);
    if (on_body_scanned(r, &opts, id))
        return;
    gem = json_loadb(r->up_body.data, r->up_body.len, 0, NULL);
    if (json_is_object(json_object_get(gem, "usageMetadata"))) {
        gb_chat_usage_read(json_object_get(gem, "usageMetadata"), &u);
        take_usage(r, &u);
    }
    if (bad_answer(r, json_is_object(gem), json_is_object(gem) && gb_chat_response_is_empty(gem))) {
        json_decref(gem);
        return;
    }
    if (r->client_stream) {
        fake_stream_answer(r, NULL, gem);
        json_decref(gem);
        return;
    }
    resp = gb_chat_response_from_gemini(gem, &r->chat, &opts, id, (long long)time(NULL));
    s = resp ? gb_jsonw_dumps(resp, NULL) : NULL;
    if (s == NULL)
        gb_req_error(r, 500, "internal_error", NULL, "out of memory");
    else
        gb_req_reply(r, 200, "application/json", s, strlen(s));
    free(s);
    json_decref(resp);
    json_decref(gem);
}

/* An error object inside the stream: pass it on as an OpenAI error event. */
static int stream_error(struct gb_req *r, json_t *err)
{
    const char *msg = json_string_value(json_object_get(err, "message"));
    json_t *code = json_object_get(err, "code");
    json_t *e =
        json_pack("{s:{s:s, s:s, s:n, s:O?}}", "error", "message", msg ? msg : "upstream error",
                  "type", "server_error", "param", "code", code);
    char *s = e ? json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

    if (s != NULL)
        gb_buf_printf(&r->out, "data: %s\n\n", s);
    free(s);
    json_decref(e);
    r->stream_error_sent = 1;
    r->error = "upstream error inside the stream";
    return -1;
}

static int on_event(struct gb_req *r, const char *data, size_t len)
{
    json_t *ev;
    int rc;

    if (len == 0)
        return 0;
    rc = gb_chat_stream_text(&r->cs, data, len, !r->relaying, &r->out);
    if (rc != GB_EAGAIN)
        return rc < 0 ? -1 : 0;
    ev = json_loadb(data, len, 0, NULL);
    if (!json_is_object(ev)) {
        json_decref(ev);
        gb_warn("chat stream: upstream event is not JSON (%zu bytes), skipped", len);
        return 0;
    }
    if (!r->relaying && gb_chat_response_is_empty(ev)) {
        json_decref(ev); /* nothing yet: an empty stream is retried on another key */
        return 0;
    }
    if (json_object_get(ev, "error") != NULL)
        rc = stream_error(r, json_object_get(ev, "error"));
    else
        rc = gb_chat_stream_event(&r->cs, ev, &r->out) < 0 ? -1 : 0;
    json_decref(ev);
    return rc;
}

static void on_stream_end(struct gb_req *r)
{
    if (r->cs.has_usage)
        take_usage(r, &r->cs.usage);
    gb_chat_stream_finish(&r->cs, &r->out);
}

static const struct gb_route_ops chat_ops = {on_body, on_event, on_stream_end, NULL};

static int build_url(struct gb_req *r)
{
    const char *base = gb_cfg(r->w->ctx)->base_url;
    struct gb_buf u;

    gb_buf_init(&u, strlen(base) + GB_MODEL_NAME_MAX + 64);
    if (gb_buf_printf(&u, "%s/models/%s:%s", base, r->chat.model,
                      r->chat.stream ? "streamGenerateContent?alt=sse" : "generateContent") < 0) {
        gb_buf_release(&u);
        return -1;
    }
    r->up_url = gb_buf_take(&u, NULL);
    return 0;
}

/* Dumps the translated body (r->acc) as the upstream payload and starts the
 * attempt loop. */
static void send_upstream(struct gb_req *r)
{
    struct gb_chat_opts opts;
    char id[GB_CHAT_ID_RAND + 16], rnd[GB_CHAT_ID_RAND + 1];
    const struct gb_config *cfg = gb_cfg(r->w->ctx);

    if (r->acc != NULL) { /* else the scan wrote the payload */
        r->up_payload = gb_chat_body_dumps(r->acc, cfg->safety_settings, cfg->safety_settings_text,
                                           &r->up_payload_len);
        json_decref(r->acc);
        r->acc = NULL;
    }
    r->client_stream = r->chat.stream;
    /* fake streaming: ask upstream for the whole answer, keep-alives meanwhile */
    if (r->chat.stream && gb_cfg(r->w->ctx)->fake_stream)
        r->chat.stream = 0;
    if (r->up_payload == NULL || build_url(r) < 0) {
        gb_req_error(r, 500, "internal_error", NULL, "out of memory");
        return;
    }
    r->up_stream = r->chat.stream;
    r->ops = &chat_ops;
    r->pool_model = r->chat.model;
    if (r->client_stream) {
        chat_opts(gb_cfg(r->w->ctx), &opts);
        gb_rand_alnum(rnd, GB_CHAT_ID_RAND);
        snprintf(id, sizeof id, "chatcmpl-%s", rnd);
        gb_chat_stream_init(&r->cs, &r->chat, &opts, id, (long long)time(NULL));
        r->cs_init = 1;
    }
    gb_upstream_start(r);
}

/* ---- remote images: image_url with an http(s) URL ------------------------ */

static void fetch_next(struct gb_req *r);

static size_t on_fetch_write(char *p, size_t size, size_t nmemb, void *ud)
{
    struct gb_req *r = ud;

    return gb_buf_append(&r->up_body, p, size * nmemb) < 0 ? 0 : size * nmemb;
}

static size_t on_fetch_header(char *p, size_t size, size_t nmemb, void *ud)
{
    struct gb_req *r = ud;
    size_t n = size * nmemb, i = 13, len;

    if (n > 13 && strncasecmp(p, "content-type:", 13) == 0) {
        while (i < n && (p[i] == ' ' || p[i] == '\t'))
            i++;
        for (len = 0; i + len < n && p[i + len] != ';' && p[i + len] != '\r' &&
                      p[i + len] != '\n' && p[i + len] != ' ';
             len++)
            ;
        if (len < sizeof r->up_ctype) {
            memcpy(r->up_ctype, p + i, len);
            r->up_ctype[len] = '\0';
        }
    }
    return n;
}

/* Answers 400 naming the image URL that could not be used. */
static void fetch_failed(struct gb_req *r, const char *url, const char *why)
{
    r->error = "image fetch failed";
    gb_req_error(r, 400, "invalid_image_url", "messages", "could not fetch image_url %.300s: %s",
                 url, why);
}

static void on_fetch_done(void *ud, CURLcode result)
{
    struct gb_req *r = ud;
    json_t *part = r->fetch_parts[r->fetch_i];
    char url[GB_IMAGE_URL_MAX];
    long status = 0;
    char *b64;
    size_t n;

    snprintf(url, sizeof url, "%s", json_string_value(json_object_get(part, GB_CHAT_FETCH_KEY)));
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    gb_curlev_easy_put(r->w->curl, r->easy);
    r->easy = NULL;
    r->xfer.easy = NULL;
    if (result != CURLE_OK) {
        fetch_failed(r, url,
                     result == CURLE_WRITE_ERROR || result == CURLE_FILESIZE_EXCEEDED
                         ? "the image is larger than IMAGE_FETCH_MAX_BYTES"
                         : curl_easy_strerror(result));
        return;
    }
    if (status < 200 || status > 299) {
        char why[64];
        snprintf(why, sizeof why, "the server answered %ld", status);
        fetch_failed(r, url, why);
        return;
    }
    if (strncmp(r->up_ctype, "image/", 6) != 0) {
        fetch_failed(r, url, "it is not an image (Content-Type must be image/*)");
        return;
    }
    b64 = malloc(BASE64_ENCODE_RAW_LENGTH(r->up_body.len) + 1);
    if (b64 == NULL) {
        gb_req_error(r, 500, "internal_error", NULL, "out of memory");
        return;
    }
    n = BASE64_ENCODE_RAW_LENGTH(r->up_body.len);
    base64_encode_raw(b64, r->up_body.len, (const uint8_t *)r->up_body.data);
    json_object_clear(part);
    json_object_set_new(part, "inlineData",
                        json_pack("{s:s, s:s%}", "mimeType", r->up_ctype, "data", b64, (size_t)n));
    free(b64);
    gb_buf_release(&r->up_body);
    r->fetch_i++;
    fetch_next(r);
}

static void fetch_next(struct gb_req *r)
{
    const struct gb_config *cfg = gb_cfg(r->w->ctx);
    json_t *part;
    const char *url;

    if (r->fetch_i == r->nfetch) {
        free(r->fetch_parts);
        r->fetch_parts = NULL;
        send_upstream(r);
        return;
    }
    part = r->fetch_parts[r->fetch_i];
    url = json_string_value(json_object_get(part, GB_CHAT_FETCH_KEY));
    if (cfg->image_fetch_max_bytes == 0) {
        fetch_failed(r, url ? url : "",
                     "downloading images is off (IMAGE_FETCH_MAX_BYTES=0); "
                     "send a data: URL");
        return;
    }
    gb_buf_release(&r->up_body);
    gb_buf_init(&r->up_body, (size_t)cfg->image_fetch_max_bytes);
    r->up_ctype[0] = '\0';
    r->easy = gb_curlev_easy_get(r->w->curl);
    if (r->easy == NULL || url == NULL) {
        gb_req_error(r, 500, "internal_error", NULL, "cannot start the image download");
        return;
    }
    curl_easy_setopt(r->easy, CURLOPT_URL, url);
    curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(r->easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(r->easy, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(r->easy, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(r->easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)cfg->image_fetch_max_bytes);
    curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, (long)GB_IMAGE_FETCH_TIMEOUT_MS);
    curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, cfg->connect_timeout * 1000L);
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_fetch_write);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, on_fetch_header);
    curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_USERAGENT, "gemini-balance");
    curl_easy_setopt(r->easy, CURLOPT_PROXY, cfg->proxy ? cfg->proxy : "");
    /* a URL from the client: only to public addresses, unless allowed or a
     * proxy (which then decides) stands between */
    if ((cfg->image_fetch_private || cfg->proxy != NULL
             ? gb_curlev_add(r->w->curl, &r->xfer, r->easy, on_fetch_done, r)
             : gb_curlev_add_public(r->w->curl, &r->xfer, r->easy, on_fetch_done, r)) < 0) {
        gb_curlev_easy_put(r->w->curl, r->easy);
        r->easy = NULL;
        gb_req_error(r, 500, "internal_error", NULL, "cannot start the image download");
    }
}

/* The request is translated (r->acc, or r->up_payload from the scan):
 * check the model, fetch remote images, then go upstream. */
static void route_translated(struct gb_req *r)
{
    snprintf(r->model, sizeof r->model, "%s", r->chat.client_model);
    if (strncmp(r->chat.model, "models/", 7) == 0)
        memmove(r->chat.model, r->chat.model + 7, strlen(r->chat.model + 7) + 1);
    if (!gb_model_name_ok(r->chat.model)) {
        gb_req_error(r, 400, "invalid_request_error", "model",
                     "invalid model name: use letters, digits, '.', '_' and '-' only");
        return;
    }
    if (r->chat.builtin_dropped)
        gb_debug("chat: function tools given: googleSearch/codeExecution left out");
    if (r->chat.remote_parts == 0) {
        send_upstream(r);
        return;
    }
    /* images by URL: download them first, one after the other */
    if (r->chat.remote_parts > GB_IMAGE_FETCH_MAX_COUNT) {
        gb_req_error(r, 400, "invalid_request_error", "messages",
                     "too many image URLs (%zu): at most %d per request", r->chat.remote_parts,
                     GB_IMAGE_FETCH_MAX_COUNT);
        return;
    }
    r->fetch_parts = calloc(r->chat.remote_parts, sizeof *r->fetch_parts);
    if (r->fetch_parts == NULL || gb_req_watch_client(r) < 0) {
        gb_req_error(r, 500, "internal_error", NULL, "out of memory");
        return;
    }
    r->nfetch = gb_chat_remote_parts(r->acc, r->fetch_parts, r->chat.remote_parts);
    r->fetch_i = 0;
    fetch_next(r);
}

void gb_route_chat(struct gb_req *r)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);
    size_t len = evbuffer_get_length(in);
    const char *body = (const char *)evbuffer_pullup(in, -1);
    const struct gb_config *cfg = gb_cfg(r->w->ctx);
    struct gb_chat_opts opts;
    struct gb_chat_err err = {{0}, {0}};
    struct gb_buf payload;
    json_error_t jerr;

    gb_req_set_state(r, GB_REQ_PARSE);
    if (len == 0) {
        gb_req_error(r, 400, "invalid_request_error", NULL,
                     "the request body is empty: expected a JSON object");
        return;
    }
    if (gb_json_depth(body, len) > (size_t)cfg->max_json_depth) {
        gb_req_error(r, 400, "invalid_request_error", NULL,
                     "the JSON body is nested deeper than %ld levels (MAX_JSON_DEPTH)",
                     cfg->max_json_depth);
        return;
    }
    chat_opts(cfg, &opts);
    /* the common request, written straight from its text */
    gb_buf_init(&payload, (size_t)1 << 31);
    if (gb_chat_request_scan(body, len, &opts, cfg->safety_settings_text, &r->chat, &payload) ==
        0) {
        gb_req_set_state(r, GB_REQ_TRANSLATE);
        r->up_payload = gb_buf_take(&payload, &r->up_payload_len);
        route_translated(r);
        return;
    }
    gb_buf_release(&payload);
    r->oai = json_loadb(body, len, 0, &jerr);
    if (r->oai == NULL) {
        gb_req_error(r, 400, "invalid_json", NULL, "invalid JSON body: %s (line %d, column %d)",
                     jerr.text, jerr.line, jerr.column);
        return;
    }
    if (!json_is_object(r->oai)) {
        gb_req_error(r, 400, "invalid_request_error", NULL,
                     "the request body must be a JSON object");
        return;
    }
    gb_req_set_state(r, GB_REQ_TRANSLATE);
    r->acc = gb_chat_request_to_gemini(r->oai, &opts, &r->chat, &err);
    if (r->acc == NULL && strcmp(err.message, "out of memory") == 0) {
        gb_req_error(r, 500, "internal_error", NULL, "out of memory");
        return;
    }
    if (r->acc == NULL) {
        gb_req_error(r, 400, "invalid_request_error", err.param[0] ? err.param : NULL, "%s",
                     err.message[0] ? err.message : "invalid request");
        return;
    }
    route_translated(r);
}
