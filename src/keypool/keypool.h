/*
 * keypool.h - the pool of Gemini API keys: round-robin pick, failure
 * counting, cooldowns and disabling (DESIGN.md §5).
 *
 * Thread-safe: one mutex guards the health fields; the key strings are
 * immutable for the pool's lifetime, so the pointers gb_keypool_key()
 * returns stay valid until gb_keypool_free().  A key is identified by its
 * index (0 .. size-1).
 */
#ifndef GB_KEYPOOL_KEYPOOL_H
#define GB_KEYPOOL_KEYPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/* Cooldown after a 429 that names no retry delay, in milliseconds. */
#define GB_KEY_DEFAULT_COOLDOWN_MS (60 * 1000)
/* Longest cooldown a 429 can impose, in milliseconds (a day). */
#define GB_KEY_MAX_COOLDOWN_MS (24LL * 3600 * 1000)
/* Retry-After, in milliseconds, when every key is disabled. */
#define GB_KEY_ALL_DISABLED_RETRY_MS (60 * 1000)

struct gb_keypool;

/* What an attempt taught us about its key. */
enum gb_key_outcome {
    GB_KEY_OK,       /* 2xx: consecutive failures reset */
    GB_KEY_FAILED,   /* invalid, revoked, unauthorized: +1 failure, disabled at max */
    GB_KEY_LIMITED,  /* 429: cooled down for cooldown_ms */
    GB_KEY_NEUTRAL   /* 5xx, timeout, client error: not the key's fault */
};

struct gb_keypool_stats {
    size_t total, usable, cooling, disabled;
};

/* Builds a pool from the key list (duplicates dropped).  max_failures >= 1.
 * Returns NULL on out-of-memory.  An empty pool is valid. */
struct gb_keypool *gb_keypool_new(const struct gb_strlist *keys, long max_failures);

void gb_keypool_free(struct gb_keypool *kp);

/* Number of keys in the pool. */
size_t gb_keypool_size(const struct gb_keypool *kp);

/*
 * Picks the next usable key in round-robin order, preferring keys not in
 * tried[0..ntried) (keys this request already used); a tried key is picked
 * again only when no other is usable.  Returns 0 with *idx set;
 * GB_ENOKEY when the pool is empty; GB_EBUSY when every key is disabled or
 * cooling, with *retry_after_ms set to when the first one cools off.
 */
int gb_keypool_pick(struct gb_keypool *kp, const uint32_t *tried, size_t ntried, uint32_t *idx,
                    int64_t *retry_after_ms);

/* The key string at idx (borrowed, valid for the pool's lifetime). */
const char *gb_keypool_key(const struct gb_keypool *kp, uint32_t idx);

/* A masked id for logs, e.g. "#3...Ab12" (borrowed, same lifetime). */
const char *gb_keypool_key_id(const struct gb_keypool *kp, uint32_t idx);

/* Records the outcome of an attempt.  cooldown_ms is used with
 * GB_KEY_LIMITED (<= 0: the default cooldown). */
void gb_keypool_report(struct gb_keypool *kp, uint32_t idx, enum gb_key_outcome outcome,
                       int64_t cooldown_ms);

/* Counts keys by state. */
void gb_keypool_stats(struct gb_keypool *kp, struct gb_keypool_stats *out);

#endif
