/*
 * cluster.c - share the key pool's state between instances through Redis
 * (see cluster.h for the contract and the wire format).
 *
 * Everything that talks to Redis runs on the cluster thread: its own
 * event_base, two hiredis async contexts attached with the libevent adapter
 * (commands; subscriber), a housekeeping tick, a reconnect timer.  Workers
 * only append to a linked-list queue under a mutex held for a few pointer
 * writes, and make the wake event active when the queue was empty (one
 * eventfd write per batch, not per item).
 *
 * The cluster thread folds what it takes from the queue into one table
 * indexed by key slot: the newest unsent local state of each key ("dirty")
 * and the picks not yet counted in Redis.  The table is flushed while
 * connected and keeps accumulating while not, so an outage costs memory
 * bounded by the number of keys, never a worker's time.
 *
 * hiredis rules kept here: a context is never freed from inside one of its
 * own callbacks (a failure seen there only schedules the teardown, done by
 * the reset event); connect and disconnect callbacks forget the context at
 * once, because hiredis frees it right after them; every command callback
 * runs exactly once, with reply NULL when its context goes, so privdata is
 * freed (or its work put back in the table) there.
 *
 * Sections: constants and types - URL - queue (any thread) - table -
 * messages - commands - connection - sync - thread - public API.
 */
#include "cluster/cluster.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/rand.h"

/* ---- constants and types ------------------------------------------------ */

#define GB_CLUSTER_MAGIC 0x67626331u /* "gbc1" */
#define CHAN_KEYS "gb:keys"
#define CHAN_USAGE "gb:usage"
#define KEY_PREFIX "gb:key:"
#define HASH_LEN 64
#define SELF_LEN 16
#define DEFAULT_PORT 6379

/* Stores a key state and announces it, in one step. */
static const char STATE_SCRIPT[] = "redis.call('HSET', KEYS[1], 'json', ARGV[1]) "
                                   "redis.call('PUBLISH', ARGV[2], ARGV[1]) "
                                   "return 1";

/* Counts picks in the minute and day windows; announces a count that is at
 * a limit so every instance cools that key now rather than at its next
 * pick.  ARGV: minute n, day n, minute ttl, day ttl, rpm limit, rpd limit,
 * channel, message prefix. */
static const char USAGE_SCRIPT[] =
    "local m = redis.call('INCRBY', KEYS[1], ARGV[1]) "
    "redis.call('PEXPIRE', KEYS[1], ARGV[3]) "
    "local d = redis.call('INCRBY', KEYS[2], ARGV[2]) "
    "redis.call('PEXPIRE', KEYS[2], ARGV[4]) "
    "local rl = tonumber(ARGV[5]) local dl = tonumber(ARGV[6]) "
    "if (rl > 0 and m >= rl) or (dl > 0 and d >= dl) then "
    "redis.call('PUBLISH', ARGV[7], ARGV[8] .. string.format(',\"minute\":%d,\"day\":%d}', m, d)) "
    "end "
    "return {m, d}";

enum item_kind { IT_KEY, IT_PICK };

/* One unit of work from a worker (malloc'd; the cluster thread frees it). */
struct item {
    struct item *next;
    enum item_kind kind;
    uint32_t idx;
    char hash[HASH_LEN + 1];
    int64_t minute_start, day_start; /* IT_PICK */
    char *json;                      /* IT_KEY: the state message, owned */
};

/* Per key slot, cluster thread only: what is still to be sent. */
struct slot {
    char hash[HASH_LEN + 1];         /* "" until an item named it */
    char *dirty;                     /* newest local state not in Redis (owned), or NULL */
    int64_t minute_start, day_start; /* windows of the counts below */
    int64_t minute_count, day_count; /* picks not yet counted in Redis */
    int listed;                      /* in c->pending */
};

enum conn_state {
    ST_DOWN,       /* no connection; the retry timer is armed */
    ST_CONNECTING, /* contexts open, AUTH/SELECT/SUBSCRIBE under way */
    ST_SYNCING,    /* reading gb:key:* */
    ST_UP,         /* in sync: the table is flushed as it fills */
    ST_STOPPING    /* gb_cluster_stop: last flush, then the loop ends */
};

struct gb_cluster {
    uint32_t magic;
    struct gb_keypool *kp; /* borrowed */

    /* connection settings, read-only after start */
    char host[256];
    int port, db;
    char *user, *pass; /* owned, NULL when absent; pass is wiped at free */
    char where[300];   /* host:port/db for log lines (never the password) */
    char self[SELF_LEN + 1];

    /* the queue: any thread, under lock */
    pthread_mutex_t lock;
    struct item *head, *tail;
    size_t queued;
    int wake_pending, stopping;
    _Atomic uint64_t dropped;
    _Atomic int connected, full_logged;
    _Atomic long rpm_limit, rpd_limit;

    /* cluster thread only */
    pthread_t thread;
    int thread_started;
    struct event_base *base;
    struct event *wake_ev, *stop_ev, *reset_ev, *tick_ev, *retry_ev, *stop_timer;
    redisAsyncContext *cmd, *sub;
    enum conn_state state;
    int64_t state_since;          /* last progress while connecting/syncing (monotonic ms) */
    int64_t ping_sent, last_ping; /* monotonic ms; ping_sent 0 = none outstanding */
    int64_t retry_ms;             /* next reconnect delay */
    int64_t down_since;
    int down_logged;
    char why[256]; /* first reason of a pending reset */
    int cmd_ready, subscribed;
    long inflight;    /* state and usage commands awaiting a reply */
    int error_logged; /* an error reply to a write was logged (once per connection) */

    struct slot *slots;
    size_t nslots;
    uint32_t *pending; /* slots with something to send */
    size_t npending, pending_cap;
    size_t ndirty;

    /* sync */
    int scan_done;
    long sync_pending;
    size_t sync_applied, sync_sent;
    char (*seen)[HASH_LEN + 1]; /* hashes found in Redis */
    size_t nseen, seen_cap;
};

static void connection_lost(struct gb_cluster *c);
static void flush_pending(struct gb_cluster *c);
static void maybe_finish_sync(struct gb_cluster *c);

/* The cluster behind a hiredis context (debug builds check the magic). */
static struct gb_cluster *cluster_of(const redisAsyncContext *ac)
{
    struct gb_cluster *c = ac->data;

    assert(c != NULL && c->magic == GB_CLUSTER_MAGIC);
    return c;
}

