/*
 * conn.c - client connections: the count and the MAX_CONNECTIONS limit
 * (see conn.h for how evhttp is watched).
 *
 * Accept path: evhttp calls make_bev() for each accepted connection, then
 * builds its connection object around that bufferevent and points the
 * bufferevent's callbacks at it.  make_bev() keeps a reference to the
 * bufferevent and wakes on_adopt(), which runs in the same loop iteration
 * (before the socket can be read), finds the connection through the
 * bufferevent's callback argument, and counts it or refuses it.
 */
#include "server/conn.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "metrics/metrics.h"
#include "server/worker.h"

/* File descriptors kept free of client connections (listeners, SQLite,
 * Redis, logs, curl's resolver). */
#define GB_CONN_FD_RESERVE 64

/* What a refused connection reads.  The API the client speaks is not known
 * yet, so the body carries both error shapes' fields: OpenAI clients read
 * error.message/type, Gemini clients error.code/status/message. */
#define REFUSED_BODY                                                                               \
    "{\"error\":{\"code\":503,\"message\":\"the gateway has too many client connections open "     \
    "(MAX_CONNECTIONS); retry shortly\",\"status\":\"UNAVAILABLE\",\"type\":\"server_error\"}}"

static const char refused_response[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                       "Content-Type: application/json\r\n"
                                       "Retry-After: 1\r\n"
                                       "Connection: close\r\n"
                                       "Content-Length: %zu\r\n\r\n%s";

/* A refused socket read and dropped until the client closes or the linger
 * time passes. */
struct refused_conn {
    struct refused_conn *next, *prev;
    struct gb_worker *w;
    struct event *ev;
    int fd;
};

/* What a worker holds for this module (w->conns). */
struct gb_conns {
    struct event *adopt;       /* wakes on_adopt */
    struct bufferevent **new_; /* accepted, not yet adopted (a reference each) */
    size_t n_new, cap_new;
    struct refused_conn *lingering; /* list */
    int n_lingering;
    char refused[512]; /* refused_response, rendered once */
    size_t refused_len;
};

/* Connections the open-files limit leaves room for: each may hold an
 * upstream socket too. */
static long fd_cap(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 10000000;
    if (rl.rlim_cur <= 2 * GB_CONN_FD_RESERVE)
        return GB_CONN_FD_RESERVE;
    return (long)(rl.rlim_cur - GB_CONN_FD_RESERVE) / 2;
}

long gb_conn_count(void)
{
    return gb_metrics_conn_add(0);
}

void gb_conn_closed(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    (void)arg;
    gb_metrics_conn_add(-1);
}

void gb_conn_rehook(struct gb_worker *w, struct evhttp_connection *evcon)
{
    evhttp_connection_set_closecb(evcon, gb_conn_closed, w);
}

static void linger_end(struct refused_conn *l)
{
    struct gb_conns *c = l->w->conns;

    if (l->prev != NULL)
        l->prev->next = l->next;
    else
        c->lingering = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
    c->n_lingering--;
    event_free(l->ev);
    close(l->fd);
    free(l);
}

static void on_linger(evutil_socket_t fd, short what, void *arg)
{
    struct refused_conn *l = arg;
    char sink[4096];
    ssize_t n;

    if (what & EV_TIMEOUT) {
        linger_end(l);
        return;
    }
    while ((n = recv(fd, sink, sizeof sink, MSG_DONTWAIT)) > 0)
        ;
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        linger_end(l);
}

/* Answers 503 and closes; the socket is read and dropped for a while on a
 * duplicate descriptor so the answer is not lost to a reset. */
static void refuse(struct gb_worker *w, struct evhttp_connection *evcon, evutil_socket_t fd)
{
    struct gb_conns *c = w->conns;
    struct refused_conn *l = NULL;
    struct timeval tv = {GB_CONN_LINGER_MS / 1000, (GB_CONN_LINGER_MS % 1000) * 1000};
    ssize_t sent;

    sent = send(fd, c->refused, c->refused_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)sent; /* best effort: a fresh socket's send buffer takes it whole */
    if (c->n_lingering < GB_CONN_LINGER_MAX && (l = calloc(1, sizeof *l)) != NULL) {
        l->w = w;
        l->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        l->ev = l->fd >= 0 ? event_new(w->base, l->fd, EV_READ | EV_PERSIST, on_linger, l) : NULL;
        if (l->ev == NULL || event_add(l->ev, &tv) != 0) {
            if (l->ev != NULL)
                event_free(l->ev);
            if (l->fd >= 0)
                close(l->fd);
            free(l);
            l = NULL;
        }
    }
    if (l != NULL) {
        l->next = c->lingering;
        if (c->lingering != NULL)
            c->lingering->prev = l;
        c->lingering = l;
        c->n_lingering++;
    }
    /* shuts the socket down for writing (the FIN follows the answer) and
     * lets go of it; no close callback is set, so nothing is uncounted */
    evhttp_connection_free(evcon);
}

static void on_adopt(evutil_socket_t fd, short what, void *arg)
{
    struct gb_worker *w = arg;
    struct gb_conns *c = w->conns;
    long limit = gb_cfg(w->ctx)->max_connections, cap = fd_cap();

    (void)fd;
    (void)what;
    if (limit > cap)
        limit = cap;
    for (size_t i = 0; i < c->n_new; i++) {
        struct bufferevent *bev = c->new_[i];
        bufferevent_event_cb eventcb = NULL;
        void *cbarg = NULL;

        bufferevent_getcb(bev, NULL, NULL, &eventcb, &cbarg);
        /* evhttp points the callbacks at its connection; none: it already
         * gave the connection up */
        if (eventcb != NULL && cbarg != NULL) {
            struct evhttp_connection *evcon = cbarg;
            if (gb_metrics_conn_add(1) > limit) {
                gb_metrics_conn_add(-1);
                gb_metrics_conn_refused();
                gb_debug("worker %d: connection refused: %ld open, MAX_CONNECTIONS %ld", w->id,
                         gb_conn_count(), limit);
                refuse(w, evcon, bufferevent_getfd(bev));
            } else {
                evhttp_connection_set_closecb(evcon, gb_conn_closed, w);
            }
        }
        bufferevent_decref(bev);
    }
    c->n_new = 0;
}

static struct bufferevent *make_bev(struct event_base *base, void *arg)
{
    struct gb_worker *w = arg;
    struct gb_conns *c = w->conns;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);

    if (bev == NULL)
        return NULL;
    if (c->n_new == c->cap_new) {
        size_t cap = c->cap_new ? 2 * c->cap_new : 64;
        struct bufferevent **v = realloc(c->new_, cap * sizeof *v);
        if (v == NULL)
            return bev; /* not counted: out of memory */
        c->new_ = v;
        c->cap_new = cap;
    }
    bufferevent_incref(bev);
    c->new_[c->n_new++] = bev;
    event_active(c->adopt, EV_TIMEOUT, 0);
    return bev;
}

