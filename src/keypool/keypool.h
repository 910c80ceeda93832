/*
 * keypool.h - the pool of Gemini API keys: selection, failure counting,
 * quota-aware cooldowns per (key, model), local rate limits, pool-wide
 * throttling, disabling and re-enabling (DESIGN.md §5, issue 5).
 *
 * Thread-safe: one mutex guards everything; every call is short.  A key is
 * identified by its slot index, stable for the pool's lifetime (a deleted
 * key's slot is never reused, and its string stays allocated until
 * gb_keypool_free, so a request still holding the index stays safe).
 *
 * Cost: picking skips unusable keys through a two-level bitmap per model
 * (one bit per key, one summary bit per 64 keys), so a pick costs a few word
 * operations whatever the pool size (50,000 keys: at most ~13 summary words
 * scanned); cooldown expiry is a binary heap per model.  Memory: ~2 bits per
 * key per model seen, plus 8 bytes per key per model that ever cooled down.
 */
#ifndef GB_KEYPOOL_KEYPOOL_H
#define GB_KEYPOOL_KEYPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/* Cooldown after a 429 that names no retry delay and no quota, in ms. */
#define GB_KEY_DEFAULT_COOLDOWN_MS (60 * 1000)
/* Longest cooldown a 429 can impose, in ms (a day and a bit). */
#define GB_KEY_MAX_COOLDOWN_MS (25LL * 3600 * 1000)
/* Retry-After, in ms, when every key is disabled. */
#define GB_KEY_ALL_DISABLED_RETRY_MS (60 * 1000)
/* Models tracked with their own cooldowns; later ones share one slot. */
#define GB_KEYPOOL_MAX_MODELS 32
/* Pool-wide throttling: 429s from at least this share of the usable keys
 * (and at least GB_THROTTLE_MIN_KEYS keys) within GB_THROTTLE_WINDOW_MS, while
 * 429s are also at least this share of the attempts of the last one or two
 * windows, mean the upstream throttles us, not the keys. */
#define GB_THROTTLE_WINDOW_MS 10000
#define GB_THROTTLE_MIN_KEYS 3
#define GB_THROTTLE_SHARE_PCT 50
/* First and largest pool-wide backoff, in ms (it doubles while it recurs). */
#define GB_THROTTLE_FIRST_MS 2000
#define GB_THROTTLE_MAX_MS 60000
/* Local limit windows, in ms. */
#define GB_MINUTE_MS 60000LL
#define GB_DAY_MS (24LL * 3600 * 1000)

struct gb_keypool;

enum gb_key_strategy { GB_PICK_ROUND_ROBIN, GB_PICK_RANDOM, GB_PICK_LEAST_USED };

/* What an attempt taught us about its key. */
enum gb_key_outcome {
    GB_KEY_OK,      /* 2xx: consecutive failures reset */
    GB_KEY_FAILED,  /* invalid, revoked, unauthorized: +1 failure, disabled at max */
    GB_KEY_LIMITED, /* 429: cooled down for this model */
    GB_KEY_NEUTRAL  /* 5xx, timeout, client error: not the key's fault */
};

/* Details of an outcome (all optional). */
struct gb_key_report {
    int64_t cooldown_ms; /* GB_KEY_LIMITED: from retryDelay / Retry-After; <= 0 unknown */
    int per_day;         /* GB_KEY_LIMITED: a per-day quota: cool until the daily reset */
    const char *error;   /* short masked text for the key's last error, or NULL */
    int latency_ms;      /* GB_KEY_OK: how long the attempt took, or 0 */
};

/* A key's state changed in a way worth persisting.  Called without the
 * pool's lock held, on the reporting thread. */
struct gb_key_snapshot {
    uint32_t idx;
    const char *key;  /* borrowed for the call */
    const char *id;   /* masked id */
    const char *hash; /* hex SHA-256 of the key */
    int disabled, deleted, from_admin;
    long failures;
    const char *last_error;
    size_t ncool;                                      /* cooldowns still running */
    const char *cool_model[GB_KEYPOOL_MAX_MODELS + 1]; /* "" = every model */
    int64_t cool_until[GB_KEYPOOL_MAX_MODELS + 1];     /* wall clock, ms */
};
typedef void (*gb_keypool_change_cb)(void *ud, const struct gb_key_snapshot *s);

