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
 *
 * Idle connections stay watched.  libcurl drops its interest in a socket
 * when a transfer ends (CURL_POLL_REMOVE) and takes it up again with the
 * next transfer on the same keep-alive connection; deleting and re-adding
 * the event cost an epoll_ctl pair per upstream request.  A connection
 * socket libcurl opened through open_socket (so that its close reaches
 * close_socket) keeps its read event registered instead ("parked"): the
 * next CURL_POLL_IN finds it by descriptor and changes nothing.  Should a
 * parked socket become readable (the server closed it or sent something
 * unasked), its event is deleted and libcurl's liveness check before the
 * next reuse deals with the connection.  close_socket frees the event
 * before the descriptor is closed, so no event outlives its socket.
 *
 * Upstream URLs go to libcurl parsed (gb_curlev_set_url, urlcache.h): a
 * transfer holds its cache entry from gb_curlev_set_url until it leaves the
 * multi handle (drain, gb_curlev_remove, a failed gb_curlev_add), so no entry
 * is evicted while libcurl may read it.
 */
#include "upstream/curlev.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "upstream/netaddr.h"
#include "upstream/urlcache.h"

/* What we know of one descriptor libcurl uses. */
struct sock {
    struct event *ev; /* owned: the watch, NULL when none */
    short kind;       /* EV_READ/EV_WRITE of ev, with EV_PERSIST */
    unsigned opened;  /* opened by open_socket: its close reaches close_socket */
    unsigned parked;  /* libcurl dropped it; ev stays registered (read only) */
    unsigned armed;   /* ev is added to the loop */
};

/* CURLOPT_OPENSOCKETDATA: the glue, and whether only public addresses go */
struct opener {
    struct gb_curlev *ce;
    int public_only;
};

struct gb_curlev {
    struct opener any, public_only; /* the two kinds of socket opener */
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    struct event *drainer; /* runs drain() from the loop */
    CURL *pool[GB_CURLEV_EASY_POOL];
    int npool;
    int in_action;      /* inside curl_multi_socket_action */
    struct sock *socks; /* owned, by descriptor */
    size_t nsocks;
    struct gb_urlcache *urls; /* owned: parsed upstream URLs (gb_curlev_set_url) */
};

/* The record of descriptor s, grown as needed; NULL when out of memory. */
static struct sock *sock_at(struct gb_curlev *ce, curl_socket_t s)
{
    if (s < 0)
        return NULL;
    if ((size_t)s >= ce->nsocks) {
        size_t n = ce->nsocks ? ce->nsocks : 64;
        struct sock *v;

        while (n <= (size_t)s)
            n *= 2;
        v = realloc(ce->socks, n * sizeof *v);
        if (v == NULL)
            return NULL;
        memset(v + ce->nsocks, 0, (n - ce->nsocks) * sizeof *v);
        ce->socks = v;
        ce->nsocks = n;
    }
    return &ce->socks[s];
}

static void sock_forget(struct sock *k)
{
    if (k->ev != NULL)
        event_free(k->ev);
    memset(k, 0, sizeof *k);
}

/* The transfer left the multi handle: libcurl reads its CURLU no more. */
static void release_url(struct gb_curlev *ce, struct gb_curlev_xfer *x)
{
    if (x->url != NULL) {
        gb_urlcache_put(ce->urls, x->url);
        x->url = NULL;
    }
}

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
        if (x != NULL)
            release_url(ce, x);
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
    struct gb_curlev *ce = arg;
    int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);

    if (fd >= 0 && (size_t)fd < ce->nsocks && ce->socks[fd].parked) {
        /* an idle connection spoke (most likely the server closed it):
         * stop watching; libcurl checks the connection before reusing it */
        event_del(ce->socks[fd].ev);
        ce->socks[fd].armed = 0;
        return;
    }
    action(ce, fd, flags);
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

/* CURLMOPT_SOCKETFUNCTION: (un)watch a socket.  The event lives in the
 * descriptor's record (see the top of the file for parking). */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *sockp)
{
    struct gb_curlev *ce = userp;
    struct sock *k = sock_at(ce, s);
    short kind;

    (void)easy;
    (void)sockp;
    if (k == NULL)
        return -1;
    if (what == CURL_POLL_REMOVE) {
        if (k->opened && k->ev != NULL && k->armed && k->kind == (EV_READ | EV_PERSIST))
            k->parked = 1;
        else if (k->ev != NULL) {
            event_free(k->ev);
            k->ev = NULL;
            k->armed = 0;
            k->parked = 0;
        }
        return 0;
    }
    kind = (short)((what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0) |
                   EV_PERSIST);
    k->parked = 0;
    if (k->ev != NULL && k->kind == kind && k->armed)
        return 0; /* a parked watch taken up again: nothing to change */
    if (k->ev == NULL) {
        k->ev = event_new(ce->base, s, kind, on_event, ce);
        if (k->ev == NULL)
            return -1;
    } else {
        event_del(k->ev);
        event_assign(k->ev, ce->base, s, kind, on_event, ce);
    }
    k->kind = kind;
    k->armed = event_add(k->ev, NULL) == 0;
    return 0;
}

