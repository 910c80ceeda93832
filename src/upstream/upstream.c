/*
 * upstream.c - attempts, retries and relaying (DESIGN.md §4-5).
 *
 * One attempt = one easy handle on the worker's multi handle, with the key
 * in x-goog-api-key.  The write callback buffers (non-streamed answers and
 * errors) or parses SSE and hands events to the route (streamed 2xx).  The
 * completion callback classifies the attempt, tells the key pool, and then
 * relays, retries (another key, after a backoff for 5xx/transport errors) or
 * answers with the upstream's error.  Nothing is sent to the client before
 * the upstream answered 2xx, so failures before that are plain HTTP errors.
 */
#include "upstream/upstream.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "metrics/metrics.h"
#include "server/worker.h"
#include "upstream/policy.h"

/* Room for "x-goog-api-key: " plus the longest key we send. */
#define GB_KEY_HEADER_MAX 1024

/* Only a body above libcurl's EXPECT_100_THRESHOLD (1 MB in 7.88, 1 KB in
 * old releases: we take the lower, in bytes) makes it send "Expect:
 * 100-continue" and wait for the answer, so only those need the empty
 * "Expect:" that turns it off.  Smaller ones skip the header: one list node
 * and libcurl's header scans less per attempt. */
#define GB_EXPECT_MIN_BYTES 1024

static void attempt(struct gb_req *r);

/* Replaces every occurrence of secret in s (in place) with "***". */
static void scrub(char *s, const char *secret)
{
    size_t n = secret ? strlen(secret) : 0;
    char *p;

    if (n == 0)
        return;
    while ((p = strstr(s, secret)) != NULL) {
        memcpy(p, "***", 3);
        memmove(p + 3, p + n, strlen(p + n) + 1);
    }
}

static int on_sse_event(void *ud, const char *data, size_t len)
{
    struct gb_req *r = ud;

    return r->ops->on_event(r, data, len) < 0 ? GB_EABORT : 0;
}

/* Client output queued on the connection, in bytes. */
static size_t client_backlog(struct gb_req *r)
{
    struct bufferevent *bev = r->evcon ? evhttp_connection_get_bufferevent(r->evcon) : NULL;

    return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    struct gb_req *r = ud;
    size_t n = size * nmemb;

    r->up_data_ms = gb_now_ms();

    if (r->up_status == 0)
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->up_status);
    if (r->up_stream && r->up_status >= 200 && r->up_status < 300) {
        if (r->client_gone)
            return 0;
        if (client_backlog(r) > (size_t)gb_cfg(r->w->ctx)->stream_buffer_bytes) {
            r->paused = 1;
            return CURL_WRITEFUNC_PAUSE;
        }
        if (r->ops->on_event == NULL) { /* relayed as it is */
            if (!r->relaying) {
                gb_req_set_state(r, GB_REQ_RELAY);
                r->relaying = 1;
                gb_req_stream_start(r, r->up_ctype);
            }
            gb_req_stream_send(r, p, n);
            if (r->ops->on_raw != NULL)
                r->ops->on_raw(r, p, n);
            return n;
        }
        if (!r->sse_init) {
            gb_sse_parser_init(&r->sse, GB_SSE_MAX_EVENT_BYTES, on_sse_event, r);
            r->sse_init = 1;
        }
        int rc = gb_sse_parser_feed(&r->sse, p, n);
        /* the answer is committed to this key only once it produced output:
         * until then an empty stream can still be retried elsewhere */
        if (r->out.len > 0 && !r->relaying) {
            gb_req_set_state(r, GB_REQ_RELAY);
            r->relaying = 1;
            gb_req_stream_start(r, NULL);
        }
        if (r->relaying)
            gb_req_stream_flush(r);
        if (rc != 0) {
            r->error = rc == GB_ETOOBIG ? "upstream event too large" : "stream aborted";
            return 0; /* ends the transfer with CURLE_WRITE_ERROR */
        }
        return n;
    }
    if (gb_buf_append(&r->up_body, p, n) < 0) {
        if (r->up_status >= 200 && r->up_status < 300) {
            r->error = "upstream answer too large";
            return 0;
        }
        return n; /* an error body: its start is enough */
    }
    return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    struct gb_req *r = ud;
    size_t n = size * nmemb;
    int c0 = n > 0 ? p[0] | 0x20 : 0; /* lower case for letters */

    r->up_data_ms = gb_now_ms();
    /* most headers start with neither letter: one compare instead of two
     * strncasecmp calls each (a dozen headers per answer) */
    if (c0 != 'r' && c0 != 'c')
        return n;
    if (n > 12 && strncasecmp(p, "retry-after:", 12) == 0) {
        long secs = strtol(p + 12, NULL, 10);
        if (secs > 0)
            r->up_retry_after_ms = (int64_t)secs * 1000;
    } else if (n > 13 && strncasecmp(p, "content-type:", 13) == 0) {
        size_t i = 13, len;
        while (i < n && (p[i] == ' ' || p[i] == '\t'))
            i++;
        len = n - i;
        while (len > 0 &&
               (p[i + len - 1] == '\r' || p[i + len - 1] == '\n' || p[i + len - 1] == ' '))
            len--;
        if (len < sizeof r->up_ctype) {
            memcpy(r->up_ctype, p + i, len);
            r->up_ctype[len] = '\0';
        }
    }
    return n;
}

