/* gemini_scan.c - the common shape of a Gemini answer, read without a tree
 * (see gemini_scan.h). */
#include "api/gemini_scan.h"

#include <string.h>

#include "core/jscan.h"

/* Largest text collected per event, as the translators' own limit. */
#define GEM_TEXT_MAX (64u * 1024 * 1024)

/* What a scan walks with. */
struct scan {
    struct gb_jscan j;
    struct gb_gem_event *ev;
    int keep_thoughts;
    int refuse_grounding;
};

/* Member names the scan acts on; a second copy of one is refused (jansson
 * would keep the last, the scan would have acted on the first). */
#define SEEN(mask, bit)                                                                            \
    do {                                                                                           \
        if ((mask) & (bit))                                                                        \
            return GB_JSCAN_NO;                                                                    \
        (mask) |= (bit);                                                                           \
    } while (0)

void gb_gem_init(struct gb_gem_event *ev)
{
    memset(ev, 0, sizeof *ev);
    gb_buf_init(&ev->text, GEM_TEXT_MAX);
    gb_buf_init(&ev->thoughts, GEM_TEXT_MAX);
}

void gb_gem_release(struct gb_gem_event *ev)
{
    gb_buf_release(&ev->text);
    gb_buf_release(&ev->thoughts);
}

/* One part: {"text": "...", "thought": true, ...}.  Its text is decoded
 * into ev->text and moved to ev->thoughts (or dropped) once the part turns
 * out to be a thought, wherever "thought" stands. */
static int scan_part(struct scan *s)
{
    struct gb_gem_event *ev = s->ev;
    size_t start = ev->text.len, klen;
    unsigned seen = 0;
    int thought = 0, has_text = 0, rc;
    const char *k;

    if (gb_jscan_object(&s->j) < 0)
        return GB_JSCAN_NO;
    while ((rc = gb_jscan_key(&s->j, &k, &klen)) == 1) {
        if (gb_jscan_is(k, klen, "text")) {
            SEEN(seen, 1u);
            has_text = 1;
            rc = gb_jscan_string(&s->j, &ev->text);
        } else if (gb_jscan_is(k, klen, "thought")) {
            SEEN(seen, 2u);
            rc = gb_jscan_bool(&s->j, &thought);
        } else if (gb_jscan_is(k, klen, "functionCall") || gb_jscan_is(k, klen, "executableCode") ||
                   gb_jscan_is(k, klen, "codeExecutionResult")) {
            return GB_JSCAN_NO; /* the general path turns these into tool calls or code */
        } else {
            rc = gb_jscan_skip(&s->j);
        }
        if (rc < 0)
            return rc;
    }
    if (rc < 0)
        return rc;
    if (thought && has_text && ev->text.len > start) {
        if (s->keep_thoughts) {
            rc = gb_buf_append(&ev->thoughts, ev->text.data + start, ev->text.len - start);
            if (rc < 0)
                return rc;
        }
        gb_buf_truncate(&ev->text, start);
    }
    return 0;
}

static int scan_content(struct scan *s, struct gb_gem_cand *c)
{
    unsigned seen = 0;
    const char *k;
    size_t klen;
    int rc;

    if (gb_jscan_object(&s->j) < 0)
        return GB_JSCAN_NO;
    while ((rc = gb_jscan_key(&s->j, &k, &klen)) == 1) {
        if (gb_jscan_is(k, klen, "parts")) {
            SEEN(seen, 1u);
            if (gb_jscan_array(&s->j) < 0)
                return GB_JSCAN_NO;
            while ((rc = gb_jscan_item(&s->j)) == 1) {
                c->parts++;
                if ((rc = scan_part(s)) < 0)
                    return rc;
            }
        } else {
            rc = gb_jscan_skip(&s->j);
        }
        if (rc < 0)
            return rc;
    }
    return rc;
}

/* finishReason: a plain string (an escaped one goes to jansson). */
static int scan_reason(struct scan *s, struct gb_gem_cand *c)
{
    const char *r;
    size_t n;

    if (gb_jscan_plain(&s->j, &r, &n) < 0 || n > GB_GEM_REASON_MAX)
        return GB_JSCAN_NO;
    memcpy(c->reason, r, n); /* no NUL inside: raw control bytes are refused */
    c->reason[n] = '\0';
    c->has_reason = 1;
    return 0;
}

