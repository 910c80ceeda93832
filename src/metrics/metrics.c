/*
 * metrics.c - process-wide counters and histograms, rendered as Prometheus
 * text (exposition format 0.0.4) for GET /metrics.
 *
 * All state is static and sized at compile time: GB_ROUTE__COUNT routes x
 * (GB_METRICS_MAX_MODELS + 2) model slots x (GB_METRICS_MAX_STATUSES + 1)
 * status slots of 64-bit counters, about 100 KiB.  An update is a handful of
 * relaxed atomic adds plus two lock-free look-ups:
 *   - model name -> slot: an open-addressing table of 2 x MAX_MODELS entries,
 *     published with release stores, read with acquire loads;
 *   - status code -> slot: a per-route byte map indexed by code - 100.
 * The mutex is taken only to give a new name or code its slot.  Once the
 * model table is full, unknown names go to "other" without the mutex, so a
 * client inventing names costs nothing extra.
 *
 * Histograms keep per-bucket (not cumulative) counts; rendering adds them up
 * and derives _count from the same loads, so +Inf always equals _count even
 * while other threads update.  _sum is kept in integer microseconds (one
 * atomic add, no CAS loop on a double) and printed exactly; 2^64 us is
 * 584,000 years of summed latency, decades even at 1,000 requests per second
 * of 10 s each.
 *
 * Sections: tables and state / label keys / update API / rendering / reset.
 */
#include "metrics/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/utf8.h"

/* ---------------------------------------------------------------------
 * Tables and state
 */

#define PREFIX "gemini_balance_"

/* Model slots: real names, then "other", then "no model". */
#define MODEL_OTHER GB_METRICS_MAX_MODELS
#define MODEL_NONE (GB_METRICS_MAX_MODELS + 1)
#define MODEL_SLOTS (GB_METRICS_MAX_MODELS + 2)

/* Hash table of model names: power of two, at least twice MAX_MODELS, so a
 * probe always meets an empty entry. */
#define MODEL_HASH_SIZE 128
_Static_assert(MODEL_HASH_SIZE >= 2 * GB_METRICS_MAX_MODELS, "model hash too small");
_Static_assert((MODEL_HASH_SIZE & (MODEL_HASH_SIZE - 1)) == 0, "model hash not a power of 2");

/* Status slots: exact codes, then "other".  Codes kept exactly: 100..599. */
#define STATUS_OTHER GB_METRICS_MAX_STATUSES
#define STATUS_SLOTS (GB_METRICS_MAX_STATUSES + 1)
#define STATUS_MIN 100
#define STATUS_MAX 599
/* status_map values: 0 = not seen, 1..MAX_STATUSES = slot + 1, or this. */
#define STATUS_MAP_OTHER 0xFF
_Static_assert(GB_METRICS_MAX_STATUSES < STATUS_MAP_OTHER, "status slots overflow the map");

/* Largest latency counted into _sum, in seconds (one day); also keeps an
 * infinite or absurd value from overflowing the conversion to us. */
#define MAX_OBSERVED_S 86400.0

#define US_PER_S UINT64_C(1000000)

static const char *const route_names[GB_ROUTE__COUNT] = {
    [GB_ROUTE_CHAT] = "chat",     [GB_ROUTE_EMBEDDINGS] = "embeddings",
    [GB_ROUTE_MODELS] = "models", [GB_ROUTE_NATIVE] = "native",
    [GB_ROUTE_ADMIN] = "admin",   [GB_ROUTE_OTHER] = "other",
};

static const char *const attempt_names[GB_ATTEMPT__COUNT] = {
    [GB_ATTEMPT_OK] = "ok",
    [GB_ATTEMPT_KEY_INVALID] = "key_invalid",
    [GB_ATTEMPT_RATE_LIMITED] = "rate_limited",
    [GB_ATTEMPT_SERVER_ERROR] = "server_error",
    [GB_ATTEMPT_TRANSPORT] = "transport",
    [GB_ATTEMPT_CLIENT_ERROR] = "client_error",
};