static void on_backoff(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    attempt(arg);
}

/* Ends a broken stream with an error event in the client's format: OpenAI's
 * error object, or Google's (framed as Gemini frames its events) when the
 * native stream is SSE.  Returns 0, or -1 for a native JSON-array stream,
 * which has no place for one: its connection is to be closed instead. */
static int stream_error_event(struct gb_req *r, const char *msg, int code)
{
    json_t *e;
    char *s;

    if (r->api == GB_API_GEMINI) {
        if (strstr(r->up_ctype, "event-stream") == NULL)
            return -1;
        e = json_pack("{s:{s:i, s:s, s:s}}", "error", "code", code, "message", msg, "status",
                      "UNAVAILABLE");
    } else {
        /* as the non-stream answer for the same failure says it */
        e = json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message", msg, "type", "server_error",
                      "param", "code", "upstream_error");
    }
    s = e ? json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (s != NULL)
        gb_buf_printf(&r->out, r->api == GB_API_GEMINI ? "data: %s\r\n\r\n" : "data: %s\n\n", s);
    free(s);
    json_decref(e);
    return 0;
}

/* Native API: the upstream's error body goes back as Google sent it (with
 * the key scrubbed, should Google ever echo it). */
static void reply_error_raw(struct gb_req *r)
{
    struct gb_keypool *pool = r->w->ctx->pool;
    int status = (int)r->up_status;

    r->error = "upstream error";
    if (r->up_body.len == 0 || status < 400 || status > 599) {
        gb_req_error(r, status >= 400 && status <= 599 ? status : 502, NULL, NULL,
                     "upstream answered %d with no body", status);
        return;
    }
    if (r->has_key) {
        char key[GB_KEY_HEADER_MAX];
        scrub(r->up_body.data, gb_keypool_key(pool, r->key_idx, key, sizeof key));
        memset(key, 0, sizeof key);
    }
    gb_req_reply(r, status, r->up_ctype[0] ? r->up_ctype : "application/json; charset=UTF-8",
                 r->up_body.data, strlen(r->up_body.data));
}

