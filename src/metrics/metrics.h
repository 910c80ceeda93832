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

/* Distinct model label values kept. */
#define GB_METRICS_MAX_MODELS 64

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
 * an answer was sent. */
void gb_metrics_request(enum gb_metric_route route, const char *model, int status,
                        double latency_s, double ttfb_s);

/* One upstream attempt. */
void gb_metrics_attempt(enum gb_metric_attempt outcome);

/* A key cooled down (429). */
void gb_metrics_cooldown(void);

/* Renders everything into a malloc'd NUL-terminated string (caller frees),
 * or NULL on out-of-memory.  store_dropped: records the store dropped. */
char *gb_metrics_render(const struct gb_metrics_keys *keys, uint64_t store_dropped,
                        size_t *len);

/* Zeroes everything (tests). */
void gb_metrics_reset(void);

#endif
