/*
 * store.h - embedded persistence: one SQLite database (WAL) in DATA_DIR,
 * owned by one store thread (DESIGN.md §3).
 *
 * Workers never touch SQLite.  They hand records to the store through a
 * bounded queue (gb_store_log_*, gb_store_save_key): the call copies the
 * record and returns at once; when the queue is full the record is dropped
 * and counted (gb_store_dropped), never waited for.  The thread writes the
 * queue in batches, one transaction at least every GB_STORE_FLUSH_MS, so a
 * SIGKILL loses at most about a second of records and WAL keeps the file
 * consistent.  Queries for the admin API run on the store thread too; their
 * answers come back on the caller's event_base (gb_store_query).
 *
 * Keys are identified by key_hash (hex SHA-256 of the key): the database
 * holds a key itself only when it was added through the admin API
 * (gb_store_save_key with a non-NULL secret).
 */
#ifndef GB_STORE_STORE_H
#define GB_STORE_STORE_H

#include <event2/event.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Records queued at most; beyond, records are dropped and counted. */
#define GB_STORE_QUEUE_MAX 65536
/* Longest interval between two commits of queued records, in ms. */
#define GB_STORE_FLUSH_MS 500
/* Length of a key hash: 64 hex digits. */
#define GB_KEY_HASH_LEN 64

struct gb_store;

struct gb_store_opts {
    const char *data_dir;  /* created when missing */
    int request_log_days;  /* retention of the request log */
    int error_log_days;    /* retention of the error log */
};

/* One finished client request (no bodies, no secrets). */
struct gb_store_request {
    int64_t ts_ms;                /* wall clock, ms since the epoch */
    char route[32];               /* "chat", "models", "native", "embeddings" ... */
    char model[129];
    char key_hash[GB_KEY_HASH_LEN + 1]; /* last key used, "" when none */
    char key_id[32];              /* masked id for display */
    int status;
    int attempts;
    int latency_ms;
    int prompt_tokens, completion_tokens, total_tokens; /* 0 when unknown */
};

/* One failed upstream attempt (message already masked by the caller). */
struct gb_store_error {
    int64_t ts_ms;
    char key_hash[GB_KEY_HASH_LEN + 1];
    char key_id[32];
    char model[129];
    int status;                   /* upstream HTTP status, 0 for transport errors */
    char reason[64];              /* e.g. API_KEY_INVALID, RESOURCE_EXHAUSTED, timeout */
    char message[512];
};

/* The persisted health of one key. */
struct gb_store_key {
    char key_hash[GB_KEY_HASH_LEN + 1];
    char key_id[32];
    const char *secret;           /* the key itself: only for keys added through the admin
                                     API (else NULL); copied by gb_store_save_key */
    int disabled;
    long failures;                /* consecutive */
    char last_error[256];
    int64_t updated_ms;
    /* cooldowns per model, wall clock ms since the epoch; model "" = all models */
    size_t ncooldowns;
    struct {
        char model[129];
        int64_t until_ms;
    } cooldowns[16];
};

/* Opens (creating and migrating) DATA_DIR/gemini-balance.db and starts the
 * store thread.  Returns NULL with a message in err on failure. */
struct gb_store *gb_store_open(const struct gb_store_opts *o, char *err, size_t errlen);

/* Writes what is queued, stops the thread, closes the database.  NULL is fine. */
void gb_store_close(struct gb_store *s);

/* Queue a record (copied).  Return 0, or GB_EBUSY when dropped. */
int gb_store_log_request(struct gb_store *s, const struct gb_store_request *r);
int gb_store_log_error(struct gb_store *s, const struct gb_store_error *e);
int gb_store_save_key(struct gb_store *s, const struct gb_store_key *k);
/* Forget a key (deleted through the admin API). */
int gb_store_delete_key(struct gb_store *s, const char *key_hash);

/* Records dropped because the queue was full (or the disk failed). */
uint64_t gb_store_dropped(const struct gb_store *s);

/*
 * Reads every persisted key state, synchronously (call at start-up only,
 * before the workers run).  cb is called once per key; secret is non-NULL
 * for keys added through the admin API.  Returns the count or GB_E*.
 */
int gb_store_load_keys(struct gb_store *s,
                       void (*cb)(void *ud, const struct gb_store_key *k, const char *secret),
                       void *ud);

/* What an admin query asks for. */
enum gb_store_query_kind {
    GB_STORE_Q_REQUESTS, /* request log, newest first */
    GB_STORE_Q_ERRORS,   /* error log, newest first */
    GB_STORE_Q_STATS,    /* summary: totals, success rate, tokens, per model, per key,
                            last hour and last day; hourly series for charts */
    GB_STORE_Q_USAGE     /* per key hash: requests this hour and today, per model */
};

struct gb_store_query {
    enum gb_store_query_kind kind;
    int limit, offset;           /* paging (requests, errors) */
    char key_hash[GB_KEY_HASH_LEN + 1]; /* filter, "" for all */
    char model[129];             /* filter, "" for all */
    int64_t since_ms;            /* filter, 0 for all */
};

/* Answer callback: result is a new reference the callback owns (NULL on
 * failure, with a message in err).  Runs on base's loop thread. */
typedef void (*gb_store_result_cb)(void *ud, json_t *result, const char *err);

/* Runs q on the store thread; cb(ud, ...) runs later on base.  Returns 0, or
 * GB_EBUSY (queue full: cb is never called). */
int gb_store_query(struct gb_store *s, const struct gb_store_query *q, struct event_base *base,
                   gb_store_result_cb cb, void *ud);

#endif
