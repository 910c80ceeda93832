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
 *
 * Threads: every function but gb_store_open, gb_store_close and
 * gb_store_load_keys may be called from any thread at any time between
 * those two; none of them blocks beyond one short mutex.  A disk that fails
 * (full, I/O error) never stops the store: the records of the failed batch
 * are counted in gb_store_dropped, the failure is logged once, and the next
 * batch tries again.
 *
 * Costs: one malloc per queued record (~350 bytes for a request, ~850 for an
 * error); a full queue of request records is ~25 MB.  Each request record
 * costs one INSERT into request_log and one UPSERT into the hourly usage
 * table on the store thread.
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
/* Log listings: rows per page when the query asks for 0, and at most. */
#define GB_STORE_QUERY_LIMIT_DEFAULT 50
#define GB_STORE_QUERY_LIMIT_MAX 1000
/* Log listings count matching rows up to this many ("total" stops there);
 * offsets beyond it are cut to it. */
#define GB_STORE_COUNT_MAX 100000

struct gb_store;

struct gb_store_opts {
    const char *data_dir; /* created (mode 0700) when missing; its parent must exist */
    int request_log_days; /* retention of the request log, in days; <= 0 keeps rows forever */
    int error_log_days;   /* retention of the error log, in days; <= 0 keeps rows forever */
    int queue_max;        /* queue bound in records; 0 = GB_STORE_QUEUE_MAX (tests use tiny
                             queues) */
};

/* One finished client request (no bodies, no secrets). */
struct gb_store_request {
    int64_t ts_ms;  /* wall clock, ms since the epoch; 0 = when queued */
    char route[32]; /* "chat", "models", "native", "embeddings" ... */
    char model[129];
    char key_hash[GB_KEY_HASH_LEN + 1]; /* last key used, "" when none */
    char key_id[32];                    /* masked id for display */
    int status;                         /* 2xx counts as a success in the statistics */
    int attempts;
    int latency_ms;
    int prompt_tokens, completion_tokens, total_tokens; /* 0 when unknown */
};

/* One failed upstream attempt (message already masked by the caller). */
struct gb_store_error {
    int64_t ts_ms; /* wall clock, ms since the epoch; 0 = when queued */
    char key_hash[GB_KEY_HASH_LEN + 1];
    char key_id[32];
    char model[129];
    int status;      /* upstream HTTP status, 0 for transport errors */
    char reason[64]; /* e.g. API_KEY_INVALID, RESOURCE_EXHAUSTED, timeout */
    char message[512];
};

/* The persisted health of one key. */
struct gb_store_key {
    char key_hash[GB_KEY_HASH_LEN + 1];
    char key_id[32];
    const char *secret; /* the key itself: only for keys added through the admin
                           API (else NULL); copied by gb_store_save_key */
    int disabled;
    long failures; /* consecutive */
    char last_error[256];
    int64_t updated_ms; /* wall clock ms; 0 = when queued */
    /* cooldowns per model, wall clock ms since the epoch; model "" = all models */
    size_t ncooldowns; /* entries used; more than 16 are cut to 16 */
    struct {
        char model[129];
        int64_t until_ms;
    } cooldowns[16];
};

/*
 * Opens (creating and migrating) DATA_DIR/gemini-balance.db and starts the
 * store thread.  DATA_DIR is created when missing (not its parents); the
 * database file is created with mode 0600 since it may hold keys.  The
 * schema is versioned by PRAGMA user_version; a database newer than this
 * build is refused.  Rows older than the retention are deleted before this
 * returns (then hourly by the thread), so the first open after a long stop
 * may take a moment.  Call evthread_use_pthreads() before, if queries will
 * be used.  Returns NULL with a lower-case message in err (e.g. "cannot
 * create DATA_DIR /x/y: No such file or directory") on failure.
 */
struct gb_store *gb_store_open(const struct gb_store_opts *o, char *err, size_t errlen);

/*
 * Stops accepting (later calls return GB_EBUSY), writes what is queued, runs
 * the queued queries (their answers are posted to their bases as usual),
 * stops the thread, closes the database.  NULL is fine.  No other thread may
 * use s once this is called: stop the workers first.  A query answer posted
 * to a base that never runs its loop again is lost (and leaks).
 */
void gb_store_close(struct gb_store *s);

/*
 * Queue a record (copied; strings are cut at their array size).  Returns 0;
 * GB_EBUSY when the queue is full or the store closing, GB_ENOMEM when the
 * copy cannot be allocated (both count in gb_store_dropped); GB_EINVAL for
 * NULL arguments (not counted).  Written within about GB_STORE_FLUSH_MS.
 */