void gb_upstream_reply_error(struct gb_req *r)
{
    struct gb_keypool *pool = r->w->ctx->pool;
    json_t *root = NULL, *err;
    const char *gstatus = NULL;
    char msg[1024];
    int status = (int)r->up_status;

    if (r->api == GB_API_GEMINI) {
        reply_error_raw(r);
        return;
    }
    r->error = "upstream error";
    if (r->up_body.len > 0)
        root = json_loadb(r->up_body.data, r->up_body.len, 0, NULL);
    if (json_is_array(root)) {
        json_t *first = json_incref(json_array_get(root, 0));
        json_decref(root);
        root = first;
    }
    err = json_object_get(root, "error");
    gstatus = json_string_value(json_object_get(err, "status"));
    snprintf(msg, sizeof msg, "%s",
             json_string_value(json_object_get(err, "message"))
                 ? json_string_value(json_object_get(err, "message"))
                 : "upstream error");
    if (r->has_key) {
        char key[GB_KEY_HEADER_MAX];
        scrub(msg, gb_keypool_key(pool, r->key_idx, key, sizeof key));
        memset(key, 0, sizeof key);
    }
    if (status < 400 || status > 599)
        status = 502;
    /* OpenAI's codes where it has one for the case: the upstream's 404 on a
     * model call is an unknown model; else Google's status, as sent */
    if (status == 404)
        gstatus = "model_not_found";
    else if (status == 429)
        gstatus = "rate_limit_exceeded";
    gb_req_error(r, status, gstatus, NULL, "%s", msg);
    json_decref(root);
}

static void reply_transport_error(struct gb_req *r, CURLcode result)
{
    if (result == CURLE_OPERATION_TIMEDOUT) {
        r->error = "upstream timed out";
        gb_req_error(r, 504, "upstream_timeout", NULL, "upstream timed out");
    } else {
        r->error = "upstream connection failed";
        gb_req_error(r, 502, "upstream_error", NULL, "upstream request failed: %s",
                     curl_easy_strerror(result));
    }
}

/* Everything after the upstream answered 2xx and relaying began. */
static void end_relay(struct gb_req *r, CURLcode result)
{
    if (result == CURLE_OK && r->error == NULL &&
        !(r->sse_init && gb_sse_parser_pending(&r->sse))) {
        if (r->ops->on_stream_end != NULL)
            r->ops->on_stream_end(r);
    } else if (!r->stream_error_sent) {
        if (r->error == NULL)
            r->error = "upstream stream broke off";
        if (stream_error_event(
                r, result == CURLE_OK ? "upstream stream ended early" : "upstream stream broke off",
                502) < 0) {
            gb_req_stream_abort(r);
            return;
        }
    }
    gb_req_stream_end(r);
}

static enum gb_metric_attempt attempt_outcome(const struct gb_verdict *v, CURLcode result,
                                              long status)
{
    switch (v->key) {
    case GB_KEY_OK:
        return GB_ATTEMPT_OK;
    case GB_KEY_FAILED:
        return GB_ATTEMPT_KEY_INVALID;
    case GB_KEY_LIMITED:
        return GB_ATTEMPT_RATE_LIMITED;
    case GB_KEY_NEUTRAL:
        break;
    }
    if (status >= 500)
        return GB_ATTEMPT_SERVER_ERROR;
    if (status == 0 || result != CURLE_OK)
        return GB_ATTEMPT_TRANSPORT;
    return GB_ATTEMPT_CLIENT_ERROR;
}

/* A failed attempt goes to the error log, its message scrubbed of the key. */
static void log_error(struct gb_req *r, const struct gb_verdict *v, CURLcode result, long status)
{
    struct gb_ctx *ctx = r->w->ctx;
    struct gb_store_error e;
    json_t *root = NULL;
    const char *msg = NULL;
    char key[GB_KEY_HEADER_MAX];

    if (ctx->store == NULL)
        return;
    memset(&e, 0, sizeof e);
    snprintf(e.key_hash, sizeof e.key_hash, "%s", gb_keypool_key_hash(ctx->pool, r->key_idx));
    snprintf(e.key_id, sizeof e.key_id, "%s", gb_keypool_key_id(ctx->pool, r->key_idx));
    snprintf(e.model, sizeof e.model, "%s", r->pool_model ? r->pool_model : "");
    e.status = (int)status;
    snprintf(e.reason, sizeof e.reason, "%s",
             v->reason[0]  ? v->reason
             : status == 0 ? "transport"
                           : "error");
    if (r->up_body.len > 0 && status >= 400) {
        root = json_loadb(r->up_body.data, r->up_body.len, 0, NULL);
        if (json_is_array(root))
            msg = json_string_value(
                json_object_get(json_object_get(json_array_get(root, 0), "error"), "message"));
        else
            msg = json_string_value(json_object_get(json_object_get(root, "error"), "message"));
    }
    snprintf(e.message, sizeof e.message, "%s",
             msg                                 ? msg
             : status == 0 || result != CURLE_OK ? curl_easy_strerror(result)
                                                 : "");
    json_decref(root);
    scrub(e.message, gb_keypool_key(ctx->pool, r->key_idx, key, sizeof key));
    memset(key, 0, sizeof key);
    gb_store_log_error(ctx->store, &e);
}