/* Histogram upper bounds (inclusive), with their label text; +Inf is implied
 * as the last bucket. */
static const struct {
    double le;
    const char *text;
} bounds[] = {
    {0.005, "0.005"}, {0.01, "0.01"}, {0.025, "0.025"}, {0.05, "0.05"}, {0.1, "0.1"},
    {0.25, "0.25"},   {0.5, "0.5"},   {1, "1"},         {2.5, "2.5"},   {5, "5"},
    {10, "10"},       {30, "30"},     {60, "60"},       {120, "120"},
};
#define NBOUNDS (sizeof bounds / sizeof bounds[0])

struct hist {
    atomic_uint_least64_t bucket[NBOUNDS + 1]; /* per bucket, last is +Inf only */
    atomic_uint_least64_t sum_us;              /* sum of observations, us */
};

struct route_stats {
    /* status code - STATUS_MIN -> 0, slot + 1 or STATUS_MAP_OTHER */
    atomic_uchar status_map[STATUS_MAX - STATUS_MIN + 1];
    int status_code[GB_METRICS_MAX_STATUSES]; /* written before n_status is raised */
    atomic_uint n_status;                     /* slots handed out */
    struct hist duration;
    struct hist ttfb;
    atomic_uint_least64_t requests[MODEL_SLOTS][STATUS_SLOTS];
};

struct model_name {
    size_t len;                                /* bytes, without the NUL */
    char name[GB_METRICS_MODEL_MAX_BYTES + 1]; /* sanitized, NUL-terminated */
};

static struct {
    pthread_mutex_t lock; /* only for handing out model and status slots */
    /* model slot + 1, 0 = empty; published after models[slot] is written */
    atomic_uint model_hash[MODEL_HASH_SIZE];
    atomic_uint n_models; /* slots handed out */
    struct model_name models[GB_METRICS_MAX_MODELS];
    struct route_stats routes[GB_ROUTE__COUNT];
    atomic_uint_least64_t attempts[GB_ATTEMPT__COUNT];
    atomic_uint_least64_t cooldowns;
    atomic_long conns;                   /* client connections open */
    atomic_uint_least64_t conns_refused; /* refused at MAX_CONNECTIONS */
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Wall-clock time the process started, in seconds since the epoch.  Set by a
 * constructor before main, so no thread can race with it. */
static double start_time_s;

__attribute__((constructor)) static void record_start_time(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_REALTIME, &ts) == 0)
        start_time_s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------------
 * Label keys
 */

#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u

/* Copies model into out as a label value before escaping: at most
 * GB_METRICS_MODEL_MAX_BYTES bytes cut at a character boundary, with
 * invalid UTF-8 and control characters other than '\n' replaced by '?'.
 * Distinct outputs give distinct label values, and equal outputs must share
 * a slot, so this is applied before the look-up.  Reads at most a few bytes
 * past the cut, however long model is.  Returns the length; *hash gets the
 * FNV-1a hash of the output, computed in the same pass (printable ASCII, the
 * usual case, takes the short branch: about 1 ns a byte). */
static size_t model_key(const char *model, char out[GB_METRICS_MODEL_MAX_BYTES + 1], uint32_t *hash)
{
    const unsigned char *p = (const unsigned char *)model;
    uint32_t h = FNV_OFFSET;
    size_t n = 0;

    for (;;) {
        unsigned char c = *p;
        size_t k;

        if (c >= 0x20 && c < 0x7F) {
            if (n == GB_METRICS_MODEL_MAX_BYTES)
                break;
            out[n++] = (char)c;
            h = (h ^ c) * FNV_PRIME;
            p++;
            continue;
        }
        if (c == '\0')
            break;
        k = gb_utf8_seq(p, GB_UTF8_MAX); /* stops at the NUL */
        if (k == 0 || (k == 1 && c != '\n')) {
            if (n == GB_METRICS_MODEL_MAX_BYTES)
                break;
            out[n++] = '?';
            h = (h ^ '?') * FNV_PRIME;
            p++;
            continue;
        }
        if (n + k > GB_METRICS_MODEL_MAX_BYTES)
            break;
        for (size_t i = 0; i < k; i++) {
            out[n++] = (char)p[i];
            h = (h ^ p[i]) * FNV_PRIME;
        }
        p += k;
    }
    out[n] = '\0';
    *hash = h;
    return n;
}

