/*
 * admin.c - status page, admin JSON API, login sessions and /metrics.
 *
 * Sections: sessions - auth - helpers - key actions - store queries -
 * dispatch.
 *
 * Everything here runs on the worker that received the request.  Key
 * verification and store queries are asynchronous: the request waits and is
 * answered from the probe or store callback.  These requests do not watch
 * for a client hang-up: a finished request could not take back a callback
 * already queued on the store thread, so the request lives until the
 * answer (a few ms; a probe at most GB_PROBE_TIMEOUT_MS), and evhttp drops
 * the reply if the client left.
 */
#include "admin/admin.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "auth/auth.h"
#include "cluster/cluster.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "metrics/metrics.h"
#include "server/worker.h"
#include "store/store.h"
#include "upstream/probe.h"

extern const char gb_admin_page[];
extern const size_t gb_admin_page_len;

/* ---- sessions ------------------------------------------------------------ */

static struct {
    pthread_mutex_t lock;
    char id[GB_ADMIN_SESSIONS][65];
    int64_t expires[GB_ADMIN_SESSIONS];
} sessions = {PTHREAD_MUTEX_INITIALIZER, {{0}}, {0}};

/* Creates a session; writes its id (64 hex digits) to out.  0 or GB_EIO. */
static int session_new(char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[32];
    int64_t now = gb_now_ms(), oldest = INT64_MAX;
    size_t slot = 0;

    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return GB_EIO;
    for (size_t i = 0; i < sizeof rnd; i++) {
        out[2 * i] = hex[rnd[i] >> 4];
        out[2 * i + 1] = hex[rnd[i] & 15];
    }
    out[64] = '\0';
    pthread_mutex_lock(&sessions.lock);
    for (size_t i = 0; i < GB_ADMIN_SESSIONS; i++) {
        if (sessions.expires[i] < oldest) {
            oldest = sessions.expires[i];
            slot = i;
        }
    }
    memcpy(sessions.id[slot], out, 65);
    sessions.expires[slot] = now + GB_ADMIN_SESSION_S * 1000LL;
    pthread_mutex_unlock(&sessions.lock);
    return 0;
}

static int session_valid(const char *id, size_t len, int drop)
{
    int64_t now = gb_now_ms();
    int ok = 0;

    if (len != 64)
        return 0;
    pthread_mutex_lock(&sessions.lock);
    for (size_t i = 0; i < GB_ADMIN_SESSIONS; i++) {
        if (sessions.expires[i] > now && gb_auth_equal(id, len, sessions.id[i], 64)) {
            ok = 1;
            if (drop)
                sessions.expires[i] = 0;
        }
    }
    pthread_mutex_unlock(&sessions.lock);
    return ok;
}

/* ---- auth ------------------------------------------------------------------ */

/* The gb_session cookie's value in the request, or NULL (len set). */
static const char *session_cookie(struct gb_req *r, size_t *len)
{
    const char *c = evhttp_find_header(evhttp_request_get_input_headers(r->ev), "Cookie");
    const char *p = c;

    while (p != NULL && (p = strstr(p, "gb_session=")) != NULL) {
        if (p == c || p[-1] == ' ' || p[-1] == ';') {
            p += 11;
            *len = strcspn(p, "; ");
            return p;
        }
        p += 11;
    }
    return NULL;
}

static int is_admin(struct gb_req *r)
{
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(r->ev), "Authorization");
    const char *admin = gb_cfg(r->w->ctx)->auth_token;
    const char *tok;
    size_t len = 0;

    tok = gb_auth_extract(auth, NULL, NULL, &len);
    if (tok != NULL && gb_auth_equal(tok, len, admin, strlen(admin)))
        return 1;
    tok = session_cookie(r, &len);
    return tok != NULL && session_valid(tok, len, 0);
}

/* ---- helpers --------------------------------------------------------------- */

static void reply_json(struct gb_req *r, int status, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

    json_decref(j);
    if (s == NULL) {
        gb_req_error(r, 500, "internal_error", NULL, "out of memory");
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Cache-Control", "no-store");
    gb_req_reply(r, status, "application/json", s, strlen(s));
    free(s);
}

/* The request body as a JSON object (a new reference), or NULL. */
static json_t *body_json(struct gb_req *r)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);
    size_t len = evbuffer_get_length(in);

    if (len == 0)
        return json_object();
    json_t *j = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* A query parameter (decoded) copied into out; "" when absent. */
