/*
 * router.c - every request's entry: READ -> AUTH -> route.
 *
 * The route table is data: method, path (after the API prefix), whether a
 * token is needed, and the handler.  Paths are normalised first (doubled
 * and trailing slashes), and the OpenAI API is served under /v1, /hf/v1 and
 * with no prefix at all, since clients get base URLs wrong all the time.
 */
#include "server/router.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin/admin.h"
#include "api/routes.h"
#include "auth/auth.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "metrics/metrics.h"
#include "server/conn.h"
#include "server/worker.h"

/* Magic number of a live gb_req (checked in debug builds). */
#define GB_REQ_MAGIC 0x67627271u

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The byte a %XX at p stands for, when it is unreserved (RFC 3986 2.3:
 * the same as the byte itself, 6.2.2.2) or ':' (Google takes
 * "gemini-2.5-flash%3AgenerateContent" for the action, as clients that
 * escape path segments send it); else -1, and the escape stays. */
static int decodable(const char *p)
{
    int hi = hex_digit(p[1]), lo = hi < 0 ? -1 : hex_digit(p[2]), c;

    if (lo < 0)
        return -1;
    c = hi * 16 + lo;
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~' || c == ':')
        return c;
    return -1;
}

int gb_router_normalize(const char *uri, char *out, size_t outlen)
{
    const char *p = uri;
    size_t n = 0;
    int c;

    /* the absolute form (RFC 9112 3.2.2), "GET http://host/path", routes by
     * its path */
    if (strncasecmp(p, "http://", 7) == 0 || strncasecmp(p, "https://", 8) == 0) {
        p = strchr(p, ':') + 3;
        p += strcspn(p, "/?#");
    }
    if (outlen < 2)
        return GB_ETOOBIG;
    out[n++] = '/'; /* every result starts with '/', even for "*" or "health" */
    for (; *p != '\0' && *p != '?' && *p != '#'; p++) {
        if (*p == '/' && out[n - 1] == '/')
            continue;
        if (n + 1 >= outlen)
            return GB_ETOOBIG;
        if (*p == '%' && (c = decodable(p)) >= 0) {
            out[n++] = (char)c;
            p += 2;
            continue;
        }
        out[n++] = *p;
    }
    if (n > 1 && out[n - 1] == '/')
        n--;
    out[n] = '\0';
    return 0;
}

static const char *method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    }
    return "?";
}

static void on_health(struct gb_req *r)
{
    struct gb_ctx *ctx = r->w->ctx;
    struct gb_keypool_stats st;
    json_t *j;
    char *s;

    gb_keypool_stats(ctx->pool, &st);
    j = json_pack("{s:s, s:s, s:I, s:{s:I, s:I, s:I, s:I}}", "status", "healthy", "version",
                  ctx->version, "uptime_s", (json_int_t)((gb_now_ms() - ctx->started_ms) / 1000),
                  "keys", "total", (json_int_t)st.total, "usable", (json_int_t)st.usable, "cooling",
                  (json_int_t)st.cooling, "disabled", (json_int_t)st.disabled);
    s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    gb_req_reply(r, 200, "application/json", s ? s : "{}", s ? strlen(s) : 2);
    free(s);
}

static void on_root(struct gb_req *r)
{
    static const char body[] = "{\"name\":\"gemini-balance\",\"openai_base_url\":\"/v1\","
                               "\"gemini_base_url\":\"/v1beta\",\"health\":\"/health\"}";

    gb_req_reply(r, 200, "application/json", body, sizeof body - 1);
}

static void on_preflight(struct gb_req *r)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(r->ev);
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->ev);
    const char *want = evhttp_find_header(in, "Access-Control-Request-Headers");

    evhttp_add_header(out, "Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS");
    evhttp_add_header(out, "Access-Control-Allow-Headers",
                      want ? want : "Authorization, Content-Type, x-goog-api-key");
    evhttp_add_header(out, "Access-Control-Max-Age", "86400");
    gb_req_reply(r, 204, NULL, NULL, 0);
}

static void not_found(struct gb_req *r)
{
    r->error = "unknown route";
    gb_req_error(r, 404, "not_found", NULL,
                 "unknown route %s %s: this gateway serves the OpenAI API under /v1 (or /hf/v1) "
                 "and the Gemini API under /v1beta (or /gemini/v1beta)",
                 r->method, r->path);
}

/* Returns the path with an OpenAI prefix (/v1, /hf/v1) removed, or NULL
 * when the path is not an OpenAI one. */
static const char *openai_rest(const char *path)
{
    if (strncmp(path, "/hf/v1/", 7) == 0)
        return path + 6;
    if (strncmp(path, "/v1/", 4) == 0)
        return path + 3;
    if (strcmp(path, "/chat/completions") == 0 || strcmp(path, "/embeddings") == 0 ||
        strncmp(path, "/models", 7) == 0)
        return path;
    return NULL;
}

/* Returns the path with a native prefix (/v1beta, /gemini/v1beta,
 * /gemini/v1) removed ("" for the bare prefix), or NULL. */
