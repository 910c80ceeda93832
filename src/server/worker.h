/*
 * worker.h - the process-wide context and the worker threads.
 *
 * Each worker thread owns one event_base, one evhttp and one libcurl multi
 * handle (gb_curlev), and its own SO_REUSEPORT listening socket, so the
 * kernel spreads connections and a request lives and dies on one thread
 * (DESIGN.md §3).  What workers share is in struct gb_ctx: the immutable
 * config, the key pool (its own mutex) and the model-list cache (its own
 * mutex).
 */
#ifndef GB_SERVER_WORKER_H
#define GB_SERVER_WORKER_H

#include <pthread.h>
#include <stdint.h>

#include "config/config.h"
#include "keypool/keypool.h"
#include "store/store.h"
#include "upstream/curlev.h"

/* How long the model list stays cached, in ms. */
#define GB_MODELS_CACHE_MS (5 * 60 * 1000)

/* The translated OpenAI model list, shared by all workers. */
struct gb_models_cache {
    pthread_mutex_t lock;
    char *json; /* owned; NULL when empty */
    size_t len;
    int64_t expires_ms; /* monotonic */
};

struct gb_cluster;

struct gb_ctx {
    const struct gb_config *cfg; /* the current config: read it with gb_cfg(); a reload
                                    swaps it, and old ones live on until exit */
    struct gb_keypool *pool;     /* borrowed from main */
    struct gb_store *store;      /* borrowed from main; NULL when persistence is off */
    struct gb_cluster *cluster;  /* borrowed from main; NULL without REDIS_URL (issue 7) */
    struct gb_models_cache models;
    int64_t started_ms;
    const char *version;
};

struct gb_worker {
    int id;
    pthread_t thread;
    struct gb_ctx *ctx;
    struct event_base *base;
    struct evhttp *http;
    struct gb_curlev *curl;
    struct evhttp_bound_socket *bound;
    int listen_fd;
    long active; /* requests in flight on this worker */
    int draining;
    int64_t drain_deadline_ms;
    struct event *drain_timer;
    void *probes; /* struct probe list (probe.c), queued and running */
    int probes_running;
    struct event *recheck;  /* periodic re-check of disabled keys (worker 0) */
    struct gb_conns *conns; /* client connection count and limit (conn.c) */
    struct evbuffer *chunk; /* owned: scratch for stream chunks, empty between uses */
};

/* The current configuration (an acquire load: SIGHUP may swap it).  A
 * config stays valid until the process ends. */
static inline const struct gb_config *gb_cfg(const struct gb_ctx *ctx)
{
    return __atomic_load_n(&ctx->cfg, __ATOMIC_ACQUIRE);
}

/* Creates (not starts) a worker on listen_fd (which it then owns).  Returns
 * 0 or a GB_E* code with a message logged. */
int gb_worker_init(struct gb_worker *w, int id, struct gb_ctx *ctx, int listen_fd);

/* Runs the worker's loop on a new thread. */
int gb_worker_start(struct gb_worker *w);

/* Asks the worker (from any thread) to stop accepting and to exit once its
 * requests are done or SHUTDOWN_TIMEOUT passed. */
void gb_worker_stop(struct gb_worker *w);

/* Waits for the thread to end and frees what the worker owns. */
void gb_worker_join(struct gb_worker *w);

#endif