static const char *query_param(struct gb_req *r, const char *name, char *out, size_t outlen)
{
    char *v = gb_req_query_param(r, name);

    snprintf(out, outlen, "%s", v != NULL ? v : "");
    free(v);
    return out;
}

static long query_long(struct gb_req *r, const char *name, long def, long min, long max)
{
    char buf[32];
    char *end;
    long v;

    query_param(r, name, buf, sizeof buf);
    if (buf[0] == '\0')
        return def;
    v = strtol(buf, &end, 10);
    if (*end != '\0')
        return def;
    return v < min ? min : v > max ? max : v;
}

static const char *state_of(const struct gb_key_info *k)
{
    return k->disabled ? "disabled" : k->ncool > 0 ? "cooling" : "usable";
}

static json_t *key_json(const struct gb_key_info *k)
{
    json_t *cools = json_array();

    for (size_t i = 0; i < k->ncool; i++)
        json_array_append_new(cools, json_pack("{s:s, s:I}", "model", k->cool_model[i], "until_ms",
                                               (json_int_t)k->cool_until[i]));
    return json_pack("{s:I, s:s, s:s, s:s, s:I, s:s, s:I, s:I, s:I, s:I, s:i, s:I, s:b, s:o}",
                     "idx", (json_int_t)k->idx, "id", k->id, "hash", k->hash, "state", state_of(k),
                     "failures", (json_int_t)k->failures, "last_error", k->last_error, "requests",
                     (json_int_t)k->requests, "successes", (json_int_t)k->successes, "minute_count",
                     (json_int_t)k->minute_count, "day_count", (json_int_t)k->day_count,
                     "latency_ms", k->latency_ms, "last_used_ms", (json_int_t)k->last_used_ms,
                     "from_admin", k->from_admin, "cooldowns", cools);
}

/* ---- key actions --------------------------------------------------------- */

static void on_status(struct gb_req *r)
{
    struct gb_ctx *ctx = r->w->ctx;
    struct gb_keypool_stats st;
    char host[256];

    gb_keypool_stats(ctx->pool, &st);
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "gemini-balance");
    host[sizeof host - 1] = '\0';
    reply_json(
        r, 200,
        json_pack("{s:s, s:I, s:{s:I, s:I, s:I, s:I}, s:b, s:I, s:I, s:s, s:{s:b, s:b, s:I}}",
                  "version", ctx->version, "uptime_s",
                  (json_int_t)((gb_now_ms() - ctx->started_ms) / 1000), "keys", "total",
                  (json_int_t)st.total, "usable", (json_int_t)st.usable, "cooling",
                  (json_int_t)st.cooling, "disabled", (json_int_t)st.disabled, "throttled",
                  st.throttled, "throttle_ms_left", (json_int_t)st.throttle_ms_left,
                  "store_dropped", (json_int_t)(ctx->store ? gb_store_dropped(ctx->store) : 0),
                  "instance", host, "cluster", "enabled", ctx->cluster != NULL, "connected",
                  gb_cluster_connected(ctx->cluster), "dropped",
                  (json_int_t)gb_cluster_dropped(ctx->cluster)));
}

/* Adds the store's usage (this hour, today) to each listed key, then answers. */
static void on_usage(void *ud, json_t *result, const char *err)
{
    struct gb_req *r = ud;
    json_t *items = json_object_get(r->acc, "items"), *it;
    json_t *keys = json_object_get(result, "keys");
    size_t i;

    (void)err;
    json_array_foreach(items, i, it)
    {
        json_t *u = json_object_get(keys, json_string_value(json_object_get(it, "hash")));
        json_object_set_new(it, "usage",
                            json_pack("{s:I, s:I}", "hour",
                                      json_integer_value(json_object_get(u, "hour")), "today",
                                      json_integer_value(json_object_get(u, "today"))));
    }
    json_decref(result);
    reply_json(r, 200, json_incref(r->acc));
}