static const char *native_rest(const char *path)
{
    static const char *const prefixes[] = {"/gemini/v1beta", "/v1beta", "/gemini/v1"};

    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t n = strlen(prefixes[i]);
        if (strncmp(path, prefixes[i], n) == 0 && (path[n] == '/' || path[n] == '\0'))
            return path + n;
    }
    return NULL;
}

/* Checks the client's token; answers 401 and returns 0 when it is wrong. */
static int authorized(struct gb_req *r)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(r->ev);
    char *key = gb_req_query_param(r, "key");
    const char *tok;
    size_t len = 0;
    int ok;

    gb_req_set_state(r, GB_REQ_AUTH);
    tok = gb_auth_extract(evhttp_find_header(h, "Authorization"),
                          evhttp_find_header(h, "x-goog-api-key"), key, &len);
    ok = gb_auth_check(&gb_cfg(r->w->ctx)->allowed_tokens, tok, len);
    free(key);
    if (!ok) {
        r->error = tok ? "wrong token" : "no token";
        gb_req_error(r, 401, r->api == GB_API_GEMINI ? "UNAUTHENTICATED" : "invalid_api_key", NULL,
                     tok ? "invalid API token: use one of the gateway's ALLOWED_TOKENS"
                     : r->api == GB_API_GEMINI
                         ? "missing API key: send one of the gateway's ALLOWED_TOKENS as "
                           "'x-goog-api-key: <token>' (or ?key=<token>)"
                         : "missing API token: send 'Authorization: Bearer <token>' with one of "
                           "the gateway's ALLOWED_TOKENS");
    }
    return ok;
}

static void route(struct gb_req *r, enum evhttp_cmd_type cmd)
{
    /* HEAD is GET without the body (gb_req_reply leaves it out) */
    int get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
    const char *rest;

    if (cmd == EVHTTP_REQ_OPTIONS) {
        on_preflight(r);
        return;
    }
    if (strcmp(r->path, "/health") == 0 && get) {
        on_health(r);
        return;
    }
    if (strcmp(r->path, "/") == 0 && get) {
        on_root(r);
        return;
    }
    if (strcmp(r->path, "/") == 0 || strcmp(r->path, "/health") == 0) {
        gb_req_not_allowed(r, "GET, HEAD", "method_not_allowed");
        return;
    }
    if (gb_admin_owns(r->path)) {
        gb_admin_handle(r, cmd == EVHTTP_REQ_POST, cmd == EVHTTP_REQ_DELETE);
        return;
    }
    rest = native_rest(r->path);
    if (rest != NULL && strncmp(rest, "/openai/", 8) == 0) {
        rest += 7; /* Google's OpenAI-compatible base URL: .../v1beta/openai/ */
    } else if (rest != NULL ||
               (strncmp(r->path, "/v1/models/", 11) == 0 && strchr(r->path, ':') != NULL)) {
        r->api = GB_API_GEMINI;
        if (rest == NULL)
            rest = r->path + 3; /* Google's /v1 model actions */
        if (!get && cmd != EVHTTP_REQ_POST) {
            /* model actions take POST, models and the model list GET */
            gb_req_not_allowed(r, strchr(rest, ':') ? "POST" : "GET, HEAD", NULL);
            return;
        }
        r->route = GB_ROUTE_NATIVE;
        if (authorized(r))
            gb_route_native(r, rest, cmd == EVHTTP_REQ_POST);
        return;
    } else {
        rest = openai_rest(r->path);
    }
    if (rest == NULL) {
        not_found(r);
        return;
    }
    r->api = GB_API_OPENAI;
    if (strcmp(rest, "/chat/completions") == 0) {
        if (cmd != EVHTTP_REQ_POST) {
            gb_req_not_allowed(r, "POST", "method_not_allowed");
            return;
        }
        r->route = GB_ROUTE_CHAT;
        if (authorized(r))
            gb_route_chat(r);
        return;
    }
    if (strcmp(rest, "/embeddings") == 0) {
        if (cmd != EVHTTP_REQ_POST) {
            gb_req_not_allowed(r, "POST", "method_not_allowed");
            return;
        }
        r->route = GB_ROUTE_EMBEDDINGS;
        if (authorized(r))
            gb_route_embeddings(r);
        return;
    }
    if (strcmp(rest, "/models") == 0 || strncmp(rest, "/models/", 8) == 0) {
        if (!get) {
            gb_req_not_allowed(r, "GET, HEAD", "method_not_allowed");
            return;
        }
        r->route = GB_ROUTE_MODELS;
        if (authorized(r))
            gb_route_models(r, rest[7] == '/' ? rest + 8 : NULL);
        return;
    }
    not_found(r);
}

/* 1 when the comma-separated list v holds the token t (any case). */
static int has_token(const char *v, const char *t)
{
    size_t n = strlen(t);

    while (*v != '\0') {
        v += strspn(v, " \t,");
        if (strncasecmp(v, t, n) == 0 && (v[n] == '\0' || strchr(" \t,", v[n]) != NULL))
            return 1;
        v += strcspn(v, ",");
    }
    return 0;
}

