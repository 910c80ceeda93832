/*
 * curlev.c - glue between libcurl's multi socket API and libevent.
 *
 * libcurl tells us which sockets to watch (on_socket) and when to wake it
 * (on_timer); libevent tells libcurl what happened (on_event, on_timeout).
 * After each curl_multi_socket_action the finished transfers are drained
 * from curl_multi_info_read, removed, and their callbacks run.
 *
 * A new transfer is started at once (gb_curlev_add runs libcurl's timeout
 * action itself) instead of from a zero-delay timer: that saves a loop
 * pass and an epoll_wait per upstream request.  What finishes during that
 * action is drained from a user event later in the same loop pass, never
 * from inside gb_curlev_add, so its caller's state is never pulled from
 * under it.
 */
#include "upstream/curlev.h"

#include <stdlib.h>

#include "core/err.h"
#include "core/log.h"

struct gb_curlev {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    struct event *drainer; /* runs drain() from the loop */
    CURL *pool[GB_CURLEV_EASY_POOL];
    int npool;
    int in_action; /* inside curl_multi_socket_action */
};

static void drain(struct gb_curlev *ce)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(ce->multi, &left)) != NULL) {
        struct gb_curlev_xfer *x = NULL;
        CURLcode result = msg->data.result;
        CURL *easy = msg->easy_handle;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(ce->multi, easy);
        if (x != NULL && x->cb != NULL) {
            gb_curlev_done_cb cb = x->cb;
            x->cb = NULL;
            cb(x->ud, result);
        }
    }
}

static void action(struct gb_curlev *ce, curl_socket_t fd, int flags)
{
    int running;

    ce->in_action = 1;
    curl_multi_socket_action(ce->multi, fd, flags, &running);
    ce->in_action = 0;
    drain(ce);
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);

    action(arg, fd, flags);
}

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    drain(arg);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    action(arg, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_SOCKETFUNCTION: (un)watch a socket.  sockp is our struct event. */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *sockp)
{
    struct gb_curlev *ce = userp;
    struct event *ev = sockp;
    short kind;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (ev != NULL) {
            event_free(ev);
            curl_multi_assign(ce->multi, s, NULL);
        }
        return 0;
    }
    kind = (short)((what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0) |
                   EV_PERSIST);
    if (ev == NULL) {
        ev = event_new(ce->base, s, kind, on_event, ce);
        if (ev == NULL)
            return -1;
        curl_multi_assign(ce->multi, s, ev);
    } else {
        event_del(ev);
        event_assign(ev, ce->base, s, kind, on_event, ce);
    }
    event_add(ev, NULL);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: one timer for the whole multi handle.  A zero
 * timeout is run from the loop, never from inside libcurl. */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct gb_curlev *ce = userp;
    struct timeval tv;

    (void)multi;
    if (timeout_ms < 0) {
        evtimer_del(ce->timer);
        return 0;
    }
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    evtimer_add(ce->timer, &tv);
    return 0;
}

struct gb_curlev *gb_curlev_new(struct event_base *base, long maxconns)
{
    struct gb_curlev *ce = calloc(1, sizeof *ce);

    if (ce == NULL)
        return NULL;
    ce->base = base;
    ce->multi = curl_multi_init();
    ce->timer = evtimer_new(base, on_timeout, ce);
    ce->drainer = event_new(base, -1, 0, on_drain, ce);
    if (ce->multi == NULL || ce->timer == NULL || ce->drainer == NULL)
        goto fail;
    curl_multi_setopt(ce->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(ce->multi, CURLMOPT_SOCKETDATA, ce);
    curl_multi_setopt(ce->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(ce->multi, CURLMOPT_TIMERDATA, ce);
    curl_multi_setopt(ce->multi, CURLMOPT_MAXCONNECTS, maxconns);
    return ce;
fail:
    gb_curlev_free(ce);
    return NULL;
}

void gb_curlev_free(struct gb_curlev *ce)
{
    if (ce == NULL)
        return;
    for (int i = 0; i < ce->npool; i++)
        curl_easy_cleanup(ce->pool[i]);
    if (ce->multi != NULL)
        curl_multi_cleanup(ce->multi);
    if (ce->timer != NULL)
        event_free(ce->timer);
    if (ce->drainer != NULL)
        event_free(ce->drainer);
    free(ce);
}

CURL *gb_curlev_easy_get(struct gb_curlev *ce)
{
    if (ce->npool > 0) {
        CURL *e = ce->pool[--ce->npool];
        curl_easy_reset(e);
        return e;
    }
    return curl_easy_init();
}

void gb_curlev_easy_put(struct gb_curlev *ce, CURL *easy)
{
    if (easy == NULL)
        return;
    if (ce->npool < GB_CURLEV_EASY_POOL)
        ce->pool[ce->npool++] = easy;
    else
        curl_easy_cleanup(easy);
}

int gb_curlev_add(struct gb_curlev *ce, struct gb_curlev_xfer *x, CURL *easy, gb_curlev_done_cb cb,
                  void *ud)
{
    x->cb = cb;
    x->ud = ud;
    x->easy = easy;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
    if (curl_multi_add_handle(ce->multi, easy) != CURLM_OK) {
        x->cb = NULL;
        return GB_EIO;
    }
    if (!ce->in_action) {
        int running;

        ce->in_action = 1;
        curl_multi_socket_action(ce->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        ce->in_action = 0;
        event_active(ce->drainer, EV_TIMEOUT, 0);
    }
    return 0;
}

void gb_curlev_remove(struct gb_curlev *ce, struct gb_curlev_xfer *x)
{
    if (x->easy == NULL)
        return;
    if (ce->in_action)
        gb_error("curlev: transfer removed from inside libcurl (bug)");
    x->cb = NULL;
    curl_multi_remove_handle(ce->multi, x->easy);
}