static void on_list_keys(struct gb_req *r)
{
    struct gb_ctx *ctx = r->w->ctx;
    long offset = query_long(r, "offset", 0, 0, 1L << 30);
    long limit = query_long(r, "limit", 50, 1, 1000);
    char state[16], q[64];
    size_t slots = gb_keypool_slots(ctx->pool), total = 0;
    json_t *items = json_array();
    struct gb_key_info *k = malloc(sizeof *k);

    query_param(r, "state", state, sizeof state);
    query_param(r, "q", q, sizeof q);
    for (size_t i = 0; k != NULL && i < slots; i++) {
        if (gb_keypool_info(ctx->pool, (uint32_t)i, k) < 0)
            continue;
        if (state[0] && strcmp(state, "all") != 0 && strcmp(state, state_of(k)) != 0)
            continue;
        if (q[0] && strstr(k->id, q) == NULL)
            continue;
        if ((long)total >= offset && (long)json_array_size(items) < limit)
            json_array_append_new(items, key_json(k));
        total++;
    }
    free(k);
    r->acc = json_pack("{s:I, s:I, s:I, s:o}", "total", (json_int_t)total, "offset",
                       (json_int_t)offset, "limit", (json_int_t)limit, "items", items);
    if (ctx->store != NULL) {
        struct gb_store_query sq;
        memset(&sq, 0, sizeof sq);
        sq.kind = GB_STORE_Q_USAGE;
        if (gb_store_query(ctx->store, &sq, r->w->base, on_usage, r) == 0)
            return;
    }
    reply_json(r, 200, json_incref(r->acc));
}

/* Splits pasted text into keys (newlines, blanks, commas, quotes) and adds them. */
static void on_add_keys(struct gb_req *r, json_t *body)
{
    struct gb_keypool *pool = r->w->ctx->pool;
    json_t *keys = json_object_get(body, "keys"), *added = json_array();
    struct gb_buf text;
    long dup = 0, bad = 0, n = 0;
    char *tok, *save;

    gb_buf_init(&text, 64u * 1024 * 1024);
    if (json_is_string(keys)) {
        gb_buf_puts(&text, json_string_value(keys));
    } else if (json_is_array(keys)) {
        size_t i;
        json_t *k;
        json_array_foreach(keys, i, k)
        {
            if (json_is_string(k)) {
                gb_buf_puts(&text, json_string_value(k));
                gb_buf_puts(&text, "\n");
            }
        }
    } else {
        gb_buf_release(&text);
        json_decref(added);
        gb_req_error(r, 400, "invalid_request_error", "keys",
                     "expected {\"keys\": \"k1\\nk2\"} or {\"keys\": [\"k1\", \"k2\"]}");
        return;
    }
    for (tok = strtok_r(text.data ? text.data : "", " \t\r\n,;\"'[]", &save); tok != NULL;
         tok = strtok_r(NULL, " \t\r\n,;\"'[]", &save)) {
        uint32_t existing;
        int rc;
        if (++n > GB_ADMIN_ADD_MAX)
            break;
        rc = gb_keypool_add(pool, tok, 1, &existing);
        if (rc >= 0)
            json_array_append_new(added, json_string(gb_keypool_key_id(pool, (uint32_t)rc)));
        else if (rc == GB_EAGAIN)
            dup++;
        else
            bad++;
    }
    gb_buf_release(&text);
    if (json_array_size(added) > 0)
        gb_info("admin: %zu keys added", json_array_size(added));
    reply_json(r, 200,
               json_pack("{s:o, s:I, s:I}", "added", added, "duplicates", (json_int_t)dup,
                         "invalid", (json_int_t)bad));
}

static void on_verified(void *ud, uint32_t idx, int ok, long status, const char *error)
{
    struct gb_req *r = ud;

    (void)idx;
    reply_json(r, 200,
               json_pack("{s:b, s:I, s:s}", "ok", ok, "status", (json_int_t)status, "error",
                         error ? error : ""));
}