/* Slot of key in the model table, or -1.  Lock-free. */
static int model_find(const char *key, size_t n, uint32_t h)
{
    for (uint32_t i = 0; i < MODEL_HASH_SIZE; i++) {
        unsigned v = atomic_load_explicit(&g.model_hash[(h + i) & (MODEL_HASH_SIZE - 1)],
                                          memory_order_acquire);
        const struct model_name *m;

        if (v == 0)
            return -1;
        m = &g.models[v - 1];
        if (m->len == n && memcmp(m->name, key, n) == 0)
            return (int)(v - 1);
    }
    return -1;
}

/* Model slot for a client-supplied name: an existing slot, a new one while
 * fewer than GB_METRICS_MAX_MODELS exist, else MODEL_OTHER. */
static int model_slot(const char *model)
{
    char key[GB_METRICS_MODEL_MAX_BYTES + 1];
    size_t n;
    uint32_t h;
    int slot;

    if (model == NULL || model[0] == '\0')
        return MODEL_NONE;
    n = model_key(model, key, &h);
    if (n == 5 && memcmp(key, "other", 5) == 0)
        return MODEL_OTHER;
    slot = model_find(key, n, h);
    if (slot >= 0)
        return slot;
    if (atomic_load_explicit(&g.n_models, memory_order_relaxed) >= GB_METRICS_MAX_MODELS)
        return MODEL_OTHER;

    pthread_mutex_lock(&g.lock);
    slot = model_find(key, n, h); /* another thread may have added it */
    if (slot < 0) {
        unsigned used = atomic_load_explicit(&g.n_models, memory_order_relaxed);

        if (used >= GB_METRICS_MAX_MODELS) {
            slot = MODEL_OTHER;
        } else {
            uint32_t i = h;

            memcpy(g.models[used].name, key, n + 1);
            g.models[used].len = n;
            while (atomic_load_explicit(&g.model_hash[i & (MODEL_HASH_SIZE - 1)],
                                        memory_order_relaxed) != 0)
                i++;
            atomic_store_explicit(&g.n_models, used + 1, memory_order_release);
            atomic_store_explicit(&g.model_hash[i & (MODEL_HASH_SIZE - 1)], used + 1,
                                  memory_order_release);
            slot = (int)used;
        }
    }
    pthread_mutex_unlock(&g.lock);
    return slot;
}

/* Status slot of code on route r: its own slot, a new one while fewer than
 * GB_METRICS_MAX_STATUSES exist on r, else STATUS_OTHER. */
static int status_slot(struct route_stats *r, int code)
{
    atomic_uchar *e;
    unsigned v;

    if (code < STATUS_MIN || code > STATUS_MAX)
        return STATUS_OTHER;
    e = &r->status_map[code - STATUS_MIN];
    v = atomic_load_explicit(e, memory_order_acquire);
    if (v == 0) {
        pthread_mutex_lock(&g.lock);
        v = atomic_load_explicit(e, memory_order_relaxed);
        if (v == 0) {
            unsigned used = atomic_load_explicit(&r->n_status, memory_order_relaxed);

            if (used < GB_METRICS_MAX_STATUSES) {
                r->status_code[used] = code;
                atomic_store_explicit(&r->n_status, used + 1, memory_order_release);
                v = used + 1;
            } else {
                v = STATUS_MAP_OTHER;
            }
            atomic_store_explicit(e, (unsigned char)v, memory_order_release);
        }
        pthread_mutex_unlock(&g.lock);
    }
    return v == STATUS_MAP_OTHER ? STATUS_OTHER : (int)v - 1;
}

