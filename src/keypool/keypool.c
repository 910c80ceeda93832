/*
 * keypool.c - key health and selection (see keypool.h for the contract).
 *
 * Sections: bitmaps - heaps - time - models and bits - picking - reporting
 * (throttle detection) - administration - stats.
 *
 * A key k is "blocked" for model slot m when it is deleted, disabled,
 * cooling at the key level (a local rate limit, or a 429 that applies to
 * every model), or cooling for that model.  Each model slot keeps that as a
 * bit (two-level bitmap, find-next-clear in a few word operations) and the
 * cooldowns as a min-heap of (until, key) popped lazily when the slot picks.
 * Slot 0 is the model "" (a model list: only key-level state counts).
 */
#include "keypool/keypool.h"

#include <ctype.h>
#include <nettle/sha2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/err.h"
#include "core/log.h"
#include "core/rand.h"

/* Longest model name tracked, with its terminator. */
#define GB_MODEL_NAME_LEN 129

/* Candidates looked at by the least_used strategy. */
#define GB_LEAST_USED_SAMPLE 8
/* Shortest key accepted at run time, in bytes. */
#define GB_KEY_MIN_LEN 6
/* Longest key accepted, in bytes. */
#define GB_KEY_MAX_LEN 256

/* ---- bitmaps ------------------------------------------------------------ */

struct bits {
    uint64_t *w;   /* one bit per key: 1 = blocked */
    uint64_t *sum; /* one bit per word of w: 1 = that word is all ones */
    size_t nbits, nwords, nsum;
};

/* Grows to nbits keys; the new keys start clear (usable).  Bits past the
 * last key stay set, so a word is all ones exactly when every key in it is
 * blocked. */
static int bits_resize(struct bits *b, size_t nbits)
{
    size_t nwords = (nbits + 63) / 64, nsum = (nwords + 63) / 64, old = b->nbits;

    if (nbits <= old)
        return 0;
    if (nwords > b->nwords) {
        uint64_t *w = realloc(b->w, nwords * sizeof *w);
        if (w == NULL)
            return GB_ENOMEM;
        for (size_t i = b->nwords; i < nwords; i++)
            w[i] = ~0ULL;
        b->w = w;
        b->nwords = nwords;
    }
    if (nsum > b->nsum) {
        uint64_t *sm = realloc(b->sum, nsum * sizeof *sm);
        if (sm == NULL)
            return GB_ENOMEM;
        memset(sm + b->nsum, 0, (nsum - b->nsum) * sizeof *sm);
        b->sum = sm;
        b->nsum = nsum;
    }
    for (size_t i = old; i < nbits; i++)
        b->w[i / 64] &= ~(1ULL << (i % 64));
    for (size_t wi = old / 64; wi < nwords; wi++) {
        if (b->w[wi] == ~0ULL)
            b->sum[wi / 64] |= 1ULL << (wi % 64);
        else
            b->sum[wi / 64] &= ~(1ULL << (wi % 64));
    }
    b->nbits = nbits;
    return 0;
}

static void bits_release(struct bits *b)
{
    free(b->w);
    free(b->sum);
    memset(b, 0, sizeof *b);
}

static int bits_get(const struct bits *b, size_t i)
{
    return (int)((b->w[i / 64] >> (i % 64)) & 1);
}

static void bits_set(struct bits *b, size_t i, int on)
{
    size_t wi = i / 64;

    if (on)
        b->w[wi] |= 1ULL << (i % 64);
    else
        b->w[wi] &= ~(1ULL << (i % 64));
    if (b->w[wi] == ~0ULL)
        b->sum[wi / 64] |= 1ULL << (wi % 64);
    else
        b->sum[wi / 64] &= ~(1ULL << (wi % 64));
}

/* First clear bit in [from, nbits), or (size_t)-1. */
static size_t bits_scan(const struct bits *b, size_t from)
{
    size_t nwords = (b->nbits + 63) / 64, wi = from / 64;
    uint64_t free_bits = ~b->w[wi] & (~0ULL << (from % 64));

    if (free_bits != 0)
        return wi * 64 + (size_t)__builtin_ctzll(free_bits);
    /* skip full words through the summary */
    for (wi++; wi < nwords;) {
        size_t si = wi / 64;
        uint64_t s = ~b->sum[si] & (~0ULL << (wi % 64));
        if (s == 0) {
            wi = (si + 1) * 64;
            continue;
        }
        wi = si * 64 + (size_t)__builtin_ctzll(s);
        if (wi >= nwords)
            break;
        return wi * 64 + (size_t)__builtin_ctzll(~b->w[wi]);
    }
    return (size_t)-1;
}

/* First clear bit at or after from, wrapping around; (size_t)-1 if none. */
static size_t bits_next_clear(const struct bits *b, size_t from)
{
    size_t r;

    if (b->nbits == 0)
        return (size_t)-1;
    if (from >= b->nbits)
        from = 0;
    r = bits_scan(b, from);
    if (r == (size_t)-1 && from > 0)
        r = bits_scan(b, 0);
    return r;
}

/* ---- heaps ---------------------------------------------------------------- */

struct heap_ent {
    int64_t until;
    uint32_t key;
};

struct heap {
    struct heap_ent *v;
    size_t len, cap;
};

static int heap_push(struct heap *h, int64_t until, uint32_t key)
{
    size_t i;

    if (h->len == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        struct heap_ent *v = realloc(h->v, cap * sizeof *v);
        if (v == NULL)
            return GB_ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    for (i = h->len++; i > 0 && h->v[(i - 1) / 2].until > until; i = (i - 1) / 2)
        h->v[i] = h->v[(i - 1) / 2];
    h->v[i].until = until;
    h->v[i].key = key;
    return 0;
}

static struct heap_ent heap_pop(struct heap *h)
{
    struct heap_ent top = h->v[0], last = h->v[--h->len];
    size_t i = 0;

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->len)
            break;
        if (c + 1 < h->len && h->v[c + 1].until < h->v[c].until)
            c++;
        if (h->v[c].until >= last.until)
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->len > 0)
        h->v[i] = last;
    return top;
}

/* ---- pool --------------------------------------------------------------- */