static void on_bulk_verify(struct gb_req *r, json_t *body)
{
    struct gb_keypool *pool = r->w->ctx->pool;
    size_t slots = gb_keypool_slots(pool), started = 0;
    const char *state = json_string_value(json_object_get(body, "state"));
    json_t *ids = json_object_get(body, "ids");
    int all = json_is_true(json_object_get(body, "all"));
    struct gb_key_info k;

    if (json_is_array(ids)) {
        size_t i;
        json_t *id;
        json_array_foreach(ids, i, id)
        {
            if (json_is_integer(id) &&
                gb_keypool_info(pool, (uint32_t)json_integer_value(id), &k) == 0 &&
                gb_probe_key(r->w, k.idx, NULL, NULL) == 0)
                started++;
        }
    } else if (all || state != NULL) {
        for (size_t i = 0; i < slots; i++) {
            if (gb_keypool_info(pool, (uint32_t)i, &k) < 0)
                continue;
            if (state != NULL && strcmp(state, state_of(&k)) != 0)
                continue;
            if (gb_probe_key(r->w, (uint32_t)i, NULL, NULL) == 0)
                started++;
        }
    } else {
        gb_req_error(r, 400, "invalid_request_error", NULL,
                     "expected {\"all\": true}, {\"ids\": [...]} or {\"state\": \"disabled\"}");
        return;
    }
    reply_json(r, 202, json_pack("{s:I}", "started", (json_int_t)started));
}

/* POST/DELETE /api/keys/{idx}[/action] */
static void on_key_action(struct gb_req *r, const char *rest, int is_post, int is_delete)
{
    struct gb_keypool *pool = r->w->ctx->pool;
    char *end;
    unsigned long idx = strtoul(rest, &end, 10);
    struct gb_key_info k;
    int rc;

    if (end == rest || (*end != '\0' && *end != '/') ||
        gb_keypool_info(pool, (uint32_t)idx, &k) < 0) {
        gb_req_error(r, 404, "not_found", NULL, "no key with index %.20s", rest);
        return;
    }
    if (is_delete && *end == '\0') {
        gb_keypool_delete(pool, (uint32_t)idx);
        gb_info("admin: key %s deleted", k.id);
        reply_json(r, 200, json_pack("{s:b}", "ok", 1));
        return;
    }
    if (!is_post) {
        if (*end == '\0') {
            reply_json(r, 200, key_json(&k));
            return;
        }
        gb_req_error(r, 405, "method_not_allowed", NULL, "use POST");
        return;
    }
    if (strcmp(end, "/verify") == 0) {
        if (gb_probe_key(r->w, (uint32_t)idx, on_verified, r) < 0)
            gb_req_error(r, 500, "internal_error", NULL, "cannot start the check");
        return;
    }
    if (strcmp(end, "/enable") == 0)
        rc = gb_keypool_set_disabled(pool, (uint32_t)idx, 0);
    else if (strcmp(end, "/disable") == 0)
        rc = gb_keypool_set_disabled(pool, (uint32_t)idx, 1);
    else if (strcmp(end, "/reset") == 0)
        rc = gb_keypool_reset_failures(pool, (uint32_t)idx);
    else {
        gb_req_error(r, 404, "not_found", NULL, "unknown key action %.40s", end);
        return;
    }
    if (rc < 0 || gb_keypool_info(pool, (uint32_t)idx, &k) < 0) {
        gb_req_error(r, 404, "not_found", NULL, "no key with index %lu", idx);
        return;
    }
    gb_info("admin: key %s %s", k.id, end + 1);
    reply_json(r, 200, json_pack("{s:b, s:o}", "ok", 1, "key", key_json(&k)));
}

static void on_export(struct gb_req *r)
{
    struct gb_keypool *pool = r->w->ctx->pool;
    size_t slots = gb_keypool_slots(pool);
    json_t *keys = json_array();
    struct gb_key_info k;
    char key[1024];

    for (size_t i = 0; i < slots; i++) {
        if (gb_keypool_info(pool, (uint32_t)i, &k) < 0)
            continue;
        json_array_append_new(keys,
                              json_string(gb_keypool_key(pool, (uint32_t)i, key, sizeof key)));
    }
    memset(key, 0, sizeof key);
    gb_warn("admin: the full key list was exported");
    reply_json(r, 200, json_pack("{s:o}", "keys", keys));
}

/* ---- store queries ------------------------------------------------------- */

