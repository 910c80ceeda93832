/*
 * sse_fuzz.c - libFuzzer target for the SSE parser (src/sse/sse.h).
 *
 * The input is the byte stream as it would come from the upstream.  It is parsed
 * four ways: fed in one piece; fed in four pieces cut at points derived from the
 * data (empty pieces are fed as (NULL, 0)); fed one byte at a time (inputs up to
 * BYTEWISE_MAX bytes); and by a plain whole-buffer reference parser written from
 * the contract in sse.h, not from sse.c.  All four must report the same events,
 * the same return code and, when the stream was not stopped, the same
 * gb_sse_parser_pending() answer.  Also checked on every event: len <= max_event
 * and data[len] == '\0'; and after a stop, that feeding again returns the same
 * code without calling back.
 *
 * Options derived from the data: max_event is either GB_SSE_MAX_EVENT_BYTES or
 * small (MIN_EVENT..MIN_EVENT+63, so the GB_ETOOBIG paths are reached), and the
 * callback may stop the stream after its first, second or third event, with a
 * positive or a negative value.  MIN_EVENT keeps max_event above the five bytes
 * of "data:", below which "a skipped line longer than max_event" is not
 * well defined (the name bytes are read before the line is known to be skipped).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "fuzz.h"
#include "sse/sse.h"

/* Inputs longer than this are not fed byte by byte (it is the slow path). */
#define BYTEWISE_MAX 4096
/* Smallest max_event tried (see the file comment). */
#define MIN_EVENT 8

/* The events one parse produced, as <size_t len><len bytes> records. */
struct rec {
    struct gb_buf all; /* the records */
    size_t n;          /* events recorded */
    size_t max_event;  /* bound the events must respect */
    size_t stop_after; /* stop after this many events; 0: never */
    int stop_value;    /* what the callback returns to stop */
};

static void rec_init(struct rec *r, size_t max_event, size_t stop_after, int stop_value)
{
    gb_buf_init(&r->all, SIZE_MAX);
    r->n = 0;
    r->max_event = max_event;
    r->stop_after = stop_after;
    r->stop_value = stop_value;
}

/* Records one event; returns what the parser callback must return. */
static int rec_add(struct rec *r, const char *data, size_t len)
{
    FUZZ_CHECK(gb_buf_append(&r->all, &len, sizeof len) == 0, "record an event");
    FUZZ_CHECK(gb_buf_append(&r->all, data, len) == 0, "record an event");
    r->n++;
    return r->stop_after != 0 && r->n == r->stop_after ? r->stop_value : 0;
}

static int on_event(void *ud, const char *data, size_t len)
{
    struct rec *r = ud;

    FUZZ_CHECK(data != NULL, "event data is never NULL");
    FUZZ_CHECK(len <= r->max_event, "event no larger than max_event");
    FUZZ_CHECK(data[len] == '\0', "event data is NUL-terminated");
    FUZZ_CHECK(r->stop_after == 0 || r->n < r->stop_after, "no callback after a stop");
    return rec_add(r, data, len);
}

static void rec_same(const struct rec *a, const struct rec *b, const char *what)
{
    FUZZ_CHECK(a->n == b->n, what);
    FUZZ_CHECK(a->all.len == b->all.len, what);
    FUZZ_CHECK(a->all.len == 0 || memcmp(a->all.data, b->all.data, a->all.len) == 0, what);
}

/* ---- reference parser ----------------------------------------------------
 * Whole input at once, one line at a time, straight from the rules in sse.h:
 * lines end in CRLF, LF or CR; "data:" lines (one optional space after the
 * colon dropped) and a bare "data" line are joined with "\n"; an empty line
 * dispatches an event that had a data line; any other line is skipped.  Joined
 * data longer than max_event, or a skipped line longer than max_event, is
 * GB_ETOOBIG; the last line counts with the bytes it has even when it is not
 * ended (the parser checks as bytes arrive). */
static int ref_parse(const uint8_t *d, size_t n, struct rec *r, int *pending)
{
    struct gb_buf ev;
    size_t i = 0;
    int has_data = 0, rc = 0;

    gb_buf_init(&ev, SIZE_MAX);
    *pending = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && d[j] != '\r' && d[j] != '\n')
            j++;
        const char *line = (const char *)d + i;
        size_t ll = j - i;
        int ended = j < n;

        if (ll == 0) {
            if (has_data) {
                has_data = 0;
                rc = rec_add(r, ev.data != NULL ? ev.data : "", ev.len);
                gb_buf_reset(&ev);
                if (rc != 0)
                    break;
            }
        } else if ((ll >= 5 && memcmp(line, "data:", 5) == 0) ||
                   (ll == 4 && memcmp(line, "data", 4) == 0 && ended)) {
            const char *v = line + (ll >= 5 ? 5 : 4);
            size_t vl = ll - (ll >= 5 ? 5 : 4);

            if (vl > 0 && v[0] == ' ') {
                v++;
                vl--;
            }
            if (ev.len + (has_data ? 1 : 0) + vl > r->max_event) {
                rc = GB_ETOOBIG;
                break;
            }
            if (has_data)
                FUZZ_CHECK(gb_buf_append(&ev, "\n", 1) == 0, "reference append");
            FUZZ_CHECK(gb_buf_append(&ev, v, vl) == 0, "reference append");
            has_data = 1;
        } else if (ll <= 4 && memcmp(line, "data", ll) == 0) {
            /* "d", "da", "dat": fields we ignore, too short to be too long;
             * an unended "data" may still become a data line */
        } else if (ll > r->max_event) {
            rc = GB_ETOOBIG; /* a skipped line (comment or other field) */
            break;
        }
        if (!ended) {
            *pending = 1;
            break;
        }
        if (d[j] == '\r' && j + 1 < n && d[j + 1] == '\n')
            j++;
        i = j + 1;
    }
    if (has_data)
        *pending = 1;
    gb_buf_release(&ev);
    return rc;
}