/* Bytes of a key's masked id, with its terminator. */
#define GB_KEY_ID_LEN 32
/* Bytes of a hex SHA-256, with its terminator. */
#define GB_KEY_SHA_LEN 65

struct key {
    char *key; /* the secret; one block with id and sha, kept until gb_keypool_free */
    char *id;  /* "#<slot>...<last4>", in key's block: stable even when keys[] moves */
    char *sha; /* hex SHA-256 of the key, in key's block (same) */
    uint64_t hash;
    int disabled, deleted, from_admin;
    long failures;
    char last_error[160];
    int64_t key_until; /* key-level cooldown (wall ms), 0 = none */
    int64_t minute_start, day_start, day_end, minute_count, day_count;
    int64_t requests, successes, last_used;
    int64_t last429; /* when this key entered the 429 window, 0 = not in it */
    int latency_ms;
};

struct model_slot {
    char name[GB_MODEL_NAME_LEN];
    struct bits blocked;
    int64_t *until; /* per key, lazily allocated; 0 = not cooling */
    size_t until_cap;
    struct heap heap;
    size_t cursor;
};

struct recent {
    int64_t ts;
    uint32_t key;
    int model;
    int per_day;
};

struct gb_keypool {
    pthread_mutex_t lock;
    struct gb_keypool_opts o;
    struct key *keys;
    size_t n, cap, live;
    size_t ndisabled; /* disabled among the live keys */
    uint32_t *table;  /* open addressing: slot + 1, 0 = empty */
    size_t tcap;
    struct model_slot models[GB_KEYPOOL_MAX_MODELS + 1];
    size_t nmodels;
    struct heap kheap; /* key-level cooldowns */
    struct recent *q;  /* 429s in the throttle window, first per key, oldest first */
    size_t qhead, qlen, qcap;
    int64_t throttle_until, throttle_ms, throttle_ended;
    /* picks and 429s in the current and the previous throttle window */
    int64_t win_start, win_picks, win_429, prev_picks, prev_429;
};

/* ---- time --------------------------------------------------------------- */

static int64_t real_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ms since the epoch of day d (1-based) of month mon (0-based) in year y, UTC. */
static int64_t utc_ms(int y, int mon, int d, int hour)
{
    struct tm tm = {0};

    tm.tm_year = y - 1900;
    tm.tm_mon = mon;
    tm.tm_mday = d;
    tm.tm_hour = hour;
    return (int64_t)timegm(&tm) * 1000;
}

/* Day of month of the nth Sunday of month mon in year y. */
static int nth_sunday(int y, int mon, int nth)
{
    struct tm tm;
    time_t t = (time_t)(utc_ms(y, mon, 1, 12) / 1000);

    gmtime_r(&t, &tm);
    return 1 + (7 - tm.tm_wday) % 7 + 7 * (nth - 1);
}

/* US Pacific offset from UTC at instant t, in ms (-7 h in DST, else -8 h). */
static int64_t pacific_offset(int64_t t)
{
    struct tm tm;
    time_t s = (time_t)(t / 1000);
    int64_t start, end;

    gmtime_r(&s, &tm);
    /* DST: second Sunday of March 2:00 PST (10:00 UTC) to first Sunday of
     * November 2:00 PDT (09:00 UTC) */
    start = utc_ms(tm.tm_year + 1900, 2, nth_sunday(tm.tm_year + 1900, 2, 2), 10);
    end = utc_ms(tm.tm_year + 1900, 10, nth_sunday(tm.tm_year + 1900, 10, 1), 9);
    return (t >= start && t < end ? -7 : -8) * 3600000LL;
}

int64_t gb_keypool_pacific_midnight_after(int64_t t)
{
    int64_t off = pacific_offset(t), local = t + off, day = 24 * 3600000LL;
    int64_t midnight_local = (local / day + 1) * day;
    int64_t r = midnight_local - off;

    /* the offset at the reset may differ from the offset now (DST day) */
    return midnight_local - pacific_offset(r);
}

/* ---- models and bits ---------------------------------------------------- */

static int model_slot(struct gb_keypool *kp, const char *model)
{
    size_t i;

    if (model == NULL || model[0] == '\0')
        return 0;
    for (i = 1; i < kp->nmodels; i++)
        if (strcmp(kp->models[i].name, model) == 0)
            return (int)i;
    if (kp->nmodels <= GB_KEYPOOL_MAX_MODELS) {
        struct model_slot *m = &kp->models[kp->nmodels];
        if (bits_resize(&m->blocked, kp->n) < 0)
            return 0;
        snprintf(m->name, sizeof m->name, "%s", model);
        /* a new model starts from the key-level state of slot 0 */
        for (size_t k = 0; k < kp->n; k++)
            bits_set(&m->blocked, k, bits_get(&kp->models[0].blocked, k));
        m->cursor = kp->models[0].cursor;
        return (int)kp->nmodels++;
    }
    return GB_KEYPOOL_MAX_MODELS; /* later models share the last slot */
}

static int key_blocked(struct gb_keypool *kp, int m, uint32_t k, int64_t now)
{
    struct key *key = &kp->keys[k];
    struct model_slot *ms = &kp->models[m];

    if (key->deleted || key->disabled || key->key_until > now)
        return 1;
    return m > 0 && ms->until != NULL && k < ms->until_cap && ms->until[k] > now;
}

static void refresh(struct gb_keypool *kp, int m, uint32_t k, int64_t now)
{
    bits_set(&kp->models[m].blocked, k, key_blocked(kp, m, k, now));
}

static void refresh_all(struct gb_keypool *kp, uint32_t k, int64_t now)
{
    for (size_t m = 0; m < kp->nmodels; m++)
        refresh(kp, (int)m, k, now);
}

/* Pops expired cooldowns of the key-level heap and of model slot m. */
static void expire(struct gb_keypool *kp, int m, int64_t now)
{
    struct model_slot *ms = &kp->models[m];

    while (kp->kheap.len > 0 && kp->kheap.v[0].until <= now) {
        struct heap_ent e = heap_pop(&kp->kheap);
        if (e.key < kp->n && kp->keys[e.key].key_until != 0 && kp->keys[e.key].key_until <= now) {
            kp->keys[e.key].key_until = 0;
            refresh_all(kp, e.key, now);
        }
    }
    while (ms->heap.len > 0 && ms->heap.v[0].until <= now) {
        struct heap_ent e = heap_pop(&ms->heap);
        if (e.key < ms->until_cap && ms->until[e.key] != 0 && ms->until[e.key] <= now) {
            ms->until[e.key] = 0;
            refresh(kp, m, e.key, now);
        }
    }
}