static void on_query_result(void *ud, json_t *result, const char *err)
{
    struct gb_req *r = ud;

    if (result == NULL) {
        gb_req_error(r, 500, "store_error", NULL, "the query failed: %s", err ? err : "unknown");
        return;
    }
    reply_json(r, 200, result);
}

static void on_query(struct gb_req *r, enum gb_store_query_kind kind)
{
    struct gb_ctx *ctx = r->w->ctx;
    struct gb_store_query q;

    if (ctx->store == NULL) {
        gb_req_error(r, 503, "store_off", NULL, "the database is not available");
        return;
    }
    memset(&q, 0, sizeof q);
    q.kind = kind;
    q.limit = (int)query_long(r, "limit", 50, 1, 1000);
    q.offset = (int)query_long(r, "offset", 0, 0, 1L << 30);
    q.since_ms = query_long(r, "since", 0, 0, INT64_MAX / 2);
    query_param(r, "key", q.key_hash, sizeof q.key_hash);
    query_param(r, "model", q.model, sizeof q.model);
    if (gb_store_query(ctx->store, &q, r->w->base, on_query_result, r) < 0)
        gb_req_error(r, 503, "store_busy", NULL, "the database is busy: retry");
}

/* ---- dispatch -------------------------------------------------------------- */

int gb_admin_owns(const char *path)
{
    return strcmp(path, "/admin") == 0 || strncmp(path, "/admin/", 7) == 0 ||
           strcmp(path, "/keys") == 0 || strcmp(path, "/metrics") == 0 ||
           strncmp(path, "/api/", 5) == 0;
}

static void on_metrics(struct gb_req *r)
{
    struct gb_ctx *ctx = r->w->ctx;
    const char *need = gb_cfg(ctx)->metrics_token;
    struct gb_keypool_stats st;
    struct gb_metrics_keys mk;
    size_t len = 0, tlen = 0;
    const char *tok = gb_auth_extract(
        evhttp_find_header(evhttp_request_get_input_headers(r->ev), "Authorization"), NULL, NULL,
        &tlen);
    char *text;

    if (need != NULL && !(tok && gb_auth_equal(tok, tlen, need, strlen(need))) && !is_admin(r)) {
        gb_req_error(r, 401, "invalid_api_key", NULL,
                     "metrics need 'Authorization: Bearer <METRICS_TOKEN>'");
        return;
    }
    gb_keypool_stats(ctx->pool, &st);
    mk.total = st.total;
    mk.usable = st.usable;
    mk.cooling = st.cooling;
    mk.disabled = st.disabled;
    mk.throttled = st.throttled;
    text = gb_metrics_render(&mk, ctx->store ? gb_store_dropped(ctx->store) : 0, &len);
    if (text == NULL) {
        gb_req_error(r, 500, "internal_error", NULL, "out of memory");
        return;
    }
    gb_req_reply(r, 200, GB_METRICS_CONTENT_TYPE, text, len);
    free(text);
}

static void on_page(struct gb_req *r, int login)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);

    if (!login && !is_admin(r)) {
        evhttp_add_header(h, "Location", "/admin/login");
        gb_req_reply(r, 302, "text/plain", "login first\n", 12);
        return;
    }
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Frame-Options", "DENY");
    evhttp_add_header(h, "Content-Security-Policy",
                      "default-src 'self'; script-src 'unsafe-inline'; style-src "
                      "'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'");
    gb_req_reply(r, 200, "text/html; charset=utf-8", gb_admin_page, gb_admin_page_len);
}

/* Wrong admin logins are throttled process-wide: after GB_ADMIN_LOGIN_FAILS
 * within a minute, logins answer 429 until that minute ends (guessing the
 * token through the page then takes forever). */
static struct {
    pthread_mutex_t lock;
    int64_t window;
    int fails;
} login_guard = {PTHREAD_MUTEX_INITIALIZER, 0, 0};

static int login_blocked(int failed_now)
{
    int64_t minute = gb_now_ms() / 60000;
    int blocked;

    pthread_mutex_lock(&login_guard.lock);
    if (login_guard.window != minute) {
        login_guard.window = minute;
        login_guard.fails = 0;
    }
    login_guard.fails += failed_now;
    blocked = login_guard.fails >= GB_ADMIN_LOGIN_FAILS;
    pthread_mutex_unlock(&login_guard.lock);
    return blocked;
}

