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

#include "core/clock.h"
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

/* A counted client connection.  While it waits for a request it is on the
 * worker's deadline list (arm order; all deadlines are CLIENT_TIMEOUT away,
 * so the head expires first); while a request is handled it is off it. */
struct gb_conn {
    struct gb_conn *prev, *next;
    struct gb_conns *owner;
    struct evhttp_connection *evcon;
    int64_t deadline_ms;
    int fd;
    int listed;
};

/* What a worker holds for this module (w->conns). */
struct gb_conns {
    struct gb_worker *w;
    struct gb_conn **by_fd; /* the connection on each descriptor, or NULL */
    size_t n_by_fd;
    struct gb_conn *head, *tail; /* deadline list */
    struct event *deadline;      /* fires at the head's deadline */
    struct event *adopt;         /* wakes on_adopt */
    struct bufferevent **new_;   /* accepted, not yet adopted (a reference each) */
    size_t n_new, cap_new;
    struct refused_conn *lingering; /* list */
    int n_lingering;
    long fd_cap;       /* fd_cap() at start-up: main raised the limit before */
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

static void unlist(struct gb_conn *k)
{
    struct gb_conns *c = k->owner;

    if (!k->listed)
        return;
    if (k->prev != NULL)
        k->prev->next = k->next;
    else
        c->head = k->next;
    if (k->next != NULL)
        k->next->prev = k->prev;
    else
        c->tail = k->prev;
    k->prev = k->next = NULL;
    k->listed = 0;
}

static void arm_timer(struct gb_conns *c)
{
    int64_t wait;
    struct timeval tv;

    if (c->head == NULL) {
        evtimer_del(c->deadline);
        return;
    }
    wait = c->head->deadline_ms - gb_now_ms();
    if (wait < 0)
        wait = 0;
    tv.tv_sec = (time_t)(wait / 1000);
    tv.tv_usec = (suseconds_t)(wait % 1000) * 1000;
    evtimer_add(c->deadline, &tv);
}

/* Starts the clock for the connection's next request. */
static void list(struct gb_conn *k)
{
    struct gb_conns *c = k->owner;
    int was_empty = c->head == NULL;

    unlist(k);
    k->deadline_ms = gb_now_ms() + gb_cfg(c->w->ctx)->client_timeout_s * 1000;
    k->prev = c->tail;
    if (c->tail != NULL)
        c->tail->next = k;
    else
        c->head = k;
    c->tail = k;
    k->listed = 1;
    if (was_empty)
        arm_timer(c);
}

/* Connections whose request did not arrive in time: closed, as nginx does
 * at client_header_timeout (no answer: the client may be between
 * requests). */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct gb_conns *c = arg;
    int64_t now = gb_now_ms();

    (void)fd;
    (void)what;
    while (c->head != NULL && c->head->deadline_ms <= now) {
        struct gb_conn *k = c->head;
        unlist(k);
        gb_debug("worker %d: connection closed: no whole request within CLIENT_TIMEOUT", c->w->id);
        /* runs gb_conn_closed, which frees k */
        evhttp_connection_free(k->evcon);
    }
    arm_timer(c);
}

static struct gb_conn *lookup(struct gb_worker *w, struct evhttp_connection *evcon)
{
    struct gb_conns *c = w->conns;
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;

    if (c == NULL || fd < 0 || (size_t)fd >= c->n_by_fd)
        return NULL;
    return c->by_fd[fd] != NULL && c->by_fd[fd]->evcon == evcon ? c->by_fd[fd] : NULL;
}

void gb_conn_closed(struct evhttp_connection *evcon, void *arg)
{
    struct gb_conn *k = arg;

    (void)evcon;
    if (k == NULL)
        return;
    unlist(k);
    if (k->fd >= 0 && (size_t)k->fd < k->owner->n_by_fd && k->owner->by_fd[k->fd] == k)
        k->owner->by_fd[k->fd] = NULL;
    free(k);
    gb_metrics_conn_add(-1);
}

void gb_conn_gone(struct gb_worker *w, struct evhttp_connection *evcon)
{
    gb_conn_closed(evcon, lookup(w, evcon));
}

void gb_conn_rehook(struct gb_worker *w, struct evhttp_connection *evcon)
{
    struct gb_conn *k = lookup(w, evcon);

    if (k != NULL)
        evhttp_connection_set_closecb(evcon, gb_conn_closed, k);
}

static void on_request_done(struct evhttp_request *ev, void *arg)
{
    struct gb_conns *c = arg;
    struct gb_conn *k = lookup(c->w, evhttp_request_get_connection(ev));

    if (k != NULL)
        list(k);
}

void gb_conn_request(struct gb_worker *w, struct evhttp_request *ev)
{
    struct gb_conn *k = lookup(w, evhttp_request_get_connection(ev));

    if (k == NULL)
        return;
    unlist(k);
    evhttp_request_set_on_complete_cb(ev, on_request_done, w->conns);
}

/* Records a counted connection; 0 or -1 (out of memory: left uncounted). */
static int track(struct gb_conns *c, struct evhttp_connection *evcon, evutil_socket_t fd)
{
    struct gb_conn *k;

    if (fd < 0)
        return -1;
    if ((size_t)fd >= c->n_by_fd) {
        size_t n = c->n_by_fd ? c->n_by_fd : 1024;
        while (n <= (size_t)fd)
            n *= 2;
        struct gb_conn **v = realloc(c->by_fd, n * sizeof *v);
        if (v == NULL)
            return -1;
        memset(v + c->n_by_fd, 0, (n - c->n_by_fd) * sizeof *v);
        c->by_fd = v;
        c->n_by_fd = n;
    }
    if ((k = calloc(1, sizeof *k)) == NULL)
        return -1;
    k->owner = c;
    k->evcon = evcon;
    k->fd = fd;
    c->by_fd[fd] = k;
    evhttp_connection_set_closecb(evcon, gb_conn_closed, k);
    list(k);
    return 0;
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
    long limit = gb_cfg(w->ctx)->max_connections, cap = c->fd_cap;

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
            } else if (track(c, evcon, bufferevent_getfd(bev)) < 0) {
                gb_metrics_conn_add(-1); /* out of memory: served, not counted */
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
    c->w = w;
    c->fd_cap = fd_cap();
    c->adopt = event_new(w->base, -1, 0, on_adopt, w);
    c->deadline = evtimer_new(w->base, on_deadline, c);
    n = snprintf(c->refused, sizeof c->refused, refused_response, body_len, REFUSED_BODY);
    if (c->adopt == NULL || c->deadline == NULL || n < 0 || (size_t)n >= sizeof c->refused) {
        if (c->adopt != NULL)
            event_free(c->adopt);
        if (c->deadline != NULL)
            event_free(c->deadline);
        free(c);
        return GB_ENOMEM;
    }
    c->refused_len = (size_t)n;
    w->conns = c;
    evhttp_set_bevcb(w->http, make_bev, w);
    if (w->id == 0 && !warned && gb_cfg(w->ctx)->max_connections > c->fd_cap) {
        warned = 1;
        gb_info("client connections: at most %ld, what the open-files limit allows "
                "(MAX_CONNECTIONS is %ld; raise ulimit -n for more)",
                c->fd_cap, gb_cfg(w->ctx)->max_connections);
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
    /* evhttp_free closed every connection (each close freed its record) */
    free(c->by_fd);
    event_free(c->adopt);
    event_free(c->deadline);
    free(c);
    w->conns = NULL;
}
