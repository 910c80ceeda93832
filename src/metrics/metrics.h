/*
 * metrics.h - process-wide counters and histograms, rendered in the
 * Prometheus text format for GET /metrics.
 *
 * Updates are cheap and thread-safe (C11 atomics; a short mutex only the
 * first time a (route, model, status) series appears).  Memory is bounded:
 * at most GB_METRICS_MAX_MODELS distinct model labels are kept, later ones
 * count under model="other", so a client inventing model names cannot grow
 * the series without bound.  No label ever holds a key or a token.
 */
#ifndef GB_METRICS_METRICS_H
#define GB_METRICS_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Distinct model label values kept; later ones count as model="other". */
#define GB_METRICS_MAX_MODELS 64

/* Distinct status codes kept per route; later ones, and codes outside
 * 100..599, count as status="other". */
#define GB_METRICS_MAX_STATUSES 32

/* Longest model label value, in bytes before escaping.  Longer names are cut
 * at a UTF-8 character boundary, so names sharing their first 128 bytes share
 * a series. */
#define GB_METRICS_MODEL_MAX_BYTES 128

/* Ceiling on the rendered text, in bytes.  The worst case (every route x
 * every model x every status, with 128-byte names that escape to twice
 * their length) is about 4 MiB; a typical render is under 20 KiB. */
#define GB_METRICS_RENDER_MAX_BYTES (8u * 1024 * 1024)

/* Content-Type for the rendered text (Prometheus text exposition 0.0.4). */
#define GB_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum gb_metric_route {
    GB_ROUTE_CHAT,
    GB_ROUTE_EMBEDDINGS,
    GB_ROUTE_MODELS,
    GB_ROUTE_NATIVE,
    GB_ROUTE_ADMIN,
    GB_ROUTE_OTHER,
    GB_ROUTE__COUNT
};

/* What one upstream attempt came to. */
enum gb_metric_attempt {
    GB_ATTEMPT_OK,
    GB_ATTEMPT_KEY_INVALID,  /* 400 API_KEY_INVALID, 401, 403 */
    GB_ATTEMPT_RATE_LIMITED, /* 429 */
    GB_ATTEMPT_SERVER_ERROR, /* 5xx */
    GB_ATTEMPT_TRANSPORT,    /* timeout, refused, reset */
    GB_ATTEMPT_CLIENT_ERROR, /* other 4xx */
    GB_ATTEMPT__COUNT
};

/* Key pool gauges, passed in at render time. */
struct gb_metrics_keys {
    size_t total, usable, cooling, disabled;
    int throttled; /* 1 while the pool-wide backoff is on */
};

/* A finished client request.  model may be NULL; ttfb_s < 0 when no byte of
 * an answer was sent.
 *
 * model is copied (never kept) and becomes a label value: it is cut to
 * GB_METRICS_MODEL_MAX_BYTES, invalid UTF-8 and control characters other than
 * newline become '?', and NULL or "" give model="".  The literal "other"
 * shares the overflow series.  latency_s below 0 or NaN counts as 0 (a NaN
 * ttfb_s is not observed), and a time above one day adds one day to _sum (its
 * bucket is still +Inf).  A route outside the enum counts as GB_ROUTE_OTHER.
 * Never fails.  Lock-free (about 50-100 ns at -O2) except the first time a
 * model name or a status code is seen, which takes a short mutex. */
void gb_metrics_request(enum gb_metric_route route, const char *model, int status, double latency_s,
                        double ttfb_s);

/* One upstream attempt.  An outcome outside the enum is ignored. */
void gb_metrics_attempt(enum gb_metric_attempt outcome);

/* A key cooled down (429). */
void gb_metrics_cooldown(void);

/* Client connections: adds delta to the open count and returns the new
 * count (the MAX_CONNECTIONS check uses it).  Not zeroed by reset. */
long gb_metrics_conn_add(long delta);

/* A client connection was refused at the MAX_CONNECTIONS limit. */
void gb_metrics_conn_refused(void);

/* Renders everything into a malloc'd NUL-terminated string (caller frees),
 * or NULL on out-of-memory.  store_dropped: records the store dropped.
 * keys may be NULL: the key-pool gauges are then left out.  *len gets the
 * length when len is not NULL.  Safe to call while other threads update; a
 * request counted during the render may show in some families and not yet in
 * others.  Reads /proc/self/statm (procfs, does not block on disk). */
char *gb_metrics_render(const struct gb_metrics_keys *keys, uint64_t store_dropped, size_t *len);

/* Zeroes everything and forgets the model and status labels seen (tests).
 * Must not run concurrently with any other gb_metrics_* call.  The process
 * start time is kept. */
void gb_metrics_reset(void);

#endif
