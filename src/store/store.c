/*
 * store.c - the SQLite store: one connection, owned by one thread, fed by a
 * bounded queue (DESIGN.md §3).
 *
 * Workers copy each record into a malloc'd queue item under a short mutex and
 * return; they never wait for the disk and never make a system call unless a
 * query arrives or the queue passes its wake mark.  The store thread wakes
 * every GB_STORE_FLUSH_MS (sooner for a query or a filling queue), takes the
 * whole queue in O(1) and writes its records in one transaction with
 * statements prepared once at open.  WAL with synchronous=NORMAL makes a
 * commit a write(2) without fsync: a killed process loses only what was still
 * queued (at most about GB_STORE_FLUSH_MS of records); a power cut may also
 * lose the last commits, never the file's consistency.  Admin queries run on
 * the same thread after the records queued before them are written; their
 * answer goes back to the caller's event_base through event_base_once.
 *
 * Costs: one malloc per record (~350 bytes for a request, ~850 for an error),
 * so a full queue of GB_STORE_QUEUE_MAX request records holds about 25 MB.
 * Request records go in INSERTs of up to REQUEST_CHUNK rows, and each
 * distinct (key, model, hour) of a batch costs one UPSERT into the hourly
 * usage table; a batch of thousands commits in milliseconds.  Per request
 * (callgrind, chat route, batches of ~170): ~16K instructions on this thread,
 * against ~24K with one single-row INSERT per record, where opening and
 * closing the four b-tree cursors of each statement cost ~6K.  Most of the
 * rest is the three request_log indexes: each insert into (key_hash, ts_ms)
 * and (model, ts_ms) searches from the root and splits pages often (a hot
 * insertion point per key or model), while (ts_ms) and the rowid append.  Statistics read the
 * hourly usage table (keys x models x hours rows), never the whole request
 * log; only the last-hour and last-day counts walk an index range of
 * request_log.  Log listings count at most GB_STORE_COUNT_MAX rows.
 *
 * Disk failures (full, I/O error, read-only file) never stop the thread: the
 * failed batch is rolled back, its records are counted in gb_store_dropped,
 * each kind of failure (SQLite primary code) is logged once until a commit
 * succeeds again, and the next batch simply tries again.
 *
 * Departure from the brief's table list: usage also keeps key_id, success
 * and prompt/completion tokens, and gets a row (key_hash "") for requests
 * that used no key, so the statistics come from it; GB_STORE_Q_USAGE skips
 * those rows.
 *
 * Sections, in order:
 *   schema and migrations
 *   write statements
 *   the store and its queue items
 *   small helpers: time, text, warnings, statements
 *   opening: directory, file, pragmas, migrations
 *   retention
 *   write path: one batch, one transaction
 *   queries: request and error logs, stats, usage
 *   the store thread
 *   public API
 */
#include "store/store.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/utf8.h"

/* The database file inside DATA_DIR. */
#define DB_NAME "gemini-balance.db"
/* How long SQLite waits for a lock held by another process, in ms. */
#define BUSY_TIMEOUT_MS 5000
/* Largest WAL kept after a checkpoint, in bytes. */
#define WAL_SIZE_LIMIT (64 * 1024 * 1024)
/* Interval between two retention passes, in ms. */
#define RETENTION_EVERY_MS (3600 * 1000)
/* Rows deleted per statement by retention (bounds each WAL append). */
#define RETENTION_CHUNK 10000
/* Queued records that wake the thread before its timer. */
#define WAKE_RECORDS 1024
/* Usage rows are kept at least this many days (for "today" and charts). */
#define USAGE_MIN_DAYS 2
/* Bytes a statement journal may hold in memory before SQLite moves it to a
 * temporary file (default 64 KB; see gb_store_open). */
#define STMT_JOURNAL_SPILL (1024 * 1024)
/* Most request records written by one INSERT (request_inserts[]). */
#define REQUEST_CHUNK 32
/* Parameters of one request_log row. */
#define REQUEST_COLUMNS 11

#define HOUR_MS (3600LL * 1000)
#define DAY_MS (24 * HOUR_MS)

/* --- schema and migrations ------------------------------------------- */

/*
 * Migration i brings a database from user_version i to i + 1; each runs in
 * its own transaction with the version bump.  Never edit a released
 * migration: append a new one.
 */
static const char schema_v1[] = "CREATE TABLE request_log ("
                                "  id INTEGER PRIMARY KEY,"
                                "  ts_ms INTEGER NOT NULL,"
                                "  route TEXT NOT NULL,"
                                "  model TEXT NOT NULL,"
                                "  key_hash TEXT NOT NULL,"
                                "  key_id TEXT NOT NULL,"
                                "  status INTEGER NOT NULL,"
                                "  attempts INTEGER NOT NULL,"
                                "  latency_ms INTEGER NOT NULL,"
                                "  prompt_tokens INTEGER NOT NULL,"
                                "  completion_tokens INTEGER NOT NULL,"
                                "  total_tokens INTEGER NOT NULL);"
                                "CREATE INDEX request_log_ts ON request_log(ts_ms);"
                                "CREATE INDEX request_log_key_ts ON request_log(key_hash, ts_ms);"
                                "CREATE INDEX request_log_model_ts ON request_log(model, ts_ms);"
                                "CREATE TABLE error_log ("
                                "  id INTEGER PRIMARY KEY,"
                                "  ts_ms INTEGER NOT NULL,"
                                "  key_hash TEXT NOT NULL,"
                                "  key_id TEXT NOT NULL,"
                                "  model TEXT NOT NULL,"
                                "  status INTEGER NOT NULL,"
                                "  reason TEXT NOT NULL,"
                                "  message TEXT NOT NULL);"
                                "CREATE INDEX error_log_ts ON error_log(ts_ms);"
                                "CREATE INDEX error_log_key_ts ON error_log(key_hash, ts_ms);"
                                "CREATE INDEX error_log_model_ts ON error_log(model, ts_ms);"
                                "CREATE TABLE keys ("
                                "  key_hash TEXT PRIMARY KEY,"
                                "  key_id TEXT NOT NULL,"
                                "  secret TEXT,"
                                "  disabled INTEGER NOT NULL,"
                                "  failures INTEGER NOT NULL,"
                                "  last_error TEXT NOT NULL,"
                                "  updated_ms INTEGER NOT NULL);"
                                "CREATE TABLE key_cooldowns ("
                                "  key_hash TEXT NOT NULL,"
                                "  model TEXT NOT NULL,"
                                "  until_ms INTEGER NOT NULL,"
                                "  PRIMARY KEY (key_hash, model)) WITHOUT ROWID;"
                                "CREATE TABLE usage ("
                                "  key_hash TEXT NOT NULL,"
                                "  model TEXT NOT NULL,"
                                "  hour_start_ms INTEGER NOT NULL,"
                                "  key_id TEXT NOT NULL,"
                                "  requests INTEGER NOT NULL,"
                                "  success INTEGER NOT NULL,"
                                "  prompt_tokens INTEGER NOT NULL,"
                                "  completion_tokens INTEGER NOT NULL,"
                                "  tokens INTEGER NOT NULL,"
                                "  PRIMARY KEY (key_hash, model, hour_start_ms)) WITHOUT ROWID;"
                                "CREATE INDEX usage_hour ON usage(hour_start_ms);";

static const char *const migrations[] = {schema_v1};

#define NMIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

/* --- write statements ---------------------------------------------------- */

enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_INS_REQUEST,
    ST_INS_REQUESTS_8,
    ST_INS_REQUESTS_32,
    ST_UPSERT_USAGE,
    ST_INS_ERROR,
    ST_UPSERT_KEY,
    ST_DEL_COOLDOWNS,
    ST_INS_COOLDOWN,
    ST_DEL_KEY,
    ST_COUNT
};