/* ---- the three ways of feeding ------------------------------------------- */

/* Feeds pieces [cuts[k], cuts[k+1]); after a stop, every later feed must
 * return the same code and call nothing. */
static int feed_pieces(struct gb_sse_parser *p, struct rec *r, const uint8_t *d, const size_t *cuts,
                       size_t ncuts)
{
    int rc = 0;

    for (size_t k = 0; k + 1 < ncuts; k++) {
        size_t len = cuts[k + 1] - cuts[k];
        size_t before = r->n;
        int got = gb_sse_parser_feed(p, len ? (const char *)d + cuts[k] : NULL, len);

        if (rc != 0) {
            FUZZ_CHECK(got == rc, "a stopped parser returns the same code again");
            FUZZ_CHECK(r->n == before, "a stopped parser calls nothing");
        }
        rc = got;
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t h = fuzz_hash(data, size);
    size_t max_event = (h & 1) ? MIN_EVENT + (size_t)((h >> 1) % 64) : GB_SSE_MAX_EVENT_BYTES;
    size_t stop_after = (size_t)((h >> 8) % 4);
    int stop_value = (h >> 10) & 1 ? 7 : GB_EABORT;
    size_t cuts[5];
    struct rec ref, one, split, bytes;
    struct gb_sse_parser p;
    int ref_rc, ref_pending, rc;

    /* reference */
    rec_init(&ref, max_event, stop_after, stop_value);
    ref_rc = ref_parse(data, size, &ref, &ref_pending);

    /* one piece */
    rec_init(&one, max_event, stop_after, stop_value);
    gb_sse_parser_init(&p, max_event, on_event, &one);
    rc = gb_sse_parser_feed(&p, (const char *)data, size);
    FUZZ_CHECK(rc == ref_rc, "one piece: same return code as the reference");
    rec_same(&one, &ref, "one piece: same events as the reference");
    if (rc == 0)
        FUZZ_CHECK(gb_sse_parser_pending(&p) == ref_pending, "one piece: same pending");
    else
        FUZZ_CHECK(gb_sse_parser_feed(&p, "\n\n", 2) == rc, "stopped: same code again");
    FUZZ_CHECK(one.n == ref.n, "stopped: no more events");
    gb_sse_parser_release(&p);

    /* four pieces, cut at points taken from the hash */
    cuts[0] = 0;
    cuts[1] = size ? (size_t)((h >> 12) % (size + 1)) : 0;
    cuts[2] = size ? (size_t)((h >> 28) % (size + 1)) : 0;
    cuts[3] = size ? (size_t)((h >> 44) % (size + 1)) : 0;
    cuts[4] = size;
    /* sort the three inner cuts */
    for (int a = 1; a < 4; a++)
        for (int b = a + 1; b < 4; b++)
            if (cuts[b] < cuts[a]) {
                size_t t = cuts[a];
                cuts[a] = cuts[b];
                cuts[b] = t;
            }
    rec_init(&split, max_event, stop_after, stop_value);
    gb_sse_parser_init(&p, max_event, on_event, &split);
    rc = feed_pieces(&p, &split, data, cuts, 5);
    FUZZ_CHECK(rc == ref_rc, "split: same return code as in one piece");
    rec_same(&split, &one, "split: same events as in one piece");
    if (rc == 0)
        FUZZ_CHECK(gb_sse_parser_pending(&p) == ref_pending, "split: same pending");
    gb_sse_parser_release(&p);

    /* one byte at a time */
    if (size <= BYTEWISE_MAX) {
        rec_init(&bytes, max_event, stop_after, stop_value);
        gb_sse_parser_init(&p, max_event, on_event, &bytes);
        rc = 0;
        for (size_t i = 0; i < size; i++) {
            int got = gb_sse_parser_feed(&p, (const char *)data + i, 1);
            FUZZ_CHECK(rc == 0 || got == rc, "bytewise: a stopped parser stays stopped");
            rc = got;
        }
        FUZZ_CHECK(rc == ref_rc, "bytewise: same return code as in one piece");
        rec_same(&bytes, &one, "bytewise: same events as in one piece");
        if (rc == 0)
            FUZZ_CHECK(gb_sse_parser_pending(&p) == ref_pending, "bytewise: same pending");
        gb_sse_parser_release(&p);
        gb_buf_release(&bytes.all);
    }

    gb_buf_release(&ref.all);
    gb_buf_release(&one.all);
    gb_buf_release(&split.all);
    return 0;
}