/* Copies a library's error text into the reason of the next log line, in
 * lower case first as our messages are ("Connection refused" ...). */
static void set_why(char *why, size_t len, const char *text)
{
    snprintf(why, len, "%s", text != NULL && text[0] ? text : "unknown error");
    if (isupper((unsigned char)why[0]) && !isupper((unsigned char)why[1]))
        why[0] = (char)tolower((unsigned char)why[0]);
}

/* Frees a string that may hold a secret, wiping it first. */
static void free_secret(char *s)
{
    if (s == NULL)
        return;
    memset(s, 0, strlen(s));
    free(s);
}

/* ---- URL ---------------------------------------------------------------- */

/* Decodes %XX escapes into a new string; NULL on a bad escape or no memory. */
static char *url_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1), *o = out;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2])) {
                *o = '\0';
                free_secret(out);
                return NULL;
            }
            char hex[3] = {s[i + 1], s[i + 2], '\0'};
            *o++ = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/* Parses redis://[[user]:password@]host[:port][/db] into c.  0, or
 * GB_EINVAL with a message (never holding the password). */
static int parse_url(struct gb_cluster *c, const char *url, char *err, size_t errlen)
{
    const char *rest, *at, *hp, *slash, *hend, *colon = NULL;
    char *end;
    long v;

    if (strlen(url) > GB_CLUSTER_URL_MAX) {
        snprintf(err, errlen, "REDIS_URL is longer than %d bytes", GB_CLUSTER_URL_MAX);
        return GB_EINVAL;
    }
    if (strncmp(url, "rediss://", 9) == 0) {
        snprintf(err, errlen,
                 "REDIS_URL: rediss:// (TLS) is not supported; use redis:// on a "
                 "private network or through a TLS tunnel");
        return GB_EINVAL;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "REDIS_URL must look like redis://[:password@]host[:port][/db]");
        return GB_EINVAL;
    }
    rest = url + 8;
    at = strrchr(rest, '@');
    if (at != NULL) {
        const char *uc = memchr(rest, ':', (size_t)(at - rest));
        if (uc != NULL) {
            if (uc > rest && (c->user = url_decode(rest, (size_t)(uc - rest))) == NULL)
                goto bad_escape;
            if (at > uc + 1 && (c->pass = url_decode(uc + 1, (size_t)(at - uc - 1))) == NULL)
                goto bad_escape;
        } else if (at > rest && (c->pass = url_decode(rest, (size_t)(at - rest))) == NULL) {
            goto bad_escape;
        }
        hp = at + 1;
    } else {
        hp = rest;
    }
    slash = strchr(hp, '/');
    hend = slash != NULL ? slash : hp + strlen(hp);
    if (*hp == '[') { /* [IPv6]:port */
        const char *rb = memchr(hp, ']', (size_t)(hend - hp));
        if (rb == NULL || rb == hp + 1 || (size_t)(rb - hp - 1) >= sizeof c->host) {
            snprintf(err, errlen, "REDIS_URL: bad [IPv6] host");
            return GB_EINVAL;
        }
        memcpy(c->host, hp + 1, (size_t)(rb - hp - 1));
        c->host[rb - hp - 1] = '\0';
        if (rb + 1 < hend) {
            if (rb[1] != ':') {
                snprintf(err, errlen, "REDIS_URL: expected :port after the [IPv6] host");
                return GB_EINVAL;
            }
            colon = rb + 1;
        }
    } else {
        colon = memchr(hp, ':', (size_t)(hend - hp));
        const char *he = colon != NULL ? colon : hend;
        if (he == hp || (size_t)(he - hp) >= sizeof c->host) {
            snprintf(err, errlen, "REDIS_URL: missing or too long host");
            return GB_EINVAL;
        }
        memcpy(c->host, hp, (size_t)(he - hp));
        c->host[he - hp] = '\0';
    }
    c->port = DEFAULT_PORT;
    if (colon != NULL) {
        errno = 0;
        v = strtol(colon + 1, &end, 10);
        if (errno != 0 || end != hend || end == colon + 1 || v < 1 || v > 65535) {
            snprintf(err, errlen, "REDIS_URL: the port must be a number from 1 to 65535");
            return GB_EINVAL;
        }
        c->port = (int)v;
    }
    c->db = 0;
    if (slash != NULL && slash[1] != '\0') {
        errno = 0;
        v = strtol(slash + 1, &end, 10);
        if (errno != 0 || *end != '\0' || v < 0 || v > 1000000) {
            snprintf(err, errlen, "REDIS_URL: the database after / must be a number");
            return GB_EINVAL;
        }
        c->db = (int)v;
    }
    snprintf(c->where, sizeof c->where, "%s%s%s:%d/%d", strchr(c->host, ':') ? "[" : "", c->host,
             strchr(c->host, ':') ? "]" : "", c->port, c->db);
    return 0;
bad_escape:
    snprintf(err, errlen, "REDIS_URL: bad %%-escape in the user or password");
    return GB_EINVAL;
}

/* ---- queue (any thread) ------------------------------------------------- */

static void count_drop(struct gb_cluster *c)
{
    atomic_fetch_add(&c->dropped, 1);
    if (!atomic_exchange(&c->full_logged, 1))
        gb_warn("cluster: queue full, dropping key state changes and usage counts "
                "(counted as cluster.dropped in /api/status)");
}

static void item_free(struct item *it)
{
    if (it == NULL)
        return;
    free_secret(it->json);
    free(it);
}

/* Appends it; frees it and counts a drop when the queue is full or the
 * cluster is stopping.  Never waits for the cluster thread. */
static void enqueue(struct gb_cluster *c, struct item *it)
{
    int wake = 0, full;

    it->next = NULL;
    pthread_mutex_lock(&c->lock);
    full = c->stopping || c->queued >= GB_CLUSTER_QUEUE_MAX;
    if (!full) {
        if (c->tail != NULL)
            c->tail->next = it;
        else
            c->head = it;
        c->tail = it;
        c->queued++;
        if (!c->wake_pending)
            wake = c->wake_pending = 1;
    }
    pthread_mutex_unlock(&c->lock);
    if (full) {
        count_drop(c);
        item_free(it);
    } else if (wake) {
        event_active(c->wake_ev, EV_READ, 0);
    }
}

/* Fields of a state message, from a snapshot or from gb_keypool_info. */
struct state_fields {
    const char *hash, *id, *secret, *last_error;
    int deleted, disabled;
    long failures;
    size_t ncool;
    const char *const *models;
    const int64_t *until;
};

