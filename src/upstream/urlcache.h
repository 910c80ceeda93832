/*
 * urlcache.h - upstream URLs parsed once per worker, for CURLOPT_CURLU.
 *
 * Given a URL string with CURLOPT_URL, libcurl 7.88 parses it again for
 * every transfer (curl_url_set) and prints the normalised URL back out of
 * the parse (curl_url_get, one printf callback per byte): ~15K instructions
 * of a ~180K instruction chat request.  Given a parsed handle with
 * CURLOPT_CURLU, it only duplicates that handle.  The handle is read during
 * the whole transfer (again on a retry over a fresh connection), so an
 * entry is reference-counted and only an unreferenced one is ever evicted.
 *
 * URLs carry client-supplied model names and, on native routes, the client's
 * query, so the cache is bounded: GB_URLCACHE_SLOTS entries, URLs up to
 * GB_URLCACHE_URL_MAX bytes.  When every slot is referenced, or a URL is too
 * long or does not parse, gb_urlcache_get returns NULL and the caller uses
 * CURLOPT_URL as before (libcurl then fails a bad URL exactly as it did).
 *
 * One cache per worker thread; no locking.
 */
#ifndef GB_UPSTREAM_URLCACHE_H
#define GB_UPSTREAM_URLCACHE_H

#include <curl/curl.h>
#include <stddef.h>

/* Entries per worker: distinct upstream URLs (model x method x query) kept. */
#define GB_URLCACHE_SLOTS 64

/* Longest URL cached, in bytes (without the NUL); longer ones go uncached. */
#define GB_URLCACHE_URL_MAX 2048

/* The flags libcurl 7.88 parses a CURLOPT_URL string with (url.c,
 * parseurlandfillconn), for a handle that sets neither
 * CURLOPT_DISALLOW_USERNAME_IN_URL nor CURLOPT_PATH_AS_IS: the same parse,
 * so the same request on the wire. */
#define GB_URLCACHE_PARSE_FLAGS (CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME)

struct gb_urlcache;
struct gb_urlcache_ent;

/* Creates an empty cache of `slots` entries (> 0).  Returns NULL when out of
 * memory. */
struct gb_urlcache *gb_urlcache_new(size_t slots);

/* Frees the cache and every entry, referenced or not: call only once no
 * easy handle can read an entry any more (after curl_multi_cleanup). */
void gb_urlcache_free(struct gb_urlcache *c);

/*
 * Returns a reference to the entry for url (NUL-terminated), parsing it on a
 * miss into a free slot or over the least recently used unreferenced entry.
 * Returns NULL, changing nothing, when url is longer than
 * GB_URLCACHE_URL_MAX, when every slot is referenced, when libcurl rejects
 * the URL, or when out of memory.  Give the reference back with
 * gb_urlcache_put once libcurl cannot read the handle any more.
 */
struct gb_urlcache_ent *gb_urlcache_get(struct gb_urlcache *c, const char *url);

/* Gives back a reference from gb_urlcache_get; the entry stays cached. */
void gb_urlcache_put(struct gb_urlcache *c, struct gb_urlcache_ent *e);

/* The parsed URL, for CURLOPT_CURLU: borrowed, valid while the reference is
 * held; libcurl only reads it. */
CURLU *gb_urlcache_curlu(const struct gb_urlcache_ent *e);

/* Number of cached entries (at most the slot count). */
size_t gb_urlcache_count(const struct gb_urlcache *c);

#endif
