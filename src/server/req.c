/*
 * req.c - request lifecycle: state changes, replies, client hang-up
 * detection and the single exit gb_req_finish().
 *
 * Client hang-up: evhttp stops reading a connection while a request is
 * pending, so it would not notice a client that leaves.  gb_req_watch_client
 * adds our own read event on the socket; when it sees EOF we free the
 * connection, which runs on_conn_close, which finishes the request (and so
 * cancels the upstream transfer).  A write error while streaming reaches
 * on_conn_close through evhttp itself.
 */
#include "server/req.h"

#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http_struct.h> /* the request's HTTP version: evhttp has no getter */
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "metrics/metrics.h"
#include "server/conn.h"
#include "server/worker.h"

static const char *const state_names[] = {
#define GB_REQ_STATE_NAME(s) #s,
    GB_REQ_STATES(GB_REQ_STATE_NAME)
#undef GB_REQ_STATE_NAME
};

const char *gb_req_state_name(enum gb_req_state s)
{
    return state_names[s];
}

void gb_req__set_state(struct gb_req *r, enum gb_req_state s, const char *file, int line)
{
    if (gb_log_enabled(GB_LOG_DEBUG))
        gb_debug("req %p: %s -> %s (%s:%d)", (void *)r, state_names[r->state], state_names[s], file,
                 line);
    r->state = s;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 302:
        return "Found";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

/* Stops the client watch and the close callback: evhttp owns the
 * connection's fate from here. */
static void unhook_client(struct gb_req *r)
{
    if (r->hup != NULL) {
        event_free(r->hup);
        r->hup = NULL;
    }
    if (r->evcon != NULL)
        gb_conn_rehook(r->w, r->evcon);
}

static const char *const route_names[] = {"chat",   "embeddings", "models",
                                          "native", "admin",      "other"};

/* Metrics and the request log for a finished request. */
static void record(struct gb_req *r)
{
    struct gb_ctx *ctx = r->w->ctx;
    int status = r->client_gone && !r->reply_started ? 499 : r->status;
    double latency = (double)(gb_now_us() - r->t0_us) / 1e6;
    struct gb_store_request rec;

    gb_metrics_request((enum gb_metric_route)r->route, r->model[0] ? r->model : NULL, status,
                       latency, r->ttfb_us ? (double)(r->ttfb_us - r->t0_us) / 1e6 : -1);
    if (ctx->store == NULL || r->route == GB_ROUTE_OTHER || r->route == GB_ROUTE_ADMIN)
        return;
    memset(&rec, 0, sizeof rec);
    snprintf(rec.route, sizeof rec.route, "%s", route_names[r->route]);
    snprintf(rec.model, sizeof rec.model, "%s", r->model);
    if (r->has_key) {
        snprintf(rec.key_hash, sizeof rec.key_hash, "%s",
                 gb_keypool_key_hash(ctx->pool, r->key_idx));
        snprintf(rec.key_id, sizeof rec.key_id, "%s", gb_keypool_key_id(ctx->pool, r->key_idx));
    }
    rec.status = status;
    rec.attempts = r->attempts;
    rec.latency_ms = (int)(latency * 1000);
    rec.prompt_tokens = r->prompt_tokens;
    rec.completion_tokens = r->completion_tokens;
    rec.total_tokens = r->total_tokens;
    gb_store_log_request(ctx->store, &rec);
}

void gb_req_finish(struct gb_req *r)
{
    struct gb_worker *w = r->w;
    struct gb_log_access a;

    gb_req_set_state(r, GB_REQ_DONE);
    if (r->easy != NULL) {
        gb_curlev_remove(w->curl, &r->xfer);
        gb_curlev_easy_put(w->curl, r->easy);
        r->easy = NULL;
    }
    unhook_client(r);
    if (r->backoff != NULL)
        event_free(r->backoff);
    if (r->keepalive != NULL)
        event_free(r->keepalive);
    if (r->idle != NULL)
        event_free(r->idle);
    curl_slist_free_all(r->up_headers);
    free(r->up_url);
    if (!r->up_payload_borrowed)
        free(r->up_payload);
    gb_buf_release(&r->up_body);
    gb_buf_release(&r->out);
    if (r->sse_init)
        gb_sse_parser_release(&r->sse);
    if (r->cs_init)
        gb_chat_stream_release(&r->cs);
    json_decref(r->oai);
    json_decref(r->acc);
    free(r->fetch_parts);

    record(r);
    a.method = r->method;
    a.path = r->path;
    a.model = r->model[0] ? r->model : NULL;
    a.status = r->client_gone == 1 && !r->reply_started ? 499 : r->status;
    a.attempts = r->attempts;
    a.latency_ms = (double)(gb_now_us() - r->t0_us) / 1000.0;
    a.key_id = r->has_key ? gb_keypool_key_id(w->ctx->pool, r->key_idx) : NULL;
    a.error = r->client_gone == 1 ? "client closed the connection" : r->error;
    gb_log_request(&a);

    w->active--;
    r->magic = 0;
    free(r);
}

/* evhttp is freeing the client connection (hang-up, write error). */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct gb_req *r = arg;
    struct evhttp_request *ev = r->ev;

    gb_conn_gone(r->w, evcon);
    if (!r->client_gone)
        r->client_gone = 1;
    r->ev = NULL;
    if (r->hup != NULL) {
        event_free(r->hup);
        r->hup = NULL;
    }
    r->evcon = NULL;
    /* first cancel the transfer (it may point into ev's body), then free a
     * request evhttp detached from the failed connection: it is ours; one
     * still attached is freed by evhttp right after this callback */
    gb_req_finish(r);
    if (ev != NULL && evhttp_request_get_connection(ev) == NULL)
        evhttp_request_free(ev);
}