/* The state message as compact JSON (malloc'd; may hold a secret: free
 * with free_secret), or NULL. */
static char *state_json(const struct gb_cluster *c, const struct state_fields *f)
{
    json_t *o, *cool = json_array();
    char *s;

    for (size_t i = 0; cool != NULL && i < f->ncool; i++)
        json_array_append_new(cool, json_pack("{s:s, s:I}", "model", f->models[i], "until_ms",
                                              (json_int_t)f->until[i]));
    o = json_pack("{s:s, s:s, s:s, s:b, s:b, s:I, s:s, s:o}", "from", c->self, "hash", f->hash,
                  "id", f->id ? f->id : "", "deleted", f->deleted, "disabled", f->disabled,
                  "failures", (json_int_t)f->failures, "last_error",
                  f->last_error ? f->last_error : "", "cool", cool);
    if (o == NULL)
        return NULL;
    if (f->secret != NULL && !f->deleted)
        json_object_set_new(o, "secret", json_string(f->secret));
    s = json_dumps(o, JSON_COMPACT);
    json_t *sec = json_object_get(o, "secret");
    if (sec != NULL) /* wipe jansson's copy too */
        memset((char *)json_string_value(sec), 0, json_string_length(sec));
    json_decref(o);
    return s;
}

void gb_cluster_publish_key(struct gb_cluster *c, const struct gb_key_snapshot *s)
{
    struct state_fields f;
    struct item *it;

    if (c == NULL || s == NULL || s->hash == NULL || strlen(s->hash) != HASH_LEN)
        return;
    assert(c->magic == GB_CLUSTER_MAGIC);
    if ((it = calloc(1, sizeof *it)) == NULL) {
        count_drop(c);
        return;
    }
    memset(&f, 0, sizeof f);
    f.hash = s->hash;
    f.id = s->id;
    f.secret = s->from_admin ? s->key : NULL;
    f.last_error = s->last_error;
    f.deleted = s->deleted;
    f.disabled = s->disabled;
    f.failures = s->failures;
    f.ncool = s->ncool;
    f.models = s->cool_model;
    f.until = s->cool_until;
    it->kind = IT_KEY;
    it->idx = s->idx;
    memcpy(it->hash, s->hash, HASH_LEN + 1);
    if ((it->json = state_json(c, &f)) == NULL) {
        free(it);
        count_drop(c);
        return;
    }
    enqueue(c, it);
}

void gb_cluster_on_change(void *ud, const struct gb_key_snapshot *s)
{
    gb_cluster_publish_key(ud, s);
}

void gb_cluster_on_pick(void *ud, uint32_t idx, const char *hash, int64_t minute_start,
                        int64_t day_start)
{
    struct gb_cluster *c = ud;
    struct item *it;

    if (c == NULL || hash == NULL || strlen(hash) != HASH_LEN)
        return;
    assert(c->magic == GB_CLUSTER_MAGIC);
    if ((it = malloc(sizeof *it)) == NULL) {
        count_drop(c);
        return;
    }
    it->kind = IT_PICK;
    it->idx = idx;
    memcpy(it->hash, hash, HASH_LEN + 1);
    it->minute_start = minute_start;
    it->day_start = day_start;
    it->json = NULL;
    enqueue(c, it);
}

void gb_cluster_set_limits(struct gb_cluster *c, long rpm_limit, long rpd_limit)
{
    if (c == NULL)
        return;
    atomic_store(&c->rpm_limit, rpm_limit);
    atomic_store(&c->rpd_limit, rpd_limit);
}

int gb_cluster_connected(const struct gb_cluster *c)
{
    return c != NULL && atomic_load(&((struct gb_cluster *)c)->connected);
}

uint64_t gb_cluster_dropped(const struct gb_cluster *c)
{
    return c != NULL ? atomic_load(&((struct gb_cluster *)c)->dropped) : 0;
}

/* ---- table (cluster thread) --------------------------------------------- */

/* The slot of key idx, the table grown as needed; NULL without memory. */
static struct slot *slot_get(struct gb_cluster *c, uint32_t idx, const char *hash)
{
    struct slot *s;

    if (idx >= c->nslots) {
        size_t n = c->nslots ? c->nslots : 64;
        while (n <= idx)
            n *= 2;
        s = realloc(c->slots, n * sizeof *s);
        if (s == NULL)
            return NULL;
        memset(s + c->nslots, 0, (n - c->nslots) * sizeof *s);
        c->slots = s;
        c->nslots = n;
    }
    s = &c->slots[idx];
    if (hash != NULL && s->hash[0] == '\0')
        memcpy(s->hash, hash, HASH_LEN + 1);
    return s;
}

static int list_pending(struct gb_cluster *c, uint32_t idx)
{
    if (c->slots[idx].listed)
        return 0;
    if (c->npending == c->pending_cap) {
        size_t n = c->pending_cap ? c->pending_cap * 2 : 64;
        uint32_t *v = realloc(c->pending, n * sizeof *v);
        if (v == NULL)
            return GB_ENOMEM;
        c->pending = v;
        c->pending_cap = n;
    }
    c->pending[c->npending++] = idx;
    c->slots[idx].listed = 1;
    return 0;
}

/* Makes json the newest unsent state of idx (takes it). */
static void set_dirty(struct gb_cluster *c, uint32_t idx, const char *hash, char *json)
{
    struct slot *s = slot_get(c, idx, hash);

    if (s == NULL || list_pending(c, idx) < 0) {
        count_drop(c);
        free_secret(json);
        return;
    }
    if (s->dirty == NULL)
        c->ndirty++;
    free_secret(s->dirty);
    s->dirty = json;
}

/* Adds picks to idx's unsent counts; counts of a window that ended are
 * forgotten (their keys expire in Redis anyway). */
static void add_usage(struct gb_cluster *c, uint32_t idx, const char *hash, int64_t ms, int64_t mc,
                      int64_t ds, int64_t dc)
{
    struct slot *s = slot_get(c, idx, hash);

    if (s == NULL || list_pending(c, idx) < 0) {
        count_drop(c);
        return;
    }
    if (s->minute_start != ms) {
        if (ms < s->minute_start)
            mc = 0; /* an older window than the one counted: too late */
        else
            s->minute_start = ms, s->minute_count = 0;
    }
    if (s->day_start != ds) {
        if (ds < s->day_start)
            dc = 0;
        else
            s->day_start = ds, s->day_count = 0;
    }
    s->minute_count += mc;
    s->day_count += dc;
}