static int cool_model(struct gb_keypool *kp, int m, uint32_t k, int64_t until, int64_t now)
{
    struct model_slot *ms = &kp->models[m];

    if (m == 0) { /* no model: the key cools for every model */
        if (until > kp->keys[k].key_until)
            kp->keys[k].key_until = until;
        refresh_all(kp, k, now);
        return heap_push(&kp->kheap, until, k);
    }
    if (ms->until_cap < kp->n) {
        int64_t *u = realloc(ms->until, kp->cap * sizeof *u);
        if (u == NULL)
            return GB_ENOMEM;
        memset(u + ms->until_cap, 0, (kp->cap - ms->until_cap) * sizeof *u);
        ms->until = u;
        ms->until_cap = kp->cap;
    }
    if (until > ms->until[k])
        ms->until[k] = until;
    refresh(kp, m, k, now);
    return heap_push(&ms->heap, until, k);
}

/* Sets key k's disabled flag, keeping the count right.  Lock held. */
static void mark_disabled(struct gb_keypool *kp, uint32_t k, int on)
{
    struct key *key = &kp->keys[k];

    on = on != 0;
    if (key->disabled == on)
        return;
    key->disabled = on;
    if (!key->deleted)
        kp->ndisabled += on ? 1 : (size_t)-1;
}

/* ---- lifecycle ---------------------------------------------------------- */

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int table_grow(struct gb_keypool *kp)
{
    size_t cap = kp->tcap ? kp->tcap * 2 : 64;
    uint32_t *t = calloc(cap, sizeof *t);

    if (t == NULL)
        return GB_ENOMEM;
    for (size_t i = 0; i < kp->n; i++) {
        size_t j = kp->keys[i].hash & (cap - 1);
        while (t[j] != 0)
            j = (j + 1) & (cap - 1);
        t[j] = (uint32_t)i + 1;
    }
    free(kp->table);
    kp->table = t;
    kp->tcap = cap;
    return 0;
}

static long lookup(struct gb_keypool *kp, const char *key, uint64_t h)
{
    if (kp->tcap == 0)
        return -1;
    for (size_t j = h & (kp->tcap - 1); kp->table[j] != 0; j = (j + 1) & (kp->tcap - 1)) {
        uint32_t i = kp->table[j] - 1;
        if (kp->keys[i].hash == h && strcmp(kp->keys[i].key, key) == 0)
            return (long)i;
    }
    return -1;
}

static void sha256_hex(const char *key, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    struct sha256_ctx sha;
    uint8_t md[SHA256_DIGEST_SIZE];

    sha256_init(&sha);
    sha256_update(&sha, strlen(key), (const uint8_t *)key);
    sha256_digest(&sha, sizeof md, md);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

/* A plausible API key: GB_KEY_MIN_LEN..GB_KEY_MAX_LEN characters from the
 * set Google's keys use (letters, digits, '-', '_', '.'). */
static int key_ok(const char *key)
{
    size_t n = strlen(key);

    if (n < GB_KEY_MIN_LEN || n > GB_KEY_MAX_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)key[i]) && key[i] != '-' && key[i] != '_' && key[i] != '.')
            return 0;
    return 1;
}

/* Adds a new slot.  Lock held. */
static int add_locked(struct gb_keypool *kp, const char *key, int from_admin)
{
    uint64_t h = hash_key(key);
    char mask[GB_MASK_MAX];
    struct key *k;
    size_t j, len;

    if (kp->n == kp->cap) {
        size_t cap = kp->cap ? kp->cap * 2 : 16;
        struct key *v = realloc(kp->keys, cap * sizeof *v);
        if (v == NULL)
            return GB_ENOMEM;
        kp->keys = v;
        kp->cap = cap;
    }
    if ((kp->n + 1) * 2 > kp->tcap && table_grow(kp) < 0)
        return GB_ENOMEM;
    for (size_t m = 0; m < kp->nmodels; m++)
        if (bits_resize(&kp->models[m].blocked, kp->n + 1) < 0)
            return GB_ENOMEM;
    k = &kp->keys[kp->n];
    memset(k, 0, sizeof *k);
    /* id and sha live with the secret, not in keys[] (which add moves), so
     * the pointers gb_keypool_key_id/_key_hash and the callbacks hand out
     * stay valid while another thread adds a key */
    len = strlen(key);
    if ((k->key = malloc(len + 1 + GB_KEY_ID_LEN + GB_KEY_SHA_LEN)) == NULL)
        return GB_ENOMEM;
    memcpy(k->key, key, len + 1);
    k->id = k->key + len + 1;
    k->sha = k->id + GB_KEY_ID_LEN;
    k->hash = h;
    k->from_admin = from_admin;
    sha256_hex(key, k->sha);
    snprintf(k->id, GB_KEY_ID_LEN, "#%zu%s", kp->n, gb_log_mask(key, mask));
    for (j = h & (kp->tcap - 1); kp->table[j] != 0; j = (j + 1) & (kp->tcap - 1))
        ;
    kp->table[j] = (uint32_t)kp->n + 1;
    kp->live++;
    return (int)kp->n++;
}

struct gb_keypool *gb_keypool_new(const struct gb_strlist *keys, const struct gb_keypool_opts *o)
{
    struct gb_keypool *kp = calloc(1, sizeof *kp);

    if (kp == NULL)
        return NULL;
    pthread_mutex_init(&kp->lock, NULL);
    kp->o = *o;
    if (kp->o.max_failures < 1)
        kp->o.max_failures = 1;
    if (kp->o.now_ms == NULL)
        kp->o.now_ms = real_now_ms;
    kp->nmodels = 1; /* slot 0: model "" */
    kp->throttle_ms = GB_THROTTLE_FIRST_MS;
    for (size_t i = 0; i < keys->n; i++) {
        if (lookup(kp, keys->v[i], hash_key(keys->v[i])) >= 0)
            continue;
        if (add_locked(kp, keys->v[i], 0) < 0)
            goto fail;
    }
    return kp;
fail:
    gb_keypool_free(kp);
    return NULL;
}

