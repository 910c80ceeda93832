/*
 * probe.h - checks whether one key works, with a minimal request to
 * TEST_MODEL (a one-token generateContent), on a worker's loop.  Used by the
 * background re-check of disabled keys and by the admin "verify" actions.
 *
 * The outcome goes to the key pool: a key that answers comes back (enabled,
 * failures reset); one that is rejected counts a failure as any attempt does.
 */
#ifndef GB_UPSTREAM_PROBE_H
#define GB_UPSTREAM_PROBE_H

#include <stdint.h>

struct gb_worker;

/* Probes run at once per worker, at most; the rest wait their turn. */
#define GB_PROBE_CONCURRENCY 8
/* A probe's whole request may take this long, in ms. */
#define GB_PROBE_TIMEOUT_MS 20000

/* ok: 1 when the key works (2xx, or 429: valid but busy); status: the
 * upstream's HTTP status (0 for a transport error); error: short text. */
typedef void (*gb_probe_cb)(void *ud, uint32_t idx, int ok, long status, const char *error);

/* Queues a probe of key idx on worker w (call on w's thread).  cb may be
 * NULL.  Returns 0, or GB_ENOMEM (cb never called). */
int gb_probe_key(struct gb_worker *w, uint32_t idx, gb_probe_cb cb, void *ud);

/* Cancels every queued and running probe of w (callbacks are not called);
 * for shutdown. */
void gb_probe_cancel_all(struct gb_worker *w);

/* Starts the periodic re-check of disabled keys on w (every
 * CHECK_INTERVAL_HOURS; nothing when 0). */
int gb_probe_schedule(struct gb_worker *w);

#endif
