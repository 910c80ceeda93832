/*
 * floor-relay.c - the floor of the gateway's stack, for `make bench` (h).
 *
 * The least a relay built on libevent's HTTP server can cost: every request
 * is passed, with its method, URI and body, to the upstream over a pooled
 * keep-alive connection of libevent's own HTTP client (no libcurl), and the
 * answer's status, Content-Type and body are passed back.  Nothing else: no
 * token check, no key choice, no JSON, no log, no store.  One thread per
 * CPU, each with its own event loop and SO_REUSEPORT listener, as the
 * gateway runs.  What the gateway costs beyond this is its own; what this
 * costs is the floor any design on evhttp stands on.
 *
 *   floor-relay PORT UPSTREAM_PORT [THREADS]
 *
 * Bench tooling, not part of the gateway.  Built by scripts/bench.sh.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define POOL_MAX 1024 /* idle upstream connections kept per thread */

struct loop {
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_connection *idle[POOL_MAX];
    int nidle;
};

/* One request in flight: the client's request and the upstream connection
 * it holds until the answer is in. */
struct relay {
    struct loop *l;
    struct evhttp_request *down;
    struct evhttp_connection *conn;
};

static int port, up_port;

static void put_conn(struct loop *l, struct evhttp_connection *c)
{
    if (l->nidle < POOL_MAX)
        l->idle[l->nidle++] = c;
    else
        evhttp_connection_free(c);
}

static void on_upstream(struct evhttp_request *up, void *arg)
{
    struct relay *x = arg;
    struct evkeyvalq *out = evhttp_request_get_output_headers(x->down);
    const char *ctype;
    int status = up ? evhttp_request_get_response_code(up) : 0;

    if (status == 0) {
        evhttp_send_error(x->down, 502, "upstream failed");
        evhttp_connection_free(x->conn);
        free(x);
        return;
    }
    ctype = evhttp_find_header(evhttp_request_get_input_headers(up), "Content-Type");
    if (ctype != NULL)
        evhttp_add_header(out, "Content-Type", ctype);
    evhttp_send_reply(x->down, status, evhttp_request_get_response_code_line(up),
                      evhttp_request_get_input_buffer(up));
    put_conn(x->l, x->conn);
    free(x);
}

static void on_request(struct evhttp_request *down, void *arg)
{
    struct loop *l = arg;
    struct relay *x = malloc(sizeof *x);
    struct evhttp_request *up;
    struct evkeyvalq *h;

    if (x == NULL) {
        evhttp_send_error(down, 503, NULL);
        return;
    }
    x->l = l;
    x->down = down;
    x->conn = l->nidle > 0 ? l->idle[--l->nidle]
                           : evhttp_connection_base_new(l->base, NULL, "127.0.0.1", up_port);
    up = x->conn ? evhttp_request_new(on_upstream, x) : NULL;
    if (up == NULL) {
        if (x->conn != NULL)
            evhttp_connection_free(x->conn);
        free(x);
        evhttp_send_error(down, 503, NULL);
        return;
    }
    /* the headers the gateway sends upstream */
    h = evhttp_request_get_output_headers(up);
    evhttp_add_header(h, "Host", "127.0.0.1");
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "x-goog-api-key", "bench-k1");
    evbuffer_add_buffer(evhttp_request_get_output_buffer(up),
                        evhttp_request_get_input_buffer(down));
    if (evhttp_make_request(x->conn, up, evhttp_request_get_command(down),
                            evhttp_request_get_uri(down)) != 0) {
        /* evhttp freed up; the connection goes */
        evhttp_connection_free(x->conn);
        free(x);
        evhttp_send_error(down, 502, "upstream failed");
    }
}

static void *run(void *arg)
{
    struct loop *l = arg;
    struct event_config *cfg = event_config_new();
    struct sockaddr_in sin;
    struct evconnlistener *lis;

    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    l->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    l->http = l->base ? evhttp_new(l->base) : NULL;
    if (l->http == NULL) {
        fprintf(stderr, "floor-relay: no event loop\n");
        exit(1);
    }
    evhttp_set_gencb(l->http, on_request, l);
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lis = evconnlistener_new_bind(
        l->base, NULL, NULL, LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_FREE,
        4096, (struct sockaddr *)&sin, sizeof sin);
    if (lis == NULL || evhttp_bind_listener(l->http, lis) == NULL) {
        fprintf(stderr, "floor-relay: cannot listen on 127.0.0.1:%d\n", port);
        exit(1);
    }
    event_base_dispatch(l->base);
    return NULL;
}

int main(int argc, char **argv)
{
    long n = argc > 3 ? atol(argv[3]) : sysconf(_SC_NPROCESSORS_ONLN);
    pthread_t *t;
    struct loop *loops;

    if (argc < 3 || (port = atoi(argv[1])) <= 0 || (up_port = atoi(argv[2])) <= 0 || n < 1 ||
        n > 64) {
        fprintf(stderr, "usage: floor-relay PORT UPSTREAM_PORT [THREADS]\n");
        return 2;
    }
    t = calloc((size_t)n, sizeof *t);
    loops = calloc((size_t)n, sizeof *loops);
    if (t == NULL || loops == NULL)
        return 1;
    for (long i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, run, &loops[i]) != 0)
            return 1;
    for (long i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    return 0;
}