void gb_keypool_free(struct gb_keypool *kp)
{
    if (kp == NULL)
        return;
    for (size_t i = 0; i < kp->n; i++) {
        memset(kp->keys[i].key, 0, strlen(kp->keys[i].key));
        free(kp->keys[i].key);
    }
    for (size_t m = 0; m <= GB_KEYPOOL_MAX_MODELS; m++) {
        bits_release(&kp->models[m].blocked);
        free(kp->models[m].until);
        free(kp->models[m].heap.v);
    }
    free(kp->kheap.v);
    free(kp->q);
    free(kp->keys);
    free(kp->table);
    pthread_mutex_destroy(&kp->lock);
    free(kp);
}

size_t gb_keypool_size(struct gb_keypool *kp)
{
    size_t n;

    pthread_mutex_lock(&kp->lock);
    n = kp->live;
    pthread_mutex_unlock(&kp->lock);
    return n;
}

size_t gb_keypool_slots(struct gb_keypool *kp)
{
    size_t n;

    pthread_mutex_lock(&kp->lock);
    n = kp->n;
    pthread_mutex_unlock(&kp->lock);
    return n;
}

int gb_keypool_strategy_parse(const char *s)
{
    if (strcasecmp(s, "round_robin") == 0)
        return GB_PICK_ROUND_ROBIN;
    if (strcasecmp(s, "random") == 0)
        return GB_PICK_RANDOM;
    if (strcasecmp(s, "least_used") == 0)
        return GB_PICK_LEAST_USED;
    return -1;
}

/* ---- picking ------------------------------------------------------------ */

static int was_tried(uint32_t i, const uint32_t *tried, size_t ntried)
{
    for (size_t j = 0; j < ntried; j++)
        if (tried[j] == i)
            return 1;
    return 0;
}

/* Rolls the local-limit windows of key k forward to now. */
static void roll_windows(struct key *k, int64_t now)
{
    int64_t minute = now - now % GB_MINUTE_MS;

    if (k->minute_start != minute) {
        k->minute_start = minute;
        k->minute_count = 0;
    }
    /* the Pacific day is worked out only when it rolls over (it costs a few
     * gmtime calls) */
    if (now >= k->day_end || now < k->day_start) {
        k->day_end = gb_keypool_pacific_midnight_after(now);
        k->day_start = k->day_end - GB_DAY_MS;
        k->day_count = 0;
    }
}

/* Counts a pick against the local limits; at a limit the key cools down
 * (every model) until its window ends. */
/* Moves the throttle windows forward to now.  Lock held. */
static void roll_throttle_window(struct gb_keypool *kp, int64_t now)
{
    if (now - kp->win_start < GB_THROTTLE_WINDOW_MS)
        return;
    if (now - kp->win_start < 2 * GB_THROTTLE_WINDOW_MS) {
        kp->prev_picks = kp->win_picks;
        kp->prev_429 = kp->win_429;
    } else {
        kp->prev_picks = kp->prev_429 = 0;
    }
    kp->win_start = now - now % GB_THROTTLE_WINDOW_MS;
    kp->win_picks = kp->win_429 = 0;
}

static void count_pick(struct gb_keypool *kp, uint32_t i, int64_t now)
{
    struct key *k = &kp->keys[i];

    roll_throttle_window(kp, now);
    kp->win_picks++;

    roll_windows(k, now);
    k->minute_count++;
    k->day_count++;
    k->requests++;
    k->last_used = now;
    if (kp->o.rpd_limit > 0 && k->day_count >= kp->o.rpd_limit)
        cool_model(kp, 0, i, k->day_end, now);
    else if (kp->o.rpm_limit > 0 && k->minute_count >= kp->o.rpm_limit)
        cool_model(kp, 0, i, k->minute_start + GB_MINUTE_MS, now);
}

/* The key slot m should use next, per strategy, skipping tried keys;
 * (size_t)-1 when none.  *fallback gets a tried but usable key. */
static size_t choose(struct gb_keypool *kp, int m, const uint32_t *tried, size_t ntried,
                     int64_t now, size_t *fallback)
{
    struct model_slot *ms = &kp->models[m];
    size_t start = ms->cursor, i, first, best = (size_t)-1;
    int64_t best_use = INT64_MAX, minute = now - now % GB_MINUTE_MS;
    int sample = 0;

    *fallback = (size_t)-1;
    if (kp->o.strategy == GB_PICK_RANDOM && kp->n > 0)
        start = (size_t)(gb_rand64() % kp->n);
    first = i = bits_next_clear(&ms->blocked, start);
    for (size_t step = 0; i != (size_t)-1 && step <= ntried + GB_LEAST_USED_SAMPLE; step++) {
        if (was_tried((uint32_t)i, tried, ntried)) {
            if (*fallback == (size_t)-1)
                *fallback = i;
        } else if (kp->o.strategy != GB_PICK_LEAST_USED) {
            return i;
        } else {
            struct key *k = &kp->keys[i];
            int64_t use = k->minute_start == minute ? k->minute_count : 0;
            if (use < best_use) {
                best_use = use;
                best = i;
            }
            if (++sample >= GB_LEAST_USED_SAMPLE || use == 0)
                return best;
        }
        i = bits_next_clear(&ms->blocked, i + 1);
        if (i == first)
            break; /* went all the way round */
    }
    return best;
}

/* When the first blocked key of slot m is free again, from the heaps. */
static int64_t soonest(struct gb_keypool *kp, int m, int64_t now)
{
    int64_t t = INT64_MAX;

    if (kp->kheap.len > 0)
        t = kp->kheap.v[0].until;
    if (m > 0 && kp->models[m].heap.len > 0 && kp->models[m].heap.v[0].until < t)
        t = kp->models[m].heap.v[0].until;
    return t == INT64_MAX ? GB_KEY_ALL_DISABLED_RETRY_MS : (t - now > 0 ? t - now : 1);
}

