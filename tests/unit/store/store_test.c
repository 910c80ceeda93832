/*
 * store_test.c - the SQLite store: file and WAL creation, persistence across
 * reopen, key states, the queue bound, retention, the four queries through a
 * real event_base, start-up failures and a disk that refuses writes.
 *
 * Each test runs in its own directory under /tmp (mkdtemp), removed after.
 * Rows are checked with a separate sqlite3 connection.
 */
#include "test.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "core/err.h"
#include "core/log.h"
#include "store/store.h"

#define MIN_MS (60LL * 1000)
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS (24 * HOUR_MS)
/* 2024-01-10T12:30:00Z: a fixed "now" for window arithmetic. */
#define T_FIXED 1704889800000LL
#define DAY_START (T_FIXED - 12 * HOUR_MS - 30 * MIN_MS)

static const char KEY_A[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char KEY_B[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

struct fixture {
    char dir[64];   /* the mkdtemp directory */
    char data[128]; /* DATA_DIR: dir/data (created by the store) */
    char db[192];   /* the database file */
};

/* --- helpers --------------------------------------------------------------- */

static int64_t wall_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    chmod(path, 0700);
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/gbstore.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->data, sizeof f->data, "%s/data", f->dir);
    snprintf(f->db, sizeof f->db, "%s/gemini-balance.db", f->data);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    chmod(f->data, 0700);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static struct gb_store *open_store(const struct fixture *f, int req_days, int err_days, int qmax)
{
    struct gb_store_opts o = {f->data, req_days, err_days, qmax};
    char err[256] = "";
    struct gb_store *s = gb_store_open(&o, err, sizeof err);

    if (s == NULL)
        fail_msg("gb_store_open: %s", err);
    return s;
}

static struct gb_store_request request(int64_t ts, const char *kh, const char *model, int status,
                                       int tokens)
{
    struct gb_store_request r;

    memset(&r, 0, sizeof r);
    r.ts_ms = ts;
    snprintf(r.route, sizeof r.route, "chat");
    snprintf(r.model, sizeof r.model, "%s", model);
    snprintf(r.key_hash, sizeof r.key_hash, "%s", kh);
    snprintf(r.key_id, sizeof r.key_id, "%s",
             kh[0] ? (kh[0] == 'a' ? "#0...aaaa" : "#1...bbbb") : "");
    r.status = status;
    r.attempts = 1;
    r.latency_ms = 12;
    r.prompt_tokens = tokens - tokens / 3;
    r.completion_tokens = tokens / 3;
    r.total_tokens = tokens;
    return r;
}

static struct gb_store_error error_rec(int64_t ts, const char *kh, int status, const char *reason)
{
    struct gb_store_error e;

    memset(&e, 0, sizeof e);
    e.ts_ms = ts;
    snprintf(e.key_hash, sizeof e.key_hash, "%s", kh);
    snprintf(e.key_id, sizeof e.key_id, "#0...aaaa");
    snprintf(e.model, sizeof e.model, "gemini-2.0-flash");
    e.status = status;
    snprintf(e.reason, sizeof e.reason, "%s", reason);
    snprintf(e.message, sizeof e.message, "upstream said %s", reason);
    return e;
}

static void log_request(struct gb_store *s, int64_t ts, const char *kh, const char *model,
                        int status, int tokens)
{
    struct gb_store_request r = request(ts, kh, model, status, tokens);

    assert_int_equal(gb_store_log_request(s, &r), 0);
}

static sqlite3 *db_open(const char *path)
{
    sqlite3 *db = NULL;

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* The first column of the first row of sql, as an integer. */
static int64_t db_int(const char *path, const char *sql)
{
    sqlite3 *db = db_open(path);
    sqlite3_stmt *st = NULL;
    int64_t v;

    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* The first column of the first row of sql, as text (static buffer). */
static const char *db_text(const char *path, const char *sql)
{
    static char buf[512];
    sqlite3 *db = db_open(path);
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(buf, sizeof buf, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return buf;
}

static void db_exec(const char *path, const char *sql)
{
    sqlite3 *db = db_open(path);

    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_close(db);
}

/* --- asking queries through a real event loop ------------------------------ */

struct answer {
    struct event_base *base;
    pthread_t loop_thread;
    int done, timed_out, on_loop_thread;
    json_t *result;
    char err[256];
};

static void on_answer(void *ud, json_t *result, const char *err)
{
    struct answer *a = ud;

    a->done = 1;
    a->result = result;
    a->on_loop_thread = pthread_equal(pthread_self(), a->loop_thread);
    snprintf(a->err, sizeof a->err, "%s", err ? err : "");
    event_base_loopbreak(a->base);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct answer *a = arg;

    (void)fd;
    (void)what;
    a->timed_out = 1;
    event_base_loopbreak(a->base);
}

/* Runs the loop until the answer came (5 s at most). */
static json_t *wait_answer(struct answer *a)
{
    struct timeval tv = {5, 0};
    struct event *t = evtimer_new(a->base, on_timeout, a);

    assert_non_null(t);
    evtimer_add(t, &tv);
    while (!a->done && !a->timed_out)
        event_base_loop(a->base, EVLOOP_ONCE);
    event_free(t);
    event_base_free(a->base);
    if (!a->done)
        fail_msg("no answer from the store within 5 s");
    assert_true(a->on_loop_thread);
    if (a->result == NULL)
        fail_msg("query failed: %s", a->err);
    return a->result;
}

static void ask_start(struct gb_store *s, const struct gb_store_query *q, struct answer *a)
{
    memset(a, 0, sizeof *a);
    a->base = event_base_new();
    a->loop_thread = pthread_self();
    assert_non_null(a->base);
    assert_int_equal(gb_store_query(s, q, a->base, on_answer, a), 0);
    assert_false(a->done); /* never called from inside gb_store_query */
}

static json_t *ask(struct gb_store *s, const struct gb_store_query *q)
{
    struct answer a;

    ask_start(s, q, &a);
    return wait_answer(&a);
}

static struct gb_store_query query(enum gb_store_query_kind kind)
{
    struct gb_store_query q;

    memset(&q, 0, sizeof q);
    q.kind = kind;
    return q;
}

/* Integer at a path of object keys (NULL-terminated), failing when missing. */
static json_int_t jint(const json_t *v, ...)
{
    va_list ap;
    const char *k;

    va_start(ap, v);
    while (v != NULL && (k = va_arg(ap, const char *)) != NULL)
        v = json_object_get(v, k);
    va_end(ap);
    if (!json_is_integer(v))
        fail_msg("missing integer in result");
    return json_integer_value(v);
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));

    if (v == NULL)
        fail_msg("missing string %s", k);
    return v;
}

/* Total of a REQUESTS query with the given filters. */
static json_int_t count_requests(struct gb_store *s)
{
    struct gb_store_query q = query(GB_STORE_Q_REQUESTS);
    json_t *r = ask(s, &q);
    json_int_t n = jint(r, "total", NULL);

    json_decref(r);
    return n;
}

/* --- open, WAL, persistence ------------------------------------------------ */

static void test_open_creates_db_and_wal(void **state)
{
    struct fixture *f = *state;
    struct gb_store *s = open_store(f, 30, 7, 0);
    char wal[256];
    struct stat sb;

    assert_int_equal(stat(f->data, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(stat(f->db, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    snprintf(wal, sizeof wal, "%s-wal", f->db);
    assert_int_equal(stat(wal, &sb), 0);
    assert_string_equal(db_text(f->db, "PRAGMA journal_mode"), "wal");
    assert_int_equal(db_int(f->db, "PRAGMA user_version"), 1);
    assert_int_equal(gb_store_dropped(s), 0);
    gb_store_close(s);
    /* reopening an up-to-date database migrates nothing */
    s = open_store(f, 30, 7, 0);
    assert_int_equal(db_int(f->db, "PRAGMA user_version"), 1);
    gb_store_close(s);
    gb_store_close(NULL);
}

static void test_records_persist(void **state)
{
    struct fixture *f = *state;
    struct gb_store *s = open_store(f, 30, 7, 0);
    int64_t now = wall_now();
    struct gb_store_request r = request(0, KEY_A, "gemini-2.0-flash", 200, 30);
    struct gb_store_error e = error_rec(now, KEY_A, 429, "RESOURCE_EXHAUSTED");

    memset(r.route, 'x', sizeof r.route); /* not terminated: the store cuts it */
    assert_int_equal(gb_store_log_request(s, &r), 0);
    log_request(s, now - 1000, KEY_A, "gemini-2.0-flash", 500, 0);
    log_request(s, now - 2000, "", "gemini-2.0-flash", 503, 0);
    assert_int_equal(gb_store_log_error(s, &e), 0);
    e = error_rec(now - 5, KEY_B, 0, "timeout");
    assert_int_equal(gb_store_log_error(s, &e), 0);
    gb_store_close(s);

    assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM request_log"), 3);
    assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM error_log"), 2);
    assert_int_equal(db_int(f->db, "SELECT length(route) FROM request_log WHERE status = 200"), 31);
    assert_true(db_int(f->db, "SELECT ts_ms FROM request_log WHERE status = 200") >= now);
    assert_string_equal(db_text(f->db, "SELECT model || '|' || key_id || '|' || attempts || '|' ||"
                                       " latency_ms || '|' || prompt_tokens || '|' ||"
                                       " completion_tokens || '|' || total_tokens"
                                       " FROM request_log WHERE status = 200"),
                        "gemini-2.0-flash|#0...aaaa|1|12|20|10|30");
    assert_string_equal(db_text(f->db, "SELECT reason || '|' || message || '|' || status"
                                       " FROM error_log ORDER BY ts_ms DESC LIMIT 1"),
                        "RESOURCE_EXHAUSTED|upstream said RESOURCE_EXHAUSTED|429");
    /* usage: every request counted by key and hour, "" for no key */
    assert_int_equal(db_int(f->db, "SELECT SUM(requests) FROM usage"), 3);
    assert_int_equal(db_int(f->db, "SELECT SUM(success) FROM usage"), 1);
    assert_int_equal(db_int(f->db, "SELECT SUM(tokens) FROM usage"), 30);
    assert_int_equal(db_int(f->db, "SELECT SUM(requests) FROM usage WHERE key_hash = ''"), 1);
}

/* Request records go to SQLite in INSERTs of 32, 8 and 1 rows; a run ends at
 * the end of a batch or at another kind of record.  A statement rejected for
 * one bad row is written again row by row, so that only the bad row is lost. */
static void test_request_runs(void **state)
{
    struct fixture *f = *state;
    struct gb_store *s = open_store(f, 0, 0, 0);
    struct gb_store_error e = error_rec(T_FIXED, KEY_A, 429, "RESOURCE_EXHAUSTED");
    int n = 0;

    gb_store_close(s);
    db_exec(f->db, "CREATE TRIGGER reject BEFORE INSERT ON request_log WHEN NEW.model = 'bad'"
                   " BEGIN SELECT RAISE(ABORT, 'bad model'); END");
    s = open_store(f, 0, 0, 0);
    /* 70 records, an error record, 40 more: 32 + 32 + 6 x 1 | 32 + 8; the
     * 11th (in a 32-row statement) and the 105th (in an 8-row one) are
     * rejected */
    for (int i = 0; i < 110; i++, n++) {
        if (i == 70)
            assert_int_equal(gb_store_log_error(s, &e), 0);
        log_request(s, T_FIXED + i, i % 2 ? KEY_A : KEY_B, i == 10 || i == 104 ? "bad" : "m",
                    i % 3 ? 200 : 500, 3);
    }
    assert_int_equal(count_requests(s), n - 2);
    assert_int_equal(gb_store_dropped(s), 2);
    gb_store_close(s);

    assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM request_log"), n - 2);
    assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM error_log"), 1);
    /* rows keep the order they were queued in, with every field */
    assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM request_log a JOIN request_log b"
                                   " ON a.id < b.id AND a.ts_ms >= b.ts_ms"),
                     0);
    assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM request_log WHERE ts_ms IN ("
                                   "1704889800010, 1704889800104)"),
                     0);
    assert_string_equal(db_text(f->db, "SELECT route || '|' || model || '|' || key_hash || '|' ||"
                                       " key_id || '|' || status || '|' || attempts || '|' ||"
                                       " latency_ms || '|' || prompt_tokens || '|' ||"
                                       " completion_tokens || '|' || total_tokens"
                                       " FROM request_log WHERE ts_ms = 1704889800109"),
                        "chat|m|aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa|"
                        "#0...aaaa|200|1|12|2|1|3");
    assert_int_equal(db_int(f->db, "SELECT SUM(ts_ms - 1704889800000) FROM request_log"),
                     109 * 110 / 2 - 10 - 104);
    /* usage counts what was written, not what was rejected */
    assert_int_equal(db_int(f->db, "SELECT SUM(requests) FROM usage"), n - 2);
    assert_int_equal(db_int(f->db, "SELECT SUM(tokens) FROM usage"), 3 * (n - 2));
    assert_int_equal(db_int(f->db, "SELECT SUM(success) FROM usage"),
                     db_int(f->db, "SELECT COUNT(*) FROM request_log WHERE status = 200"));
    assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM usage WHERE model = 'bad'"), 0);
}

/* --- keys ------------------------------------------------------------------ */

struct loaded {
    int n;
    struct gb_store_key k[4];
    char secret[4][64]; /* "" for NULL */
    int has_secret[4];
};

static void on_key(void *ud, const struct gb_store_key *k, const char *secret)
{
    struct loaded *l = ud;

    assert_true(l->n < 4);
    assert_ptr_equal(k->secret, secret);
    l->k[l->n] = *k;
    l->k[l->n].secret = NULL;
    l->has_secret[l->n] = secret != NULL;
    snprintf(l->secret[l->n], sizeof l->secret[0], "%s", secret ? secret : "");
    l->n++;
}

static struct gb_store_key key_state(const char *kh, const char *secret, int disabled,
                                     long failures, const char *last_error)
{
    struct gb_store_key k;

    memset(&k, 0, sizeof k);
    snprintf(k.key_hash, sizeof k.key_hash, "%s", kh);
    snprintf(k.key_id, sizeof k.key_id, "#%c...%.4s", kh[0], kh);
    k.secret = secret;
    k.disabled = disabled;
    k.failures = failures;
    snprintf(k.last_error, sizeof k.last_error, "%s", last_error);
    k.updated_ms = 1234;
    return k;
}

static void add_cooldown(struct gb_store_key *k, const char *model, int64_t until)
{
    snprintf(k->cooldowns[k->ncooldowns].model, sizeof k->cooldowns[0].model, "%s", model);
    k->cooldowns[k->ncooldowns++].until_ms = until;
}

static void test_keys_round_trip(void **state)
{
    struct fixture *f = *state;
    struct gb_store *s = open_store(f, 30, 7, 0);
    int64_t now = wall_now();
    char secret[] = "AIzaSyFAKE-secret-0001";
    struct gb_store_key a = key_state(KEY_A, secret, 1, 3, "API_KEY_INVALID");
    struct gb_store_key b = key_state(KEY_B, NULL, 0, 0, "");
    struct loaded l;
    char sql[256];

    add_cooldown(&a, "gemini-2.5-pro", now + HOUR_MS);
    add_cooldown(&a, "", now + 2 * HOUR_MS);
    add_cooldown(&a, "gemini-old", now - 1000); /* expired: not stored */
    assert_int_equal(gb_store_save_key(s, &a), 0);
    memset(secret, 'Z', sizeof secret - 1); /* the store copied it */
    add_cooldown(&b, "gemini-2.0-flash", now + HOUR_MS);
    assert_int_equal(gb_store_save_key(s, &b), 0);
    gb_store_close(s);
    assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM key_cooldowns"), 3);

    s = open_store(f, 30, 7, 0);
    memset(&l, 0, sizeof l);
    assert_int_equal(gb_store_load_keys(s, on_key, &l), 2);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.k[0].key_hash, KEY_A);
    assert_string_equal(l.k[0].key_id, "#a...aaaa");
    assert_int_equal(l.k[0].disabled, 1);
    assert_int_equal(l.k[0].failures, 3);
    assert_string_equal(l.k[0].last_error, "API_KEY_INVALID");
    assert_int_equal(l.k[0].updated_ms, 1234);
    assert_true(l.has_secret[0]);
    assert_string_equal(l.secret[0], "AIzaSyFAKE-secret-0001");
    assert_int_equal(l.k[0].ncooldowns, 2);
    assert_string_equal(l.k[0].cooldowns[0].model, ""); /* ordered by model */
    assert_int_equal(l.k[0].cooldowns[0].until_ms, now + 2 * HOUR_MS);
    assert_string_equal(l.k[0].cooldowns[1].model, "gemini-2.5-pro");
    assert_int_equal(l.k[0].cooldowns[1].until_ms, now + HOUR_MS);
    assert_string_equal(l.k[1].key_hash, KEY_B);
    assert_false(l.has_secret[1]);
    assert_int_equal(l.k[1].ncooldowns, 1);

    /* a cooldown that ended since it was saved is not loaded */
    snprintf(sql, sizeof sql, "UPDATE key_cooldowns SET until_ms = %lld WHERE key_hash = '%s'",
             (long long)(now - 1), KEY_B);
    db_exec(f->db, sql);
    memset(&l, 0, sizeof l);
    assert_int_equal(gb_store_load_keys(s, on_key, &l), 2);
    assert_int_equal(l.k[1].ncooldowns, 0);

    /* an update from the pool (no secret) keeps the stored secret */
    a = key_state(KEY_A, NULL, 0, 0, "");
    assert_int_equal(gb_store_save_key(s, &a), 0);
    gb_store_close(s);
    s = open_store(f, 30, 7, 0);
    memset(&l, 0, sizeof l);
    assert_int_equal(gb_store_load_keys(s, on_key, &l), 2);
    assert_int_equal(l.k[0].disabled, 0);
    assert_int_equal(l.k[0].failures, 0);
    assert_string_equal(l.k[0].last_error, "");
    assert_int_equal(l.k[0].ncooldowns, 0);
    assert_true(l.has_secret[0]);
    assert_string_equal(l.secret[0], "AIzaSyFAKE-secret-0001");
    /* expired cooldown rows were trimmed by the retention pass at open */
    assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM key_cooldowns"), 0);

    assert_int_equal(gb_store_load_keys(s, NULL, NULL), GB_EINVAL);
    b.key_hash[0] = '\0';
    assert_int_equal(gb_store_save_key(s, &b), GB_EINVAL);
    assert_int_equal(gb_store_delete_key(s, ""), GB_EINVAL);
    assert_int_equal(gb_store_dropped(s), 0);
    gb_store_close(s);
}

static void test_delete_key(void **state)
{
    struct fixture *f = *state;
    struct gb_store *s = open_store(f, 30, 7, 0);
    struct gb_store_key a = key_state(KEY_A, "AIzaSyFAKE-secret-0002", 0, 1, "x");
    struct gb_store_key b = key_state(KEY_B, NULL, 0, 0, "");
    struct loaded l;

    add_cooldown(&a, "gemini-2.5-pro", wall_now() + HOUR_MS);
    assert_int_equal(gb_store_save_key(s, &a), 0);
    assert_int_equal(gb_store_save_key(s, &b), 0);
    log_request(s, 0, KEY_A, "gemini-2.5-pro", 200, 5);
    assert_int_equal(gb_store_delete_key(s, KEY_A), 0);
    gb_store_close(s);

    s = open_store(f, 30, 7, 0);
    memset(&l, 0, sizeof l);
    assert_int_equal(gb_store_load_keys(s, on_key, &l), 1);
    assert_string_equal(l.k[0].key_hash, KEY_B);
    gb_store_close(s);
    assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM key_cooldowns"), 0);
    /* its history stays */
    assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM usage"), 1);
}

/* --- the queue bound ------------------------------------------------------- */

static void test_queue_full_drops(void **state)
{
    struct fixture *f = *state;
    struct gb_store *s = open_store(f, 30, 7, 4);
    struct gb_store_request r = request(0, KEY_A, "gemini-2.0-flash", 200, 1);
    int n = 20000, busy = 0;

    for (int i = 0; i < n; i++) {
        int rc = gb_store_log_request(s, &r);
        assert_true(rc == 0 || rc == GB_EBUSY);
        busy += rc == GB_EBUSY;
    }
    assert_true(busy > 0);
    assert_int_equal(gb_store_dropped(s), (uint64_t)busy);
    assert_int_equal(gb_store_log_request(NULL, &r), GB_EINVAL);
    assert_int_equal(gb_store_log_request(s, NULL), GB_EINVAL);
    assert_int_equal(gb_store_dropped(s), (uint64_t)busy);
    gb_store_close(s);
    assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM request_log"), n - busy);
    assert_int_equal(db_int(f->db, "SELECT SUM(requests) FROM usage"), n - busy);
}

/* --- retention ------------------------------------------------------------- */

static void test_retention(void **state)
{
    struct fixture *f = *state;
    struct gb_store *s = open_store(f, 30, 7, 0);
    int64_t now = wall_now();
    struct gb_store_error e;

    log_request(s, now - 40 * DAY_MS, KEY_A, "m", 200, 1);
    log_request(s, now - 10 * DAY_MS, KEY_A, "m", 200, 1);
    log_request(s, now - HOUR_MS, KEY_A, "m", 200, 1);
    e = error_rec(now - 10 * DAY_MS, KEY_A, 500, "old");
    assert_int_equal(gb_store_log_error(s, &e), 0);
    e = error_rec(now - DAY_MS, KEY_A, 500, "recent");
    assert_int_equal(gb_store_log_error(s, &e), 0);
    gb_store_close(s);
    assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM request_log"), 3);
    assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM error_log"), 2);
    assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM usage"), 3);

    /* the pass at open: 30 days of requests and usage, 7 of errors */
    s = open_store(f, 30, 7, 0);
    log_request(s, now - 36 * HOUR_MS, KEY_A, "m", 200, 1);
    gb_store_close(s);
    assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM request_log"), 3);
    assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM error_log"), 1);
    assert_string_equal(db_text(f->db, "SELECT reason FROM error_log"), "recent");
    assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM usage"), 3);

    /* <= 0 keeps everything */
    s = open_store(f, 0, 0, 0);
    gb_store_close(s);
    assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM request_log"), 3);

    /* one day of requests, but usage is kept two days */
    s = open_store(f, 1, 7, 0);
    gb_store_close(s);
    assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM request_log"), 1);
    assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM usage"), 2);
}

/* --- queries --------------------------------------------------------------- */

static void test_query_logs(void **state)
{
    struct fixture *f = *state;
    struct gb_store *s = open_store(f, 0, 0, 0);
    struct gb_store_query q;
    struct gb_store_error e;
    json_t *r, *items, *it;

    /* i = 0..9, one a minute, the newest (i = 9) a minute before T_FIXED */
    for (int i = 0; i < 10; i++)
        log_request(s, T_FIXED - (10 - i) * MIN_MS, i % 2 ? KEY_B : KEY_A,
                    i % 3 == 0 ? "m-pro" : "m-flash", i == 4 ? 429 : 200, i);

    q = query(GB_STORE_Q_REQUESTS);
    r = ask(s, &q);
    items = json_object_get(r, "items");
    assert_int_equal(json_array_size(items), 10);
    assert_int_equal(jint(r, "total", NULL), 10);
    assert_int_equal(jint(r, "limit", NULL), GB_STORE_QUERY_LIMIT_DEFAULT);
    assert_int_equal(jint(r, "offset", NULL), 0);
    it = json_array_get(items, 0);
    assert_int_equal(jint(it, "ts_ms", NULL), T_FIXED - MIN_MS);
    assert_string_equal(jstr(it, "key_hash"), KEY_B);
    assert_string_equal(jstr(it, "key_id"), "#1...bbbb");
    assert_string_equal(jstr(it, "model"), "m-pro");
    assert_string_equal(jstr(it, "route"), "chat");
    assert_int_equal(jint(it, "status", NULL), 200);
    assert_int_equal(jint(it, "attempts", NULL), 1);
    assert_int_equal(jint(it, "latency_ms", NULL), 12);
    assert_int_equal(jint(it, "total_tokens", NULL), 9);
    assert_int_equal(jint(it, "prompt_tokens", NULL), 6);
    assert_int_equal(jint(it, "completion_tokens", NULL), 3);
    assert_int_equal(jint(json_array_get(items, 9), "ts_ms", NULL), T_FIXED - 10 * MIN_MS);
    json_decref(r);

    /* paging */
    q.limit = 3;
    q.offset = 2;
    r = ask(s, &q);
    items = json_object_get(r, "items");
    assert_int_equal(json_array_size(items), 3);
    assert_int_equal(jint(r, "total", NULL), 10);
    for (int j = 0; j < 3; j++)
        assert_int_equal(jint(json_array_get(items, j), "ts_ms", NULL),
                         T_FIXED - (3 + j) * MIN_MS); /* i = 7, 6, 5 */
    json_decref(r);
    q.offset = 9;
    r = ask(s, &q);
    assert_int_equal(json_array_size(json_object_get(r, "items")), 1);
    json_decref(r);
    q.limit = 5000;
    q.offset = -3;
    r = ask(s, &q);
    assert_int_equal(jint(r, "limit", NULL), GB_STORE_QUERY_LIMIT_MAX);
    assert_int_equal(jint(r, "offset", NULL), 0);
    json_decref(r);

    /* filters */
    q = query(GB_STORE_Q_REQUESTS);
    snprintf(q.key_hash, sizeof q.key_hash, "%s", KEY_A);
    r = ask(s, &q);
    assert_int_equal(jint(r, "total", NULL), 5);
    assert_int_equal(jint(json_array_get(json_object_get(r, "items"), 0), "ts_ms", NULL),
                     T_FIXED - 2 * MIN_MS); /* i = 8 */
    json_decref(r);
    snprintf(q.model, sizeof q.model, "m-pro");
    r = ask(s, &q);
    assert_int_equal(jint(r, "total", NULL), 2); /* i = 0, 6 */
    json_decref(r);
    q = query(GB_STORE_Q_REQUESTS);
    snprintf(q.model, sizeof q.model, "m-pro");
    r = ask(s, &q);
    assert_int_equal(jint(r, "total", NULL), 4); /* i = 0, 3, 6, 9 */
    json_decref(r);
    q = query(GB_STORE_Q_REQUESTS);
    q.since_ms = T_FIXED - 3 * MIN_MS;
    r = ask(s, &q);
    assert_int_equal(jint(r, "total", NULL), 3); /* i = 7, 8, 9 */
    json_decref(r);
    snprintf(q.key_hash, sizeof q.key_hash, "nothing");
    r = ask(s, &q);
    assert_int_equal(jint(r, "total", NULL), 0);
    assert_int_equal(json_array_size(json_object_get(r, "items")), 0);
    json_decref(r);

    /* the error log */
    e = error_rec(T_FIXED - 3000, KEY_A, 429, "RESOURCE_EXHAUSTED");
    assert_int_equal(gb_store_log_error(s, &e), 0);
    e = error_rec(T_FIXED - 2000, KEY_A, 400, "API_KEY_INVALID");
    assert_int_equal(gb_store_log_error(s, &e), 0);
    e = error_rec(T_FIXED - 1000, KEY_B, 0, "timeout");
    memset(e.message, 0xff, sizeof e.message - 1); /* not UTF-8: still answered */
    assert_int_equal(gb_store_log_error(s, &e), 0);
    q = query(GB_STORE_Q_ERRORS);
    r = ask(s, &q);
    items = json_object_get(r, "items");
    assert_int_equal(jint(r, "total", NULL), 3);
    it = json_array_get(items, 0);
    assert_string_equal(jstr(it, "reason"), "timeout");
    assert_int_equal(jint(it, "status", NULL), 0);
    assert_int_equal(jstr(it, "message")[0], '?');
    it = json_array_get(items, 1);
    assert_string_equal(jstr(it, "reason"), "API_KEY_INVALID");
    assert_string_equal(jstr(it, "message"), "upstream said API_KEY_INVALID");
    assert_string_equal(jstr(it, "key_id"), "#0...aaaa");
    assert_string_equal(jstr(it, "model"), "gemini-2.0-flash");
    json_decref(r);
    snprintf(q.key_hash, sizeof q.key_hash, "%s", KEY_A);
    q.limit = 1;
    r = ask(s, &q);
    assert_int_equal(jint(r, "total", NULL), 2);
    assert_int_equal(json_array_size(json_object_get(r, "items")), 1);
    json_decref(r);
    gb_store_close(s);
}

static json_t *find_by(json_t *arr, const char *field, const char *value)
{
    size_t i;
    json_t *v;

    json_array_foreach(arr, i, v)
    {
        if (strcmp(jstr(v, field), value) == 0)
            return v;
    }
    fail_msg("no entry with %s = %s", field, value);
    return NULL;
}

static void test_query_stats(void **state)
{
    struct fixture *f = *state;
    struct gb_store *s = open_store(f, 0, 0, 0);
    struct gb_store_query q;
    json_t *r, *m, *hourly;

    log_request(s, T_FIXED - 10 * MIN_MS, KEY_A, "m1", 200, 15); /* 12:20 */
    log_request(s, T_FIXED - 20 * MIN_MS, KEY_A, "m2", 500, 0);  /* 12:10 */
    log_request(s, T_FIXED - 2 * HOUR_MS, KEY_B, "m1", 200, 30); /* 10:30 */
    log_request(s, T_FIXED - 30 * HOUR_MS, KEY_B, "m1", 429, 0); /* yesterday 06:30 */
    log_request(s, T_FIXED - 5 * MIN_MS, "", "m1", 503, 0);      /* 12:25, no key */

    q = query(GB_STORE_Q_STATS);
    q.now_ms = T_FIXED;
    r = ask(s, &q);
    assert_int_equal(jint(r, "requests", "total", NULL), 5);
    assert_int_equal(jint(r, "requests", "success", NULL), 2);
    assert_int_equal(jint(r, "requests", "failed", NULL), 3);
    assert_int_equal(jint(r, "requests", "last_hour", NULL), 3);
    assert_int_equal(jint(r, "requests", "last_day", NULL), 4);
    assert_true(json_real_value(json_object_get(r, "success_rate")) > 0.399 &&
                json_real_value(json_object_get(r, "success_rate")) < 0.401);
    assert_int_equal(jint(r, "tokens", "prompt", NULL), 30);
    assert_int_equal(jint(r, "tokens", "completion", NULL), 15);
    assert_int_equal(jint(r, "tokens", "total", NULL), 45);
    assert_int_equal(json_array_size(json_object_get(r, "per_model")), 2);
    m = json_array_get(json_object_get(r, "per_model"), 0); /* most requests first */
    assert_string_equal(jstr(m, "model"), "m1");
    assert_int_equal(jint(m, "requests", NULL), 4);
    assert_int_equal(jint(m, "success", NULL), 2);
    assert_int_equal(jint(m, "tokens", NULL), 45);
    m = find_by(json_object_get(r, "per_model"), "model", "m2");
    assert_int_equal(jint(m, "requests", NULL), 1);
    assert_int_equal(jint(m, "success", NULL), 0);
    assert_int_equal(json_array_size(json_object_get(r, "per_key")), 2); /* no "" entry */
    m = find_by(json_object_get(r, "per_key"), "key_hash", KEY_B);
    assert_string_equal(jstr(m, "key_id"), "#1...bbbb");
    assert_int_equal(jint(m, "requests", NULL), 2);
    assert_int_equal(jint(m, "success", NULL), 1);
    hourly = json_object_get(r, "hourly");
    assert_int_equal(json_array_size(hourly), 24);
    assert_int_equal(jint(json_array_get(hourly, 0), "hour_start_ms", NULL),
                     T_FIXED - 30 * MIN_MS - 23 * HOUR_MS);
    assert_int_equal(jint(json_array_get(hourly, 23), "hour_start_ms", NULL),
                     T_FIXED - 30 * MIN_MS);
    assert_int_equal(jint(json_array_get(hourly, 23), "requests", NULL), 3);
    assert_int_equal(jint(json_array_get(hourly, 23), "errors", NULL), 2);
    assert_int_equal(jint(json_array_get(hourly, 21), "requests", NULL), 1);
    assert_int_equal(jint(json_array_get(hourly, 21), "errors", NULL), 0);
    assert_int_equal(jint(json_array_get(hourly, 22), "requests", NULL), 0);
    json_decref(r);

    /* since_ms counts from the start of its hour; filters apply everywhere */
    q.since_ms = T_FIXED - HOUR_MS; /* 11:30 -> from 11:00 */
    r = ask(s, &q);
    assert_int_equal(jint(r, "requests", "total", NULL), 3);
    json_decref(r);
    q.since_ms = 0;
    snprintf(q.key_hash, sizeof q.key_hash, "%s", KEY_A);
    r = ask(s, &q);
    assert_int_equal(jint(r, "requests", "total", NULL), 2);
    assert_int_equal(jint(r, "requests", "last_hour", NULL), 2);
    assert_int_equal(json_array_size(json_object_get(r, "per_key")), 1);
    json_decref(r);
    q = query(GB_STORE_Q_STATS);
    q.now_ms = T_FIXED;
    snprintf(q.model, sizeof q.model, "m2");
    r = ask(s, &q);
    assert_int_equal(jint(r, "requests", "total", NULL), 1);
    assert_int_equal(jint(r, "requests", "last_day", NULL), 1);
    json_decref(r);
    gb_store_close(s);
}

static void test_query_stats_empty(void **state)
{
    struct fixture *f = *state;
    struct gb_store *s = open_store(f, 30, 7, 0);
    struct gb_store_query q = query(GB_STORE_Q_STATS);
    json_t *r = ask(s, &q);

    assert_int_equal(jint(r, "requests", "total", NULL), 0);
    assert_true(json_real_value(json_object_get(r, "success_rate")) == 0.0);
    assert_int_equal(json_array_size(json_object_get(r, "per_model")), 0);
    assert_int_equal(json_array_size(json_object_get(r, "hourly")), 24);
    json_decref(r);
    q = query(GB_STORE_Q_USAGE);
    r = ask(s, &q);
    assert_int_equal(json_object_size(json_object_get(r, "keys")), 0);
    json_decref(r);
    gb_store_close(s);
}

static void test_query_usage(void **state)
{
    struct fixture *f = *state;
    struct gb_store *s = open_store(f, 0, 0, 0);
    struct gb_store_query q;
    json_t *r, *a;

    log_request(s, T_FIXED - 20 * MIN_MS, KEY_A, "m1", 200, 1); /* 12:10: hour, today */
    log_request(s, T_FIXED - 31 * MIN_MS, KEY_A, "m1", 200, 1); /* 11:59: today */
    log_request(s, DAY_START, KEY_A, "m2", 500, 1);             /* 00:00:00: today */
    log_request(s, DAY_START - 1, KEY_A, "m1", 200, 1);         /* 23:59:59.999 before */
    log_request(s, T_FIXED - 1, KEY_B, "m1", 200, 1);           /* 12:29:59.999 */
    log_request(s, T_FIXED - 5 * MIN_MS, "", "m1", 503, 0);     /* no key: not listed */

    q = query(GB_STORE_Q_USAGE);
    q.now_ms = T_FIXED;
    r = ask(s, &q);
    assert_int_equal(json_object_size(json_object_get(r, "keys")), 2);
    a = json_object_get(json_object_get(r, "keys"), KEY_A);
    assert_int_equal(jint(a, "hour", NULL), 1);
    assert_int_equal(jint(a, "today", NULL), 3);
    assert_int_equal(jint(a, "per_model", "m1", "hour", NULL), 1);
    assert_int_equal(jint(a, "per_model", "m1", "today", NULL), 2);
    assert_int_equal(jint(a, "per_model", "m2", "hour", NULL), 0);
    assert_int_equal(jint(a, "per_model", "m2", "today", NULL), 1);
    a = json_object_get(json_object_get(r, "keys"), KEY_B);
    assert_int_equal(jint(a, "hour", NULL), 1);
    assert_int_equal(jint(a, "today", NULL), 1);
    json_decref(r);

    /* at the first millisecond of the next day, nothing is "today" */
    q.now_ms = DAY_START + DAY_MS;
    r = ask(s, &q);
    assert_int_equal(json_object_size(json_object_get(r, "keys")), 0);
    json_decref(r);
    /* the last millisecond of the day before: only its 23:59 record */
    q.now_ms = DAY_START - 1;
    r = ask(s, &q);
    a = json_object_get(json_object_get(r, "keys"), KEY_A);
    assert_int_equal(jint(a, "hour", NULL), 1);
    assert_int_equal(jint(a, "today", NULL), 1);
    json_decref(r);

    /* filters */
    q.now_ms = T_FIXED;
    snprintf(q.key_hash, sizeof q.key_hash, "%s", KEY_B);
    r = ask(s, &q);
    assert_int_equal(json_object_size(json_object_get(r, "keys")), 1);
    json_decref(r);
    q.key_hash[0] = '\0';
    snprintf(q.model, sizeof q.model, "m2");
    r = ask(s, &q);
    a = json_object_get(json_object_get(r, "keys"), KEY_A);
    assert_int_equal(json_object_size(json_object_get(r, "keys")), 1);
    assert_int_equal(jint(a, "today", NULL), 1);
    assert_null(json_object_get(json_object_get(a, "per_model"), "m1"));
    json_decref(r);
    gb_store_close(s);
}

static void test_query_answered_at_close(void **state)
{
    struct fixture *f = *state;
    struct gb_store *s = open_store(f, 30, 7, 0);
    struct gb_store_query q = query(GB_STORE_Q_REQUESTS);
    struct answer a;
    json_t *r;

    log_request(s, 0, KEY_A, "m", 200, 1);
    ask_start(s, &q, &a);
    gb_store_close(s); /* the queued query still runs; its answer waits on the base */
    r = wait_answer(&a);
    assert_int_equal(jint(r, "total", NULL), 1);
    json_decref(r);
}

static void test_query_bad_arguments(void **state)
{
    struct fixture *f = *state;
    struct gb_store *s = open_store(f, 30, 7, 0);
    struct gb_store_query q = query(GB_STORE_Q_REQUESTS);
    struct event_base *base = event_base_new();
    struct answer a;

    memset(&a, 0, sizeof a);
    assert_int_equal(gb_store_query(s, &q, NULL, on_answer, &a), GB_EINVAL);
    assert_int_equal(gb_store_query(s, &q, base, NULL, &a), GB_EINVAL);
    assert_int_equal(gb_store_query(NULL, &q, base, on_answer, &a), GB_EINVAL);
    q.kind = (enum gb_store_query_kind)99;
    assert_int_equal(gb_store_query(s, &q, base, on_answer, &a), GB_EINVAL);
    event_base_free(base);
    gb_store_close(s);
    assert_false(a.done);
}

/* --- start-up failures ------------------------------------------------------ */

static void expect_open_fails(const char *data_dir, const char *needle)
{
    struct gb_store_opts o = {data_dir, 30, 7, 0};
    char err[256] = "";
    struct gb_store *s = gb_store_open(&o, err, sizeof err);

    if (s != NULL) {
        gb_store_close(s);
        fail_msg("gb_store_open(%s) succeeded", data_dir ? data_dir : "NULL");
    }
    if (strstr(err, needle) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err, needle);
}

static void test_open_failures(void **state)
{
    struct fixture *f = *state;
    char path[256];
    FILE *fp;
    struct gb_store *s;

    snprintf(path, sizeof path, "%s/missing/data", f->dir);
    expect_open_fails(path, "cannot create DATA_DIR");
    expect_open_fails(path, "No such file or directory");
    expect_open_fails("", "DATA_DIR is empty");
    expect_open_fails(NULL, "DATA_DIR is empty");

    snprintf(path, sizeof path, "%s/file", f->dir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    expect_open_fails(path, "is not a directory");
    snprintf(path, sizeof path, "%s/file/data", f->dir);
    expect_open_fails(path, "cannot create DATA_DIR");

    /* read-only DATA_DIR (root ignores modes: use a directory of /proc) */
    if (geteuid() != 0) {
        snprintf(path, sizeof path, "%s/ro", f->dir);
        assert_int_equal(mkdir(path, 0500), 0);
        expect_open_fails(path, "is not writable");
        snprintf(path, sizeof path, "%s/ro/data", f->dir);
        expect_open_fails(path, "Permission denied");
    } else {
        expect_open_fails("/proc/self", "/proc/self");
    }

    /* a file that is not a database */
    assert_int_equal(mkdir(f->data, 0700), 0);
    fp = fopen(f->db, "w");
    assert_non_null(fp);
    for (int i = 0; i < 512; i++)
        fputs("this is not a database ", fp);
    fclose(fp);
    expect_open_fails(f->data, "not a database");
    assert_int_equal(remove(f->db), 0);

    /* a schema newer than this build */
    s = open_store(f, 30, 7, 0);
    gb_store_close(s);
    db_exec(f->db, "PRAGMA user_version = 99");
    expect_open_fails(f->data, "newer than this build");
}

/* --- a disk that refuses writes --------------------------------------------- */

static void test_disk_failure(void **state)
{
    struct fixture *f = *state;
    struct gb_store *s = open_store(f, 0, 0, 0);
    struct rlimit old, lim;
    struct stat sb;
    char wal[256];
    off_t size = 0;

    log_request(s, 0, KEY_A, "m", 200, 1);
    assert_int_equal(count_requests(s), 1); /* flushed */

    /* no file may grow any more: the next commit cannot append to the WAL */
    snprintf(wal, sizeof wal, "%s-wal", f->db);
    assert_int_equal(stat(wal, &sb), 0);
    size = sb.st_size;
    assert_int_equal(stat(f->db, &sb), 0);
    if (sb.st_size > size)
        size = sb.st_size;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)size;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    for (int i = 0; i < 500; i++)
        log_request(s, 0, KEY_A, "m", 200, 1);
    assert_int_equal(count_requests(s), 1); /* reads still work */
    assert_int_equal(gb_store_dropped(s), 500);
    for (int i = 0; i < 300; i++)
        log_request(s, 0, KEY_B, "m", 200, 1);
    assert_int_equal(count_requests(s), 1);
    assert_int_equal(gb_store_dropped(s), 800);

    /* space again: the next batch goes through */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    for (int i = 0; i < 5; i++)
        log_request(s, 0, KEY_A, "m", 200, 1);
    assert_int_equal(count_requests(s), 6);
    assert_int_equal(gb_store_dropped(s), 800);
    gb_store_close(s);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_equal(db_int(f->db, "SELECT COUNT(*) FROM request_log"), 6);
    assert_int_equal(db_int(f->db, "SELECT SUM(requests) FROM usage"), 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_creates_db_and_wal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records_persist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full_drops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_logs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_stats_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_answered_at_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_failure, setup, teardown),
    };

    if (evthread_use_pthreads() != 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
