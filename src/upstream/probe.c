/*
 * probe.c - key probes: a queue per worker, at most GB_PROBE_CONCURRENCY in
 * flight, each a one-token generateContent with the key, classified by the
 * same failure policy as client traffic.
 */
#include "upstream/probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "server/worker.h"
#include "upstream/curlev.h"
#include "upstream/policy.h"

/* Error body kept for the policy, in bytes. */
#define GB_PROBE_BODY_MAX (64u * 1024)

static const char probe_body[] =
    "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"hi\"}]}],"
    "\"generationConfig\":{\"maxOutputTokens\":1}}";

struct probe {
    struct probe *next;
    struct gb_worker *w;
    uint32_t idx;
    gb_probe_cb cb;
    void *ud;
    CURL *easy;
    struct curl_slist *headers;
    struct gb_curlev_xfer xfer;
    struct gb_buf body;
    int running;
};

static void pump(struct gb_worker *w);

static void probe_free(struct probe *p)
{
    if (p->easy != NULL) {
        gb_curlev_remove(p->w->curl, &p->xfer);
        gb_curlev_easy_put(p->w->curl, p->easy);
    }
    curl_slist_free_all(p->headers);
    gb_buf_release(&p->body);
    free(p);
}

static void unlink_probe(struct gb_worker *w, struct probe *p)
{
    struct probe **pp = (struct probe **)&w->probes;

    while (*pp != NULL && *pp != p)
        pp = &(*pp)->next;
    if (*pp == p)
        *pp = p->next;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct probe *p = ud;

    gb_buf_append(&p->body, data, size * nmemb); /* the start of an error is enough */
    return size * nmemb;
}

static void on_done(void *ud, CURLcode result)
{
    struct probe *p = ud;
    struct gb_worker *w = p->w;
    struct gb_keypool *pool = w->ctx->pool;
    struct gb_verdict v;
    long status = 0;
    char err[160];
    int ok;

    curl_easy_getinfo(p->easy, CURLINFO_RESPONSE_CODE, &status);
    gb_curlev_easy_put(w->curl, p->easy);
    p->easy = NULL;
    gb_policy_classify(result, status, p->body.data, p->body.len, -1, &v);
    ok = v.key == GB_KEY_OK || v.key == GB_KEY_LIMITED;
    if (status >= 400)
        snprintf(err, sizeof err, "%ld %s", status, v.reason[0] ? v.reason : "error");
    else if (status == 0)
        snprintf(err, sizeof err, "%s", curl_easy_strerror(result));
    else
        err[0] = '\0';
    if (ok) {
        struct gb_key_info info;
        if (gb_keypool_info(pool, p->idx, &info) == 0 && info.disabled) {
            gb_keypool_set_disabled(pool, p->idx, 0);
            gb_info("key %s answers again: enabled", info.id);
        }
    } else if (v.key == GB_KEY_FAILED) {
        struct gb_key_report rep = {0, 0, err, 0};
        gb_keypool_report(pool, p->idx, NULL, GB_KEY_FAILED, &rep);
    }
    unlink_probe(w, p);
    w->probes_running--;
    if (p->cb != NULL)
        p->cb(p->ud, p->idx, ok, status, err);
    probe_free(p);
    pump(w);
}

static int start(struct probe *p)
{
    const struct gb_config *cfg = gb_cfg(p->w->ctx);
    char line[1100], key[1024], url[2048];

    gb_keypool_key(p->w->ctx->pool, p->idx, key, sizeof key);
    snprintf(line, sizeof line, "x-goog-api-key: %s", key);
    memset(key, 0, sizeof key);
    p->headers = curl_slist_append(NULL, line);
    memset(line, 0, sizeof line);
    if (p->headers == NULL ||
        curl_slist_append(p->headers, "Content-Type: application/json") == NULL)
        return GB_ENOMEM;
    p->easy = gb_curlev_easy_get(p->w->curl);
    if (p->easy == NULL)
        return GB_ENOMEM;
    snprintf(url, sizeof url, "%s/models/%s:generateContent", cfg->base_url, cfg->test_model);
    gb_buf_init(&p->body, GB_PROBE_BODY_MAX);
    curl_easy_setopt(p->easy, CURLOPT_URL, url);
    curl_easy_setopt(p->easy, CURLOPT_HTTPHEADER, p->headers);
    curl_easy_setopt(p->easy, CURLOPT_POSTFIELDS, probe_body);
    curl_easy_setopt(p->easy, CURLOPT_POSTFIELDSIZE, (long)sizeof probe_body - 1);
    curl_easy_setopt(p->easy, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(p->easy, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(p->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(p->easy, CURLOPT_TIMEOUT_MS, (long)GB_PROBE_TIMEOUT_MS);
    curl_easy_setopt(p->easy, CURLOPT_CONNECTTIMEOUT_MS, cfg->connect_timeout * 1000L);
    curl_easy_setopt(p->easy, CURLOPT_PROXY, cfg->proxy ? cfg->proxy : "");
    if (gb_curlev_add(p->w->curl, &p->xfer, p->easy, on_done, p) < 0)
        return GB_EIO;
    p->running = 1;
    p->w->probes_running++;
    return 0;
}

/* Starts queued probes while fewer than GB_PROBE_CONCURRENCY run. */
static void pump(struct gb_worker *w)
{
    for (struct probe *p = w->probes, *next; p != NULL && w->probes_running < GB_PROBE_CONCURRENCY;
         p = next) {
        next = p->next;
        if (p->running)
            continue;
        if (start(p) < 0) {
            unlink_probe(w, p);
            if (p->cb != NULL)
                p->cb(p->ud, p->idx, 0, 0, "cannot start the check");
            probe_free(p);
        }
    }
}

int gb_probe_key(struct gb_worker *w, uint32_t idx, gb_probe_cb cb, void *ud)
{
    struct probe *p = calloc(1, sizeof *p), **tail;

    if (p == NULL)
        return GB_ENOMEM;
    p->w = w;
    p->idx = idx;
    p->cb = cb;
    p->ud = ud;
    for (tail = (struct probe **)&w->probes; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = p;
    pump(w);
    return 0;
}

void gb_probe_cancel_all(struct gb_worker *w)
{
    struct probe *p;

    while ((p = w->probes) != NULL) {
        w->probes = p->next;
        probe_free(p);
    }
    w->probes_running = 0;
}

static void on_recheck(evutil_socket_t fd, short what, void *arg)
{
    struct gb_worker *w = arg;
    uint32_t idx[256];
    size_t n;

    (void)fd;
    (void)what;
    n = gb_keypool_disabled(w->ctx->pool, idx, sizeof idx / sizeof idx[0]);
    if (n > 0)
        gb_info("re-checking %zu disabled keys with %s", n, gb_cfg(w->ctx)->test_model);
    for (size_t i = 0; i < n; i++)
        gb_probe_key(w, idx[i], NULL, NULL);
}

int gb_probe_schedule(struct gb_worker *w)
{
    const struct gb_config *cfg = gb_cfg(w->ctx);
    struct timeval tv = {cfg->check_interval_seconds > 0 ? cfg->check_interval_seconds
                                                         : cfg->check_interval_hours * 3600,
                         0};

    if (tv.tv_sec <= 0)
        return 0;
    w->recheck = event_new(w->base, -1, EV_PERSIST, on_recheck, w);
    if (w->recheck == NULL)
        return GB_ENOMEM;
    return event_add(w->recheck, &tv) == 0 ? 0 : GB_EIO;
}
