/*
 * conn.h - client connections: the count and the MAX_CONNECTIONS limit.
 *
 * evhttp 2.1 has no hook that sees a connection open or close, so the
 * accept path is watched from two sides: evhttp's bufferevent callback
 * (evhttp_set_bevcb) runs once per accepted connection, and a close
 * callback on the connection (evhttp_connection_set_closecb) runs once when
 * evhttp frees it.  Between the two, a connection is counted.  Beyond the
 * limit, a new connection gets a 503 JSON answer with "Connection: close"
 * and is closed right away (after a short linger, so the answer is not
 * lost to a reset).
 *
 * CLIENT_TIMEOUT bounds the time from accept (or from the previous answer)
 * to a whole request, head and body: evhttp's own timeout restarts with
 * every byte read, so a client trickling a byte a second (slowloris) would
 * hold its connection for ever.
 *
 * The close callback is the connection's single one: a request that needs
 * its own (hang-up detection, req.c) calls gb_conn_closed() from it and
 * gives the connection back with gb_conn_rehook() when it is done.
 */
#ifndef GB_SERVER_CONN_H
#define GB_SERVER_CONN_H

struct gb_worker;
struct evhttp_connection;
struct evhttp_request;

/* How long a refused connection's input is read and dropped before the
 * socket closes, in ms (so the client reads the 503 instead of a reset). */
#define GB_CONN_LINGER_MS 2000
/* Refused connections lingering at once per worker; beyond, close at once. */
#define GB_CONN_LINGER_MAX 256

/* Installs the accept hook on w->http.  0 or GB_ENOMEM. */
int gb_conn_setup(struct gb_worker *w);

/* Frees what gb_conn_setup and the lingering connections hold (after the
 * loop stopped). */
void gb_conn_teardown(struct gb_worker *w);

/* The connection close callback (arg: its record): uncounts it. */
void gb_conn_closed(struct evhttp_connection *evcon, void *arg);

/* What a request's own close callback calls instead of gb_conn_closed. */
void gb_conn_gone(struct gb_worker *w, struct evhttp_connection *evcon);

/* Sets gb_conn_closed back as evcon's close callback. */
void gb_conn_rehook(struct gb_worker *w, struct evhttp_connection *evcon);

/* A whole request arrived on its connection (the router calls it first):
 * stops the connection's CLIENT_TIMEOUT clock, which starts again for the
 * next request once this one's answer is sent. */
void gb_conn_request(struct gb_worker *w, struct evhttp_request *ev);

/* Client connections open in the process. */
long gb_conn_count(void);

#endif