int gb_store_log_request(struct gb_store *s, const struct gb_store_request *r);
int gb_store_log_error(struct gb_store *s, const struct gb_store_error *e);
/* Upserts the key's row (a NULL secret keeps a stored secret) and replaces
 * its cooldowns with those of k still in the future.  GB_EINVAL when
 * key_hash is empty. */
int gb_store_save_key(struct gb_store *s, const struct gb_store_key *k);
/* Forget a key and its cooldowns (deleted through the admin API); its usage
 * and log rows stay.  Same returns as above. */
int gb_store_delete_key(struct gb_store *s, const char *key_hash);

/* Records dropped because the queue was full (or the disk failed).  Any
 * thread; a relaxed atomic read. */
uint64_t gb_store_dropped(const struct gb_store *s);

/*
 * Reads every persisted key state, synchronously (call at start-up only,
 * before the workers run).  cb is called once per key; secret is non-NULL
 * for keys added through the admin API.  Returns the count or GB_E*.
 *
 * Runs on the calling thread under the store's database lock (the store
 * thread waits meanwhile), so it is safe whenever s is open.  k and secret
 * (k->secret == secret) are borrowed for the call only.  Cooldowns that
 * already ended are not reported.  cb must not call gb_store_load_keys.
 * Returns GB_EIO (logged) when the database cannot be read.
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

/*
 * Result shapes (result of the callback):
 *
 * REQUESTS, ERRORS: {"items": [row...], "total": N, "limit": L, "offset": O},
 *   newest first; a row has the columns of its record plus "id"; "total"
 *   counts the matching rows up to GB_STORE_COUNT_MAX.  Filters: key_hash,
 *   model, since_ms (ts_ms >= since_ms).
 * STATS: {"requests": {"total", "success", "failed", "last_hour",
 *   "last_day"}, "success_rate": 0..1, "tokens": {"prompt", "completion",
 *   "total"}, "per_model": [{"model", "requests", "success", "tokens"}],
 *   "per_key": [{"key_id", "key_hash", "requests", "success"}], "hourly":
 *   [{"hour_start_ms", "requests", "errors"} x 24, oldest first, the last
 *   one the hour holding now]}.  Totals, tokens, per_model and per_key sum
 *   the hourly usage rows (kept max(request_log_days, 2) days) from the
 *   hour holding since_ms; last_hour and last_day count request_log rows in
 *   [now - 1 h, now] and [now - 24 h, now]; "errors" are non-2xx requests.
 *   key_hash and model filter everything.  per_key omits requests that used
 *   no key; lists hold at most GB_STORE_QUERY_LIMIT_MAX entries.
 * USAGE: {"keys": {"<key_hash>": {"hour": N, "today": N, "per_model":
 *   {"<model>": {"hour": N, "today": N}}}}}: requests in the clock hour and
 *   the UTC day holding now.  key_hash and model filter; since_ms is unused.
 */
struct gb_store_query {
    enum gb_store_query_kind kind;
    int limit, offset;                  /* paging (requests, errors); limit 0 = default */
    char key_hash[GB_KEY_HASH_LEN + 1]; /* filter, "" for all */
    char model[129];                    /* filter, "" for all */
    int64_t since_ms;                   /* filter, 0 for all */
    int64_t now_ms;                     /* reference time (wall clock ms) for STATS and USAGE
                                           windows; 0 = now (tests pass fixed times) */
};

/* Answer callback: result is a new reference the callback owns (NULL on
 * failure, with a message in err).  Runs on base's loop thread. */
typedef void (*gb_store_result_cb)(void *ud, json_t *result, const char *err);

/*
 * Runs q on the store thread; cb(ud, ...) runs later on base.  Returns 0, or
 * GB_EBUSY (queue full: cb is never called).
 *
 * q is copied.  Queries share the record queue (and its bound) but wake the
 * thread at once; a query sees every record queued before it.  The answer
 * is posted with event_base_once, which is thread-safe only when
 * evthread_use_pthreads() ran before base was created.  base and ud must
 * stay valid until cb ran.  Also GB_EINVAL (bad arguments or kind) and
 * GB_ENOMEM; cb is never called then either.
 */
int gb_store_query(struct gb_store *s, const struct gb_store_query *q, struct event_base *base,
                   gb_store_result_cb cb, void *ud);

#endif