/* ---- messages ------------------------------------------------------------ */

static int is_hash(const char *h)
{
    if (h == NULL || strlen(h) != HASH_LEN)
        return 0;
    for (size_t i = 0; i < HASH_LEN; i++)
        if (!isxdigit((unsigned char)h[i]))
            return 0;
    return 1;
}

static int seen_cmp(const void *a, const void *b)
{
    return memcmp(a, b, HASH_LEN);
}

/* Remembers a hash found in Redis during a sync. */
static void seen_add(struct gb_cluster *c, const char *hash)
{
    if (c->nseen == c->seen_cap) {
        size_t n = c->seen_cap ? c->seen_cap * 2 : 256;
        void *v = realloc(c->seen, n * sizeof *c->seen);
        if (v == NULL)
            return; /* the key's local state is then written back: harmless */
        c->seen = v;
        c->seen_cap = n;
    }
    memcpy(c->seen[c->nseen++], hash, HASH_LEN + 1);
}

/* Applies a state message (text[0..len)) from another instance or from the
 * sync.  Ignores our own messages, and keys with unsent local changes
 * (local wins: it is written back right after). */
static void apply_state(struct gb_cluster *c, const char *text, size_t len, int from_sync)
{
    json_error_t jerr;
    json_t *o = json_loadb(text, len, 0, &jerr), *cool, *it, *sec;
    struct gb_key_remote rs;
    const char *from, *hash, *id, *what;
    uint32_t idx;
    size_t i;

    memset(&rs, 0, sizeof rs);
    if (o == NULL || !json_is_object(o)) {
        gb_debug("cluster: ignoring a malformed key state message");
        json_decref(o);
        return;
    }
    from = json_string_value(json_object_get(o, "from"));
    hash = json_string_value(json_object_get(o, "hash"));
    if (!is_hash(hash)) {
        json_decref(o);
        return;
    }
    if (from_sync)
        seen_add(c, hash);
    if (from != NULL && strcmp(from, c->self) == 0)
        goto out;
    if (c->ndirty > 0 && gb_keypool_find_hash(c->kp, hash, &idx) == 0 && idx < c->nslots &&
        c->slots[idx].dirty != NULL)
        goto out;
    rs.hash = hash;
    rs.secret = json_string_value(json_object_get(o, "secret"));
    rs.deleted = json_is_true(json_object_get(o, "deleted"));
    rs.disabled = json_is_true(json_object_get(o, "disabled"));
    rs.failures = (long)json_integer_value(json_object_get(o, "failures"));
    rs.last_error = json_string_value(json_object_get(o, "last_error"));
    cool = json_object_get(o, "cool");
    json_array_foreach(cool, i, it)
    {
        const char *m = json_string_value(json_object_get(it, "model"));
        json_t *u = json_object_get(it, "until_ms");
        if (rs.ncool >= GB_KEYPOOL_MAX_MODELS + 1)
            break;
        if (m == NULL || !json_is_integer(u))
            continue;
        rs.cool_model[rs.ncool] = m;
        rs.cool_until[rs.ncool++] = (int64_t)json_integer_value(u);
    }
    gb_keypool_apply_remote(c->kp, &rs);
    if (from_sync)
        c->sync_applied++;
    id = json_string_value(json_object_get(o, "id"));
    what = rs.deleted ? " (deleted)" : rs.disabled ? " (disabled)" : "";
    gb_debug("cluster: applied the state of key %s from instance %s%s", id ? id : "?",
             from ? from : "?", what);
out:
    sec = json_object_get(o, "secret");
    if (json_is_string(sec)) /* wipe the secret before jansson frees it */
        memset((char *)json_string_value(sec), 0, json_string_length(sec));
    json_decref(o);
}

/* Applies a usage message: another instance saw a key at a limit. */
static void apply_usage(struct gb_cluster *c, const char *text, size_t len)
{
    json_t *o = json_loadb(text, len, 0, NULL);
    const char *from = json_string_value(json_object_get(o, "from"));
    const char *hash = json_string_value(json_object_get(o, "hash"));
    uint32_t idx;

    if (o != NULL && is_hash(hash) && (from == NULL || strcmp(from, c->self) != 0) &&
        gb_keypool_find_hash(c->kp, hash, &idx) == 0)
        gb_keypool_fleet_usage(c->kp, idx,
                               (int64_t)json_integer_value(json_object_get(o, "minute_start")),
                               (int64_t)json_integer_value(json_object_get(o, "minute")),
                               (int64_t)json_integer_value(json_object_get(o, "day_start")),
                               (int64_t)json_integer_value(json_object_get(o, "day")));
    json_decref(o);
}

/* ---- commands ------------------------------------------------------------ */

/* privdata of a state write */
struct state_cmd {
    uint32_t idx;
    char *json; /* owned */
};

/* privdata of a usage count */
struct usage_cmd {
    uint32_t idx;
    int64_t minute_start, day_start, minute_count, day_count;
};

/* Schedules a teardown (from inside a hiredis callback, where freeing a
 * context is not allowed); the first reason is kept for the log line. */
static void schedule_reset(struct gb_cluster *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void schedule_reset(struct gb_cluster *c, const char *fmt, ...)
{
    va_list ap;

    if (c->state == ST_DOWN || c->state == ST_STOPPING)
        return;
    if (c->why[0] == '\0') {
        char text[sizeof c->why];
        va_start(ap, fmt);
        vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
        set_why(c->why, sizeof c->why, text);
    }
    event_active(c->reset_ev, EV_READ, 0);
}

/* An error reply to a write: not a connection problem, so the write is not
 * retried (it would fail again); logged once per connection. */
static void write_refused(struct gb_cluster *c, const redisReply *r, const char *what)
{
    atomic_fetch_add(&c->dropped, 1);
    if (!c->error_logged) {
        c->error_logged = 1;
        gb_warn("cluster: redis refused a %s: %.200s", what, r->str ? r->str : "error");
    }
}

static void on_state_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct gb_cluster *c = cluster_of(ac);
    struct state_cmd *sc = priv;
    redisReply *r = reply;

    c->inflight--;
    if (r == NULL) {
        /* the connection went before the answer: send it again later,
         * unless a newer state is waiting already */
        if (sc->idx < c->nslots && c->slots[sc->idx].dirty == NULL && c->state != ST_STOPPING) {
            set_dirty(c, sc->idx, NULL, sc->json);
            sc->json = NULL;
        }
    } else if (r->type == REDIS_REPLY_ERROR) {
        write_refused(c, r, "key state write");
    }
    free_secret(sc->json);
    free(sc);
}