/* ---------------------------------------------------------------------
 * Update API
 */

static void observe(struct hist *h, double v)
{
    size_t i = 0;

    if (!(v >= 0)) /* negative or NaN */
        v = 0;
    while (i < NBOUNDS && v > bounds[i].le)
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    if (v > MAX_OBSERVED_S)
        v = MAX_OBSERVED_S;
    atomic_fetch_add_explicit(&h->sum_us, (uint64_t)llround(v * (double)US_PER_S),
                              memory_order_relaxed);
}

void gb_metrics_request(enum gb_metric_route route, const char *model, int status, double latency_s,
                        double ttfb_s)
{
    struct route_stats *r;

    if ((unsigned)route >= GB_ROUTE__COUNT)
        route = GB_ROUTE_OTHER;
    r = &g.routes[route];
    atomic_fetch_add_explicit(&r->requests[model_slot(model)][status_slot(r, status)], 1,
                              memory_order_relaxed);
    observe(&r->duration, latency_s);
    if (ttfb_s >= 0)
        observe(&r->ttfb, ttfb_s);
}

void gb_metrics_attempt(enum gb_metric_attempt outcome)
{
    if ((unsigned)outcome >= GB_ATTEMPT__COUNT)
        return;
    atomic_fetch_add_explicit(&g.attempts[outcome], 1, memory_order_relaxed);
}

void gb_metrics_cooldown(void)
{
    atomic_fetch_add_explicit(&g.cooldowns, 1, memory_order_relaxed);
}

long gb_metrics_conn_add(long delta)
{
    return atomic_fetch_add_explicit(&g.conns, delta, memory_order_relaxed) + delta;
}

void gb_metrics_conn_refused(void)
{
    atomic_fetch_add_explicit(&g.conns_refused, 1, memory_order_relaxed);
}

/* ---------------------------------------------------------------------
 * Rendering
 */

/* Output with a sticky error: after the first failed append nothing more is
 * written, and the render returns NULL. */
struct out {
    struct gb_buf b;
    int rc;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;

    if (o->rc != 0)
        return;
    va_start(ap, fmt);
    o->rc = gb_buf_vprintf(&o->b, fmt, ap);
    va_end(ap);
}