/* Tells the key pool what the attempt taught us about its key. */
static void report_attempt(struct gb_req *r, const struct gb_verdict *v, CURLcode result,
                           long status)
{
    struct gb_key_report rep = {v->cooldown_ms, v->per_day, NULL, 0};
    char err[160];

    if (v->key == GB_KEY_OK)
        rep.latency_ms = (int)((gb_now_us() - r->attempt_t0_us) / 1000);
    if (status >= 400)
        snprintf(err, sizeof err, "%ld %s", status, v->reason[0] ? v->reason : "error");
    else
        snprintf(err, sizeof err, "%s", curl_easy_strerror(result));
    rep.error = err;
    gb_keypool_report(r->w->ctx->pool, r->key_idx, r->pool_model, v->key, &rep);
    gb_metrics_attempt(attempt_outcome(v, result, status));
    if (v->key == GB_KEY_LIMITED)
        gb_metrics_cooldown();
    if (v->key != GB_KEY_OK)
        log_error(r, v, result, status);
}

static void on_done(void *ud, CURLcode result)
{
    struct gb_req *r = ud;
    struct gb_ctx *ctx = r->w->ctx;
    struct gb_verdict v;
    long status = 0;

    if (r->idle != NULL)
        evtimer_del(r->idle);

    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    r->up_status = status;
    gb_curlev_easy_put(r->w->curl, r->easy);
    r->easy = NULL;
    r->xfer.easy = NULL;

    if (r->relaying) {
        struct gb_key_report ok = {0, 0, NULL, (int)((gb_now_us() - r->attempt_t0_us) / 1000)};
        gb_keypool_report(ctx->pool, r->key_idx, r->pool_model, GB_KEY_OK, &ok);
        end_relay(r, result);
        return;
    }
    gb_policy_classify(result, status, r->up_body.data, r->up_body.len, r->up_retry_after_ms, &v);
    if (status >= 200 && status < 300 && result != CURLE_OK) {
        /* cut off after a 2xx head: nothing sent yet, so try again */
        v.key = GB_KEY_NEUTRAL;
        v.retry = r->error == NULL;
        v.backoff = 1;
    }
    report_attempt(r, &v, result, status);
    if (v.key == GB_KEY_OK && result == CURLE_OK) {
        if (r->up_stream && r->ops->on_event != NULL) {
            /* a translated stream that ended without any output: empty */
            gb_sse_parser_release(&r->sse);
            r->sse_init = 0;
            gb_buf_reset(&r->out);
            if (gb_upstream_retry(r, "empty stream") == 0)
                return;
            r->error = "empty upstream answer";
            gb_req_error(r, 502, "empty_response", NULL,
                         "the upstream answered with an empty response on every attempt");
        } else if (r->up_stream) {
            /* a relayed stream that sent no byte at all: empty, retry */
            if (gb_upstream_retry(r, "empty stream") == 0)
                return;
            r->error = "empty upstream answer";
            gb_req_error(r, 502, NULL, NULL,
                         "the upstream answered with an empty stream on every attempt");
        } else {
            gb_req_set_state(r, GB_REQ_RELAY);
            r->ops->on_body(r);
        }
        return;
    }
    gb_debug("attempt %d with key %s: status %ld, %s", r->attempts,
             gb_keypool_key_id(ctx->pool, r->key_idx), status, curl_easy_strerror(result));
    if (v.retry && r->round_attempts <= gb_cfg(ctx)->max_retries) {
        if (v.backoff) {
            struct timeval tv = {0, GB_RETRY_BACKOFF_MS * 1000};
            if (r->backoff == NULL)
                r->backoff = evtimer_new(r->w->base, on_backoff, r);
            if (r->backoff != NULL) {
                evtimer_add(r->backoff, &tv);
                return;
            }
        }
        attempt(r);
        return;
    }
    if (status == 0 || (status >= 200 && status < 300))
        reply_transport_error(r, result == CURLE_OK ? CURLE_RECV_ERROR : result);
    else
        gb_upstream_reply_error(r);
}

