/*
 * keypool.c - key health and round-robin selection.
 *
 * Cost: a pick scans from the cursor past unusable keys, O(n) in the worst
 * case (every key cooling).  That is fine for pools of hundreds of keys;
 * issue 5 replaces the scan with per-state lists for very large pools.
 */
#include "keypool/keypool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

struct key {
    char *key;           /* the secret, immutable */
    char id[GB_MASK_MAX + 12]; /* "#<n>...<last4>", immutable */
    long failures;       /* consecutive failures */
    int disabled;
    int64_t cool_until;  /* monotonic ms; 0 = not cooling */
};

struct gb_keypool {
    pthread_mutex_t lock;
    struct key *keys;
    size_t n;
    size_t cursor; /* next index to try */
    long max_failures;
};

struct gb_keypool *gb_keypool_new(const struct gb_strlist *keys, long max_failures)
{
    struct gb_keypool *kp = calloc(1, sizeof *kp);
    char mask[GB_MASK_MAX];

    if (kp == NULL)
        return NULL;
    pthread_mutex_init(&kp->lock, NULL);
    kp->max_failures = max_failures > 0 ? max_failures : 1;
    if (keys->n > 0 && (kp->keys = calloc(keys->n, sizeof *kp->keys)) == NULL)
        goto fail;
    for (size_t i = 0; i < keys->n; i++) {
        int dup = 0;
        for (size_t j = 0; j < kp->n && !dup; j++)
            dup = strcmp(kp->keys[j].key, keys->v[i]) == 0;
        if (dup)
            continue;
        struct key *k = &kp->keys[kp->n];
        if ((k->key = strdup(keys->v[i])) == NULL)
            goto fail;
        snprintf(k->id, sizeof k->id, "#%zu%s", kp->n, gb_log_mask(k->key, mask));
        kp->n++;
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
    for (size_t i = 0; i < kp->n; i++)
        free(kp->keys[i].key);
    free(kp->keys);
    pthread_mutex_destroy(&kp->lock);
    free(kp);
}

size_t gb_keypool_size(const struct gb_keypool *kp)
{
    return kp->n;
}

static int usable(struct key *k, int64_t now)
{
    if (k->disabled)
        return 0;
    if (k->cool_until != 0 && k->cool_until <= now)
        k->cool_until = 0;
    return k->cool_until == 0;
}

static int was_tried(uint32_t i, const uint32_t *tried, size_t ntried)
{
    for (size_t j = 0; j < ntried; j++)
        if (tried[j] == i)
            return 1;
    return 0;
}

int gb_keypool_pick(struct gb_keypool *kp, const uint32_t *tried, size_t ntried, uint32_t *idx,
                    int64_t *retry_after_ms)
{
    int64_t now = gb_now_ms(), soonest = -1;
    size_t i, fallback = (size_t)-1;

    if (kp->n == 0)
        return GB_ENOKEY;
    pthread_mutex_lock(&kp->lock);
    for (size_t step = 0; step < kp->n; step++) {
        i = (kp->cursor + step) % kp->n;
        struct key *k = &kp->keys[i];
        if (!usable(k, now)) {
            if (!k->disabled && (soonest < 0 || k->cool_until < soonest))
                soonest = k->cool_until;
            continue;
        }
        if (was_tried((uint32_t)i, tried, ntried)) {
            if (fallback == (size_t)-1)
                fallback = i;
            continue;
        }
        kp->cursor = (i + 1) % kp->n;
        *idx = (uint32_t)i;
        pthread_mutex_unlock(&kp->lock);
        return 0;
    }
    if (fallback != (size_t)-1) {
        kp->cursor = (fallback + 1) % kp->n;
        *idx = (uint32_t)fallback;
        pthread_mutex_unlock(&kp->lock);
        return 0;
    }
    pthread_mutex_unlock(&kp->lock);
    *retry_after_ms = soonest < 0 ? GB_KEY_ALL_DISABLED_RETRY_MS : soonest - now;
    if (*retry_after_ms < 1)
        *retry_after_ms = 1;
    return GB_EBUSY;
}

const char *gb_keypool_key(const struct gb_keypool *kp, uint32_t idx)
{
    return kp->keys[idx].key;
}

const char *gb_keypool_key_id(const struct gb_keypool *kp, uint32_t idx)
{
    return kp->keys[idx].id;
}

void gb_keypool_report(struct gb_keypool *kp, uint32_t idx, enum gb_key_outcome outcome,
                       int64_t cooldown_ms)
{
    struct key *k;
    int newly_disabled = 0;

    if (idx >= kp->n)
        return;
    k = &kp->keys[idx];
    pthread_mutex_lock(&kp->lock);
    switch (outcome) {
    case GB_KEY_OK:
        k->failures = 0;
        break;
    case GB_KEY_FAILED:
        if (++k->failures >= kp->max_failures && !k->disabled)
            newly_disabled = k->disabled = 1;
        break;
    case GB_KEY_LIMITED:
        if (cooldown_ms <= 0)
            cooldown_ms = GB_KEY_DEFAULT_COOLDOWN_MS;
        if (cooldown_ms > GB_KEY_MAX_COOLDOWN_MS)
            cooldown_ms = GB_KEY_MAX_COOLDOWN_MS;
        k->cool_until = gb_now_ms() + cooldown_ms;
        break;
    case GB_KEY_NEUTRAL:
        break;
    }
    pthread_mutex_unlock(&kp->lock);
    if (newly_disabled)
        gb_warn("key %s disabled after %ld consecutive failures", k->id, k->failures);
    else if (outcome == GB_KEY_LIMITED)
        gb_info("key %s cooling down for %lld ms", k->id, (long long)cooldown_ms);
}

void gb_keypool_stats(struct gb_keypool *kp, struct gb_keypool_stats *out)
{
    int64_t now = gb_now_ms();

    memset(out, 0, sizeof *out);
    out->total = kp->n;
    pthread_mutex_lock(&kp->lock);
    for (size_t i = 0; i < kp->n; i++) {
        struct key *k = &kp->keys[i];
        if (k->disabled)
            out->disabled++;
        else if (usable(k, now))
            out->usable++;
        else
            out->cooling++;
    }
    pthread_mutex_unlock(&kp->lock);
}
