/*
 * cluster.h - several gateway instances sharing one key pool through Redis
 * (issue 7).  Unset REDIS_URL: none of this runs (single-instance mode).
 *
 * One cluster thread owns its own event_base and an asynchronous hiredis
 * connection pair (commands + a subscriber), so no request path ever waits
 * on Redis.  Workers hand it work through a bounded queue (a mutex held for
 * a pointer swap, and an event made active when the queue was empty):
 *   - key state changes (gb_cluster_on_change, from the pool's on_change):
 *     one Lua script stores the state as JSON in the hash gb:key:<hash>
 *     (field "json"; with the secret for admin-added keys, so other
 *     instances can use them) and publishes it on channel gb:keys;
 *   - picks (gb_cluster_on_pick, from the pool's on_pick): one Lua script
 *     does INCRBY + PEXPIRE of gb:rpm:<hash>:<minute_start> (2 minutes) and
 *     gb:rpd:<hash>:<day_start> (2 days); the reply carries the fleet-wide
 *     counts back into the pool (gb_keypool_fleet_usage), and when a count
 *     is at KEY_RPM_LIMIT / KEY_RPD_LIMIT the script also publishes it on
 *     gb:usage so every instance cools that key at once.
 * Picks made in the same pass of the cluster loop are summed per key (one
 * script call per key, not per request).
 *
 * Messages: {"from","hash","id","secret"?,"deleted","disabled","failures",
 * "last_error","cool":[{"model","until_ms"}]} on gb:keys and {"from",
 * "hash","minute_start","minute","day_start","day"} on gb:usage.  "from" is
 * a random id drawn at start, so an instance ignores its own messages.
 * Remote states are applied with gb_keypool_apply_remote (which does not
 * call on_change: no echo).
 *
 * At connect (and reconnect): AUTH/SELECT, SUBSCRIBE gb:keys gb:usage, then
 * SCAN gb:key:* and HGET each: every state found is applied, except for keys
 * changed here while Redis was away ("dirty": the last local state of each
 * is kept and written back, local wins).  Local states that differ from the
 * default (disabled, failures, cooldowns, admin-added) and that Redis does
 * not know are written too, so a Redis restarted empty is refilled.  Picks
 * made while away are summed and counted once it is back.
 *
 * Redis down or slow: requests go on with the local state; "redis
 * unreachable" is logged once per outage and "redis back" when it returns;
 * reconnection retries with backoff (GB_CLUSTER_RETRY_MIN_MS doubling up to
 * GB_CLUSTER_RETRY_MAX_MS).  A PING unanswered for GB_CLUSTER_TIMEOUT_MS (or
 * a connect/sync not done in that time) counts as down.  With more than
 * GB_CLUSTER_INFLIGHT_MAX commands awaiting replies, new work waits in the
 * dirty/usage tables (bounded by the number of keys) instead of piling up in
 * hiredis buffers.
 *
 * Threads: gb_cluster_on_change, gb_cluster_on_pick, gb_cluster_connected,
 * gb_cluster_dropped and gb_cluster_set_limits may be called from any
 * thread; start and stop from the main thread.
 */
#ifndef GB_CLUSTER_CLUSTER_H
#define GB_CLUSTER_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "keypool/keypool.h"

/* Queued changes and picks at most; beyond, new ones are dropped and counted. */
#define GB_CLUSTER_QUEUE_MAX 65536
/* Reconnection backoff, in ms: first delay and ceiling (doubles between). */
#define GB_CLUSTER_RETRY_MIN_MS 500
#define GB_CLUSTER_RETRY_MAX_MS 10000
/* Period of the cluster thread's housekeeping tick, in ms. */
#define GB_CLUSTER_TICK_MS 250
/* A PING is sent this often while connected, in ms. */
#define GB_CLUSTER_PING_MS 1000
/* Redis silent (PING, connect or initial sync) this long: unreachable, in ms. */
#define GB_CLUSTER_TIMEOUT_MS 3000
/* Commands awaiting a reply at most before new work waits locally. */
#define GB_CLUSTER_INFLIGHT_MAX 4096
/* Keys asked per SCAN step at (re)connect. */
#define GB_CLUSTER_SCAN_COUNT 500
/* Lifetime of the fleet-wide counters, in ms (a window plus margin). */
#define GB_CLUSTER_RPM_TTL_MS (2LL * 60 * 1000)
#define GB_CLUSTER_RPD_TTL_MS (2LL * 24 * 3600 * 1000)
/* At stop, how long queued changes may take to reach Redis, in ms. */
#define GB_CLUSTER_STOP_FLUSH_MS 1000
/* Longest REDIS_URL accepted, in bytes. */
#define GB_CLUSTER_URL_MAX 1024

struct gb_cluster;

/* Parses redis://[[user]:password@]host[:port][/db] (password and user may
 * be %-encoded; host may be [IPv6]).  Starts the cluster thread and begins
 * connecting (returns before it is connected).  kp is borrowed and must
 * outlive the cluster.  Returns NULL with a message in err (errlen bytes,
 * never holding the password) for a bad URL or when the thread cannot
 * start. */
struct gb_cluster *gb_cluster_start(const char *redis_url, struct gb_keypool *kp, char *err,
                                    size_t errlen);

/* Sends what is still queued (waiting up to GB_CLUSTER_STOP_FLUSH_MS for
 * Redis), stops the thread, closes the connections, frees everything.
 * Unhook the pool's callbacks first (gb_keypool_set_callbacks) or stop the
 * workers: later calls would touch freed memory.  NULL is fine. */
void gb_cluster_stop(struct gb_cluster *c);

/* Queue a key state change to share (copied; never blocks; dropped and
 * counted when the queue is full or memory is short). */
void gb_cluster_publish_key(struct gb_cluster *c, const struct gb_key_snapshot *s);

/* A gb_keypool_change_cb: ud is the cluster; same as gb_cluster_publish_key. */
void gb_cluster_on_change(void *ud, const struct gb_key_snapshot *s);

/* Queue one pick for the fleet-wide counters (a gb_keypool_pick_cb with ud =
 * the cluster; hash is copied). */
void gb_cluster_on_pick(void *ud, uint32_t idx, const char *hash, int64_t minute_start,
                        int64_t day_start);

/* The pool's KEY_RPM_LIMIT / KEY_RPD_LIMIT (0 = off), so a count reaching
 * one is announced to every instance.  Call after start and on reload. */
void gb_cluster_set_limits(struct gb_cluster *c, long rpm_limit, long rpd_limit);

/* 1 while connected to Redis and in sync (NULL: 0). */
int gb_cluster_connected(const struct gb_cluster *c);

/* Changes and picks dropped because the queue was full (NULL: 0). */
uint64_t gb_cluster_dropped(const struct gb_cluster *c);

#endif
