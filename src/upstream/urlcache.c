/*
 * urlcache.c - a small fixed table of parsed upstream URLs (see urlcache.h).
 *
 * The table is an array scanned linearly, a 32-bit hash compared before the
 * string: with GB_URLCACHE_SLOTS (64) entries a hit costs a few hundred
 * instructions against the ~15K libcurl spends on the URL without it.  A
 * miss picks a free slot or the unreferenced entry used longest ago (also a
 * scan); slots never move, so an entry's address is stable while it is
 * referenced.
 */
#include "upstream/urlcache.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct gb_urlcache_ent {
    char *url;     /* owned: the key; NULL while the slot is free */
    CURLU *uh;     /* owned: url as parsed with GB_URLCACHE_PARSE_FLAGS */
    uint32_t hash; /* FNV-1a of url */
    unsigned refs; /* transfers that may still read uh */
    uint64_t used; /* cache tick of the last gb_urlcache_get, for eviction */
};

struct gb_urlcache {
    size_t slots;                  /* capacity of ents */
    size_t n;                      /* slots in use: ents[0..n) */
    uint64_t tick;                 /* bumped by every gb_urlcache_get */
    struct gb_urlcache_ent ents[]; /* the table */
};

static uint32_t fnv1a(const char *s, size_t len)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

struct gb_urlcache *gb_urlcache_new(size_t slots)
{
    struct gb_urlcache *c;

    if (slots == 0)
        return NULL;
    c = calloc(1, sizeof *c + slots * sizeof c->ents[0]);
    if (c != NULL)
        c->slots = slots;
    return c;
}

void gb_urlcache_free(struct gb_urlcache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++) {
        curl_url_cleanup(c->ents[i].uh);
        free(c->ents[i].url);
    }
    free(c);
}

/* The slot a new entry goes to: a free one, else the unreferenced entry used
 * longest ago; NULL when every entry is referenced. */
static struct gb_urlcache_ent *victim(struct gb_urlcache *c)
{
    struct gb_urlcache_ent *v = NULL;

    if (c->n < c->slots)
        return &c->ents[c->n];
    for (size_t i = 0; i < c->n; i++)
        if (c->ents[i].refs == 0 && (v == NULL || c->ents[i].used < v->used))
            v = &c->ents[i];
    return v;
}

struct gb_urlcache_ent *gb_urlcache_get(struct gb_urlcache *c, const char *url)
{
    size_t len = strlen(url);
    struct gb_urlcache_ent *e;
    uint32_t h;
    CURLU *uh;
    char *copy;

    if (len > GB_URLCACHE_URL_MAX)
        return NULL;
    h = fnv1a(url, len);
    for (size_t i = 0; i < c->n; i++) {
        e = &c->ents[i];
        if (e->hash == h && strcmp(e->url, url) == 0) {
            e->refs++;
            e->used = ++c->tick;
            return e;
        }
    }
    if ((e = victim(c)) == NULL)
        return NULL; /* all referenced: checked before paying for a parse */
    uh = curl_url();
    copy = malloc(len + 1);
    if (uh == NULL || copy == NULL ||
        curl_url_set(uh, CURLUPART_URL, url, GB_URLCACHE_PARSE_FLAGS) != CURLUE_OK) {
        curl_url_cleanup(uh);
        free(copy);
        return NULL;
    }
    memcpy(copy, url, len + 1);
    if (e == &c->ents[c->n]) {
        c->n++;
    } else {
        curl_url_cleanup(e->uh);
        free(e->url);
    }
    e->url = copy;
    e->uh = uh;
    e->hash = h;
    e->refs = 1;
    e->used = ++c->tick;
    return e;
}

void gb_urlcache_put(struct gb_urlcache *c, struct gb_urlcache_ent *e)
{
    (void)c;
    assert(e->refs > 0);
    e->refs--;
}

CURLU *gb_urlcache_curlu(const struct gb_urlcache_ent *e)
{
    return e->uh;
}

size_t gb_urlcache_count(const struct gb_urlcache *c)
{
    return c->n;
}