int gb_keypool_pick(struct gb_keypool *kp, const char *model, const uint32_t *tried, size_t ntried,
                    uint32_t *idx, int64_t *retry_after_ms)
{
    int64_t now;
    size_t i, fallback;
    int m;

    pthread_mutex_lock(&kp->lock);
    if (kp->live == 0) {
        pthread_mutex_unlock(&kp->lock);
        return GB_ENOKEY;
    }
    now = kp->o.now_ms();
    if (kp->throttle_until > now) {
        *retry_after_ms = kp->throttle_until - now;
        pthread_mutex_unlock(&kp->lock);
        return GB_EAGAIN;
    }
    m = model_slot(kp, model);
    expire(kp, m, now);
    i = choose(kp, m, tried, ntried, now, &fallback);
    if (i == (size_t)-1)
        i = fallback;
    if (i == (size_t)-1) {
        *retry_after_ms = soonest(kp, m, now);
        pthread_mutex_unlock(&kp->lock);
        return GB_EBUSY;
    }
    kp->models[m].cursor = i + 1;
    count_pick(kp, (uint32_t)i, now);
    *idx = (uint32_t)i;
    {
        struct key *k = &kp->keys[i];
        const char *hash = k->sha;
        int64_t ms = k->minute_start, ds = k->day_start;
        gb_keypool_pick_cb cb = kp->o.on_pick;
        void *ud = kp->o.pick_ud;
        pthread_mutex_unlock(&kp->lock);
        if (cb != NULL)
            cb(ud, (uint32_t)i, hash, ms, ds);
    }
    return 0;
}

char *gb_keypool_key(struct gb_keypool *kp, uint32_t idx, char *out, size_t outlen)
{
    pthread_mutex_lock(&kp->lock);
    snprintf(out, outlen, "%s", idx < kp->n ? kp->keys[idx].key : "");
    pthread_mutex_unlock(&kp->lock);
    return out;
}

const char *gb_keypool_key_id(struct gb_keypool *kp, uint32_t idx)
{
    const char *id;

    pthread_mutex_lock(&kp->lock);
    id = idx < kp->n ? kp->keys[idx].id : "-";
    pthread_mutex_unlock(&kp->lock);
    return id;
}

const char *gb_keypool_key_hash(struct gb_keypool *kp, uint32_t idx)
{
    const char *h;

    pthread_mutex_lock(&kp->lock);
    h = idx < kp->n ? kp->keys[idx].sha : "";
    pthread_mutex_unlock(&kp->lock);
    return h;
}