/* CURLOPT_OPENSOCKETFUNCTION: a connection's socket, marked as ours. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    const struct opener *o = clientp;
    struct gb_curlev *ce = o->ce;
    curl_socket_t s;
    struct sock *k;

    (void)purpose;
    if (o->public_only && !gb_addr_public(&a->addr)) {
        gb_debug("curlev: connection to a non-public address refused");
        return CURL_SOCKET_BAD;
    }
    s = socket(a->family, a->socktype, a->protocol);
    if (s == CURL_SOCKET_BAD)
        return s;
    if ((k = sock_at(ce, s)) != NULL) {
        sock_forget(k); /* a stale record (cannot happen: closes come here) */
        k->opened = 1;
    }
    return s;
}

/* CURLOPT_CLOSESOCKETFUNCTION: the watch goes before the descriptor. */
static int close_socket(void *clientp, curl_socket_t s)
{
    struct gb_curlev *ce = clientp;

    if (s >= 0 && (size_t)s < ce->nsocks)
        sock_forget(&ce->socks[s]);
    return close(s);
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
    ce->any.ce = ce;
    ce->public_only.ce = ce;
    ce->public_only.public_only = 1;
    ce->multi = curl_multi_init();
    ce->timer = evtimer_new(base, on_timeout, ce);
    ce->drainer = event_new(base, -1, 0, on_drain, ce);
    ce->urls = gb_urlcache_new(GB_URLCACHE_SLOTS);
    if (ce->multi == NULL || ce->timer == NULL || ce->drainer == NULL || ce->urls == NULL)
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
    gb_urlcache_free(ce->urls); /* after the multi handle: no transfer reads it */
    for (size_t i = 0; i < ce->nsocks; i++)
        sock_forget(&ce->socks[i]);
    free(ce->socks);
    free(ce);
}

/* The reset is not only for options: libcurl 7.88 keeps the count of
 * dead-connection retries (give-up at 5) per easy handle across transfers,
 * and only curl_easy_reset clears it (docs/ARCHITECTURE.md). */
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

int gb_curlev_set_url(struct gb_curlev *ce, struct gb_curlev_xfer *x, CURL *easy, const char *url)
{
    release_url(ce, x);
    x->url = gb_urlcache_get(ce->urls, url);
    curl_easy_setopt(easy, CURLOPT_CURLU, x->url ? gb_urlcache_curlu(x->url) : NULL);
    /* The string too: without it Curl_pretransfer would print the URL out
     * of the CURLU (curl_url_get, ~9K instructions) for the transfer's URL
     * string.  libcurl parses nothing from the string while a CURLU is set. */
    if (curl_easy_setopt(easy, CURLOPT_URL, url) != CURLE_OK) {
        curl_easy_setopt(easy, CURLOPT_CURLU, NULL);
        release_url(ce, x);
        return GB_ENOMEM;
    }
    return 0;
}

static int add(struct gb_curlev *ce, struct gb_curlev_xfer *x, CURL *easy, gb_curlev_done_cb cb,
               void *ud, struct opener *o)
{
    x->cb = cb;
    x->ud = ud;
    x->easy = easy;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, o);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, ce);
    if (curl_multi_add_handle(ce->multi, easy) != CURLM_OK) {
        x->cb = NULL;
        release_url(ce, x);
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

int gb_curlev_add(struct gb_curlev *ce, struct gb_curlev_xfer *x, CURL *easy, gb_curlev_done_cb cb,
                  void *ud)
{
    return add(ce, x, easy, cb, ud, &ce->any);
}

int gb_curlev_add_public(struct gb_curlev *ce, struct gb_curlev_xfer *x, CURL *easy,
                         gb_curlev_done_cb cb, void *ud)
{
    return add(ce, x, easy, cb, ud, &ce->public_only);
}

void gb_curlev_remove(struct gb_curlev *ce, struct gb_curlev_xfer *x)
{
    if (x->easy == NULL) {
        release_url(ce, x); /* set but never added */
        return;
    }
    if (ce->in_action)
        gb_error("curlev: transfer removed from inside libcurl (bug)");
    x->cb = NULL;
    curl_multi_remove_handle(ce->multi, x->easy);
    release_url(ce, x);
}