static void on_login(struct gb_req *r)
{
    json_t *body = body_json(r);
    const char *tok = json_string_value(json_object_get(body, "token"));
    const char *admin = gb_cfg(r->w->ctx)->auth_token;
    char sid[65], cookie[160];

    if (login_blocked(0)) {
        json_decref(body);
        r->error = "admin login throttled";
        gb_req_retry_after(r, 60 * 1000);
        gb_req_error(r, 429, "rate_limit_exceeded", NULL,
                     "too many wrong admin logins: wait a minute");
        return;
    }
    if (tok == NULL || !gb_auth_equal(tok, strlen(tok), admin, strlen(admin))) {
        json_decref(body);
        login_blocked(1);
        r->error = "admin login refused";
        gb_req_error(r, 401, "invalid_api_key", NULL, "wrong admin token");
        return;
    }
    json_decref(body);
    if (session_new(sid) < 0) {
        gb_req_error(r, 500, "internal_error", NULL, "cannot create a session");
        return;
    }
    snprintf(cookie, sizeof cookie, "gb_session=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d",
             sid, GB_ADMIN_SESSION_S);
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Set-Cookie", cookie);
    reply_json(r, 200, json_pack("{s:b}", "ok", 1));
}

static void on_logout(struct gb_req *r)
{
    size_t len = 0;
    const char *sid = session_cookie(r, &len);

    if (sid != NULL)
        session_valid(sid, len, 1);
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Set-Cookie",
                      "gb_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    reply_json(r, 200, json_pack("{s:b}", "ok", 1));
}

void gb_admin_handle(struct gb_req *r, int is_post, int is_delete)
{
    const char *p = r->path;
    json_t *body;

    r->api = GB_API_OPENAI;
    r->route = GB_ROUTE_ADMIN;
    if (strcmp(p, "/metrics") == 0) {
        on_metrics(r);
        return;
    }
    if (strcmp(p, "/admin/login") == 0) {
        on_page(r, 1);
        return;
    }
    if (strcmp(p, "/admin") == 0 || strcmp(p, "/keys") == 0 || strncmp(p, "/admin/", 7) == 0) {
        on_page(r, 0);
        return;
    }
    if (strcmp(p, "/api/login") == 0 && is_post) {
        on_login(r);
        return;
    }
    if (strcmp(p, "/api/logout") == 0 && is_post) {
        on_logout(r);
        return;
    }
    if (!is_admin(r)) {
        r->error = "not an admin";
        gb_req_error(r, 401, "invalid_api_key", NULL,
                     "admin only: log in at /admin or send 'Authorization: Bearer <AUTH_TOKEN>'");
        return;
    }
    if (strcmp(p, "/api/status") == 0)
        on_status(r);
    else if (strcmp(p, "/api/keys") == 0 && is_post) {
        body = body_json(r);
        if (body == NULL)
            gb_req_error(r, 400, "invalid_json", NULL, "the body must be a JSON object");
        else
            on_add_keys(r, body);
        json_decref(body);
    } else if (strcmp(p, "/api/keys") == 0)
        on_list_keys(r);
    else if (strcmp(p, "/api/keys/export") == 0)
        on_export(r);
    else if (strcmp(p, "/api/keys/verify") == 0 && is_post) {
        body = body_json(r);
        if (body == NULL)
            gb_req_error(r, 400, "invalid_json", NULL, "the body must be a JSON object");
        else
            on_bulk_verify(r, body);
        json_decref(body);
    } else if (strncmp(p, "/api/keys/", 10) == 0)
        on_key_action(r, p + 10, is_post, is_delete);
    else if (strcmp(p, "/api/stats") == 0)
        on_query(r, GB_STORE_Q_STATS);
    else if (strcmp(p, "/api/logs/requests") == 0)
        on_query(r, GB_STORE_Q_REQUESTS);
    else if (strcmp(p, "/api/logs/errors") == 0)
        on_query(r, GB_STORE_Q_ERRORS);
    else
        gb_req_error(r, 404, "not_found", NULL, "unknown admin route %s %s", r->method, p);
}