static void on_usage_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct gb_cluster *c = cluster_of(ac);
    struct usage_cmd *uc = priv;
    redisReply *r = reply;

    c->inflight--;
    if (r == NULL) {
        if (c->state != ST_STOPPING && uc->idx < c->nslots)
            add_usage(c, uc->idx, NULL, uc->minute_start, uc->minute_count, uc->day_start,
                      uc->day_count);
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
               r->element[0]->type == REDIS_REPLY_INTEGER &&
               r->element[1]->type == REDIS_REPLY_INTEGER) {
        gb_keypool_fleet_usage(c->kp, uc->idx, uc->minute_start, r->element[0]->integer,
                               uc->day_start, r->element[1]->integer);
    } else if (r->type == REDIS_REPLY_ERROR) {
        write_refused(c, r, "usage count");
    }
    free(uc);
}

/* Sends slot idx's unsent state; 0, or -1 when hiredis refused it (the
 * state then stays in the slot). */
static int send_state(struct gb_cluster *c, uint32_t idx)
{
    struct slot *s = &c->slots[idx];
    struct state_cmd *sc = malloc(sizeof *sc);
    char key[sizeof KEY_PREFIX + HASH_LEN];

    if (sc == NULL)
        return -1;
    snprintf(key, sizeof key, "%s%s", KEY_PREFIX, s->hash);
    sc->idx = idx;
    sc->json = s->dirty;
    if (redisAsyncCommand(c->cmd, on_state_reply, sc, "EVAL %s 1 %s %s %s", STATE_SCRIPT, key,
                          sc->json, CHAN_KEYS) != REDIS_OK) {
        free(sc);
        return -1;
    }
    s->dirty = NULL;
    c->ndirty--;
    c->inflight++;
    return 0;
}

/* Sends slot idx's unsent picks; 0 or -1 (they stay in the slot). */
static int send_usage(struct gb_cluster *c, uint32_t idx)
{
    struct slot *s = &c->slots[idx];
    struct usage_cmd *uc = malloc(sizeof *uc);
    char mkey[96], dkey[96], prefix[256];

    if (uc == NULL)
        return -1;
    uc->idx = idx;
    uc->minute_start = s->minute_start;
    uc->day_start = s->day_start;
    uc->minute_count = s->minute_count;
    uc->day_count = s->day_count;
    snprintf(mkey, sizeof mkey, "gb:rpm:%s:%lld", s->hash, (long long)s->minute_start);
    snprintf(dkey, sizeof dkey, "gb:rpd:%s:%lld", s->hash, (long long)s->day_start);
    snprintf(prefix, sizeof prefix,
             "{\"from\":\"%s\",\"hash\":\"%s\",\"minute_start\":%lld,\"day_start\":%lld", c->self,
             s->hash, (long long)s->minute_start, (long long)s->day_start);
    if (redisAsyncCommand(c->cmd, on_usage_reply, uc,
                          "EVAL %s 2 %s %s %lld %lld %lld %lld %ld %ld %s %s", USAGE_SCRIPT, mkey,
                          dkey, (long long)s->minute_count, (long long)s->day_count,
                          (long long)GB_CLUSTER_RPM_TTL_MS, (long long)GB_CLUSTER_RPD_TTL_MS,
                          atomic_load(&c->rpm_limit), atomic_load(&c->rpd_limit), CHAN_USAGE,
                          prefix) != REDIS_OK) {
        free(uc);
        return -1;
    }
    s->minute_count = s->day_count = 0;
    c->inflight++;
    return 0;
}

/* Sends what the table holds, while connected and not over the in-flight
 * bound; what cannot go now stays listed for the next flush (tick). */
static void flush_pending(struct gb_cluster *c)
{
    size_t keep = 0, i;

    if (c->state != ST_UP || c->cmd == NULL)
        return;
    for (i = 0; i < c->npending; i++) {
        uint32_t idx = c->pending[i];
        struct slot *s = &c->slots[idx];
        int left = 0;
        if (c->inflight >= GB_CLUSTER_INFLIGHT_MAX) {
            c->pending[keep++] = idx;
            continue;
        }
        if (s->dirty != NULL && send_state(c, idx) < 0)
            left = 1;
        if ((s->minute_count > 0 || s->day_count > 0) && send_usage(c, idx) < 0)
            left = 1;
        if (left)
            c->pending[keep++] = idx;
        else
            s->listed = 0;
    }
    c->npending = keep;
}

/* ---- connection ---------------------------------------------------------- */

static void set_state(struct gb_cluster *c, enum conn_state st)
{
    c->state = st;
    c->state_since = gb_now_ms();
    atomic_store(&c->connected, st == ST_UP);
}

/* Forgets ac when it is one of ours (hiredis frees it after this). */
static void forget_context(struct gb_cluster *c, const redisAsyncContext *ac)
{
    if (ac == c->cmd)
        c->cmd = NULL;
    if (ac == c->sub)
        c->sub = NULL;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct gb_cluster *c = cluster_of(ac);

    if (status != REDIS_OK) {
        int ours = ac == c->cmd || ac == c->sub;
        forget_context(c, ac);
        if (ours)
            schedule_reset(c, "%s", ac->errstr[0] ? ac->errstr : "connect failed");
        return;
    }
    redisEnableKeepAlive((redisContext *)&ac->c);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct gb_cluster *c = cluster_of(ac);
    int ours = ac == c->cmd || ac == c->sub;

    (void)status;
    forget_context(c, ac);
    if (c->state == ST_STOPPING) {
        if (c->cmd == NULL)
            event_base_loopbreak(c->base);
        return;
    }
    if (ours)
        schedule_reset(c, "%s", ac->errstr[0] ? ac->errstr : "connection closed");
}

