/*
 * curlev.h - libcurl multi interface driven by a libevent event_base
 * (the hiperfifo model, STYLE.md 1.8).
 *
 * One gb_curlev per worker thread.  A transfer is an easy handle plus a
 * caller-embedded struct gb_curlev_xfer naming the completion callback.
 * Completion callbacks run from the event loop after curl_multi_socket_action
 * returned, with the handle already removed from the multi handle, so they
 * may free the transfer or start another (STYLE.md rule 12).
 */
#ifndef GB_UPSTREAM_CURLEV_H
#define GB_UPSTREAM_CURLEV_H

#include <curl/curl.h>
#include <event2/event.h>

/* Easy handles kept for reuse per worker. */
#define GB_CURLEV_EASY_POOL 64

struct gb_curlev;
struct gb_urlcache_ent;

typedef void (*gb_curlev_done_cb)(void *ud, CURLcode result);

/* A transfer's completion hook; embed it in the object that owns the easy
 * handle, zeroed before first use.  cb, ud and easy are set by
 * gb_curlev_add, url by gb_curlev_set_url. */
struct gb_curlev_xfer {
    gb_curlev_done_cb cb;
    void *ud;
    CURL *easy;
    struct gb_urlcache_ent *url; /* private: cached parsed URL libcurl reads, or NULL */
};

/* Creates the glue on base.  maxconns sizes the connection cache.  Returns
 * NULL on failure. */
struct gb_curlev *gb_curlev_new(struct event_base *base, long maxconns);

/* Frees the multi handle and pooled easy handles.  Transfers still added are
 * removed without their callbacks being called. */
void gb_curlev_free(struct gb_curlev *ce);

/* Returns an easy handle, reset to defaults (from the pool or new), or NULL. */
CURL *gb_curlev_easy_get(struct gb_curlev *ce);

/* Gives an easy handle back (not added to the multi handle any more). */
void gb_curlev_easy_put(struct gb_curlev *ce, CURL *easy);

/*
 * Sets easy's URL for the transfer x is about to start.  A URL found in (or
 * added to) the worker's cache goes in parsed, with CURLOPT_CURLU, so libcurl
 * neither parses it again nor prints it back out (urlcache.h); the string is
 * set with CURLOPT_URL as well, as the transfer's URL string (libcurl takes
 * the URL itself from the CURLU, which overrides CURLOPT_URL).  x holds the
 * cache entry until the transfer leaves the multi handle: before cb runs, in
 * gb_curlev_remove, or when gb_curlev_add fails.  An uncached URL (cache
 * full of transfers in flight, too long, or rejected by libcurl's parser)
 * goes in with CURLOPT_URL alone, as before.  Returns 0 or GB_ENOMEM.
 */
int gb_curlev_set_url(struct gb_curlev *ce, struct gb_curlev_xfer *x, CURL *easy, const char *url);

/* Starts the transfer; cb(ud, result) runs once it ends, unless it is
 * removed first.  Returns 0 or GB_EIO (then cb is never called). */
int gb_curlev_add(struct gb_curlev *ce, struct gb_curlev_xfer *x, CURL *easy, gb_curlev_done_cb cb,
                  void *ud);

/* gb_curlev_add for a URL a client gave: the transfer may connect only to
 * public addresses (netaddr.h); any other makes it fail as a refused
 * connection would (CURLE_COULDNT_CONNECT), so the error tells nothing of
 * what listens there. */
int gb_curlev_add_public(struct gb_curlev *ce, struct gb_curlev_xfer *x, CURL *easy,
                         gb_curlev_done_cb cb, void *ud);

/* Cancels a transfer: removes it from the multi handle (closing or keeping
 * its connection as libcurl sees fit) and gives back its cached URL; cb is
 * not called.  Must not be called
 * from inside a libcurl callback. */
void gb_curlev_remove(struct gb_curlev *ce, struct gb_curlev_xfer *x);

#endif