/* A key was picked (for fleet-wide usage counting).  Called without the
 * pool's lock, on the picking thread; hash is borrowed for the call. */
typedef void (*gb_keypool_pick_cb)(void *ud, uint32_t idx, const char *hash, int64_t minute_start,
                                   int64_t day_start);

struct gb_keypool_opts {
    long max_failures; /* >= 1 */
    enum gb_key_strategy strategy;
    long rpm_limit, rpd_limit;      /* per key, 0 = off */
    int64_t (*now_ms)(void);        /* wall clock in ms; NULL = the real one (tests inject) */
    gb_keypool_change_cb on_change; /* may be NULL */
    void *ud;
    gb_keypool_pick_cb on_pick; /* may be NULL */
    void *pick_ud;
};

struct gb_keypool_stats {
    size_t total, usable, cooling, disabled;
    int throttled;
    int64_t throttle_ms_left;
};

/* One key as the admin API shows it (no secret). */
struct gb_key_info {
    uint32_t idx;
    char id[32];
    char hash[65];
    int disabled, from_admin;
    long failures;
    char last_error[160];
    int64_t requests, successes;
    int64_t minute_count, day_count; /* in the local-limit windows */
    int latency_ms;                  /* moving average */
    int64_t last_used_ms;
    size_t ncool;
    char cool_model[GB_KEYPOOL_MAX_MODELS + 1][64];
    int64_t cool_until[GB_KEYPOOL_MAX_MODELS + 1];
};

/* Builds a pool from the key list (duplicates dropped).  Returns NULL on
 * out-of-memory.  An empty pool is valid. */
struct gb_keypool *gb_keypool_new(const struct gb_strlist *keys, const struct gb_keypool_opts *o);

void gb_keypool_free(struct gb_keypool *kp);

/* Keys in the pool (deleted ones not counted). */
size_t gb_keypool_size(struct gb_keypool *kp);
/* Slots ever used (indices are 0 .. slots-1). */
size_t gb_keypool_slots(struct gb_keypool *kp);

/*
 * Picks a usable key for model (NULL or "": ignore per-model cooldowns, as
 * for a model list), by the pool's strategy, preferring keys not in
 * tried[0..ntried).  Counts the pick against the local limits.  Returns 0
 * with *idx; GB_ENOKEY when the pool is empty; GB_EBUSY when every key is
 * disabled, cooling or at its local limit for that model; GB_EAGAIN while a
 * pool-wide throttle is on.  On GB_EBUSY/GB_EAGAIN *retry_after_ms says when
 * to come back.
 */
int gb_keypool_pick(struct gb_keypool *kp, const char *model, const uint32_t *tried, size_t ntried,
                    uint32_t *idx, int64_t *retry_after_ms);

/* Copies the key string at idx into out (outlen bytes; keys longer than
 * that are cut).  Returns out. */
char *gb_keypool_key(struct gb_keypool *kp, uint32_t idx, char *out, size_t outlen);

/* A masked id for logs, e.g. "#3...Ab12" (borrowed, stays valid until
 * gb_keypool_free). */
const char *gb_keypool_key_id(struct gb_keypool *kp, uint32_t idx);

/* Hex SHA-256 of the key at idx: how the store knows a key without holding
 * it (borrowed, 64 digits, stays valid until gb_keypool_free). */
const char *gb_keypool_key_hash(struct gb_keypool *kp, uint32_t idx);

/* Finds a key by its hash; returns 0 with *idx, or GB_EINVAL. */
int gb_keypool_find_hash(struct gb_keypool *kp, const char *hash, uint32_t *idx);

/* Records the outcome of an attempt for model (may be NULL). */
void gb_keypool_report(struct gb_keypool *kp, uint32_t idx, const char *model,
                       enum gb_key_outcome outcome, const struct gb_key_report *rep);

/* Counts keys by state (cooling: cooling for at least one model or at a
 * local limit). */
void gb_keypool_stats(struct gb_keypool *kp, struct gb_keypool_stats *out);

/* --- administration ------------------------------------------------- */

/* Adds a key.  Returns its index (>= 0), or GB_EINVAL for a malformed key
 * (under 6 or over 256 bytes, or characters other than letters, digits,
 * '-', '_' and '.'), GB_EAGAIN when it
 * is already in the pool (*idx... returned in *existing when not NULL), or
 * GB_ENOMEM.  from_admin marks keys added at run time. */