static void on_client_readable(evutil_socket_t fd, short what, void *arg)
{
    struct gb_req *r = arg;
    char c;
    ssize_t n;

    (void)what;
    n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0)
        return; /* pipelined bytes: leave them to evhttp, stop watching */
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        event_add(r->hup, NULL);
        return;
    }
    gb_debug("req %p: client hung up", (void *)r);
    /* runs on_conn_close, which finishes r */
    evhttp_connection_free(r->evcon);
}

int gb_req_watch_client(struct gb_req *r)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(r->evcon);
    evutil_socket_t fd = bev != NULL ? bufferevent_getfd(bev) : -1;

    evhttp_connection_set_closecb(r->evcon, on_conn_close, r);
    if (fd < 0)
        return 0;
    r->hup = event_new(r->w->base, fd, EV_READ, on_client_readable, r);
    if (r->hup == NULL)
        return GB_ENOMEM;
    event_add(r->hup, NULL);
    return 0;
}

/* Adds "Date" (RFC 9110 IMF-fixdate) from a per-thread copy rendered once
 * a second: evhttp renders it for every answer otherwise (gmtime and a
 * formatted print, ~3 K instructions of a ~180 K one) and skips that when
 * the header is there already. */
static void add_date(struct evkeyvalq *headers)
{
    static const char wday[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static _Thread_local time_t rendered = -1;
    static _Thread_local char date[64];
    time_t now = time(NULL);

    if (now != rendered) {
        struct tm tm;

        if (gmtime_r(&now, &tm) == NULL)
            return; /* evhttp adds its own */
        snprintf(date, sizeof date, "%s, %02d %s %04d %02d:%02d:%02d GMT", wday[tm.tm_wday % 7],
                 tm.tm_mday, mon[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                 tm.tm_sec);
        rendered = now;
    }
    evhttp_add_header(headers, "Date", date);
}

void gb_req_add_cors(struct gb_req *r, struct evkeyvalq *headers)
{
    const struct gb_strlist *allowed = &gb_cfg(r->w->ctx)->allowed_origins;
    const char *origin =
        r->ev ? evhttp_find_header(evhttp_request_get_input_headers(r->ev), "Origin") : NULL;

    if (gb_strlist_has(allowed, "*")) {
        evhttp_add_header(headers, "Access-Control-Allow-Origin", "*");
        return;
    }
    if (origin != NULL && gb_strlist_has(allowed, origin))
        evhttp_add_header(headers, "Access-Control-Allow-Origin", origin);
    /* the answer depends on Origin, also when it is refused: a shared cache
     * must not serve this one to another origin */
    evhttp_add_header(headers, "Vary", "Origin");
}

long long gb_req_retry_after(struct gb_req *r, int64_t ms)
{
    long long secs = (long long)((ms + 999) / 1000);
    struct evkeyvalq *h;
    char text[24];

    if (r->ev == NULL)
        return secs;
    h = evhttp_request_get_output_headers(r->ev);
    snprintf(text, sizeof text, "%lld", secs);
    evhttp_add_header(h, "Retry-After", text);
    evhttp_add_header(h, "Access-Control-Expose-Headers", "Retry-After");
    return secs;
}

void gb_req_not_allowed(struct gb_req *r, const char *allow, const char *code)
{
    r->error = "method not allowed";
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Allow", allow);
    gb_req_error(r, 405, code, NULL, "%s is not allowed on %s: use %s", r->method, r->path, allow);
}

int gb_req_http10(const struct evhttp_request *ev)
{
    return ev->major == 1 && ev->minor == 0;
}

char *gb_req_query_param(const struct gb_req *r, const char *name)
{
    size_t n = strlen(name);
    const char *p = r->query;

    while (p != NULL && *p != '\0') {
        size_t len = strcspn(p, "&");

        if (len >= n && strncmp(p, name, n) == 0 && (len == n || p[n] == '=')) {
            char *raw = len > n ? strndup(p + n + 1, len - n - 1) : strdup("");
            char *v = raw != NULL ? evhttp_uridecode(raw, 1, NULL) : NULL;

            free(raw);
            return v;
        }
        p += len + (p[len] == '&');
    }
    return NULL;
}

/* Writes what evcon's output holds to its socket now; returns its
 * bufferevent when all of it went out, else NULL (nothing queued, a partial
 * write or an error, which the write event then deals with as usual). */
static struct bufferevent *write_out(struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
    evutil_socket_t fd = bev != NULL ? bufferevent_getfd(bev) : -1;
    struct evbuffer *out;
    int n;

    if (fd < 0)
        return NULL;
    out = bufferevent_get_output(bev);
    if (evbuffer_get_length(out) == 0)
        return NULL;
    /* a socket bufferevent keeps its output's start frozen outside its
     * own write callback */
    evbuffer_unfreeze(out, 1);
    n = evbuffer_write(out, fd);
    evbuffer_freeze(out, 1);
    return n > 0 && evbuffer_get_length(out) == 0 ? bev : NULL;
}

/* Writes the reply evhttp just queued on evcon now, instead of from the
 * connection's write event in the next loop pass, and when all of it went
 * out runs evhttp's "reply written" step (bufferevent_trigger ->
 * evhttp_send_done) at once.  That takes an epoll_ctl pair and an
 * epoll_wait off every answer.  Called after gb_req_finish, so metrics
 * and the access line are done before the client can see the answer.
 * evhttp_send_done may
 * free evcon (Connection: close), so the caller must not touch it after.
 * A partial or failed write leaves the rest to the write event, as before
 * (it reports errors itself). */
static void write_now(struct evhttp_connection *evcon)
{
    struct bufferevent *bev = write_out(evcon);

    if (bev != NULL)
        bufferevent_trigger(bev, EV_WRITE, 0);
}

void gb_req_reply(struct gb_req *r, int status, const char *ctype, const char *body, size_t len)
{
    struct evhttp_request *ev = r->ev;
    struct evhttp_connection *evcon = r->evcon, *now = NULL;
    struct evkeyvalq *h;
    struct evbuffer *buf;

    r->status = status;
    if (r->ttfb_us == 0)
        r->ttfb_us = gb_now_us();
    if (ev != NULL && !r->client_gone) {
        /* the connection's close callback goes back to conn.c first: the
         * reply may free the connection; the client watch stays until the
         * reply is out, so that evhttp reading the socket again and the
         * watch going away cancel out in libevent's change list (no
         * epoll_ctl) */
        if (evcon != NULL)
            gb_conn_rehook(r->w, evcon);
        h = evhttp_request_get_output_headers(ev);
        if (ctype != NULL)
            evhttp_add_header(h, "Content-Type", ctype);
        gb_req_add_cors(r, h);
        add_date(h);
        buf = evbuffer_new();
        if (evhttp_request_get_command(ev) == EVHTTP_REQ_HEAD) {
            /* evhttp would send the body after a HEAD answer (and no
             * Content-Length): the GET's length, no body */
            char n[24];
            snprintf(n, sizeof n, "%zu", len);
            evhttp_add_header(h, "Content-Length", n);
        } else if (buf != NULL && len > 0) {
            evbuffer_add(buf, body, len);
        }
        r->ev = NULL;
        evhttp_send_reply(ev, status, reason_phrase(status), buf);
        if (buf != NULL)
            evbuffer_free(buf);
        /* the transfer may still point into ev's body, which evhttp frees
         * once the reply is out: then the write waits for the loop */
        if (evcon != NULL && r->easy == NULL) {
            r->evcon = NULL; /* evhttp may free it once the reply is out */
            now = evcon;
        }
    }
    unhook_client(r);
    gb_req_finish(r);
    /* after the bookkeeping: metrics and the access line never lag behind
     * an answer the client already has */
    if (now != NULL)
        write_now(now);
}

static const char *openai_error_type(int status)
{
    switch (status) {
    case 400:
    case 404:
    case 413:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 429:
        return "rate_limit_error";
    default:
        return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

static const char *google_status(int status)
{
    switch (status) {
    case 400:
    case 413:
    case 415:
        return "INVALID_ARGUMENT";
    case 401:
        return "UNAUTHENTICATED";
    case 403:
        return "PERMISSION_DENIED";
    case 404:
        return "NOT_FOUND";
    case 429:
        return "RESOURCE_EXHAUSTED";
    case 405: /* what grpc-gateway answers a method a path does not take */
    case 501:
        return "UNIMPLEMENTED";
    case 503:
        return "UNAVAILABLE";
    case 504:
        return "DEADLINE_EXCEEDED";
    default:
        return status >= 500 ? "INTERNAL" : "FAILED_PRECONDITION";
    }
}

void gb_req_error(struct gb_req *r, int status, const char *code, const char *param,
                  const char *fmt, ...)
{
    char msg[1024];
    json_t *err, *root;
    char *body;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->error == NULL)
        r->error = "error";
    if (r->reply_started) {
        /* the 200 head went out with keep-alives: end the stream with the error */
        err = json_pack("{s:{s:s, s:s, s:n, s:s?, s:i}}", "error", "message", msg, "type",
                        openai_error_type(status), "param", "code", code, "status", status);
        body = err ? json_dumps(err, JSON_PRESERVE_ORDER | JSON_COMPACT) : NULL;
        if (body != NULL)
            gb_buf_printf(&r->out, "data: %s\n\n", body);
        free(body);
        json_decref(err);
        gb_req_stream_end(r);
        return;
    }
    if (r->api == GB_API_GEMINI && code != NULL &&
        code[strspn(code, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_")]) {
        /* Google's shape: status is a google.rpc.Code name, which clients
         * branch on (retry on UNAVAILABLE); our own reason goes in an
         * ErrorInfo detail, upper-cased as Google's reasons are */
        char reason[64];
        size_t i;

        for (i = 0; code[i] != '\0' && i < sizeof reason - 1; i++)
            reason[i] = (char)toupper((unsigned char)code[i]);
        reason[i] = '\0';
        err = json_pack("{s:i, s:s, s:s, s:[{s:s, s:s, s:s}]}", "code", status, "message", msg,
                        "status", google_status(status), "details", "@type",
                        "type.googleapis.com/google.rpc.ErrorInfo", "reason", reason, "domain",
                        "gemini-balance");
    } else if (r->api == GB_API_GEMINI) {
        err = json_pack("{s:i, s:s, s:s}", "code", status, "message", msg, "status",
                        code ? code : google_status(status));
    } else {
        err = json_pack("{s:s, s:s, s:s?, s:s?}", "message", msg, "type", openai_error_type(status),
                        "param", param, "code", code);
    }
    root = json_pack("{s:o}", "error", err);
    body = root ? json_dumps(root, JSON_PRESERVE_ORDER | JSON_COMPACT) : NULL;
    json_decref(root);
    gb_req_reply(r, status, "application/json", body ? body : "{}", body ? strlen(body) : 2);
    free(body);
}

void gb_req_stream_start(struct gb_req *r, const char *ctype)
{
    struct evkeyvalq *h;

    if (r->reply_started || r->ev == NULL || r->client_gone)
        return;
    r->reply_started = 1;
    r->status = 200;
    r->ttfb_us = gb_now_us();
    /* HTTP/1.0 has no chunks: the stream ends with the connection.  evhttp
     * would keep a keep-alive 1.0 connection and announce Content-Length: 0;
     * a close asked for by the client makes it say Connection: close */
    if (gb_req_http10(r->ev)) {
        h = evhttp_request_get_input_headers(r->ev);
        while (evhttp_remove_header(h, "Connection") == 0)
            ;
        evhttp_add_header(h, "Connection", "close");
    }
    h = evhttp_request_get_output_headers(r->ev);
    evhttp_add_header(h, "Content-Type", ctype ? ctype : "text/event-stream; charset=utf-8");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evhttp_add_header(h, "X-Accel-Buffering", "no");
    gb_req_add_cors(r, h);
    add_date(h);
    evhttp_send_reply_start(r->ev, 200, "OK");
}

/* A chunk left the socket buffer: resume a paused upstream read. */
static void on_chunk_sent(struct evhttp_connection *evcon, void *arg)
{
    struct gb_req *r = arg;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);

    if (r->magic == 0 || !r->paused || r->easy == NULL)
        return;
    if (bev != NULL && evbuffer_get_length(bufferevent_get_output(bev)) >
                           (size_t)gb_cfg(r->w->ctx)->stream_buffer_bytes)
        return;
    r->paused = 0;
    curl_easy_pause(r->easy, CURLPAUSE_CONT);
}

/* Writes a chunk evhttp just queued to the client socket at once, in the
 * loop pass that made it.  Left to itself the bufferevent would watch for
 * writability (epoll_ctl), write in the next pass and unwatch (epoll_ctl):
 * two system calls and a loop pass per stream event.  When all of it went
 * out, the write watch is dropped again before the loop applies its change
 * list (with EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST the add and the delete
 * cancel out), and what the write callback would have done runs here;
 * evhttp enables writing again with the next chunk it queues.  A partial
 * write, or an error, leaves the rest to the bufferevent as before. */
static void chunk_write_now(struct gb_req *r)
{
    struct bufferevent *bev = write_out(r->evcon);

    if (bev == NULL)
        return;
    bufferevent_disable(bev, EV_WRITE);
    on_chunk_sent(r->evcon, r);
}

/* Queues a chunk; now: also writes it to the socket at once. */
static void stream_send(struct gb_req *r, const char *p, size_t len, int now)
{
    struct evbuffer *buf = r->w->chunk;

    if (len == 0 || r->ev == NULL || r->client_gone)
        return;
    if (r->keepalive != NULL)
        r->sent_ms = gb_now_ms();
    evbuffer_add(buf, p, len);
    evhttp_send_reply_chunk_with_cb(r->ev, buf, on_chunk_sent, r);
    /* evhttp took it all, unless the reply has no body (HEAD) */
    evbuffer_drain(buf, evbuffer_get_length(buf));
    if (now)
        chunk_write_now(r);
}

void gb_req_stream_send(struct gb_req *r, const char *p, size_t len)
{
    stream_send(r, p, len, 1);
}

void gb_req_stream_flush(struct gb_req *r)
{
    stream_send(r, r->out.data, r->out.len, 1);
    gb_buf_reset(&r->out);
}

/* The keep-alive timer is not moved on every chunk (a timer-heap update per
 * stream event): a chunk only notes the time, and the timer, when it fires,
 * sends the comment if the stream has been silent for the whole period, or
 * else sleeps again until the period after the last chunk ends. */
static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
    static const char comment[] = ": keep-alive\n\n";
    struct gb_req *r = arg;
    int64_t period = gb_cfg(r->w->ctx)->stream_keepalive_s * 1000;
    int64_t silent = gb_now_ms() - r->sent_ms;

    (void)fd;
    (void)what;
    if (r->reply_started && period > 0 && silent >= 0 && silent < period) {
        struct timeval tv = {(period - silent) / 1000, (period - silent) % 1000 * 1000};
        evtimer_add(r->keepalive, &tv);
        return;
    }
    if (!r->reply_started)
        gb_req_stream_start(r, NULL);
    gb_req_stream_send(r, comment, sizeof comment - 1);
    gb_req_keepalive_arm(r);
}

void gb_req_keepalive_arm(struct gb_req *r)
{
    struct timeval tv = {gb_cfg(r->w->ctx)->stream_keepalive_s, 0};

    if (tv.tv_sec <= 0 || !r->client_stream || r->api != GB_API_OPENAI)
        return;
    if (r->keepalive == NULL && (r->keepalive = evtimer_new(r->w->base, on_keepalive, r)) == NULL)
        return;
    r->sent_ms = gb_now_ms();
    evtimer_add(r->keepalive, &tv);
}

void gb_req_stream_abort(struct gb_req *r)
{
    stream_send(r, r->out.data, r->out.len, 1);
    gb_buf_reset(&r->out);
    if (r->ev == NULL || r->client_gone || r->evcon == NULL) {
        gb_req_stream_end(r);
        return;
    }
    r->client_gone = 2;
    /* runs on_conn_close, which finishes r */
    evhttp_connection_free(r->evcon);
}

void gb_req_stream_end(struct gb_req *r)
{
    struct evhttp_request *ev = r->ev;
    struct evhttp_connection *now = NULL;

    /* the last chunk goes out with the end of the reply, in one write */
    stream_send(r, r->out.data, r->out.len, 0);
    gb_buf_reset(&r->out);
    if (ev != NULL && !r->client_gone) {
        struct evhttp_connection *evcon = r->evcon;
        /* HTTP/1.0 has no last chunk: with nothing left to write, evhttp
         * ends the reply, and frees a connection it closes, inside
         * evhttp_send_reply_end; evcon must not be touched after it */
        int sync = gb_req_http10(ev);

        /* as in gb_req_reply */
        if (evcon != NULL)
            gb_conn_rehook(r->w, evcon);
        r->ev = NULL;
        r->evcon = NULL; /* rehooked above; evhttp may free it from here on */
        evhttp_send_reply_end(ev);
        if (evcon != NULL && r->easy == NULL && !sync)
            now = evcon;
    }
    unhook_client(r);
    gb_req_finish(r);
    if (now != NULL)
        write_now(now);
}
