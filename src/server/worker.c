/*
 * worker.c - one thread = one event_base + evhttp + libcurl multi handle.
 *
 * Stopping: gb_worker_stop() schedules on_stop on the worker's own loop
 * (event_base_once is thread-safe once evthread_use_pthreads() ran); it
 * closes the listening socket and then checks every GB_DRAIN_TICK_MS until
 * no request is in flight or the drain deadline passed.
 */
#include "server/worker.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "server/conn.h"
#include "server/router.h"
#include "upstream/probe.h"

/* Interval of the drain check, in ms. */
#define GB_DRAIN_TICK_MS 50

int gb_worker_init(struct gb_worker *w, int id, struct gb_ctx *ctx, int listen_fd)
{
    struct event_config *ec = event_config_new();

    memset(w, 0, sizeof *w);
    w->id = id;
    w->ctx = ctx;
    w->listen_fd = listen_fd;
    if (ec == NULL)
        goto fail;
    /* batches epoll_ctl changes: fewer syscalls per request (DESIGN.md §9) */
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    w->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (w->base == NULL)
        goto fail;
    w->chunk = evbuffer_new();
    w->http = evhttp_new(w->base);
    if (w->chunk == NULL || w->http == NULL)
        goto fail;
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_max_body_size(w->http, (ev_ssize_t)gb_cfg(ctx)->max_request_bytes);
    evhttp_set_max_headers_size(w->http, (ev_ssize_t)gb_cfg(ctx)->max_header_bytes);
    evhttp_set_timeout(w->http, (int)gb_cfg(ctx)->client_timeout_s);
    evhttp_set_flags(w->http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_gencb(w->http, gb_router_on_request, w);
    if (gb_conn_setup(w) < 0)
        goto fail;
    w->bound = evhttp_accept_socket_with_handle(w->http, listen_fd);
    if (w->bound == NULL)
        goto fail;
    w->listen_fd = -1; /* evhttp owns it now */
    w->curl = gb_curlev_new(w->base, GB_CURLEV_EASY_POOL * 4);
    if (w->curl == NULL)
        goto fail;
    if (id == 0 && gb_probe_schedule(w) < 0)
        goto fail;
    return 0;
fail:
    gb_error("worker %d: cannot set up its event loop", id);
    gb_worker_join(w);
    return GB_ENOMEM;
}

static void *run(void *arg)
{
    struct gb_worker *w = arg;

    event_base_dispatch(w->base);
    return NULL;
}

int gb_worker_start(struct gb_worker *w)
{
    if (pthread_create(&w->thread, NULL, run, w) != 0) {
        gb_error("worker %d: cannot start its thread", w->id);
        return GB_EIO;
    }
    return 0;
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    struct gb_worker *w = arg;
    struct timeval tv = {0, GB_DRAIN_TICK_MS * 1000};

    (void)fd;
    (void)what;
    if (w->active <= 0 || gb_now_ms() >= w->drain_deadline_ms) {
        if (w->active > 0)
            gb_warn("worker %d: %ld requests still running at the drain deadline", w->id,
                    w->active);
        event_base_loopexit(w->base, NULL);
        return;
    }
    evtimer_add(w->drain_timer, &tv);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct gb_worker *w = arg;

    (void)fd;
    (void)what;
    if (w->draining)
        return;
    w->draining = 1;
    w->drain_deadline_ms = gb_now_ms() + gb_cfg(w->ctx)->shutdown_timeout_s * 1000;
    if (w->bound != NULL) {
        evhttp_del_accept_socket(w->http, w->bound);
        w->bound = NULL;
    }
    w->drain_timer = evtimer_new(w->base, on_drain_tick, w);
    if (w->drain_timer == NULL) {
        event_base_loopexit(w->base, NULL);
        return;
    }
    on_drain_tick(-1, 0, w);
}

void gb_worker_stop(struct gb_worker *w)
{
    if (w->base != NULL)
        event_base_once(w->base, -1, EV_TIMEOUT, on_stop, w, NULL);
}

void gb_worker_join(struct gb_worker *w)
{
    if (w->thread != 0)
        pthread_join(w->thread, NULL);
    w->thread = 0;
    if (w->drain_timer != NULL)
        event_free(w->drain_timer);
    w->drain_timer = NULL;
    if (w->recheck != NULL)
        event_free(w->recheck);
    w->recheck = NULL;
    /* evhttp_free closes client connections; requests still pending are
     * cut off (their state is freed with the process) */
    if (w->http != NULL)
        evhttp_free(w->http);
    w->http = NULL;
    gb_conn_teardown(w);
    if (w->curl != NULL)
        gb_probe_cancel_all(w);
    gb_curlev_free(w->curl);
    w->curl = NULL;
    if (w->chunk != NULL)
        evbuffer_free(w->chunk);
    w->chunk = NULL;
    if (w->base != NULL)
        event_base_free(w->base);
    w->base = NULL;
    if (w->listen_fd >= 0)
        close(w->listen_fd);
    w->listen_fd = -1;
}