/*
 * STREAM_IDLE_TIMEOUT: a streamed attempt that receives nothing for that
 * long is broken, and ends as libcurl's own timeouts do
 * (CURLE_OPERATION_TIMEDOUT).  libcurl's low-speed check would do it, but it
 * re-arms a one-second timer on every read and wakes every stream once a
 * second; here a read only notes the time (on_write), and the timer, when it
 * fires, sleeps again for what is left of the period after the last read.
 */
static void on_idle(evutil_socket_t fd, short what, void *arg)
{
    struct gb_req *r = arg;
    int64_t idle = gb_cfg(r->w->ctx)->stream_idle_timeout_s * 1000;
    int64_t silent = gb_now_ms() - r->up_data_ms;

    (void)fd;
    (void)what;
    if (r->easy == NULL)
        return;
    if (r->paused)
        silent = 0; /* we stopped reading, for a slow client: not the upstream's silence */
    if (silent >= 0 && silent < idle) {
        struct timeval tv = {(idle - silent) / 1000, (idle - silent) % 1000 * 1000};
        evtimer_add(r->idle, &tv);
        return;
    }
    gb_debug("attempt %d with key %s: no upstream bytes for %lld ms", r->attempts,
             gb_keypool_key_id(r->w->ctx->pool, r->key_idx), (long long)silent);
    gb_curlev_remove(r->w->curl, &r->xfer);
    on_done(r, CURLE_OPERATION_TIMEDOUT);
}

/* Arms the idle timer of a streamed attempt that just started; 0, or
 * GB_ENOMEM. */
static int idle_arm(struct gb_req *r)
{
    long idle = gb_cfg(r->w->ctx)->stream_idle_timeout_s;
    struct timeval tv = {idle, 0};

    if (!r->up_stream || idle <= 0)
        return 0;
    if (r->idle == NULL && (r->idle = evtimer_new(r->w->base, on_idle, r)) == NULL)
        return GB_ENOMEM;
    r->up_data_ms = gb_now_ms();
    evtimer_add(r->idle, &tv);
    return 0;
}

static int setup_easy(struct gb_req *r, const char *key)
{
    const struct gb_config *cfg = gb_cfg(r->w->ctx);
    struct curl_slist *h = NULL, *t;
    char line[GB_KEY_HEADER_MAX + 32];
    CURL *e = r->easy;

    snprintf(line, sizeof line, "x-goog-api-key: %s", key);
    h = curl_slist_append(h, line);
    memset(line, 0, sizeof line); /* the list holds its own copy */
    if (h != NULL && r->up_payload != NULL &&
        (t = curl_slist_append(h, "Content-Type: application/json")))
        h = t;
    if (h != NULL && r->up_payload != NULL && r->up_payload_len > GB_EXPECT_MIN_BYTES &&
        (t = curl_slist_append(h, "Expect:")) != NULL)
        h = t;
    if (h == NULL)
        return GB_ENOMEM;
    curl_slist_free_all(r->up_headers);
    r->up_headers = h;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    if (r->up_payload != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->up_payload);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->up_payload_len);
    } else {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, cfg->time_out * 1000L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, cfg->connect_timeout * 1000L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    /* only the configured proxy: an http_proxy in the environment must not
     * capture the upstream traffic (nor loopback tests) */
    curl_easy_setopt(e, CURLOPT_PROXY, cfg->proxy ? cfg->proxy : "");
    /* no proxy, so nothing for NO_PROXY to exempt: an empty list spares
     * libcurl reading no_proxy and NO_PROXY from the environment at every
     * transfer (with a proxy, NO_PROXY from the environment still applies) */
    if (cfg->proxy == NULL)
        curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    /* last: on success the transfer holds a URL cache entry until it ends */
    return gb_curlev_set_url(r->w->curl, &r->xfer, e, r->up_url);
}