static int scan_candidate(struct scan *s, struct gb_gem_cand *c)
{
    struct gb_gem_event *ev = s->ev;
    unsigned seen = 0;
    const char *k;
    size_t klen;
    int rc;

    c->text_off = ev->text.len;
    c->thought_off = ev->thoughts.len;
    if (gb_jscan_object(&s->j) < 0)
        return GB_JSCAN_NO;
    while ((rc = gb_jscan_key(&s->j, &k, &klen)) == 1) {
        if (gb_jscan_is(k, klen, "content")) {
            SEEN(seen, 1u);
            rc = scan_content(s, c);
        } else if (gb_jscan_is(k, klen, "finishReason")) {
            SEEN(seen, 2u);
            rc = scan_reason(s, c);
        } else if (gb_jscan_is(k, klen, "index")) {
            SEEN(seen, 4u);
            rc = gb_jscan_int(&s->j, &c->index);
        } else if (s->refuse_grounding && gb_jscan_is(k, klen, "groundingMetadata")) {
            return GB_JSCAN_NO;
        } else {
            rc = gb_jscan_skip(&s->j);
        }
        if (rc < 0)
            return rc;
    }
    c->text_len = ev->text.len - c->text_off;
    c->thought_len = ev->thoughts.len - c->thought_off;
    return rc;
}

static int scan_candidates(struct scan *s)
{
    struct gb_gem_event *ev = s->ev;
    int rc;

    if (gb_jscan_array(&s->j) < 0)
        return GB_JSCAN_NO;
    while ((rc = gb_jscan_item(&s->j)) == 1) {
        struct gb_gem_cand *c;

        if (ev->ncand == GB_GEM_MAX_CANDS)
            return GB_JSCAN_NO;
        c = &ev->cand[ev->ncand];
        memset(c, 0, sizeof *c);
        c->index = (long long)ev->ncand;
        ev->ncand++;
        if ((rc = scan_candidate(s, c)) < 0)
            return rc;
    }
    return rc;
}

/* One count of usageMetadata: an integer, else refused. */
static int scan_count(struct scan *s, long long *v, unsigned char *given)
{
    if (given != NULL)
        *given = 1;
    return gb_jscan_int(&s->j, v);
}

static int scan_usage(struct scan *s)
{
    struct gb_gem_usage *u = &s->ev->usage;
    unsigned seen = 0;
    const char *k;
    size_t klen;
    int rc;

    memset(u, 0, sizeof *u);
    s->ev->has_usage = 1;
    if (gb_jscan_object(&s->j) < 0)
        return GB_JSCAN_NO;
    while ((rc = gb_jscan_key(&s->j, &k, &klen)) == 1) {
        if (gb_jscan_is(k, klen, "promptTokenCount")) {
            SEEN(seen, 1u);
            rc = scan_count(s, &u->prompt, NULL);
        } else if (gb_jscan_is(k, klen, "candidatesTokenCount")) {
            SEEN(seen, 2u);
            rc = scan_count(s, &u->candidates, NULL);
        } else if (gb_jscan_is(k, klen, "thoughtsTokenCount")) {
            SEEN(seen, 4u);
            rc = scan_count(s, &u->thoughts, &u->has_thoughts);
        } else if (gb_jscan_is(k, klen, "totalTokenCount")) {
            SEEN(seen, 8u);
            rc = scan_count(s, &u->total, &u->has_total);
        } else if (gb_jscan_is(k, klen, "cachedContentTokenCount")) {
            SEEN(seen, 16u);
            rc = scan_count(s, &u->cached, &u->has_cached);
        } else {
            rc = gb_jscan_skip(&s->j);
        }
        if (rc < 0)
            return rc;
    }
    return rc;
}

int gb_gem_scan(struct gb_gem_event *ev, const char *p, size_t n, int keep_thoughts,
                int refuse_grounding)
{
    struct scan s;
    unsigned seen = 0;
    const char *k;
    size_t klen;
    int rc;

    memset(&s, 0, sizeof s);
    gb_jscan_init(&s.j, p, n);
    s.ev = ev;
    s.keep_thoughts = keep_thoughts;
    s.refuse_grounding = refuse_grounding;
    gb_buf_reset(&ev->text);
    gb_buf_reset(&ev->thoughts);
    ev->ncand = 0;
    ev->has_usage = 0;
    memset(&ev->usage, 0, sizeof ev->usage);
    if (gb_jscan_object(&s.j) < 0)
        return GB_JSCAN_NO;
    while ((rc = gb_jscan_key(&s.j, &k, &klen)) == 1) {
        if (gb_jscan_is(k, klen, "candidates")) {
            SEEN(seen, 1u);
            rc = scan_candidates(&s);
        } else if (gb_jscan_is(k, klen, "usageMetadata")) {
            SEEN(seen, 2u);
            rc = scan_usage(&s);
        } else if (gb_jscan_is(k, klen, "promptFeedback") || gb_jscan_is(k, klen, "error")) {
            return GB_JSCAN_NO; /* blocked prompts and errors: the general path */
        } else {
            rc = gb_jscan_skip(&s.j);
        }
        if (rc < 0)
            return rc;
    }
    if (rc < 0)
        return rc;
    return gb_jscan_finish(&s.j);
}

int gb_gem_is_empty(const struct gb_gem_event *ev)
{
    for (size_t i = 0; i < ev->ncand; i++) {
        if (ev->cand[i].has_reason || ev->cand[i].parts > 0)
            return 0;
    }
    return 1;
}