#define INS_REQUEST_HEAD                                                                           \
    "INSERT INTO request_log (ts_ms, route, model, key_hash, key_id, status, attempts,"            \
    " latency_ms, prompt_tokens, completion_tokens, total_tokens) VALUES "

/* Prepared once at open, used only by the store thread (or under db_lock). */
static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    /* ST_INS_REQUEST*: NULL here, built by insert_sql() */
    [ST_UPSERT_USAGE] = "INSERT INTO usage (key_hash, model, hour_start_ms, key_id, requests,"
                        " success, prompt_tokens, completion_tokens, tokens)"
                        " VALUES (?1, ?2, ?3, ?4, ?9, ?5, ?6, ?7, ?8)"
                        " ON CONFLICT (key_hash, model, hour_start_ms) DO UPDATE SET"
                        " key_id = excluded.key_id, requests = requests + excluded.requests,"
                        " success = success + excluded.success,"
                        " prompt_tokens = prompt_tokens + excluded.prompt_tokens,"
                        " completion_tokens = completion_tokens + excluded.completion_tokens,"
                        " tokens = tokens + excluded.tokens",
    [ST_INS_ERROR] = "INSERT INTO error_log (ts_ms, key_hash, key_id, model, status, reason,"
                     " message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_UPSERT_KEY] = "INSERT INTO keys (key_hash, key_id, secret, disabled, failures, last_error,"
                      " updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                      " ON CONFLICT (key_hash) DO UPDATE SET key_id = excluded.key_id,"
                      " secret = COALESCE(excluded.secret, keys.secret),"
                      " disabled = excluded.disabled, failures = excluded.failures,"
                      " last_error = excluded.last_error, updated_ms = excluded.updated_ms",
    [ST_DEL_COOLDOWNS] = "DELETE FROM key_cooldowns WHERE key_hash = ?1",
    [ST_INS_COOLDOWN] = "INSERT OR REPLACE INTO key_cooldowns (key_hash, model, until_ms)"
                        " VALUES (?1, ?2, ?3)",
    [ST_DEL_KEY] = "DELETE FROM keys WHERE key_hash = ?1",
};

/* The request_log INSERTs, largest first; the last writes one row. */
static const struct {
    enum stmt_id id;
    size_t rows;
} request_inserts[] = {
    {ST_INS_REQUESTS_32, REQUEST_CHUNK}, {ST_INS_REQUESTS_8, 8}, {ST_INS_REQUEST, 1}};

/* The INSERT of rows request_log rows, parameters numbered in order (row i
 * has i * REQUEST_COLUMNS + 1 ..); -1 when buf is too short. */
static int insert_sql(size_t rows, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "%s", INS_REQUEST_HEAD);

    for (size_t i = 0; i < rows && o < len; i++) {
        o += (size_t)snprintf(buf + o, len - o, "%s(", i ? "," : "");
        for (int c = 0; c < REQUEST_COLUMNS && o < len; c++)
            o += (size_t)snprintf(buf + o, len - o, "%s?", c ? "," : "");
        if (o < len)
            o += (size_t)snprintf(buf + o, len - o, ")");
    }
    return o < len ? 0 : -1;
}

/* --- the store and its queue items --------------------------------------- */

enum item_kind { IT_REQUEST, IT_ERROR, IT_SAVE_KEY, IT_DELETE_KEY, IT_QUERY };

/* Every queue item starts with this header; the kind says which of the
 * structs below it is.  Items are malloc'd by the caller's thread and freed
 * by the store thread (queries: by the caller's loop, after the callback). */
struct item {
    struct item *next;
    enum item_kind kind;
};

struct request_item {
    struct item hdr;
    struct gb_store_request r;
};

struct error_item {
    struct item hdr;
    struct gb_store_error e;
};

struct key_item {
    struct item hdr;
    struct gb_store_key k; /* k.secret points to secret */
    char *secret;          /* owned copy, NULL when none */
};

struct delete_item {
    struct item hdr;
    char key_hash[GB_KEY_HASH_LEN + 1];
};

struct query_item {
    struct item hdr;
    struct gb_store_query q;
    struct event_base *base; /* borrowed: the caller keeps it alive until cb ran */
    gb_store_result_cb cb;
    void *ud;
    json_t *result; /* handed to cb */
    char err[256];  /* message when result is NULL */
};

struct gb_store {
    /* queue: guarded by lock */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* signalled for a query, a filling queue, or stop */
    struct item *head, *tail;
    size_t queued;    /* items in the queue */
    size_t queue_max; /* bound on queued */
    size_t wake_at;   /* queued count that wakes the thread early */
    int wake;         /* the thread was signalled */
    int stopping;     /* gb_store_close began: refuse new items */
    _Atomic uint64_t dropped;

    /* database: guarded by db_lock (the store thread, or gb_store_load_keys) */
    pthread_mutex_t db_lock;
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    int request_log_days, error_log_days;
    int64_t next_retention; /* monotonic ms */
    uint64_t warned;        /* one bit per SQLite primary code already logged */

    pthread_t thread;
    int thread_started;
    int sync_ready; /* mutexes and condvar initialised */
};

static void item_free(struct item *it)
{
    if (it == NULL)
        return;
    if (it->kind == IT_SAVE_KEY)
        free(((struct key_item *)it)->secret);
    if (it->kind == IT_QUERY)
        json_decref(((struct query_item *)it)->result);
    free(it);
}

/* --- small helpers: time, text, warnings, statements --------------------- */

/* Wall clock in ms since the epoch. */
static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Start of the period (hour, day) holding t; floors negative times too. */
static int64_t floor_to(int64_t t, int64_t period)
{
    int64_t r = t % period;

    return r < 0 ? t - r - period : t - r;
}

/* Forces NUL termination of a fixed array copied from a caller. */
#define TERMINATE(a) ((a)[sizeof(a) - 1] = '\0')

/* Copies n bytes of p into out (outlen > 0) with each byte that does not
 * start a valid UTF-8 sequence (or is NUL) replaced by '?', cut to fit.
 * Stored text is cut by byte counts, so a sequence may be split. */
static char *utf8_clean(const char *p, size_t n, char *out, size_t outlen)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t i = 0, o = 0;

    while (i < n) {
        size_t len = u[i] == 0 ? 0 : gb_utf8_seq(u + i, n - i);
        size_t w = len ? len : 1;
        if (o + w >= outlen)
            break;
        if (len)
            memcpy(out + o, p + i, len);
        else
            out[o] = '?';
        o += w;
        i += w;
    }
    out[o] = '\0';
    return out;
}

/* A JSON string for stored text, cleaned when it is not valid UTF-8. */
static json_t *json_text(const char *p, size_t n)
{
    char buf[1024];
    json_t *v = json_stringn(p, n);

    return v != NULL ? v : json_string(utf8_clean(p, n, buf, sizeof buf));
}

/* Logs a failure once per SQLite primary code, until a commit succeeds. */
static void warn_once(struct gb_store *s, int rc, const char *what)
{
    uint64_t bit = 1ULL << ((unsigned)rc & 63);

    if (s->warned & bit)
        return;
    s->warned |= bit;
    gb_warn("store: %s failed: %s (sqlite code %d); affected records are dropped and counted, "
            "later batches try again",
            what, sqlite3_errmsg(s->db), rc);
}

/* Runs a prepared statement to completion and resets it: SQLITE_OK or the
 * step's (extended) error code. */
static int step_reset(sqlite3_stmt *st)
{
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        ;
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Binds v without a copy: v must stay unchanged until the statement is reset
 * (records and query filters outlive their statements). */
static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

/* Runs SQL without results; on failure fills err with "what: message". */
static int exec_sql(sqlite3 *db, const char *sql, const char *what, char *err, size_t errlen)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

    if (rc != SQLITE_OK && err != NULL)
        snprintf(err, errlen, "%s: %s", what, sqlite3_errmsg(db));
    return rc;
}

/* --- opening: directory, file, pragmas, migrations ----------------------- */