static void attempt(struct gb_req *r)
{
    struct gb_ctx *ctx = r->w->ctx;
    char key[GB_KEY_HEADER_MAX];
    int64_t retry_ms = 0;
    uint32_t idx;
    int rc;

    gb_req_set_state(r, GB_REQ_ATTEMPT);
    rc = gb_keypool_pick(ctx->pool, r->pool_model, r->tried, r->ntried, &idx, &retry_ms);
    if (rc == GB_ENOKEY) {
        r->error = "no api keys";
        gb_req_error(r, 503, "no_api_keys", NULL,
                     "no API keys configured: add them to .env (API_KEYS)");
        return;
    }
    if (rc == GB_EAGAIN) {
        long long secs = gb_req_retry_after(r, retry_ms);

        r->error = "upstream throttling the gateway";
        gb_req_error(r, 429, r->api == GB_API_GEMINI ? "RESOURCE_EXHAUSTED" : "rate_limit_exceeded",
                     NULL,
                     "the upstream is throttling this gateway (most keys answered 429 at once); "
                     "retry in %lld s",
                     secs);
        return;
    }
    if (rc == GB_EBUSY) {
        /* the last key's own error, or ours; either way the pool has a key
         * again in retry_ms, which a client (the openai SDK does) waits for */
        if (r->round_attempts > 0 && r->up_status >= 400) {
            if ((r->up_status == 429 || r->up_status == 503) && retry_ms > 0)
                gb_req_retry_after(r, retry_ms);
            gb_upstream_reply_error(r);
            return;
        }
        long long secs = gb_req_retry_after(r, retry_ms);

        r->error = "no usable key";
        gb_req_error(
            r, 503, "no_usable_key", NULL,
            "no usable API key: all %zu keys are disabled or cooling down; retry in %lld s",
            gb_keypool_size(ctx->pool), secs);
        return;
    }
    if (r->ntried < GB_REQ_MAX_TRIED)
        r->tried[r->ntried++] = idx;
    r->key_idx = idx;
    r->has_key = 1;
    r->attempts++;
    r->round_attempts++;
    r->up_status = 0;
    r->up_retry_after_ms = -1;
    r->up_ctype[0] = '\0';
    gb_buf_release(&r->up_body);
    gb_buf_init(&r->up_body, r->up_stream ? GB_UPSTREAM_ERROR_MAX : GB_UPSTREAM_BODY_MAX);
    r->attempt_t0_us = gb_now_us();
    r->easy = gb_curlev_easy_get(r->w->curl);
    gb_keypool_key(ctx->pool, idx, key, sizeof key);
    /* the idle timer first: a set-up easy handle holds a URL cache entry,
     * which only the transfer's end (or a failed add) gives back */
    rc = r->easy == NULL ? GB_ENOMEM : idle_arm(r);
    if (rc == 0)
        rc = setup_easy(r, key);
    memset(key, 0, sizeof key);
    if (rc < 0 || gb_curlev_add(r->w->curl, &r->xfer, r->easy, on_done, r) < 0) {
        gb_curlev_easy_put(r->w->curl, r->easy);
        r->easy = NULL;
        r->error = "cannot start upstream request";
        gb_req_error(r, 500, "internal_error", NULL, "cannot start the upstream request");
    }
}

int gb_upstream_retry(struct gb_req *r, const char *why)
{
    if (r->round_attempts > gb_cfg(r->w->ctx)->max_retries)
        return -1;
    gb_debug("attempt %d with key %s: %s, retrying", r->attempts,
             gb_keypool_key_id(r->w->ctx->pool, r->key_idx), why);
    attempt(r);
    return 0;
}

void gb_upstream_start(struct gb_req *r)
{
    r->ntried = 0;
    r->round_attempts = 0;
    gb_req_keepalive_arm(r);
    if (r->hup == NULL && r->evcon != NULL && gb_req_watch_client(r) < 0) {
        gb_req_error(r, 500, "internal_error", NULL, "out of memory");
        return;
    }
    attempt(r);
}