int gb_keypool_find_hash(struct gb_keypool *kp, const char *hash, uint32_t *idx)
{
    int rc = GB_EINVAL;

    pthread_mutex_lock(&kp->lock);
    for (size_t i = 0; i < kp->n; i++) {
        if (!kp->keys[i].deleted && strcmp(kp->keys[i].sha, hash) == 0) {
            *idx = (uint32_t)i;
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&kp->lock);
    return rc;
}

/* ---- reporting ---------------------------------------------------------- */

/* Fills a snapshot of key i (lock held); strings stay valid while the pool
 * lives, except last_error which is copied into buf. */
static void snapshot(struct gb_keypool *kp, uint32_t i, struct gb_key_snapshot *s, char *buf,
                     size_t buflen, int64_t now)
{
    struct key *k = &kp->keys[i];

    memset(s, 0, sizeof *s);
    s->idx = i;
    s->key = k->key;
    s->id = k->id;
    s->hash = k->sha;
    s->disabled = k->disabled;
    s->deleted = k->deleted;
    s->from_admin = k->from_admin;
    s->failures = k->failures;
    snprintf(buf, buflen, "%s", k->last_error);
    s->last_error = buf;
    if (k->key_until > now) {
        s->cool_model[s->ncool] = "";
        s->cool_until[s->ncool++] = k->key_until;
    }
    for (size_t m = 1; m < kp->nmodels; m++) {
        struct model_slot *ms = &kp->models[m];
        if (ms->until != NULL && i < ms->until_cap && ms->until[i] > now) {
            s->cool_model[s->ncool] = ms->name;
            s->cool_until[s->ncool++] = ms->until[i];
        }
    }
}

/* Drops 429 window entries older than the window.  Lock held. */
static void window_expire(struct gb_keypool *kp, int64_t now)
{
    while (kp->qlen > 0 && kp->q[kp->qhead].ts < now - GB_THROTTLE_WINDOW_MS) {
        struct recent *x = &kp->q[kp->qhead];
        if (x->key < kp->n && kp->keys[x->key].last429 == x->ts)
            kp->keys[x->key].last429 = 0;
        kp->qhead = (kp->qhead + 1) % kp->qcap;
        kp->qlen--;
    }
}

/* A per-minute 429 arrived: 1 when the keys answering 429 within the window
 * say the pool, not the key, is throttled (the throttle is then switched on
 * and the window's cooldowns lifted).  Each key counts once per window, so
 * the window holds at most one entry per key.  Lock held. */
static int detect_throttle(struct gb_keypool *kp, uint32_t k, int m, int64_t now)
{
    size_t usable, need;

    window_expire(kp, now);
    if (kp->keys[k].last429 == 0) {
        if (kp->qcap < kp->cap) {
            struct recent *q = malloc(kp->cap * sizeof *q);
            if (q == NULL)
                return 0;
            for (size_t i = 0; i < kp->qlen; i++)
                q[i] = kp->q[(kp->qhead + i) % kp->qcap];
            free(kp->q);
            kp->q = q;
            kp->qhead = 0;
            kp->qcap = kp->cap;
        }
        struct recent *x = &kp->q[(kp->qhead + kp->qlen++) % kp->qcap];
        x->ts = now;
        x->key = k;
        x->model = m;
        x->per_day = 0;
        kp->keys[k].last429 = now;
    }
    roll_throttle_window(kp, now);
    kp->win_429++;
    usable = kp->live - kp->ndisabled;
    need = usable * GB_THROTTLE_SHARE_PCT / 100;
    if (need < GB_THROTTLE_MIN_KEYS)
        need = GB_THROTTLE_MIN_KEYS;
    if (kp->qlen < need)
        return 0;
    /* many keys answering 429 is not enough under heavy traffic, where a few
     * per cent of 429s reach every key within the window: most attempts
     * must be failing that way too */
    if ((kp->win_429 + kp->prev_429) * 100 <
        (kp->win_picks + kp->prev_picks) * GB_THROTTLE_SHARE_PCT)
        return 0;
    /* throttled: the per-minute cooldowns of the window were not the keys'
     * fault; lift them */
    size_t distinct = kp->qlen;
    for (; kp->qlen > 0; kp->qhead = (kp->qhead + 1) % kp->qcap, kp->qlen--) {
        struct recent *x = &kp->q[kp->qhead];
        struct model_slot *ms = &kp->models[x->model];
        if (x->model > 0 && ms->until != NULL && x->key < ms->until_cap)
            ms->until[x->key] = 0;
        else if (x->model == 0)
            kp->keys[x->key].key_until = 0;
        kp->keys[x->key].last429 = 0;
        refresh_all(kp, x->key, now);
    }
    if (kp->throttle_ended != 0 && now - kp->throttle_ended < 2 * kp->throttle_ms)
        kp->throttle_ms =
            kp->throttle_ms * 2 > GB_THROTTLE_MAX_MS ? GB_THROTTLE_MAX_MS : kp->throttle_ms * 2;
    else
        kp->throttle_ms = GB_THROTTLE_FIRST_MS;
    kp->throttle_until = now + kp->throttle_ms;
    kp->throttle_ended = kp->throttle_until;
    gb_warn("upstream is throttling the gateway: 429 from %zu of %zu usable keys within %d s; "
            "pausing all requests for %lld ms (keys are not blamed)",
            distinct, usable, GB_THROTTLE_WINDOW_MS / 1000, (long long)kp->throttle_ms);
    return 1;
}

static int64_t limited_until(struct gb_keypool *kp, const struct gb_key_report *rep, int64_t now)
{
    int64_t until;

    if (rep != NULL && rep->per_day)
        return gb_keypool_pacific_midnight_after(now);
    if (rep != NULL && rep->cooldown_ms > 0) {
        int64_t c =
            rep->cooldown_ms > GB_KEY_MAX_COOLDOWN_MS ? GB_KEY_MAX_COOLDOWN_MS : rep->cooldown_ms;
        return now + c;
    }
    /* no retry delay: a per-minute limit frees up at the next minute */
    until = now - now % GB_MINUTE_MS + GB_MINUTE_MS;
    (void)kp;
    return until - now < 1000 ? until + GB_MINUTE_MS : until;
}

void gb_keypool_report(struct gb_keypool *kp, uint32_t idx, const char *model,
                       enum gb_key_outcome outcome, const struct gb_key_report *rep)
{
    struct gb_key_snapshot snap;
    char errbuf[160];
    int changed = 0, newly_disabled = 0, throttled = 0;
    int64_t now, until = 0;
    struct key *k;
    long failures = 0;
    char id[32];
    gb_keypool_change_cb on_change;
    void *ud;

    pthread_mutex_lock(&kp->lock);
    if (idx >= kp->n || kp->keys[idx].deleted) {
        pthread_mutex_unlock(&kp->lock);
        return;
    }
    now = kp->o.now_ms();
    k = &kp->keys[idx];
    switch (outcome) {
    case GB_KEY_OK:
        changed = k->failures != 0;
        k->failures = 0;
        k->successes++;
        if (rep != NULL && rep->latency_ms > 0)
            k->latency_ms =
                k->latency_ms ? (k->latency_ms * 7 + rep->latency_ms) / 8 : rep->latency_ms;
        break;
    case GB_KEY_FAILED:
        k->failures++;
        changed = 1;
        if (rep != NULL && rep->error != NULL)
            snprintf(k->last_error, sizeof k->last_error, "%s", rep->error);
        if (k->failures >= kp->o.max_failures && !k->disabled) {
            mark_disabled(kp, idx, 1);
            newly_disabled = 1;
            refresh_all(kp, idx, now);
        }
        break;
    case GB_KEY_LIMITED:
        if (rep != NULL && rep->error != NULL)
            snprintf(k->last_error, sizeof k->last_error, "%s", rep->error);
        if (kp->throttle_until > now)
            break; /* the pool is throttled, not this key */
        until = limited_until(kp, rep, now);
        cool_model(kp, model_slot(kp, model), idx, until, now);
        if (rep == NULL || !rep->per_day)
            throttled = detect_throttle(kp, idx, model_slot(kp, model), now);
        changed = !throttled;
        break;
    case GB_KEY_NEUTRAL:
        break;
    }
    failures = k->failures;
    snprintf(id, sizeof id, "%s", k->id);
    if (changed)
        snapshot(kp, idx, &snap, errbuf, sizeof errbuf, now);
    on_change = kp->o.on_change;
    ud = kp->o.ud;
    pthread_mutex_unlock(&kp->lock);

    if (newly_disabled)
        gb_warn("key %s disabled after %ld consecutive failures", id, failures);
    else if (outcome == GB_KEY_LIMITED && until != 0 && !throttled)
        gb_debug("key %s cooling down for %s for %lld ms", id,
                 model && *model ? model : "all models", (long long)(until - now));
    if (changed && on_change != NULL)
        on_change(ud, &snap);
}

/* ---- administration ----------------------------------------------------- */

static void notify(struct gb_keypool *kp, uint32_t idx)
{
    struct gb_key_snapshot snap;
    char errbuf[160];
    gb_keypool_change_cb on_change;
    void *ud;

    pthread_mutex_lock(&kp->lock);
    on_change = kp->o.on_change;
    ud = kp->o.ud;
    if (on_change != NULL)
        snapshot(kp, idx, &snap, errbuf, sizeof errbuf, kp->o.now_ms());
    pthread_mutex_unlock(&kp->lock);
    if (on_change != NULL)
        on_change(ud, &snap);
}

void gb_keypool_set_callbacks(struct gb_keypool *kp, gb_keypool_change_cb on_change, void *ud,
                              gb_keypool_pick_cb on_pick, void *pick_ud)
{
    pthread_mutex_lock(&kp->lock);
    kp->o.on_change = on_change;
    kp->o.ud = ud;
    kp->o.on_pick = on_pick;
    kp->o.pick_ud = pick_ud;
    pthread_mutex_unlock(&kp->lock);
}

int gb_keypool_add(struct gb_keypool *kp, const char *key, int from_admin, uint32_t *existing)
{
    long found;
    int rc;

    /* keys an admin pastes are checked; keys of .env are taken as they are */
    if (from_admin ? !key_ok(key) : key[0] == '\0')
        return GB_EINVAL;
    pthread_mutex_lock(&kp->lock);
    found = lookup(kp, key, hash_key(key));
    if (found >= 0 && !kp->keys[found].deleted) {
        pthread_mutex_unlock(&kp->lock);
        if (existing != NULL)
            *existing = (uint32_t)found;
        return GB_EAGAIN;
    }
    if (found >= 0) { /* re-added after a delete: the slot comes back, clean */
        struct key *k = &kp->keys[found];
        k->deleted = k->disabled = 0; /* a deleted key is not counted as disabled */
        k->failures = 0;
        k->last_error[0] = '\0';
        k->from_admin = from_admin;
        kp->live++;
        refresh_all(kp, (uint32_t)found, kp->o.now_ms());
        rc = (int)found;
    } else {
        rc = add_locked(kp, key, from_admin);
    }
    pthread_mutex_unlock(&kp->lock);
    if (rc >= 0)
        notify(kp, (uint32_t)rc);
    return rc;
}

int gb_keypool_delete(struct gb_keypool *kp, uint32_t idx)
{
    pthread_mutex_lock(&kp->lock);
    if (idx >= kp->n || kp->keys[idx].deleted) {
        pthread_mutex_unlock(&kp->lock);
        return GB_EINVAL;
    }
    if (kp->keys[idx].disabled)
        kp->ndisabled--;
    kp->keys[idx].deleted = 1;
    kp->live--;
    refresh_all(kp, idx, kp->o.now_ms());
    pthread_mutex_unlock(&kp->lock);
    notify(kp, idx);
    return 0;
}

int gb_keypool_set_disabled(struct gb_keypool *kp, uint32_t idx, int disabled)
{
    int64_t now;

    pthread_mutex_lock(&kp->lock);
    if (idx >= kp->n || kp->keys[idx].deleted) {
        pthread_mutex_unlock(&kp->lock);
        return GB_EINVAL;
    }
    now = kp->o.now_ms();
    mark_disabled(kp, idx, disabled);
    if (!disabled) {
        kp->keys[idx].failures = 0;
        kp->keys[idx].key_until = 0;
        for (size_t m = 1; m < kp->nmodels; m++)
            if (kp->models[m].until != NULL && idx < kp->models[m].until_cap)
                kp->models[m].until[idx] = 0;
    }
    refresh_all(kp, idx, now);
    pthread_mutex_unlock(&kp->lock);
    notify(kp, idx);
    return 0;
}

int gb_keypool_reset_failures(struct gb_keypool *kp, uint32_t idx)
{
    pthread_mutex_lock(&kp->lock);
    if (idx >= kp->n || kp->keys[idx].deleted) {
        pthread_mutex_unlock(&kp->lock);
        return GB_EINVAL;
    }
    kp->keys[idx].failures = 0;
    kp->keys[idx].last_error[0] = '\0';
    pthread_mutex_unlock(&kp->lock);
    notify(kp, idx);
    return 0;
}

void gb_keypool_configure(struct gb_keypool *kp, long max_failures, enum gb_key_strategy strategy,
                          long rpm_limit, long rpd_limit)
{
    pthread_mutex_lock(&kp->lock);
    kp->o.max_failures = max_failures > 0 ? max_failures : 1;
    kp->o.strategy = strategy;
    kp->o.rpm_limit = rpm_limit;
    kp->o.rpd_limit = rpd_limit;
    pthread_mutex_unlock(&kp->lock);
}

int gb_keypool_find(struct gb_keypool *kp, const char *key, uint32_t *idx)
{
    long found;

    pthread_mutex_lock(&kp->lock);
    found = lookup(kp, key, hash_key(key));
    if (found >= 0 && kp->keys[found].deleted)
        found = -1;
    pthread_mutex_unlock(&kp->lock);
    if (found < 0)
        return GB_EINVAL;
    *idx = (uint32_t)found;
    return 0;
}

int gb_keypool_info(struct gb_keypool *kp, uint32_t idx, struct gb_key_info *info)
{
    int64_t now;
    struct key *k;

    pthread_mutex_lock(&kp->lock);
    if (idx >= kp->n || kp->keys[idx].deleted) {
        pthread_mutex_unlock(&kp->lock);
        return GB_EINVAL;
    }
    now = kp->o.now_ms();
    k = &kp->keys[idx];
    roll_windows(k, now);
    memset(info, 0, sizeof *info);
    info->idx = idx;
    snprintf(info->id, sizeof info->id, "%s", k->id);
    memcpy(info->hash, k->sha, sizeof info->hash);
    info->disabled = k->disabled;
    info->from_admin = k->from_admin;
    info->failures = k->failures;
    snprintf(info->last_error, sizeof info->last_error, "%s", k->last_error);
    info->requests = k->requests;
    info->successes = k->successes;
    info->minute_count = k->minute_count;
    info->day_count = k->day_count;
    info->latency_ms = k->latency_ms;
    info->last_used_ms = k->last_used;
    if (k->key_until > now) {
        info->cool_model[info->ncool][0] = '\0';
        info->cool_until[info->ncool++] = k->key_until;
    }
    for (size_t m = 1; m < kp->nmodels; m++) {
        struct model_slot *ms = &kp->models[m];
        if (ms->until != NULL && idx < ms->until_cap && ms->until[idx] > now) {
            snprintf(info->cool_model[info->ncool], sizeof info->cool_model[0], "%s", ms->name);
            info->cool_until[info->ncool++] = ms->until[idx];
        }
    }
    pthread_mutex_unlock(&kp->lock);
    return 0;
}

size_t gb_keypool_disabled(struct gb_keypool *kp, uint32_t *out, size_t max)
{
    size_t n = 0;

    pthread_mutex_lock(&kp->lock);
    for (size_t i = 0; i < kp->n && n < max; i++)
        if (!kp->keys[i].deleted && kp->keys[i].disabled)
            out[n++] = (uint32_t)i;
    pthread_mutex_unlock(&kp->lock);
    return n;
}

void gb_keypool_restore(struct gb_keypool *kp, uint32_t idx, int disabled, long failures,
                        const char *last_error, size_t ncool, const char *const *models,
                        const int64_t *until_ms)
{
    int64_t now;

    pthread_mutex_lock(&kp->lock);
    if (idx >= kp->n) {
        pthread_mutex_unlock(&kp->lock);
        return;
    }
    now = kp->o.now_ms();
    mark_disabled(kp, idx, disabled);
    kp->keys[idx].failures = failures;
    if (last_error != NULL)
        snprintf(kp->keys[idx].last_error, sizeof kp->keys[idx].last_error, "%s", last_error);
    for (size_t c = 0; c < ncool; c++)
        if (until_ms[c] > now)
            cool_model(kp, model_slot(kp, models[c]), idx, until_ms[c], now);
    refresh_all(kp, idx, now);
    pthread_mutex_unlock(&kp->lock);
}

void gb_keypool_apply_remote(struct gb_keypool *kp, const struct gb_key_remote *rs)
{
    uint32_t idx;
    int64_t now;
    long found;

    pthread_mutex_lock(&kp->lock);
    found = -1;
    for (size_t i = 0; i < kp->n; i++) {
        if (strcmp(kp->keys[i].sha, rs->hash) == 0) {
            found = (long)i;
            break;
        }
    }
    if (found < 0 || kp->keys[found].deleted) {
        if (rs->deleted || rs->secret == NULL || rs->secret[0] == '\0') {
            pthread_mutex_unlock(&kp->lock);
            return;
        }
        if (found < 0) {
            int rc = add_locked(kp, rs->secret, 1);
            if (rc < 0) {
                pthread_mutex_unlock(&kp->lock);
                return;
            }
            found = rc;
        } else {
            kp->keys[found].deleted = 0;
            kp->keys[found].disabled = 0;
            kp->keys[found].from_admin = 1;
            kp->live++;
        }
    }
    idx = (uint32_t)found;
    now = kp->o.now_ms();
    if (rs->deleted) {
        if (kp->keys[idx].disabled)
            kp->ndisabled--;
        kp->keys[idx].deleted = 1;
        kp->live--;
        refresh_all(kp, idx, now);
        pthread_mutex_unlock(&kp->lock);
        return;
    }
    mark_disabled(kp, idx, rs->disabled);
    kp->keys[idx].failures = rs->failures;
    if (rs->last_error != NULL)
        snprintf(kp->keys[idx].last_error, sizeof kp->keys[idx].last_error, "%s", rs->last_error);
    if (!rs->disabled && rs->ncool == 0) {
        /* enabled by hand elsewhere: cooldowns were cleared there */
        kp->keys[idx].key_until = 0;
        for (size_t m = 1; m < kp->nmodels; m++)
            if (kp->models[m].until != NULL && idx < kp->models[m].until_cap)
                kp->models[m].until[idx] = 0;
    }
    for (size_t c = 0; c < rs->ncool; c++)
        if (rs->cool_until[c] > now)
            cool_model(kp, model_slot(kp, rs->cool_model[c]), idx, rs->cool_until[c], now);
    refresh_all(kp, idx, now);
    pthread_mutex_unlock(&kp->lock);
}

void gb_keypool_fleet_usage(struct gb_keypool *kp, uint32_t idx, int64_t minute_start,
                            int64_t minute_count, int64_t day_start, int64_t day_count)
{
    int64_t now;
    struct key *k;

    pthread_mutex_lock(&kp->lock);
    if (idx >= kp->n) {
        pthread_mutex_unlock(&kp->lock);
        return;
    }
    now = kp->o.now_ms();
    k = &kp->keys[idx];
    roll_windows(k, now);
    if (k->minute_start == minute_start && minute_count > k->minute_count)
        k->minute_count = minute_count;
    if (k->day_start == day_start && day_count > k->day_count)
        k->day_count = day_count;
    if (kp->o.rpd_limit > 0 && k->day_count >= kp->o.rpd_limit)
        cool_model(kp, 0, idx, k->day_end, now);
    else if (kp->o.rpm_limit > 0 && k->minute_count >= kp->o.rpm_limit)
        cool_model(kp, 0, idx, k->minute_start + GB_MINUTE_MS, now);
    pthread_mutex_unlock(&kp->lock);
}

void gb_keypool_randomize_cursor(struct gb_keypool *kp)
{
    pthread_mutex_lock(&kp->lock);
    if (kp->n > 0)
        for (size_t m = 0; m <= GB_KEYPOOL_MAX_MODELS; m++)
            kp->models[m].cursor = (size_t)(gb_rand64() % kp->n);
    pthread_mutex_unlock(&kp->lock);
}

size_t gb_keypool_sync(struct gb_keypool *kp, const struct gb_strlist *list)
{
    size_t changes = 0, n;

    for (size_t i = 0; i < list->n; i++)
        if (gb_keypool_add(kp, list->v[i], 0, NULL) >= 0)
            changes++;
    n = gb_keypool_slots(kp);
    for (size_t i = 0; i < n; i++) {
        int drop;
        pthread_mutex_lock(&kp->lock);
        drop = !kp->keys[i].deleted && !kp->keys[i].from_admin &&
               !gb_strlist_has(list, kp->keys[i].key);
        pthread_mutex_unlock(&kp->lock);
        if (drop && gb_keypool_delete(kp, (uint32_t)i) == 0)
            changes++;
    }
    return changes;
}

/* ---- stats -------------------------------------------------------------- */

void gb_keypool_stats(struct gb_keypool *kp, struct gb_keypool_stats *out)
{
    int64_t now;

    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&kp->lock);
    now = kp->o.now_ms();
    out->total = kp->live;
    for (size_t i = 0; i < kp->n; i++) {
        struct key *k = &kp->keys[i];
        int cooling = k->key_until > now;
        if (k->deleted)
            continue;
        for (size_t m = 1; m < kp->nmodels && !cooling; m++)
            cooling = kp->models[m].until != NULL && i < kp->models[m].until_cap &&
                      kp->models[m].until[i] > now;
        if (k->disabled)
            out->disabled++;
        else if (cooling)
            out->cooling++;
        else
            out->usable++;
    }
    out->throttled = kp->throttle_until > now;
    out->throttle_ms_left = out->throttled ? kp->throttle_until - now : 0;
    pthread_mutex_unlock(&kp->lock);
}