/* AUTH and SELECT replies: a refusal ends the attempt. */
static void on_setup_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct gb_cluster *c = cluster_of(ac);
    redisReply *r = reply;
    const char *what = priv;

    if (r == NULL || (ac != c->cmd && ac != c->sub) || r->type != REDIS_REPLY_ERROR)
        return;
    /* a password given to a server without one: go on */
    if (strcmp(what, "AUTH") == 0 && r->str != NULL &&
        (strstr(r->str, "no password is set") || strstr(r->str, "without any password"))) {
        gb_debug("cluster: redis has no password; REDIS_URL gives one, ignored");
        return;
    }
    schedule_reset(c, "redis refused %s: %.200s", what, r->str ? r->str : "error");
}

static void maybe_sync(struct gb_cluster *c);

/* The PING sent after AUTH/SELECT answered: the command side is ready. */
static void on_cmd_ready(redisAsyncContext *ac, void *reply, void *priv)
{
    struct gb_cluster *c = cluster_of(ac);
    redisReply *r = reply;

    (void)priv;
    if (r == NULL || ac != c->cmd)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        schedule_reset(c, "redis refused PING: %.200s", r->str);
        return;
    }
    c->cmd_ready = 1;
    maybe_sync(c);
}

static void on_ping(redisAsyncContext *ac, void *reply, void *priv)
{
    struct gb_cluster *c = cluster_of(ac);

    (void)priv;
    if (reply == NULL || ac != c->cmd)
        return;
    c->ping_sent = 0;
    c->last_ping = gb_now_ms();
}

/* Subscription confirmations and messages of gb:keys / gb:usage. */
static void on_sub_message(redisAsyncContext *ac, void *reply, void *priv)
{
    struct gb_cluster *c = cluster_of(ac);
    redisReply *r = reply, *kind, *chan, *payload;

    (void)priv;
    if (r == NULL || ac != c->sub || r->type != REDIS_REPLY_ARRAY || r->elements < 3)
        return;
    kind = r->element[0];
    chan = r->element[1];
    payload = r->element[2];
    if (kind->type != REDIS_REPLY_STRING || chan->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(kind->str, "subscribe") == 0) {
        if (++c->subscribed == 2)
            maybe_sync(c);
    } else if (strcmp(kind->str, "message") == 0 && payload->type == REDIS_REPLY_STRING) {
        if (strcmp(chan->str, CHAN_KEYS) == 0)
            apply_state(c, payload->str, payload->len, 0);
        else if (strcmp(chan->str, CHAN_USAGE) == 0)
            apply_usage(c, payload->str, payload->len);
    }
}