/* Refuses, and closes the connection after, a head whose body a proxy in
 * front of us might delimit otherwise than evhttp did (request smuggling,
 * RFC 9112 5.1, 6.1 and 6.3): Content-Length with Transfer-Encoding
 * (libevent 2.1.12 refuses it itself, another build might not); and what
 * evhttp lets through: Content-Length values that are not digits or disagree
 * (evhttp reads the first); a transfer coding other than chunked (501;
 * evhttp took the body for empty and would have read what follows as the
 * next request); whitespace in a field name ("Content-Length :" is no
 * Content-Length to evhttp).  Also: an HTTP/1.1 request without exactly one
 * Host (RFC 9112 3.2), a body in a content coding (415: the body is not
 * decoded, RFC 9110 15.5.16), more than MAX_HEADERS headers (431).  And
 * "close" in a Connection list, which evhttp only sees alone, becomes the
 * whole header, so the connection is closed after the answer.  Returns 1 to
 * go on. */
static int head_ok(struct gb_req *r)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(r->ev);
    const char *cl = NULL, *te = NULL, *why = NULL;
    struct evhttp_request *ev = r->ev;
    struct evkeyval *kv;
    int status = 400, hosts = 0, conn_close = 0;
    long n = 0;

    for (kv = h->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
        const char *k = kv->key, *v = kv->value;

        n++;
        if (k[strcspn(k, " \t")] != '\0') {
            why = "a header field name may not contain whitespace";
        } else if (*k == 'C' || *k == 'c') {
            if (strcasecmp(k, "Content-Length") == 0) {
                if (*v == '\0' || v[strspn(v, "0123456789")] != '\0')
                    why = "Content-Length must be a decimal number";
                else if (cl != NULL && strcmp(cl, v) != 0)
                    why = "the Content-Length headers disagree";
                cl = v;
            } else if (strcasecmp(k, "Connection") == 0) {
                conn_close = strcasecmp(v, "close") != 0 && has_token(v, "close");
            } else if (strcasecmp(k, "Content-Encoding") == 0 && strcasecmp(v, "identity") != 0 &&
                       why == NULL) {
                why = "request bodies are read as sent: no Content-Encoding";
                status = 415;
            }
        } else if ((*k == 'T' || *k == 't') && strcasecmp(k, "Transfer-Encoding") == 0) {
            te = v;
        } else if ((*k == 'H' || *k == 'h') && strcasecmp(k, "Host") == 0) {
            hosts++;
        }
    }
    if (conn_close) {
        while (evhttp_remove_header(h, "Connection") == 0)
            ;
        evhttp_add_header(h, "Connection", "close");
    }
    if (why == NULL && cl != NULL && te != NULL)
        why = "a request may not carry both Content-Length and Transfer-Encoding";
    if (why == NULL && te != NULL && strcasecmp(te, "chunked") != 0) {
        why = "the only transfer coding supported is chunked";
        status = 501;
    }
    if (why == NULL && hosts != 1 && !gb_req_http10(ev))
        why = hosts ? "more than one Host header" : "an HTTP/1.1 request needs a Host header";
    if (why == NULL && n <= gb_cfg(r->w->ctx)->max_headers)
        return 1;
    r->api = GB_API_OPENAI;
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Connection", "close");
    if (why == NULL) {
        r->error = "too many headers";
        gb_req_error(r, 431, "request_header_fields_too_large", NULL,
                     "too many request headers: at most %ld", gb_cfg(r->w->ctx)->max_headers);
        return 0;
    }
    r->error = "request framing";
    if (status == 415)
        evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Accept-Encoding", "identity");
    gb_req_error(r, status,
                 status == 501   ? "not_implemented"
                 : status == 415 ? "unsupported_media_type"
                                 : "invalid_request_error",
                 NULL, "%s", why);
    return 0;
}

void gb_router_on_request(struct evhttp_request *ev, void *arg)
{
    struct gb_worker *w = arg;
    struct gb_req *r = calloc(1, sizeof *r);
    const char *uri = evhttp_request_get_uri(ev);
    const char *q;

    if (r == NULL) {
        evhttp_send_error(ev, 503, "out of memory");
        return;
    }
    gb_conn_request(w, ev);
    r->magic = GB_REQ_MAGIC;
    r->w = w;
    r->ev = ev;
    r->evcon = evhttp_request_get_connection(ev);
    r->t0_us = gb_now_us();
    r->route = GB_ROUTE_OTHER;
    gb_buf_init(&r->out, GB_REQ_OUT_MAX);
    r->status = 0;
    w->active++;
    snprintf(r->method, sizeof r->method, "%s", method_name(evhttp_request_get_command(ev)));
    q = uri ? strchr(uri, '?') : NULL;
    r->query = q ? q + 1 : NULL;
    if (uri == NULL || gb_router_normalize(uri, r->path, sizeof r->path) < 0) {
        snprintf(r->path, sizeof r->path, "(too long)");
        r->api = GB_API_OPENAI;
        gb_req_error(r, 414, "uri_too_long", NULL, "request path too long");
        return;
    }
    if (!head_ok(r))
        return;
    route(r, evhttp_request_get_command(ev));
}
