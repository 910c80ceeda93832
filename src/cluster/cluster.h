/*
 * cluster.h - several gateway instances sharing one key pool through Redis
 * (issue 7).  Unset REDIS_URL: none of this runs (single-instance mode).
 *
 * One cluster thread owns its own event_base and an asynchronous hiredis
 * connection pair (commands + a subscriber), so no request path ever waits
 * on Redis.  Workers hand it work through a bounded queue:
 *   - key state changes (gb_cluster_publish_key, from the pool's on_change):
 *     written to the hash gb:key:<hash> (with the secret for admin-added keys,
 *     so other instances can use them) and published on channel gb:keys;
 *   - picks (gb_cluster_count_pick, from the pool's on_pick): INCR of
 *     gb:rpm:<hash>:<minute_start> and gb:rpd:<hash>:<day_start> with EXPIRE;
 *     the replies carry the fleet-wide counts back into the pool
 *     (gb_keypool_fleet_usage) so KEY_RPM_LIMIT/KEY_RPD_LIMIT hold fleet-wide.
 * Messages from other instances are applied with gb_keypool_apply_remote
 * (which does not call on_change: no echo).  At connect (and reconnect) the
 * instance reads every gb:key:* hash and applies it, then publishes its own
 * local changes made while Redis was away (reconcile).  Redis down: requests
 * go on with the local state; the failure is logged once; reconnection
 * retries with backoff (GB_CLUSTER_RETRY_MIN_MS .. GB_CLUSTER_RETRY_MAX_MS).
 */
#ifndef GB_CLUSTER_CLUSTER_H
#define GB_CLUSTER_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "keypool/keypool.h"

#define GB_CLUSTER_QUEUE_MAX 65536
#define GB_CLUSTER_RETRY_MIN_MS 500
#define GB_CLUSTER_RETRY_MAX_MS 10000

struct gb_cluster;

/* Parses redis://[:password@]host[:port][/db] (also redis://user:password@...).
 * Starts the cluster thread and begins connecting (returns before it is
 * connected).  Returns NULL with a message in err for a bad URL or when the
 * thread cannot start. */
struct gb_cluster *gb_cluster_start(const char *redis_url, struct gb_keypool *kp, char *err,
                                    size_t errlen);

/* Stops the thread, closes the connections, frees everything.  NULL is fine. */
void gb_cluster_stop(struct gb_cluster *c);

/* Queue a key state change to share (copied; never blocks; dropped and
 * counted when the queue is full).  A gb_keypool_change_cb-compatible
 * wrapper is gb_cluster_on_change(ud = the cluster, s). */
void gb_cluster_publish_key(struct gb_cluster *c, const struct gb_key_snapshot *s);

/* Queue one pick for the fleet-wide counters (a gb_keypool_pick_cb with ud =
 * the cluster). */
void gb_cluster_on_pick(void *ud, uint32_t idx, const char *hash, int64_t minute_start,
                        int64_t day_start);

/* 1 while connected to Redis. */
int gb_cluster_connected(const struct gb_cluster *c);

/* Messages dropped because the queue was full. */
uint64_t gb_cluster_dropped(const struct gb_cluster *c);

#endif