/* Opens one context; NULL with why filled on failure. */
static redisAsyncContext *open_context(struct gb_cluster *c)
{
    redisAsyncContext *ac = redisAsyncConnect(c->host, c->port);

    if (ac == NULL) {
        snprintf(c->why, sizeof c->why, "out of memory");
        return NULL;
    }
    if (ac->err) {
        set_why(c->why, sizeof c->why, ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = c;
    if (redisLibeventAttach(ac, c->base) != REDIS_OK) {
        snprintf(c->why, sizeof c->why, "cannot attach to the event loop");
        redisAsyncFree(ac);
        return NULL;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

static void send_auth(struct gb_cluster *c, redisAsyncContext *ac)
{
    if (c->pass == NULL)
        return;
    if (c->user != NULL)
        redisAsyncCommand(ac, on_setup_reply, (void *)"AUTH", "AUTH %s %s", c->user, c->pass);
    else
        redisAsyncCommand(ac, on_setup_reply, (void *)"AUTH", "AUTH %s", c->pass);
}

/* Starts a connection attempt: both contexts, then AUTH, SELECT, PING on
 * the command side and AUTH, SUBSCRIBE on the other, all pipelined. */
static void do_connect(struct gb_cluster *c)
{
    c->why[0] = '\0';
    c->cmd_ready = 0;
    c->subscribed = 0;
    c->error_logged = 0;
    set_state(c, ST_CONNECTING);
    if ((c->cmd = open_context(c)) == NULL || (c->sub = open_context(c)) == NULL) {
        connection_lost(c);
        return;
    }
    send_auth(c, c->cmd);
    if (c->db != 0)
        redisAsyncCommand(c->cmd, on_setup_reply, (void *)"SELECT", "SELECT %d", c->db);
    redisAsyncCommand(c->cmd, on_cmd_ready, NULL, "PING");
    send_auth(c, c->sub);
    redisAsyncCommand(c->sub, on_sub_message, NULL, "SUBSCRIBE %s %s", CHAN_KEYS, CHAN_USAGE);
}

/* Frees both contexts (their pending callbacks run now with NULL replies). */
static void close_contexts(struct gb_cluster *c)
{
    redisAsyncContext *ac;

    if ((ac = c->sub) != NULL) {
        c->sub = NULL;
        redisAsyncFree(ac);
    }
    if ((ac = c->cmd) != NULL) {
        c->cmd = NULL;
        redisAsyncFree(ac);
    }
}

/* Tears the connection down and schedules the next attempt.  Never called
 * from inside a hiredis callback (schedule_reset is, then this runs from
 * the reset event). */
static void connection_lost(struct gb_cluster *c)
{
    int64_t now = gb_now_ms();

    if (c->state == ST_STOPPING || c->state == ST_DOWN)
        return;
    close_contexts(c);
    set_state(c, ST_DOWN);
    free(c->seen);
    c->seen = NULL;
    c->nseen = c->seen_cap = 0;
    c->ping_sent = 0;
    if (!c->down_logged) {
        c->down_logged = 1;
        c->down_since = now;
        gb_warn("cluster: redis unreachable at %s (%s); serving with this instance's key state, "
                "retrying with backoff",
                c->where, c->why[0] ? c->why : "unknown error");
    } else {
        gb_debug("cluster: redis still unreachable at %s (%s); next attempt in %lld ms", c->where,
                 c->why[0] ? c->why : "unknown error", (long long)c->retry_ms);
    }
    c->why[0] = '\0';
    struct timeval tv = {(time_t)(c->retry_ms / 1000), (suseconds_t)(c->retry_ms % 1000) * 1000};
    evtimer_add(c->retry_ev, &tv);
    c->retry_ms =
        c->retry_ms * 2 > GB_CLUSTER_RETRY_MAX_MS ? GB_CLUSTER_RETRY_MAX_MS : c->retry_ms * 2;
}

/* ---- sync ---------------------------------------------------------------- */

static void on_scan(redisAsyncContext *ac, void *reply, void *priv);

static void send_scan(struct gb_cluster *c, const char *cursor)
{
    redisAsyncCommand(c->cmd, on_scan, NULL, "SCAN %s MATCH %s* COUNT %d", cursor, KEY_PREFIX,
                      GB_CLUSTER_SCAN_COUNT);
}

static void maybe_sync(struct gb_cluster *c)
{
    if (c->state != ST_CONNECTING || !c->cmd_ready || c->subscribed < 2)
        return;
    /* subscribed first, then read: a change published after our read is
     * delivered to us, one published before is in what we read */
    set_state(c, ST_SYNCING);
    c->scan_done = 0;
    c->sync_pending = 0;
    c->sync_applied = c->sync_sent = 0;
    c->nseen = 0;
    send_scan(c, "0");
}

static void on_sync_get(redisAsyncContext *ac, void *reply, void *priv)
{
    struct gb_cluster *c = cluster_of(ac);
    redisReply *r = reply;

    (void)priv;
    if (r == NULL || ac != c->cmd || c->state != ST_SYNCING)
        return;
    c->sync_pending--;
    c->state_since = gb_now_ms();
    if (r->type == REDIS_REPLY_STRING)
        apply_state(c, r->str, r->len, 1);
    maybe_finish_sync(c);
}

static void on_scan(redisAsyncContext *ac, void *reply, void *priv)
{
    struct gb_cluster *c = cluster_of(ac);
    redisReply *r = reply, *keys;

    (void)priv;
    if (r == NULL || ac != c->cmd || c->state != ST_SYNCING)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        schedule_reset(c, "redis refused SCAN: %.200s", r->str);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
        schedule_reset(c, "unexpected SCAN reply");
        return;
    }
    c->state_since = gb_now_ms();
    keys = r->element[1];
    for (size_t i = 0; i < keys->elements; i++) {
        if (keys->element[i]->type != REDIS_REPLY_STRING)
            continue;
        if (redisAsyncCommand(c->cmd, on_sync_get, NULL, "HGET %b json", keys->element[i]->str,
                              keys->element[i]->len) == REDIS_OK)
            c->sync_pending++;
    }
    if (strcmp(r->element[0]->str, "0") == 0)
        c->scan_done = 1;
    else
        send_scan(c, r->element[0]->str);
    maybe_finish_sync(c);
}

/* 1 when a key's state is the default one (nothing worth sharing). */
static int is_default(const struct gb_key_info *k)
{
    return !k->disabled && k->failures == 0 && k->ncool == 0 && !k->from_admin;
}

/* Local states Redis does not know (a new instance's restored state, or a
 * Redis that restarted empty) are written, except default ones. */
static void send_unknown_local(struct gb_cluster *c)
{
    size_t n = gb_keypool_slots(c->kp);
    struct gb_key_info *k = malloc(sizeof *k);
    char secret[300];

    if (k == NULL)
        return;
    if (c->nseen > 1)
        qsort(c->seen, c->nseen, sizeof *c->seen, seen_cmp);
    for (size_t i = 0; i < n; i++) {
        const char *models[GB_KEYPOOL_MAX_MODELS + 1];
        struct state_fields f;
        char *json;

        if (gb_keypool_info(c->kp, (uint32_t)i, k) < 0 || is_default(k))
            continue;
        if (i < c->nslots && c->slots[i].dirty != NULL)
            continue; /* sent anyway */
        if (c->nseen > 0 && bsearch(k->hash, c->seen, c->nseen, sizeof *c->seen, seen_cmp))
            continue;
        memset(&f, 0, sizeof f);
        for (size_t m = 0; m < k->ncool; m++)
            models[m] = k->cool_model[m];
        f.hash = k->hash;
        f.id = k->id;
        f.secret = k->from_admin ? gb_keypool_key(c->kp, (uint32_t)i, secret, sizeof secret) : NULL;
        f.last_error = k->last_error;
        f.disabled = k->disabled;
        f.failures = k->failures;
        f.ncool = k->ncool;
        f.models = models;
        f.until = k->cool_until;
        json = state_json(c, &f);
        memset(secret, 0, sizeof secret);
        if (json != NULL) {
            set_dirty(c, (uint32_t)i, k->hash, json);
            c->sync_sent++;
        }
    }
    free(k);
}

static void maybe_finish_sync(struct gb_cluster *c)
{
    int64_t now = gb_now_ms();

    if (c->state != ST_SYNCING || !c->scan_done || c->sync_pending > 0)
        return;
    send_unknown_local(c);
    free(c->seen);
    c->seen = NULL;
    c->nseen = c->seen_cap = 0;
    set_state(c, ST_UP);
    c->retry_ms = GB_CLUSTER_RETRY_MIN_MS;
    c->ping_sent = 0;
    c->last_ping = now;
    if (c->down_logged) {
        gb_warn("cluster: redis back at %s after %lld s; key state re-synced (%zu states "
                "applied, %zu local states to write)",
                c->where, (long long)((now - c->down_since) / 1000), c->sync_applied, c->ndirty);
        c->down_logged = 0;
    } else {
        gb_info("cluster: connected to redis at %s as instance %s (%zu shared key states "
                "applied, %zu local states to write)",
                c->where, c->self, c->sync_applied, c->ndirty);
    }
    flush_pending(c);
}

/* ---- thread -------------------------------------------------------------- */

/* Takes the whole queue and folds it into the table, then flushes. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct gb_cluster *c = arg;
    struct item *it, *next;

    (void)fd;
    (void)what;
    pthread_mutex_lock(&c->lock);
    it = c->head;
    c->head = c->tail = NULL;
    c->queued = 0;
    c->wake_pending = 0;
    pthread_mutex_unlock(&c->lock);
    atomic_store(&c->full_logged, 0);
    for (; it != NULL; it = next) {
        next = it->next;
        if (it->kind == IT_KEY) {
            set_dirty(c, it->idx, it->hash, it->json);
            it->json = NULL;
        } else {
            struct slot *s = slot_get(c, it->idx, it->hash);
            /* a new window with counts of the old one unsent: send those first */
            if (s != NULL && c->state == ST_UP && c->cmd != NULL &&
                ((s->minute_count > 0 && s->minute_start != it->minute_start) ||
                 (s->day_count > 0 && s->day_start != it->day_start)))
                send_usage(c, it->idx);
            add_usage(c, it->idx, it->hash, it->minute_start, 1, it->day_start, 1);
        }
        item_free(it);
    }
    flush_pending(c);
}

static void on_reset(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connection_lost(arg);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct gb_cluster *c = arg;

    (void)fd;
    (void)what;
    if (c->state == ST_DOWN)
        do_connect(c);
}