/* Creates dir (one level, 0700) when missing and checks it is a writable
 * directory. */
static int ensure_dir(const char *dir, char *err, size_t errlen)
{
    struct stat sb;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create DATA_DIR %s: %s", dir, strerror(errno));
        return -1;
    }
    if (stat(dir, &sb) != 0) {
        snprintf(err, errlen, "cannot stat DATA_DIR %s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "DATA_DIR %s is not a directory", dir);
        return -1;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        snprintf(err, errlen, "DATA_DIR %s is not writable: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* Creates the database file with mode 0600 (it may hold keys) before SQLite
 * opens it; SQLite gives its -wal and -shm files the same mode. */
static int ensure_file(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

    if (fd < 0) {
        snprintf(err, errlen, "cannot open database %s: %s", path, strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

/* Reads one integer pragma (or query); -1 on failure. */
static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;

    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int configure(sqlite3 *db, const char *path, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    const unsigned char *mode = NULL;
    char sql[64];
    int rc;

    rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        mode = sqlite3_column_text(st, 0);
    if (mode == NULL || strcmp((const char *)mode, "wal") != 0) {
        snprintf(err, errlen, "cannot use WAL mode for %s: %s", path,
                 mode != NULL ? (const char *)mode : sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    snprintf(sql, sizeof sql, "PRAGMA journal_size_limit = %d", WAL_SIZE_LIMIT);
    if (exec_sql(db, "PRAGMA synchronous = NORMAL", "cannot set synchronous", err, errlen) ||
        exec_sql(db, sql, "cannot set journal_size_limit", err, errlen))
        return -1;
    return 0;
}

static int migrate(sqlite3 *db, const char *path, char *err, size_t errlen)
{
    int64_t version = query_int(db, "PRAGMA user_version");
    char what[96], sql[64];

    if (version < 0) {
        snprintf(err, errlen, "cannot read the schema version of %s: %s", path, sqlite3_errmsg(db));
        return -1;
    }
    if (version > NMIGRATIONS) {
        snprintf(err, errlen,
                 "database %s has schema version %lld, newer than this build knows (%d)", path,
                 (long long)version, NMIGRATIONS);
        return -1;
    }
    for (int v = (int)version; v < NMIGRATIONS; v++) {
        snprintf(what, sizeof what, "cannot migrate the database to schema version %d", v + 1);
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
        if (exec_sql(db, "BEGIN IMMEDIATE", what, err, errlen) ||
            exec_sql(db, migrations[v], what, err, errlen) ||
            exec_sql(db, sql, what, err, errlen) || exec_sql(db, "COMMIT", what, err, errlen)) {
            if (!sqlite3_get_autocommit(db))
                sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    return 0;
}

/* --- retention ----------------------------------------------------------- */

enum retention_age { AGE_REQUESTS, AGE_ERRORS, AGE_USAGE, AGE_COOLDOWN };

/* One row per table to trim: ?1 is the cutoff, ?2 (when present) the chunk. */
static const struct {
    const char *sql;
    enum retention_age age;
} retention_rules[] = {
    {"DELETE FROM request_log WHERE id IN (SELECT id FROM request_log WHERE ts_ms < ?1"
     " ORDER BY ts_ms LIMIT ?2)",
     AGE_REQUESTS},
    {"DELETE FROM error_log WHERE id IN (SELECT id FROM error_log WHERE ts_ms < ?1"
     " ORDER BY ts_ms LIMIT ?2)",
     AGE_ERRORS},
    {"DELETE FROM usage WHERE hour_start_ms < ?1", AGE_USAGE},
    {"DELETE FROM key_cooldowns WHERE until_ms <= ?1", AGE_COOLDOWN},
};

/* The cutoff for a rule, or INT64_MIN when its rows are kept forever. */
static int64_t retention_cutoff(const struct gb_store *s, enum retention_age age, int64_t now)
{
    int days = 0;

    switch (age) {
    case AGE_REQUESTS:
        days = s->request_log_days;
        break;
    case AGE_ERRORS:
        days = s->error_log_days;
        break;
    case AGE_USAGE:
        days = s->request_log_days;
        if (days > 0 && days < USAGE_MIN_DAYS)
            days = USAGE_MIN_DAYS;
        break;
    case AGE_COOLDOWN:
        return now;
    }
    return days > 0 ? now - days * DAY_MS : INT64_MIN;
}

/* Deletes expired rows (each statement its own transaction, chunked so a
 * long-stopped gateway does not write one huge WAL), then lets SQLite refresh
 * its planner statistics.  Failures are logged once and retried next time. */
static void run_retention(struct gb_store *s)
{
    int64_t now = wall_ms();

    s->next_retention = gb_now_ms() + RETENTION_EVERY_MS;
    for (size_t i = 0; i < sizeof retention_rules / sizeof retention_rules[0]; i++) {
        int64_t cutoff = retention_cutoff(s, retention_rules[i].age, now);
        sqlite3_stmt *st = NULL;
        int rc, chunked, changes;

        if (cutoff == INT64_MIN)
            continue;
        rc = sqlite3_prepare_v2(s->db, retention_rules[i].sql, -1, &st, NULL);
        chunked = rc == SQLITE_OK && sqlite3_bind_parameter_count(st) >= 2;
        do {
            if (rc != SQLITE_OK)
                break;
            sqlite3_bind_int64(st, 1, cutoff);
            if (chunked)
                sqlite3_bind_int(st, 2, RETENTION_CHUNK);
            rc = step_reset(st);
            changes = sqlite3_changes(s->db);
        } while (rc == SQLITE_OK && chunked && changes == RETENTION_CHUNK);
        if (rc != SQLITE_OK)
            warn_once(s, rc, "retention");
        sqlite3_finalize(st);
    }
    sqlite3_exec(s->db, "PRAGMA optimize", NULL, NULL, NULL);
}

/* --- write path: one batch, one transaction ------------------------------ */

static int is_success(int status)
{
    return status >= 200 && status < 300;
}

/* Usage of one (key, model, hour) summed over a batch: one UPSERT per
 * distinct row instead of one per request (a batch of thousands of
 * requests usually touches a handful of rows). */
struct usage_sum {
    const struct gb_store_request *r; /* the last record of the row (key_id, names) */
    int64_t hour, requests, success, prompt, completion, tokens;
};

struct usage_acc {
    struct usage_sum *v;
    size_t n, cap;
};

static int usage_add(struct usage_acc *a, const struct gb_store_request *r)
{
    int64_t hour = floor_to(r->ts_ms, HOUR_MS);
    int64_t tokens =
        r->total_tokens > 0 ? r->total_tokens : (int64_t)r->prompt_tokens + r->completion_tokens;
    struct usage_sum *u = NULL;

    /* recent rows first: consecutive requests mostly share a row */
    for (size_t i = a->n; i-- > 0 && u == NULL;)
        if (a->v[i].hour == hour && strcmp(a->v[i].r->key_hash, r->key_hash) == 0 &&
            strcmp(a->v[i].r->model, r->model) == 0)
            u = &a->v[i];
    if (u == NULL) {
        if (a->n == a->cap) {
            size_t cap = a->cap ? a->cap * 2 : 16;
            struct usage_sum *v = realloc(a->v, cap * sizeof *v);
            if (v == NULL)
                return SQLITE_NOMEM;
            a->v = v;
            a->cap = cap;
        }
        u = &a->v[a->n++];
        memset(u, 0, sizeof *u);
        u->hour = hour;
    }
    u->r = r;
    u->requests++;
    u->success += is_success(r->status);
    u->prompt += r->prompt_tokens;
    u->completion += r->completion_tokens;
    u->tokens += tokens;
    return SQLITE_OK;
}

static int usage_write(struct gb_store *s, const struct usage_sum *u)
{
    sqlite3_stmt *st = s->st[ST_UPSERT_USAGE];

    bind_text(st, 1, u->r->key_hash);
    bind_text(st, 2, u->r->model);
    sqlite3_bind_int64(st, 3, u->hour);
    bind_text(st, 4, u->r->key_id);
    sqlite3_bind_int64(st, 5, u->success);
    sqlite3_bind_int64(st, 6, u->prompt);
    sqlite3_bind_int64(st, 7, u->completion);
    sqlite3_bind_int64(st, 8, u->tokens);
    sqlite3_bind_int64(st, 9, u->requests);
    return step_reset(st);
}

/* Errors that reject one record but leave the transaction usable. */
static int is_row_error(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
        return 1;
    default:
        return 0;
    }
}

/* Binds r as the request_log row whose first parameter is first. */
static void bind_request(sqlite3_stmt *st, int first, const struct gb_store_request *r)
{
    sqlite3_bind_int64(st, first, r->ts_ms);
    bind_text(st, first + 1, r->route);
    bind_text(st, first + 2, r->model);
    bind_text(st, first + 3, r->key_hash);
    bind_text(st, first + 4, r->key_id);
    sqlite3_bind_int(st, first + 5, r->status);
    sqlite3_bind_int(st, first + 6, r->attempts);
    sqlite3_bind_int(st, first + 7, r->latency_ms);
    sqlite3_bind_int(st, first + 8, r->prompt_tokens);
    sqlite3_bind_int(st, first + 9, r->completion_tokens);
    sqlite3_bind_int(st, first + 10, r->total_tokens);
}

/* Request records waiting for a multi-row INSERT; borrowed from the batch's
 * items, which outlive the statement (so their text is bound SQLITE_STATIC). */
struct request_run {
    const struct gb_store_request *r[REQUEST_CHUNK];
    size_t n;
};

/* Writes the records of run and adds them to acc; empties run.  The rows go
 * in statements of 32, then 8, then 1 rows: one statement opens one set of
 * cursors for the table and its three indexes, and keeps them between its
 * rows, so the rowid and ts_ms b-trees append without a search from their
 * roots.  A statement rejected for a bad row wrote none of its rows (it is
 * atomic); they are tried again one by one, and only the bad one adds to
 * *lost.  Any other failure is returned and ends the batch. */
static int write_requests(struct gb_store *s, struct request_run *run, struct usage_acc *acc,
                          size_t *lost)
{
    size_t n = run->n, alone = 0; /* rows before index alone go one by one */
    size_t i = 0, t, rows;
    int rc;

    run->n = 0;
    while (i < n) {
        for (t = 0; request_inserts[t].rows > n - i || (i < alone && request_inserts[t].rows > 1);)
            t++;
        rows = request_inserts[t].rows;
        for (size_t k = 0; k < rows; k++)
            bind_request(s->st[request_inserts[t].id], 1 + (int)k * REQUEST_COLUMNS, run->r[i + k]);
        rc = step_reset(s->st[request_inserts[t].id]);
        if (rc == SQLITE_OK) {
            for (size_t k = 0; k < rows; k++)
                if (usage_add(acc, run->r[i + k]) != SQLITE_OK)
                    return SQLITE_NOMEM;
            i += rows;
        } else if (!is_row_error(rc)) {
            return rc;
        } else if (rows > 1) {
            alone = i + rows; /* the statement wrote none of them: find the bad one */
        } else {
            warn_once(s, rc, "writing a record");
            ++*lost;
            i++;
        }
    }
    return SQLITE_OK;
}

static int write_error(struct gb_store *s, const struct gb_store_error *e)
{
    sqlite3_stmt *st = s->st[ST_INS_ERROR];

    sqlite3_bind_int64(st, 1, e->ts_ms);
    bind_text(st, 2, e->key_hash);
    bind_text(st, 3, e->key_id);
    bind_text(st, 4, e->model);
    sqlite3_bind_int(st, 5, e->status);
    bind_text(st, 6, e->reason);
    bind_text(st, 7, e->message);
    return step_reset(st);
}

static int delete_cooldowns(struct gb_store *s, const char *key_hash)
{
    bind_text(s->st[ST_DEL_COOLDOWNS], 1, key_hash);
    return step_reset(s->st[ST_DEL_COOLDOWNS]);
}

/* Upserts the key (a NULL secret keeps the stored one) and replaces its
 * cooldown rows with the unexpired ones of k. */
static int write_key(struct gb_store *s, const struct gb_store_key *k, int64_t now)
{
    sqlite3_stmt *st = s->st[ST_UPSERT_KEY];
    int rc;

    bind_text(st, 1, k->key_hash);
    bind_text(st, 2, k->key_id);
    if (k->secret != NULL)
        bind_text(st, 3, k->secret);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_int(st, 4, k->disabled != 0);
    sqlite3_bind_int64(st, 5, k->failures);
    bind_text(st, 6, k->last_error);
    sqlite3_bind_int64(st, 7, k->updated_ms);
    if ((rc = step_reset(st)) != SQLITE_OK || (rc = delete_cooldowns(s, k->key_hash)) != SQLITE_OK)
        return rc;
    st = s->st[ST_INS_COOLDOWN];
    for (size_t i = 0; i < k->ncooldowns; i++) {
        if (k->cooldowns[i].until_ms <= now)
            continue;
        bind_text(st, 1, k->key_hash);
        bind_text(st, 2, k->cooldowns[i].model);
        sqlite3_bind_int64(st, 3, k->cooldowns[i].until_ms);
        if ((rc = step_reset(st)) != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

static int delete_key(struct gb_store *s, const char *key_hash)
{
    int rc;

    bind_text(s->st[ST_DEL_KEY], 1, key_hash);
    if ((rc = step_reset(s->st[ST_DEL_KEY])) != SQLITE_OK)
        return rc;
    return delete_cooldowns(s, key_hash);
}

/* Writes an item other than a request record (those go through a run). */
static int write_item(struct gb_store *s, struct item *it, int64_t now)
{
    switch (it->kind) {
    case IT_REQUEST: /* written through a request_run */
        assert(0);
        return SQLITE_OK;
    case IT_ERROR:
        return write_error(s, &((struct error_item *)it)->e);
    case IT_SAVE_KEY:
        return write_key(s, &((struct key_item *)it)->k, now);
    case IT_DELETE_KEY:
        return delete_key(s, ((struct delete_item *)it)->key_hash);
    case IT_QUERY:
        return SQLITE_OK;
    }
    GB_UNREACHABLE();
}

/* Writes the records of batch in one transaction.  On a failure that ends
 * the transaction, everything is rolled back and every record of the batch
 * counts as dropped; a record rejected on its own counts alone. */
static void write_batch(struct gb_store *s, struct item *batch)
{
    struct usage_acc acc = {NULL, 0, 0};
    struct request_run run;
    size_t nrec = 0, lost = 0;
    int64_t now = wall_ms();
    int rc;

    run.n = 0;
    for (struct item *it = batch; it != NULL; it = it->next)
        nrec += it->kind != IT_QUERY;
    if (nrec == 0)
        return;
    rc = step_reset(s->st[ST_BEGIN]);
    if (rc != SQLITE_OK)
        warn_once(s, rc, "starting a write transaction");
    for (struct item *it = batch; it != NULL && rc == SQLITE_OK; it = it->next) {
        if (it->kind == IT_REQUEST) {
            run.r[run.n++] = &((struct request_item *)it)->r;
            if (run.n == REQUEST_CHUNK && (rc = write_requests(s, &run, &acc, &lost)) != SQLITE_OK)
                warn_once(s, rc, "writing records");
            continue;
        }
        if (run.n > 0 && (rc = write_requests(s, &run, &acc, &lost)) != SQLITE_OK) {
            warn_once(s, rc, "writing records");
            break;
        }
        rc = write_item(s, it, now);
        if (rc != SQLITE_OK && is_row_error(rc)) {
            warn_once(s, rc, "writing a record");
            lost++;
            rc = SQLITE_OK;
        } else if (rc != SQLITE_OK) {
            warn_once(s, rc, "writing records");
        }
    }
    if (rc == SQLITE_OK && run.n > 0 && (rc = write_requests(s, &run, &acc, &lost)) != SQLITE_OK)
        warn_once(s, rc, "writing records");
    for (size_t i = 0; i < acc.n && rc == SQLITE_OK; i++) {
        rc = usage_write(s, &acc.v[i]);
        if (rc != SQLITE_OK)
            warn_once(s, rc, "writing usage");
    }
    free(acc.v);
    if (rc == SQLITE_OK && (rc = step_reset(s->st[ST_COMMIT])) != SQLITE_OK)
        warn_once(s, rc, "committing records");
    if (rc != SQLITE_OK) {
        if (!sqlite3_get_autocommit(s->db))
            step_reset(s->st[ST_ROLLBACK]);
        lost = nrec;
    } else if (s->warned != 0 && lost == 0) {
        gb_warn("store: writes succeed again (%llu records dropped since start)",
                (unsigned long long)atomic_load(&s->dropped));
        s->warned = 0;
    }
    if (lost > 0)
        atomic_fetch_add(&s->dropped, (uint64_t)lost);
}

/* --- queries: request and error logs, stats, usage ----------------------- */

/* A named integer parameter of a query statement (":name"); parameters the
 * statement does not use are skipped. */
struct qparam {
    const char *name;
    int64_t v;
};

#define NPARAMS(p) (sizeof(p) / sizeof((p)[0]))

/* Filter on a time column plus the optional key and model of q. */
static void where_clause(char *out, size_t n, const struct gb_store_query *q, const char *tscol,
                         const char *tsparam)
{
    snprintf(out, n, "%s >= %s%s%s", tscol, tsparam, q->key_hash[0] ? " AND key_hash = :kh" : "",
             q->model[0] ? " AND model = :model" : "");
}

/* Prepares sql and binds :kh, :model and params.  SQLITE_OK or an error code
 * with the message in err. */
static int q_prepare(struct gb_store *s, const char *sql, const struct gb_store_query *q,
                     const struct qparam *p, size_t np, sqlite3_stmt **st, char *err, size_t errlen)
{
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    int i;

    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(s->db));
        return rc;
    }
    if ((i = sqlite3_bind_parameter_index(*st, ":kh")) > 0)
        bind_text(*st, i, q->key_hash);
    if ((i = sqlite3_bind_parameter_index(*st, ":model")) > 0)
        bind_text(*st, i, q->model);
    for (size_t j = 0; j < np; j++)
        if ((i = sqlite3_bind_parameter_index(*st, p[j].name)) > 0)
            sqlite3_bind_int64(*st, i, p[j].v);
    return SQLITE_OK;
}

/* Finishes a statement whose last step returned rc; SQLITE_OK when it ran
 * to the end, else the error with its message in err. */
static int q_finish(struct gb_store *s, sqlite3_stmt *st, int rc, char *err, size_t errlen)
{
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s", rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
        return rc == SQLITE_OK || rc == SQLITE_ROW ? SQLITE_ERROR : rc;
    }
    sqlite3_finalize(st);
    return SQLITE_OK;
}

/* One object per row, named after the result columns. */
static json_t *row_json(sqlite3_stmt *st)
{
    json_t *o = json_object();

    for (int i = 0; o != NULL && i < sqlite3_column_count(st); i++) {
        json_t *v;

        switch (sqlite3_column_type(st, i)) {
        case SQLITE_INTEGER:
            v = json_integer(sqlite3_column_int64(st, i));
            break;
        case SQLITE_FLOAT:
            v = json_real(sqlite3_column_double(st, i));
            break;
        case SQLITE_NULL:
            v = json_null();
            break;
        default:
            v = json_text((const char *)sqlite3_column_text(st, i),
                          (size_t)sqlite3_column_bytes(st, i));
            break;
        }
        if (json_object_set_new(o, sqlite3_column_name(st, i), v) != 0) {
            json_decref(o);
            o = NULL;
        }
    }
    return o;
}

/* Runs sql and appends one row_json per row to arr. */
static int q_rows(struct gb_store *s, const char *sql, const struct gb_store_query *q,
                  const struct qparam *p, size_t np, json_t *arr, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc = q_prepare(s, sql, q, p, np, &st, err, errlen);

    if (rc != SQLITE_OK)
        return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (json_array_append_new(arr, row_json(st)) != 0) {
            rc = SQLITE_NOMEM;
            break;
        }
    return q_finish(s, st, rc, err, errlen);
}

/* Runs sql and reads the integer columns of its first row into out. */
static int q_ints(struct gb_store *s, const char *sql, const struct gb_store_query *q,
                  const struct qparam *p, size_t np, int64_t *out, int nout, char *err,
                  size_t errlen)
{
    sqlite3_stmt *st;
    int rc = q_prepare(s, sql, q, p, np, &st, err, errlen);

    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    for (int i = 0; i < nout; i++)
        out[i] = rc == SQLITE_ROW ? sqlite3_column_int64(st, i) : 0;
    if (rc == SQLITE_ROW)
        rc = sqlite3_step(st);
    return q_finish(s, st, rc, err, errlen);
}

static int clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* The columns a log listing returns (also the JSON field names). */
struct log_table {
    const char *name;
    const char *columns;
};

static const struct log_table request_log_table = {
    "request_log", "id, ts_ms, route, model, key_hash, key_id, status, attempts, latency_ms,"
                   " prompt_tokens, completion_tokens, total_tokens"};
static const struct log_table error_log_table = {
    "error_log", "id, ts_ms, key_hash, key_id, model, status, reason, message"};

/* {"items": [...newest first], "total", "limit", "offset"}; the filters use
 * the (key_hash, ts_ms), (model, ts_ms) or (ts_ms) index, so a page costs
 * offset + limit index steps and the count at most GB_STORE_COUNT_MAX. */
static json_t *query_log(struct gb_store *s, const struct gb_store_query *q,
                         const struct log_table *t, char *err, size_t errlen)
{
    int limit =
        q->limit <= 0 ? GB_STORE_QUERY_LIMIT_DEFAULT : clamp(q->limit, 1, GB_STORE_QUERY_LIMIT_MAX);
    int offset = clamp(q->offset, 0, GB_STORE_COUNT_MAX);
    struct qparam p[] = {{":since", q->since_ms},
                         {":limit", limit},
                         {":offset", offset},
                         {":cap", GB_STORE_COUNT_MAX}};
    char where[128], sql[512];
    json_t *items = json_array();
    int64_t total = 0;

    where_clause(where, sizeof where, q, "ts_ms", ":since");
    snprintf(sql, sizeof sql,
             "SELECT %s FROM %s WHERE %s ORDER BY ts_ms DESC, id DESC LIMIT :limit OFFSET :offset",
             t->columns, t->name, where);
    if (items == NULL || q_rows(s, sql, q, p, NPARAMS(p), items, err, errlen) != SQLITE_OK)
        goto fail;
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM (SELECT 1 FROM %s WHERE %s LIMIT :cap)",
             t->name, where);
    if (q_ints(s, sql, q, p, NPARAMS(p), &total, 1, err, errlen) != SQLITE_OK)
        goto fail;
    return json_pack("{s:o, s:I, s:i, s:i}", "items", items, "total", (json_int_t)total, "limit",
                     limit, "offset", offset);
fail:
    json_decref(items);
    return NULL;
}

/* The 24 hourly buckets ending with the hour holding now. */
static json_t *query_hourly(struct gb_store *s, const struct gb_store_query *q, int64_t now,
                            char *err, size_t errlen)
{
    int64_t h0 = floor_to(now, HOUR_MS) - 23 * HOUR_MS, req[24] = {0}, errs[24] = {0};
    struct qparam p[] = {{":h0", h0}};
    char where[128], sql[384];
    sqlite3_stmt *st;
    json_t *arr;
    int rc;

    where_clause(where, sizeof where, q, "hour_start_ms", ":h0");
    snprintf(sql, sizeof sql,
             "SELECT hour_start_ms, SUM(requests), SUM(requests - success) FROM usage"
             " WHERE %s GROUP BY hour_start_ms",
             where);
    if (q_prepare(s, sql, q, p, NPARAMS(p), &st, err, errlen) != SQLITE_OK)
        return NULL;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t i = (sqlite3_column_int64(st, 0) - h0) / HOUR_MS;
        if (i >= 0 && i < 24) {
            req[i] = sqlite3_column_int64(st, 1);
            errs[i] = sqlite3_column_int64(st, 2);
        }
    }
    if (q_finish(s, st, rc, err, errlen) != SQLITE_OK)
        return NULL;
    if ((arr = json_array()) == NULL)
        return NULL;
    for (int i = 0; i < 24; i++)
        if (json_array_append_new(
                arr, json_pack("{s:I, s:I, s:I}", "hour_start_ms", (json_int_t)(h0 + i * HOUR_MS),
                               "requests", (json_int_t)req[i], "errors", (json_int_t)errs[i])) !=
            0) {
            json_decref(arr);
            return NULL;
        }
    return arr;
}

/* Totals, tokens, per model and per key come from the hourly usage table
 * (since_ms counts from the start of its hour); last_hour and last_day count
 * request_log index entries; hourly covers the last 24 hours. */
static json_t *query_stats(struct gb_store *s, const struct gb_store_query *q, int64_t now,
                           char *err, size_t errlen)
{
    struct qparam p[] = {{":since", floor_to(q->since_ms, HOUR_MS)},
                         {":hour", now - HOUR_MS},
                         {":day", now - DAY_MS},
                         {":cap", GB_STORE_QUERY_LIMIT_MAX},
                         {":now", now}};
    char where[128], recent[128], sql[512];
    int64_t tot[5], hour = 0, day = 0;
    json_t *per_model = json_array(), *per_key = json_array(), *hourly = NULL;

    if (per_model == NULL || per_key == NULL)
        goto fail;
    where_clause(where, sizeof where, q, "hour_start_ms", ":since");
    snprintf(sql, sizeof sql,
             "SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(success), 0),"
             " COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),"
             " COALESCE(SUM(tokens), 0) FROM usage WHERE %s",
             where);
    if (q_ints(s, sql, q, p, NPARAMS(p), tot, 5, err, errlen) != SQLITE_OK)
        goto fail;
    where_clause(recent, sizeof recent, q, "ts_ms", ":hour");
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM request_log WHERE %s AND ts_ms <= :now",
             recent);
    if (q_ints(s, sql, q, p, NPARAMS(p), &hour, 1, err, errlen) != SQLITE_OK)
        goto fail;
    where_clause(recent, sizeof recent, q, "ts_ms", ":day");
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM request_log WHERE %s AND ts_ms <= :now",
             recent);
    if (q_ints(s, sql, q, p, NPARAMS(p), &day, 1, err, errlen) != SQLITE_OK)
        goto fail;
    snprintf(sql, sizeof sql,
             "SELECT model, SUM(requests) AS requests, SUM(success) AS success,"
             " SUM(tokens) AS tokens FROM usage WHERE %s GROUP BY model"
             " ORDER BY requests DESC, model LIMIT :cap",
             where);
    if (q_rows(s, sql, q, p, NPARAMS(p), per_model, err, errlen) != SQLITE_OK)
        goto fail;
    snprintf(sql, sizeof sql,
             "SELECT MAX(key_id) AS key_id, key_hash, SUM(requests) AS requests,"
             " SUM(success) AS success FROM usage WHERE %s AND key_hash != ''"
             " GROUP BY key_hash ORDER BY requests DESC, key_hash LIMIT :cap",
             where);
    if (q_rows(s, sql, q, p, NPARAMS(p), per_key, err, errlen) != SQLITE_OK)
        goto fail;
    if ((hourly = query_hourly(s, q, now, err, errlen)) == NULL)
        goto fail;
    return json_pack(
        "{s:{s:I, s:I, s:I, s:I, s:I}, s:f, s:{s:I, s:I, s:I}, s:o, s:o, s:o}", "requests", "total",
        (json_int_t)tot[0], "success", (json_int_t)tot[1], "failed", (json_int_t)(tot[0] - tot[1]),
        "last_hour", (json_int_t)hour, "last_day", (json_int_t)day, "success_rate",
        tot[0] > 0 ? (double)tot[1] / (double)tot[0] : 0.0, "tokens", "prompt", (json_int_t)tot[2],
        "completion", (json_int_t)tot[3], "total", (json_int_t)tot[4], "per_model", per_model,
        "per_key", per_key, "hourly", hourly);
fail:
    json_decref(per_model);
    json_decref(per_key);
    if (err[0] == '\0')
        snprintf(err, errlen, "out of memory");
    return NULL;
}

/* Adds n to the integer field name of o. */
static int add_int(json_t *o, const char *name, int64_t n)
{
    return json_integer_set(json_object_get(o, name),
                            json_integer_value(json_object_get(o, name)) + n);
}

/* {"keys": {hash: {"hour", "today", "per_model": {model: {"hour", "today"}}}}}:
 * the clock hour and the UTC day holding now, from the usage table. */
static json_t *query_usage(struct gb_store *s, const struct gb_store_query *q, int64_t now,
                           char *err, size_t errlen)
{
    struct qparam p[] = {{":day", floor_to(now, DAY_MS)},
                         {":hour", floor_to(now, HOUR_MS)},
                         {":now", now},
                         {":cap", GB_STORE_COUNT_MAX}};
    char where[128], sql[512], kbuf[GB_KEY_HASH_LEN + 1], mbuf[sizeof q->model];
    json_t *keys = json_object();
    sqlite3_stmt *st;
    int rc;

    where_clause(where, sizeof where, q, "hour_start_ms", ":day");
    snprintf(sql, sizeof sql,
             "SELECT key_hash, model, SUM(CASE WHEN hour_start_ms >= :hour THEN requests"
             " ELSE 0 END), SUM(requests) FROM usage WHERE %s AND hour_start_ms <= :now"
             " AND key_hash != '' GROUP BY key_hash, model ORDER BY key_hash, model LIMIT :cap",
             where);
    if (keys == NULL || q_prepare(s, sql, q, p, NPARAMS(p), &st, err, errlen) != SQLITE_OK)
        goto fail;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *kh = (const char *)sqlite3_column_text(st, 0);
        const char *model = (const char *)sqlite3_column_text(st, 1);
        int64_t hour = sqlite3_column_int64(st, 2), today = sqlite3_column_int64(st, 3);
        json_t *k;

        utf8_clean(kh, strlen(kh), kbuf, sizeof kbuf);
        utf8_clean(model, strlen(model), mbuf, sizeof mbuf);
        if ((k = json_object_get(keys, kbuf)) == NULL &&
            json_object_set_new(keys, kbuf,
                                json_pack("{s:I, s:I, s:{}}", "hour", (json_int_t)0, "today",
                                          (json_int_t)0, "per_model")) != 0) {
            rc = SQLITE_NOMEM;
            break;
        }
        k = json_object_get(keys, kbuf);
        if (add_int(k, "hour", hour) != 0 || add_int(k, "today", today) != 0 ||
            json_object_set_new(json_object_get(k, "per_model"), mbuf,
                                json_pack("{s:I, s:I}", "hour", (json_int_t)hour, "today",
                                          (json_int_t)today)) != 0) {
            rc = SQLITE_NOMEM;
            break;
        }
    }
    if (q_finish(s, st, rc, err, errlen) != SQLITE_OK)
        goto fail;
    return json_pack("{s:o}", "keys", keys);
fail:
    json_decref(keys);
    return NULL;
}

/* Runs a query and posts its answer to the caller's loop. */
static void on_query_done(evutil_socket_t fd, short what, void *arg)
{
    struct query_item *qi = arg;
    json_t *result = qi->result;

    (void)fd;
    (void)what;
    qi->result = NULL;
    qi->cb(qi->ud, result, result != NULL ? NULL : qi->err);
    item_free(&qi->hdr);
}

static void run_query(struct gb_store *s, struct query_item *qi)
{
    const struct timeval now_tv = {0, 0};
    int64_t now = qi->q.now_ms > 0 ? qi->q.now_ms : wall_ms();

    switch (qi->q.kind) {
    case GB_STORE_Q_REQUESTS:
        qi->result = query_log(s, &qi->q, &request_log_table, qi->err, sizeof qi->err);
        break;
    case GB_STORE_Q_ERRORS:
        qi->result = query_log(s, &qi->q, &error_log_table, qi->err, sizeof qi->err);
        break;
    case GB_STORE_Q_STATS:
        qi->result = query_stats(s, &qi->q, now, qi->err, sizeof qi->err);
        break;
    case GB_STORE_Q_USAGE:
        qi->result = query_usage(s, &qi->q, now, qi->err, sizeof qi->err);
        break;
    }
    if (qi->result == NULL && qi->err[0] == '\0')
        snprintf(qi->err, sizeof qi->err, "out of memory");
    if (event_base_once(qi->base, -1, EV_TIMEOUT, on_query_done, qi, &now_tv) != 0) {
        gb_warn("store: cannot post a query answer to its event loop; answer lost");
        item_free(&qi->hdr);
    }
}

/* --- the store thread ---------------------------------------------------- */

/* Absolute CLOCK_MONOTONIC time for a monotonic ms deadline. */
static struct timespec mono_timespec(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    return ts;
}

/* Takes the whole queue (O(1)) once woken or at the flush deadline, writes
 * its records, answers its queries, trims old rows hourly; exits after the
 * batch taken once gb_store_close asked it to stop. */
static void *store_main(void *arg)
{
    struct gb_store *s = arg;
    int64_t next_flush = gb_now_ms() + GB_STORE_FLUSH_MS;
    int stop = 0;

    while (!stop) {
        struct item *batch;

        pthread_mutex_lock(&s->lock);
        while (!s->wake && !s->stopping && gb_now_ms() < next_flush) {
            struct timespec ts = mono_timespec(next_flush);
            pthread_cond_timedwait(&s->cond, &s->lock, &ts);
        }
        batch = s->head;
        s->head = s->tail = NULL;
        s->queued = 0;
        s->wake = 0;
        stop = s->stopping;
        pthread_mutex_unlock(&s->lock);
        next_flush = gb_now_ms() + GB_STORE_FLUSH_MS;

        pthread_mutex_lock(&s->db_lock);
        write_batch(s, batch);
        while (batch != NULL) {
            struct item *it = batch;
            batch = it->next;
            if (it->kind == IT_QUERY)
                run_query(s, (struct query_item *)it);
            else
                item_free(it);
        }
        if (gb_now_ms() >= s->next_retention)
            run_retention(s);
        pthread_mutex_unlock(&s->db_lock);
    }
    return NULL;
}

/* --- public API ---------------------------------------------------------- */

/* Frees what open built; the thread must not run. */
static void store_free(struct gb_store *s)
{
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    if (s->db != NULL) {
        sqlite3_exec(s->db, "PRAGMA optimize", NULL, NULL, NULL);
        if (sqlite3_close(s->db) != SQLITE_OK)
            gb_warn("store: closing the database failed: %s", sqlite3_errmsg(s->db));
    }
    if (s->sync_ready) {
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        pthread_mutex_destroy(&s->db_lock);
    }
    free(s);
}

static int init_sync(struct gb_store *s)
{
    pthread_condattr_t ca;
    int ok;

    if (pthread_condattr_init(&ca) != 0)
        return -1;
    ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
         pthread_cond_init(&s->cond, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!ok)
        return -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->db_lock, NULL);
    s->sync_ready = 1;
    return 0;
}

/* Prepares a write statement for the life of the store. */
static int prepare(struct gb_store *s, int id, const char *sql, const char *path, char *err,
                   size_t errlen)
{
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->st[id], NULL) ==
        SQLITE_OK)
        return 0;
    snprintf(err, errlen, "cannot prepare a statement on %s: %s", path, sqlite3_errmsg(s->db));
    return -1;
}

struct gb_store *gb_store_open(const struct gb_store_opts *o, char *err, size_t errlen)
{
    struct gb_store *s = NULL;
    char path[PATH_MAX], sql[1024];
    int rc;

    if (o == NULL || o->data_dir == NULL || o->data_dir[0] == '\0') {
        snprintf(err, errlen, "DATA_DIR is empty");
        return NULL;
    }
    if ((size_t)snprintf(path, sizeof path, "%s/%s", o->data_dir, DB_NAME) >= sizeof path) {
        snprintf(err, errlen, "DATA_DIR is too long");
        return NULL;
    }
    if (ensure_dir(o->data_dir, err, errlen) != 0 || ensure_file(path, err, errlen) != 0)
        return NULL;
    if ((s = calloc(1, sizeof *s)) == NULL || init_sync(s) != 0) {
        snprintf(err, errlen, "cannot set up the store: out of memory");
        goto fail;
    }
    s->queue_max = o->queue_max > 0 ? (size_t)o->queue_max : GB_STORE_QUEUE_MAX;
    s->wake_at = s->queue_max / 2 < WAKE_RECORDS ? s->queue_max / 2 : WAKE_RECORDS;
    if (s->wake_at == 0)
        s->wake_at = 1;
    s->request_log_days = o->request_log_days;
    s->error_log_days = o->error_log_days;
    /* No bulk page-cache allocation per connection (20 pages, ~90 KB, made
     * at its first read and kept for good): cache pages are malloc'd one by
     * one as they are needed.  Only possible before SQLite initialises; a
     * second store in the same process (unit tests) keeps the setting. */
    sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
    /* A multi-row INSERT keeps a statement journal (the pages it changes
     * that the transaction had already changed, so a failed row can undo
     * the statement alone).  Past 64 KB SQLite moves it to a file in
     * /var/tmp: a pwrite per page, about one per request record.  Ours
     * stays far below this bound and lives for one statement. */
    sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, STMT_JOURNAL_SPILL);
    rc = sqlite3_open_v2(path, &s->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    if (configure(s->db, path, err, errlen) != 0 || migrate(s->db, path, err, errlen) != 0)
        goto fail;
    for (size_t i = 0; i < sizeof request_inserts / sizeof request_inserts[0]; i++)
        if (insert_sql(request_inserts[i].rows, sql, sizeof sql) != 0 ||
            prepare(s, request_inserts[i].id, sql, path, err, errlen) != 0)
            goto fail;
    for (int i = 0; i < ST_COUNT; i++)
        if (stmt_sql[i] != NULL && prepare(s, i, stmt_sql[i], path, err, errlen) != 0)
            goto fail;
    run_retention(s);
    if ((rc = pthread_create(&s->thread, NULL, store_main, s)) != 0) {
        snprintf(err, errlen, "cannot start the store thread: %s", strerror(rc));
        goto fail;
    }
    s->thread_started = 1;
    return s;
fail:
    if (s != NULL)
        store_free(s);
    return NULL;
}

void gb_store_close(struct gb_store *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    if (s->thread_started)
        pthread_join(s->thread, NULL);
    store_free(s);
}

/* Appends it to the queue, or frees it and returns GB_EBUSY when the queue
 * is full or closing (a record then counts as dropped).  urgent wakes the
 * thread at once (queries); records wake it only past wake_at. */
static int enqueue(struct gb_store *s, struct item *it, int urgent)
{
    int rc = 0;

    it->next = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->stopping || s->queued >= s->queue_max) {
        rc = GB_EBUSY;
    } else {
        if (s->tail != NULL)
            s->tail->next = it;
        else
            s->head = it;
        s->tail = it;
        s->queued++;
        if (!s->wake && (urgent || s->queued >= s->wake_at)) {
            s->wake = 1;
            pthread_cond_signal(&s->cond);
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (rc != 0) {
        if (it->kind != IT_QUERY)
            atomic_fetch_add(&s->dropped, 1);
        item_free(it);
    }
    return rc;
}

/* Allocates an item of size bytes; counts a drop when it cannot. */
static struct item *item_new(struct gb_store *s, size_t size, enum item_kind kind)
{
    struct item *it = calloc(1, size);

    if (it == NULL) {
        atomic_fetch_add(&s->dropped, 1);
        return NULL;
    }
    it->kind = kind;
    return it;
}

int gb_store_log_request(struct gb_store *s, const struct gb_store_request *r)
{
    struct request_item *ri;

    if (s == NULL || r == NULL)
        return GB_EINVAL;
    if ((ri = (struct request_item *)item_new(s, sizeof *ri, IT_REQUEST)) == NULL)
        return GB_ENOMEM;
    ri->r = *r;
    if (ri->r.ts_ms <= 0)
        ri->r.ts_ms = wall_ms();
    TERMINATE(ri->r.route);
    TERMINATE(ri->r.model);
    TERMINATE(ri->r.key_hash);
    TERMINATE(ri->r.key_id);
    return enqueue(s, &ri->hdr, 0);
}

int gb_store_log_error(struct gb_store *s, const struct gb_store_error *e)
{
    struct error_item *ei;

    if (s == NULL || e == NULL)
        return GB_EINVAL;
    if ((ei = (struct error_item *)item_new(s, sizeof *ei, IT_ERROR)) == NULL)
        return GB_ENOMEM;
    ei->e = *e;
    if (ei->e.ts_ms <= 0)
        ei->e.ts_ms = wall_ms();
    TERMINATE(ei->e.key_hash);
    TERMINATE(ei->e.key_id);
    TERMINATE(ei->e.model);
    TERMINATE(ei->e.reason);
    TERMINATE(ei->e.message);
    return enqueue(s, &ei->hdr, 0);
}

int gb_store_save_key(struct gb_store *s, const struct gb_store_key *k)
{
    struct key_item *ki;
    size_t maxcool = sizeof k->cooldowns / sizeof k->cooldowns[0];

    if (s == NULL || k == NULL || k->key_hash[0] == '\0')
        return GB_EINVAL;
    if ((ki = (struct key_item *)item_new(s, sizeof *ki, IT_SAVE_KEY)) == NULL)
        return GB_ENOMEM;
    ki->k = *k;
    if (k->secret != NULL && (ki->secret = strdup(k->secret)) == NULL) {
        atomic_fetch_add(&s->dropped, 1);
        free(ki);
        return GB_ENOMEM;
    }
    ki->k.secret = ki->secret;
    if (ki->k.updated_ms <= 0)
        ki->k.updated_ms = wall_ms();
    if (ki->k.ncooldowns > maxcool)
        ki->k.ncooldowns = maxcool;
    TERMINATE(ki->k.key_hash);
    TERMINATE(ki->k.key_id);
    TERMINATE(ki->k.last_error);
    for (size_t i = 0; i < ki->k.ncooldowns; i++)
        TERMINATE(ki->k.cooldowns[i].model);
    return enqueue(s, &ki->hdr, 0);
}

int gb_store_delete_key(struct gb_store *s, const char *key_hash)
{
    struct delete_item *di;

    if (s == NULL || key_hash == NULL || key_hash[0] == '\0')
        return GB_EINVAL;
    if ((di = (struct delete_item *)item_new(s, sizeof *di, IT_DELETE_KEY)) == NULL)
        return GB_ENOMEM;
    snprintf(di->key_hash, sizeof di->key_hash, "%s", key_hash);
    return enqueue(s, &di->hdr, 0);
}

uint64_t gb_store_dropped(const struct gb_store *s)
{
    return s != NULL ? atomic_load(&s->dropped) : 0;
}

/* Copies a text column into a fixed array (cut to fit, "" for NULL). */
static void column_copy(char *dst, size_t n, sqlite3_stmt *st, int col)
{
    const unsigned char *v = sqlite3_column_text(st, col);

    snprintf(dst, n, "%s", v != NULL ? (const char *)v : "");
}

int gb_store_load_keys(struct gb_store *s,
                       void (*cb)(void *ud, const struct gb_store_key *k, const char *secret),
                       void *ud)
{
    sqlite3_stmt *ks = NULL, *cs = NULL;
    struct gb_store_key k;
    size_t maxcool = sizeof k.cooldowns / sizeof k.cooldowns[0];
    int64_t now = wall_ms();
    int n = 0, rc;

    if (s == NULL || cb == NULL)
        return GB_EINVAL;
    pthread_mutex_lock(&s->db_lock);
    rc = sqlite3_prepare_v2(s->db,
                            "SELECT key_hash, key_id, secret, disabled, failures, last_error,"
                            " updated_ms FROM keys ORDER BY key_hash",
                            -1, &ks, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(s->db,
                                "SELECT model, until_ms FROM key_cooldowns"
                                " WHERE key_hash = ?1 AND until_ms > ?2 ORDER BY model",
                                -1, &cs, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(ks)) == SQLITE_ROW) {
        const char *secret = (const char *)sqlite3_column_text(ks, 2);

        memset(&k, 0, sizeof k);
        column_copy(k.key_hash, sizeof k.key_hash, ks, 0);
        column_copy(k.key_id, sizeof k.key_id, ks, 1);
        k.disabled = sqlite3_column_int(ks, 3);
        k.failures = (long)sqlite3_column_int64(ks, 4);
        column_copy(k.last_error, sizeof k.last_error, ks, 5);
        k.updated_ms = sqlite3_column_int64(ks, 6);
        bind_text(cs, 1, k.key_hash);
        sqlite3_bind_int64(cs, 2, now);
        while ((rc = sqlite3_step(cs)) == SQLITE_ROW && k.ncooldowns < maxcool) {
            column_copy(k.cooldowns[k.ncooldowns].model, sizeof k.cooldowns[0].model, cs, 0);
            k.cooldowns[k.ncooldowns++].until_ms = sqlite3_column_int64(cs, 1);
        }
        sqlite3_reset(cs);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            break;
        k.secret = secret;
        cb(ud, &k, secret);
        n++;
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE) {
        gb_warn("store: cannot load key states: %s", sqlite3_errmsg(s->db));
        n = GB_EIO;
    }
    sqlite3_finalize(cs);
    sqlite3_finalize(ks);
    pthread_mutex_unlock(&s->db_lock);
    return n;
}

int gb_store_query(struct gb_store *s, const struct gb_store_query *q, struct event_base *base,
                   gb_store_result_cb cb, void *ud)
{
    struct query_item *qi;

    if (s == NULL || q == NULL || base == NULL || cb == NULL)
        return GB_EINVAL;
    switch (q->kind) {
    case GB_STORE_Q_REQUESTS:
    case GB_STORE_Q_ERRORS:
    case GB_STORE_Q_STATS:
    case GB_STORE_Q_USAGE:
        break;
    default:
        return GB_EINVAL;
    }
    if ((qi = calloc(1, sizeof *qi)) == NULL)
        return GB_ENOMEM;
    qi->hdr.kind = IT_QUERY;
    qi->q = *q;
    TERMINATE(qi->q.key_hash);
    TERMINATE(qi->q.model);
    qi->base = base;
    qi->cb = cb;
    qi->ud = ud;
    return enqueue(s, &qi->hdr, 1);
}
