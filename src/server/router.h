/*
 * router.h - path normalisation and the route table (method, path, API
 * flavour, handler) as data.
 */
#ifndef GB_SERVER_ROUTER_H
#define GB_SERVER_ROUTER_H

#include <stddef.h>

#include "server/req.h"

struct gb_worker;

/* Entry point for every request evhttp reads; arg is the gb_worker. */
void gb_router_on_request(struct evhttp_request *ev, void *arg);

/*
 * Normalises a request path into out (outlen bytes): the query is cut,
 * runs of '/' become one, a trailing '/' is dropped (except for "/").
 * Returns 0, or GB_ETOOBIG when it does not fit.
 */
int gb_router_normalize(const char *uri, char *out, size_t outlen);

#endif