static void family(struct out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Appends a label value escaped per the text format: \ " and newline. */
static void put_escaped(struct out *o, const char *s, size_t n)
{
    size_t start = 0;

    for (size_t i = 0; i < n && o->rc == 0; i++) {
        const char *esc = s[i] == '\\'   ? "\\\\"
                          : s[i] == '"'  ? "\\\""
                          : s[i] == '\n' ? "\\n"
                                         : NULL;

        if (esc == NULL)
            continue;
        o->rc = gb_buf_append(&o->b, s + start, i - start);
        if (o->rc == 0)
            o->rc = gb_buf_append(&o->b, esc, 2);
        start = i + 1;
    }
    if (o->rc == 0)
        o->rc = gb_buf_append(&o->b, s + start, n - start);
}

static void put_hist(struct out *o, const char *name, const char *route, struct hist *h)
{
    uint64_t cum = 0, sum_us;

    for (size_t i = 0; i <= NBOUNDS; i++) {
        cum += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        put(o, "%s_bucket{route=\"%s\",le=\"%s\"} %" PRIu64 "\n", name, route,
            i < NBOUNDS ? bounds[i].text : "+Inf", cum);
    }
    sum_us = atomic_load_explicit(&h->sum_us, memory_order_relaxed);
    put(o, "%s_sum{route=\"%s\"} %" PRIu64 ".%06" PRIu64 "\n", name, route, sum_us / US_PER_S,
        sum_us % US_PER_S);
    put(o, "%s_count{route=\"%s\"} %" PRIu64 "\n", name, route, cum);
}

static int cmp_status(const void *a, const void *b)
{
    const int *x = a, *y = b;

    return (x[0] > y[0]) - (x[0] < y[0]);
}

static void put_requests(struct out *o)
{
    unsigned n_models = atomic_load_explicit(&g.n_models, memory_order_acquire);

    family(o, PREFIX "requests_total", "counter",
           "Client requests finished, by route, model and status.");
    for (int ri = 0; ri < GB_ROUTE__COUNT; ri++) {
        struct route_stats *r = &g.routes[ri];
        unsigned n_status = atomic_load_explicit(&r->n_status, memory_order_acquire);
        int order[STATUS_SLOTS][2]; /* {code, slot}, sorted by code; "other" last */
        size_t n_order = 0;

        for (unsigned s = 0; s < n_status; s++) {
            order[n_order][0] = r->status_code[s];
            order[n_order++][1] = (int)s;
        }
        qsort(order, n_order, sizeof order[0], cmp_status);
        order[n_order][0] = 0;
        order[n_order++][1] = STATUS_OTHER;

        for (int m = 0; m < MODEL_SLOTS; m++) {
            const char *name;
            size_t len;

            if (m < GB_METRICS_MAX_MODELS && (unsigned)m >= n_models)
                continue;
            if (m == MODEL_OTHER) {
                name = "other";
                len = 5;
            } else if (m == MODEL_NONE) {
                name = "";
                len = 0;
            } else {
                name = g.models[m].name;
                len = g.models[m].len;
            }
            for (size_t k = 0; k < n_order; k++) {
                int slot = order[k][1];
                uint64_t v = atomic_load_explicit(&r->requests[m][slot], memory_order_relaxed);

                if (v == 0)
                    continue;
                put(o, PREFIX "requests_total{route=\"%s\",model=\"", route_names[ri]);
                put_escaped(o, name, len);
                if (slot == STATUS_OTHER)
                    put(o, "\",status=\"other\"} %" PRIu64 "\n", v);
                else
                    put(o, "\",status=\"%d\"} %" PRIu64 "\n", order[k][0], v);
            }
        }
    }
}

static void put_process(struct out *o)
{
    struct rusage ru;
    FILE *f;

    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        uint64_t us = (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
                      (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;

        family(o, "process_cpu_seconds_total", "counter",
               "User and system CPU time spent, in seconds.");
        put(o, "process_cpu_seconds_total %" PRIu64 ".%06" PRIu64 "\n", us / 1000000u,
            us % 1000000u);
    }
    f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        unsigned long size, resident;
        long page = sysconf(_SC_PAGESIZE);

        if (fscanf(f, "%lu %lu", &size, &resident) == 2 && page > 0) {
            family(o, "process_resident_memory_bytes", "gauge", "Resident memory size, in bytes.");
            put(o, "process_resident_memory_bytes %" PRIu64 "\n",
                (uint64_t)resident * (uint64_t)page);
        }
        fclose(f);
    }
    family(o, "process_start_time_seconds", "gauge",
           "Start time of the process since the Unix epoch, in seconds.");
    put(o, "process_start_time_seconds %.3f\n", start_time_s);
}

char *gb_metrics_render(const struct gb_metrics_keys *keys, uint64_t store_dropped, size_t *len)
{
    struct out o;
    char *text;

    gb_buf_init(&o.b, GB_METRICS_RENDER_MAX_BYTES);
    o.rc = 0;

    put_requests(&o);

    family(&o, PREFIX "request_duration_seconds", "histogram",
           "Time from request received to response finished, in seconds.");
    for (int r = 0; r < GB_ROUTE__COUNT; r++)
        put_hist(&o, PREFIX "request_duration_seconds", route_names[r], &g.routes[r].duration);

    family(&o, PREFIX "time_to_first_byte_seconds", "histogram",
           "Time from request received to the first response byte sent, in seconds.");
    for (int r = 0; r < GB_ROUTE__COUNT; r++)
        put_hist(&o, PREFIX "time_to_first_byte_seconds", route_names[r], &g.routes[r].ttfb);

    family(&o, PREFIX "upstream_attempts_total", "counter", "Upstream attempts, by outcome.");
    for (int a = 0; a < GB_ATTEMPT__COUNT; a++)
        put(&o, PREFIX "upstream_attempts_total{outcome=\"%s\"} %" PRIu64 "\n", attempt_names[a],
            (uint64_t)atomic_load_explicit(&g.attempts[a], memory_order_relaxed));

    family(&o, PREFIX "key_cooldowns_total", "counter", "Times an API key was put in cooldown.");
    put(&o, PREFIX "key_cooldowns_total %" PRIu64 "\n",
        (uint64_t)atomic_load_explicit(&g.cooldowns, memory_order_relaxed));

    family(&o, PREFIX "client_connections", "gauge", "Client connections open.");
    put(&o, PREFIX "client_connections %ld\n",
        atomic_load_explicit(&g.conns, memory_order_relaxed));
    family(&o, PREFIX "client_connections_refused_total", "counter",
           "Client connections refused at the MAX_CONNECTIONS limit.");
    put(&o, PREFIX "client_connections_refused_total %" PRIu64 "\n",
        (uint64_t)atomic_load_explicit(&g.conns_refused, memory_order_relaxed));

    if (keys != NULL) {
        family(&o, PREFIX "keys", "gauge", "API keys by state.");
        put(&o, PREFIX "keys{state=\"usable\"} %zu\n", keys->usable);
        put(&o, PREFIX "keys{state=\"cooling\"} %zu\n", keys->cooling);
        put(&o, PREFIX "keys{state=\"disabled\"} %zu\n", keys->disabled);
        family(&o, PREFIX "keys_total", "gauge", "API keys configured.");
        put(&o, PREFIX "keys_total %zu\n", keys->total);
        family(&o, PREFIX "pool_throttled", "gauge", "1 while the pool-wide backoff is on.");
        put(&o, PREFIX "pool_throttled %d\n", keys->throttled ? 1 : 0);
    }

    family(&o, PREFIX "store_dropped_total", "counter",
           "Records the store dropped because its queue was full.");
    put(&o, PREFIX "store_dropped_total %" PRIu64 "\n", store_dropped);

    put_process(&o);

    if (o.rc != 0) {
        gb_buf_release(&o.b);
        return NULL;
    }
    text = gb_buf_take(&o.b, len);
    return text;
}

/* ---------------------------------------------------------------------
 * Reset
 */

static void hist_zero(struct hist *h)
{
    for (size_t i = 0; i <= NBOUNDS; i++)
        atomic_store_explicit(&h->bucket[i], 0, memory_order_relaxed);
    atomic_store_explicit(&h->sum_us, 0, memory_order_relaxed);
}

void gb_metrics_reset(void)
{
    pthread_mutex_lock(&g.lock);
    for (int i = 0; i < MODEL_HASH_SIZE; i++)
        atomic_store_explicit(&g.model_hash[i], 0, memory_order_relaxed);
    atomic_store_explicit(&g.n_models, 0, memory_order_relaxed);
    for (int ri = 0; ri < GB_ROUTE__COUNT; ri++) {
        struct route_stats *r = &g.routes[ri];

        for (int c = 0; c <= STATUS_MAX - STATUS_MIN; c++)
            atomic_store_explicit(&r->status_map[c], 0, memory_order_relaxed);
        atomic_store_explicit(&r->n_status, 0, memory_order_relaxed);
        hist_zero(&r->duration);
        hist_zero(&r->ttfb);
        for (int m = 0; m < MODEL_SLOTS; m++)
            for (int s = 0; s < STATUS_SLOTS; s++)
                atomic_store_explicit(&r->requests[m][s], 0, memory_order_relaxed);
    }
    for (int a = 0; a < GB_ATTEMPT__COUNT; a++)
        atomic_store_explicit(&g.attempts[a], 0, memory_order_relaxed);
    atomic_store_explicit(&g.cooldowns, 0, memory_order_relaxed);
    atomic_store_explicit(&g.conns_refused, 0, memory_order_relaxed);
    pthread_mutex_unlock(&g.lock);
}
