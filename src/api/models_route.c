/*
 * models_route.c - GET /v1/models and /v1/models/{id}: the upstream's model
 * list (every page) in OpenAI form, cached process-wide for
 * GB_MODELS_CACHE_MS so that clients polling it cost the pool nothing.
 */
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/openai_models.h"
#include "api/routes.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "server/worker.h"
#include "upstream/upstream.h"

/* Models asked for per upstream page (Gemini's maximum is 1000). */
#define GB_MODELS_PAGE_SIZE 1000
/* Pages followed at most, against a pageToken loop. */
#define GB_MODELS_MAX_PAGES 50

/* Copies the cached list into a malloc'd string, or NULL when stale/empty. */
static char *cache_get(struct gb_models_cache *c, size_t *len)
{
    char *copy = NULL;

    pthread_mutex_lock(&c->lock);
    if (c->json != NULL && gb_now_ms() < c->expires_ms && (copy = malloc(c->len + 1)) != NULL) {
        memcpy(copy, c->json, c->len + 1);
        *len = c->len;
    }
    pthread_mutex_unlock(&c->lock);
    return copy;
}

static void cache_put(struct gb_models_cache *c, const char *json, size_t len)
{
    char *copy = malloc(len + 1);

    if (copy == NULL)
        return;
    memcpy(copy, json, len + 1);
    pthread_mutex_lock(&c->lock);
    free(c->json);
    c->json = copy;
    c->len = len;
    c->expires_ms = gb_now_ms() + GB_MODELS_CACHE_MS;
    pthread_mutex_unlock(&c->lock);
}

/* Answers from the full OpenAI list (json, len): the list, or one model. */
static void answer(struct gb_req *r, const char *json, size_t len)
{
    json_t *list, *m;
    size_t i;
    char *s;

    if (r->route_arg[0] == '\0') {
        gb_req_reply(r, 200, "application/json", json, len);
        return;
    }
    list = json_loadb(json, len, 0, NULL);
    json_array_foreach(json_object_get(list, "data"), i, m)
    {
        const char *id = json_string_value(json_object_get(m, "id"));
        if (id != NULL && strcmp(id, r->route_arg) == 0) {
            s = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);
            gb_req_reply(r, 200, "application/json", s ? s : "{}", s ? strlen(s) : 2);
            free(s);
            json_decref(list);
            return;
        }
    }
    json_decref(list);
    gb_req_error(r, 404, "model_not_found", "model", "the model '%s' does not exist", r->route_arg);
}

static int page_url(struct gb_req *r, const char *token)
{
    const char *base = gb_cfg(r->w->ctx)->base_url;
    char *esc = token ? evhttp_uriencode(token, -1, 0) : NULL;
    struct gb_buf u;
    int rc;

    gb_buf_init(&u, strlen(base) + (esc ? strlen(esc) : 0) + 64);
    rc = gb_buf_printf(&u, "%s/models?pageSize=%d%s%s", base, GB_MODELS_PAGE_SIZE,
                       esc ? "&pageToken=" : "", esc ? esc : "");
    free(esc);
    free(r->up_url);
    r->up_url = gb_buf_take(&u, NULL);
    return rc;
}

static void on_body(struct gb_req *r)
{
    const struct gb_config *cfg = gb_cfg(r->w->ctx);
    json_t *page = json_loadb(r->up_body.data, r->up_body.len, 0, NULL);
    json_t *models = json_object_get(page, "models");
    const char *next = json_string_value(json_object_get(page, "nextPageToken"));
    json_t *list;
    char *s;

    if (!json_is_object(page) || (models != NULL && !json_is_array(models))) {
        json_decref(page);
        r->error = "upstream model list is not JSON";
        gb_req_error(r, 502, "bad_upstream_response", NULL, "the upstream model list is invalid");
        return;
    }
    json_array_extend(r->acc, models);
    if (next != NULL && next[0] != '\0' && ++r->pages < GB_MODELS_MAX_PAGES) {
        int rc = page_url(r, next);
        json_decref(page);
        if (rc < 0) {
            gb_req_error(r, 500, "internal_error", NULL, "out of memory");
            return;
        }
        gb_upstream_start(r);
        return;
    }
    json_decref(page);
    list = gb_models_to_openai(r->acc, (const char *const *)cfg->search_models.v,
                               cfg->search_models.n, (long long)time(NULL));
    s = list ? json_dumps(list, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(list);
    if (s == NULL) {
        gb_req_error(r, 500, "internal_error", NULL, "out of memory");
        return;
    }
    cache_put(&r->w->ctx->models, s, strlen(s));
    answer(r, s, strlen(s));
    free(s);
}

static int no_event(struct gb_req *r, const char *data, size_t len)
{
    (void)r;
    (void)data;
    (void)len;
    return -1;
}

static void no_stream_end(struct gb_req *r)
{
    (void)r;
}

static const struct gb_route_ops models_ops = {on_body, no_event, no_stream_end, NULL};

void gb_route_models(struct gb_req *r, const char *id)
{
    size_t len = 0;
    char *cached;

    gb_req_set_state(r, GB_REQ_PARSE);
    if (id != NULL) {
        if (strncmp(id, "models/", 7) == 0)
            id += 7;
        snprintf(r->route_arg, sizeof r->route_arg, "%s", id);
        snprintf(r->model, sizeof r->model, "%s", id);
    }
    cached = cache_get(&r->w->ctx->models, &len);
    if (cached != NULL) {
        answer(r, cached, len);
        free(cached);
        return;
    }
    r->acc = json_array();
    if (r->acc == NULL || page_url(r, NULL) < 0) {
        gb_req_error(r, 500, "internal_error", NULL, "out of memory");
        return;
    }
    r->up_stream = 0;
    r->ops = &models_ops;
    gb_upstream_start(r);
}