/* Housekeeping: timeouts, PING, flushing what waited for in-flight room. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct gb_cluster *c = arg;
    int64_t now = gb_now_ms();

    (void)fd;
    (void)what;
    switch (c->state) {
    case ST_CONNECTING:
    case ST_SYNCING:
        if (now - c->state_since > GB_CLUSTER_TIMEOUT_MS) {
            snprintf(c->why, sizeof c->why, "no answer within %d ms", GB_CLUSTER_TIMEOUT_MS);
            connection_lost(c);
        }
        break;
    case ST_UP:
        if (c->ping_sent != 0 && now - c->ping_sent > GB_CLUSTER_TIMEOUT_MS) {
            snprintf(c->why, sizeof c->why, "PING unanswered for %d ms", GB_CLUSTER_TIMEOUT_MS);
            connection_lost(c);
            break;
        }
        if (c->ping_sent == 0 && now - c->last_ping >= GB_CLUSTER_PING_MS &&
            redisAsyncCommand(c->cmd, on_ping, NULL, "PING") == REDIS_OK)
            c->ping_sent = now;
        flush_pending(c);
        break;
    case ST_DOWN:
    case ST_STOPPING:
        break;
    }
}

/* The stop timer: Redis did not take the last writes in time. */
static void on_stop_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct gb_cluster *c = arg;

    (void)fd;
    (void)what;
    close_contexts(c);
    event_base_loopbreak(c->base);
}

/* gb_cluster_stop: last flush, then a graceful close of the command side
 * (its replies are awaited up to GB_CLUSTER_STOP_FLUSH_MS). */
static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct gb_cluster *c = arg;
    struct timeval tv = {GB_CLUSTER_STOP_FLUSH_MS / 1000, (GB_CLUSTER_STOP_FLUSH_MS % 1000) * 1000};
    redisAsyncContext *ac;

    (void)fd;
    (void)what;
    on_wake(-1, 0, c);
    if (c->state != ST_UP) {
        set_state(c, ST_STOPPING);
        close_contexts(c);
        event_base_loopbreak(c->base);
        return;
    }
    set_state(c, ST_STOPPING);
    if ((ac = c->sub) != NULL) {
        c->sub = NULL;
        redisAsyncFree(ac);
    }
    evtimer_add(c->stop_timer, &tv);
    /* on_disconnect ends the loop once the replies are in (maybe at once) */
    redisAsyncDisconnect(c->cmd);
}

static void *cluster_main(void *arg)
{
    struct gb_cluster *c = arg;

    event_base_dispatch(c->base);
    close_contexts(c);
    return NULL;
}

/* ---- public API ----------------------------------------------------------- */

/* Frees what start built; the thread must not run. */
static void cluster_free(struct gb_cluster *c)
{
    struct item *it, *next;

    close_contexts(c);
    for (it = c->head; it != NULL; it = next) {
        next = it->next;
        item_free(it);
    }
    struct event *evs[] = {c->wake_ev, c->stop_ev,  c->reset_ev,
                           c->tick_ev, c->retry_ev, c->stop_timer};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i] != NULL)
            event_free(evs[i]);
    if (c->base != NULL)
        event_base_free(c->base);
    for (size_t i = 0; i < c->nslots; i++)
        free_secret(c->slots[i].dirty);
    free(c->slots);
    free(c->pending);
    free(c->seen);
    free(c->user);
    free_secret(c->pass);
    pthread_mutex_destroy(&c->lock);
    c->magic = 0;
    free(c);
}

struct gb_cluster *gb_cluster_start(const char *redis_url, struct gb_keypool *kp, char *err,
                                    size_t errlen)
{
    struct gb_cluster *c;
    struct timeval tick = {0, GB_CLUSTER_TICK_MS * 1000}, now0 = {0, 0};
    unsigned char rnd[SELF_LEN / 2];
    int rc;

    if (redis_url == NULL || kp == NULL) {
        snprintf(err, errlen, "REDIS_URL is empty");
        return NULL;
    }
    if ((c = calloc(1, sizeof *c)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->magic = GB_CLUSTER_MAGIC;
    c->kp = kp;
    pthread_mutex_init(&c->lock, NULL);
    c->retry_ms = GB_CLUSTER_RETRY_MIN_MS;
    c->state = ST_DOWN;
    if (parse_url(c, redis_url, err, errlen) < 0)
        goto fail;
    if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd) {
        uint64_t x = gb_rand64() ^ (uint64_t)gb_now_us();
        memcpy(rnd, &x, sizeof rnd);
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(c->self + 2 * i, 3, "%02x", rnd[i]);
    c->base = event_base_new();
    if (c->base == NULL)
        goto nomem;
    c->wake_ev = event_new(c->base, -1, 0, on_wake, c);
    c->stop_ev = event_new(c->base, -1, 0, on_stop, c);
    c->reset_ev = event_new(c->base, -1, 0, on_reset, c);
    c->tick_ev = event_new(c->base, -1, EV_PERSIST, on_tick, c);
    c->retry_ev = evtimer_new(c->base, on_retry, c);
    c->stop_timer = evtimer_new(c->base, on_stop_timeout, c);
    if (!c->wake_ev || !c->stop_ev || !c->reset_ev || !c->tick_ev || !c->retry_ev || !c->stop_timer)
        goto nomem;
    event_add(c->tick_ev, &tick);
    evtimer_add(c->retry_ev, &now0); /* the first attempt, from the thread */
    gb_info("cluster: sharing key state through redis at %s", c->where);
    if ((rc = pthread_create(&c->thread, NULL, cluster_main, c)) != 0) {
        snprintf(err, errlen, "cannot start the cluster thread: %s", strerror(rc));
        goto fail;
    }
    c->thread_started = 1;
    return c;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    cluster_free(c);
    return NULL;
}

void gb_cluster_stop(struct gb_cluster *c)
{
    if (c == NULL)
        return;
    assert(c->magic == GB_CLUSTER_MAGIC);
    pthread_mutex_lock(&c->lock);
    c->stopping = 1;
    pthread_mutex_unlock(&c->lock);
    if (c->thread_started) {
        event_active(c->stop_ev, EV_READ, 0);
        pthread_join(c->thread, NULL);
    }
    gb_info("cluster: stopped (%llu changes or counts dropped)",
            (unsigned long long)atomic_load(&c->dropped));
    cluster_free(c);
}