int gb_keypool_add(struct gb_keypool *kp, const char *key, int from_admin, uint32_t *existing);

/* Removes the key at idx from selection (its slot stays). */
int gb_keypool_delete(struct gb_keypool *kp, uint32_t idx);

/* Enables or disables by hand; enabling also clears failures and cooldowns. */
int gb_keypool_set_disabled(struct gb_keypool *kp, uint32_t idx, int disabled);

/* Resets the failure count (and the last error). */
int gb_keypool_reset_failures(struct gb_keypool *kp, uint32_t idx);

/* Replaces the change and pick callbacks (and their ud) of the options
 * given to gb_keypool_new, e.g. once the cluster started after the pool.
 * Safe while other threads use the pool: a callback already running may
 * still get the old ud, so keep the old ud valid until the pool is freed. */
void gb_keypool_set_callbacks(struct gb_keypool *kp, gb_keypool_change_cb on_change, void *ud,
                              gb_keypool_pick_cb on_pick, void *pick_ud);

/* Changes the selection settings (SIGHUP reload); on_change, ud and now_ms
 * stay as they were. */
void gb_keypool_configure(struct gb_keypool *kp, long max_failures, enum gb_key_strategy strategy,
                          long rpm_limit, long rpd_limit);

/* Finds a key by its string; returns 0 with *idx, or GB_EINVAL. */
int gb_keypool_find(struct gb_keypool *kp, const char *key, uint32_t *idx);

/* Fills info for idx; returns 0, or GB_EINVAL for a deleted/unknown slot. */
int gb_keypool_info(struct gb_keypool *kp, uint32_t idx, struct gb_key_info *info);

/* Lists the indices of disabled keys (up to max); returns the count. */
size_t gb_keypool_disabled(struct gb_keypool *kp, uint32_t *out, size_t max);

/* Restores a persisted state (start-up): disabled flag, failures, last error,
 * cooldowns (wall-clock until; model "" = all models). */
void gb_keypool_restore(struct gb_keypool *kp, uint32_t idx, int disabled, long failures,
                        const char *last_error, size_t ncool, const char *const *models,
                        const int64_t *until_ms);

/* State learned from another instance (through Redis). */
struct gb_key_remote {
    const char *hash;   /* which key (hex SHA-256) */
    const char *secret; /* the key itself, for a key another instance added; or NULL */
    int deleted, disabled;
    long failures;
    const char *last_error; /* or NULL */
    size_t ncool;
    const char *cool_model[GB_KEYPOOL_MAX_MODELS + 1]; /* "" = every model */
    int64_t cool_until[GB_KEYPOOL_MAX_MODELS + 1];     /* wall clock, ms */
};

/* Applies a remote state without calling on_change (no echo): a key another
 * instance deleted goes, one it added (secret given) comes, and disabled,
 * failures and cooldowns are taken over (cooldowns only lengthen). */
void gb_keypool_apply_remote(struct gb_keypool *kp, const struct gb_key_remote *rs);

/* Fleet-wide usage of key idx in the local-limit windows (from Redis):
 * when the fleet reached KEY_RPM_LIMIT / KEY_RPD_LIMIT the key cools down
 * here too until its window ends. */
void gb_keypool_fleet_usage(struct gb_keypool *kp, uint32_t idx, int64_t minute_start,
                            int64_t minute_count, int64_t day_start, int64_t day_count);

/* Starts round robin at a random key (several instances then do not all
 * hammer the first key after a start). */
void gb_keypool_randomize_cursor(struct gb_keypool *kp);

/* Makes the pool hold exactly the keys of list among those not added by an
 * admin (SIGHUP reload): new ones are added, missing ones deleted.  Returns
 * the number of changes. */
size_t gb_keypool_sync(struct gb_keypool *kp, const struct gb_strlist *list);

/* The next daily quota reset (midnight US Pacific time) after t (ms since
 * the epoch, UTC), in ms since the epoch. */
int64_t gb_keypool_pacific_midnight_after(int64_t t);

/* Parses KEY_STRATEGY; returns the strategy or -1. */
int gb_keypool_strategy_parse(const char *s);

#endif