int gb_conn_setup(struct gb_worker *w)
{
    struct gb_conns *c = calloc(1, sizeof *c);
    const size_t body_len = sizeof REFUSED_BODY - 1;
    static int warned;
    int n;

    if (c == NULL)
        return GB_ENOMEM;
    c->adopt = event_new(w->base, -1, 0, on_adopt, w);
    n = snprintf(c->refused, sizeof c->refused, refused_response, body_len, REFUSED_BODY);
    if (c->adopt == NULL || n < 0 || (size_t)n >= sizeof c->refused) {
        if (c->adopt != NULL)
            event_free(c->adopt);
        free(c);
        return GB_ENOMEM;
    }
    c->refused_len = (size_t)n;
    w->conns = c;
    evhttp_set_bevcb(w->http, make_bev, w);
    if (w->id == 0 && !warned && gb_cfg(w->ctx)->max_connections > fd_cap()) {
        warned = 1;
        gb_info("client connections: at most %ld, what the open-files limit allows "
                "(MAX_CONNECTIONS is %ld; raise ulimit -n for more)",
                fd_cap(), gb_cfg(w->ctx)->max_connections);
    }
    return 0;
}

void gb_conn_teardown(struct gb_worker *w)
{
    struct gb_conns *c = w->conns;

    if (c == NULL)
        return;
    while (c->lingering != NULL)
        linger_end(c->lingering);
    for (size_t i = 0; i < c->n_new; i++)
        bufferevent_decref(c->new_[i]);
    free(c->new_);
    event_free(c->adopt);
    free(c);
    w->conns = NULL;
}
