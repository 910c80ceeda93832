/*
 * sse_test.c - unit tests for src/sse/sse.c, the incremental SSE parser.
 *
 * Two kinds of input: a table of small hand-written streams with the events
 * each must give, and the recorded upstream streams under fixtures/.  Every
 * input is also fed split at each offset (two pieces), byte by byte, and
 * (table rows only, they are short) in three pieces at every pair of
 * offsets; each way must give the same events and the same pending state as
 * one feed.  Then the edges: max_event exactly and plus one, the callback's
 * stop value, pending, UTF-8 cut inside a character, embedded NUL.
 */
#include "test.h"

#include <jansson.h>

#include "core/err.h"
#include "sse/sse.h"

/* Large enough for every table row and fixture (the largest event in the
 * fixtures is 8.5 KB). */
#define TEST_MAX_EVENT (64u * 1024)

/* Feeds a string literal, without its terminator. */
#define FEED_LIT(p, lit) gb_sse_parser_feed((p), (lit), sizeof(lit) - 1)

/* Most events a table row expects. */
#define CASE_MAX_EVENTS 8

/* Collects events, or (when want is set) checks each against want's. */
struct sink {
    char **ev;               /* recorded copies, NUL-terminated; owned */
    size_t *len;             /* their lengths */
    size_t n;                /* events seen */
    size_t cap;              /* room in ev and len */
    const struct sink *want; /* compare with these instead of recording */
    size_t stop_at;          /* return stop_rc from event number stop_at (1-based); 0: never */
    int stop_rc;             /* what to return there */
};

static int on_event(void *ud, const char *data, size_t len)
{
    struct sink *s = ud;

    assert_non_null(data);
    assert_int_equal(data[len], '\0');
    if (s->want != NULL) {
        if (s->n >= s->want->n)
            fail_msg("event %zu is extra: \"%.*s\"", s->n + 1, (int)len, data);
        assert_int_equal(len, s->want->len[s->n]);
        assert_memory_equal(data, s->want->ev[s->n], len);
    } else {
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 8;
            s->ev = realloc(s->ev, s->cap * sizeof *s->ev);
            s->len = realloc(s->len, s->cap * sizeof *s->len);
            assert_non_null(s->ev);
            assert_non_null(s->len);
        }
        s->ev[s->n] = malloc(len + 1);
        assert_non_null(s->ev[s->n]);
        memcpy(s->ev[s->n], data, len + 1);
        s->len[s->n] = len;
    }
    s->n++;
    return s->stop_at != 0 && s->n == s->stop_at ? s->stop_rc : 0;
}

static void sink_release(struct sink *s)
{
    size_t i;

    for (i = 0; i < s->n && s->want == NULL; i++)
        free(s->ev[i]);
    free(s->ev);
    free(s->len);
    memset(s, 0, sizeof *s);
}

/* Feeds in[0, len) in pieces ending at the offsets cuts[0..ncuts) (ascending)
 * and then len.  Returns the first non-zero feed result, or 0; *pending gets
 * gb_sse_parser_pending at the end. */
static int feed_pieces(struct sink *s, size_t max_event, const char *in, size_t len,
                       const size_t *cuts, size_t ncuts, int *pending)
{
    struct gb_sse_parser p;
    size_t from = 0, to, k;
    int rc = 0;

    gb_sse_parser_init(&p, max_event, on_event, s);
    for (k = 0; k <= ncuts && rc == 0; k++) {
        to = k < ncuts ? cuts[k] : len;
        rc = gb_sse_parser_feed(&p, in + from, to - from);
        from = to;
    }
    if (pending != NULL)
        *pending = gb_sse_parser_pending(&p);
    gb_sse_parser_release(&p);
    return rc;
}

static int feed_once(struct sink *s, size_t max_event, const char *in, size_t len, int *pending)
{
    return feed_pieces(s, max_event, in, len, NULL, 0, pending);
}

static int feed_bytes(struct sink *s, size_t max_event, const char *in, size_t len, int *pending)
{
    struct gb_sse_parser p;
    size_t i;
    int rc = 0;

    gb_sse_parser_init(&p, max_event, on_event, s);
    for (i = 0; i < len && rc == 0; i++)
        rc = gb_sse_parser_feed(&p, in + i, 1);
    if (pending != NULL)
        *pending = gb_sse_parser_pending(&p);
    gb_sse_parser_release(&p);
    return rc;
}

/* Feeds in every way (every two-piece split, byte by byte, and with three
 * set every three-piece split) and checks each gives exactly want's events,
 * feed result want_rc and pending state want_pending. */
static void check_all_splits(const struct sink *want, size_t max_event, const char *in, size_t len,
                             int want_rc, int want_pending, int three)
{
    struct sink s;
    size_t cuts[2];
    int pending;

    for (cuts[0] = 0; cuts[0] <= len; cuts[0]++) {
        memset(&s, 0, sizeof s);
        s.want = want;
        assert_int_equal(feed_pieces(&s, max_event, in, len, cuts, 1, &pending), want_rc);
        if (s.n != want->n)
            fail_msg("split at %zu: %zu events, want %zu", cuts[0], s.n, want->n);
        assert_int_equal(pending, want_pending);
        for (cuts[1] = cuts[0]; three && cuts[1] <= len; cuts[1]++) {
            memset(&s, 0, sizeof s);
            s.want = want;
            assert_int_equal(feed_pieces(&s, max_event, in, len, cuts, 2, &pending), want_rc);
            if (s.n != want->n)
                fail_msg("split at %zu, %zu: %zu events, want %zu", cuts[0], cuts[1], s.n, want->n);
            assert_int_equal(pending, want_pending);
        }
    }
    memset(&s, 0, sizeof s);
    s.want = want;
    assert_int_equal(feed_bytes(&s, max_event, in, len, &pending), want_rc);
    assert_int_equal(s.n, want->n);
    assert_int_equal(pending, want_pending);
}

/* ---- table-driven cases ---- */

struct sse_case {
    const char *name;
    const char *in;
    const char *want[CASE_MAX_EVENTS + 1]; /* NULL-terminated */
    int pending;                           /* gb_sse_parser_pending at the end */
};

static const struct sse_case cases[] = {
    {"lf", "data: a\n\n", {"a"}, 0},
    {"no space after colon", "data:a\n\n", {"a"}, 0},
    {"only one space dropped", "data:  a\n\n", {" a"}, 0},
    {"tab is not a space", "data:\ta\n\n", {"\ta"}, 0},
    {"trailing space kept", "data: a \n\n", {"a "}, 0},
    {"crlf", "data: a\r\n\r\n", {"a"}, 0},
    {"cr", "data: a\r\r", {"a"}, 0},
    {"gemini framing",
     "data: {\"a\":1}\r\n\r\ndata: {\"b\":2}\r\n\r\n",
     {"{\"a\":1}", "{\"b\":2}"},
     0},
    {"mixed endings in one event", "data: a\r\ndata: b\rdata: c\ndata: d\n\r\n", {"a\nb\nc\nd"}, 0},
    {"crlf then lf", "data: a\r\n\n", {"a"}, 0},
    {"lf then cr dispatches", "data: a\n\rdata: b\n\n", {"a", "b"}, 0},
    {"cr then crlf", "data: a\r\r\ndata: b\r\n\r\n", {"a", "b"}, 0},
    {"lf cr lf is two endings", "data: a\n\r\ndata: b\n\n", {"a", "b"}, 0},
    {"multi-line data", "data: a\ndata: b\ndata: c\n\n", {"a\nb\nc"}, 0},
    {"empty data", "data:\n\n", {""}, 0},
    {"empty data after space", "data: \n\n", {""}, 0},
    {"data without colon", "data\n\n", {""}, 0},
    {"two empty data lines", "data\ndata:\n\n", {"\n"}, 0},
    {"empty line between data lines", "data: a\n\ndata: b\n\n", {"a", "b"}, 0},
    {"colons in value", "data: a:b: c\n\n", {"a:b: c"}, 0},
    {"comment", ": keep-alive\ndata: a\n\n", {"a"}, 0},
    {"comment only", ": ping\n\n", {NULL}, 0},
    {"bare colon", ":\ndata: a\n:\n\n", {"a"}, 0},
    {"other fields ignored", "event: x\nid: 1\nretry: 5\ndata: a\nfoo: bar\n\n", {"a"}, 0},
    {"no data no event", "event: x\nid: 7\n\n", {NULL}, 0},
    {"near misses", "dat: a\ndatax: b\nDATA: c\n data: d\ndata : e\nd\n\n", {NULL}, 0},
    {"field without colon", "event\ndata: a\n\n", {"a"}, 0},
    {"several events", "data: 1\n\ndata: 2\n\ndata: 3\n\n", {"1", "2", "3"}, 0},
    {"blank lines around", "\n\r\n\rdata: 1\n\n\n\n", {"1"}, 0},
    {"utf-8",
     "data: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\n\n",
     {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
     0},
    {"openai done", "data: {\"x\":1}\n\ndata: [DONE]\n\n", {"{\"x\":1}", "[DONE]"}, 0},
    {"empty input", "", {NULL}, 0},
    {"unterminated event", "data: a\n", {NULL}, 1},
    {"unterminated event after cr", "data: a\r", {NULL}, 1},
    {"cut inside line", "data: a\n\ndata: b", {"a"}, 1},
    {"cut after field name", "data: a\n\ndata", {"a"}, 1},
    {"cut inside comment", "data: a\n\n: ke", {"a"}, 1},
    {"ends in cr after event", "data: a\n\r", {"a"}, 0},
};

static void case_want(const struct sse_case *c, struct sink *want)
{
    size_t k;

    memset(want, 0, sizeof *want);
    for (k = 0; c->want[k] != NULL; k++)
        on_event(want, c->want[k], strlen(c->want[k]));
}

static void test_cases(void **state)
{
    size_t i, k;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct sse_case *c = &cases[i];
        size_t len = strlen(c->in);
        struct sink want, got;
        int pending;

        print_message("case: %s\n", c->name);
        case_want(c, &want);
        memset(&got, 0, sizeof got);
        assert_int_equal(feed_once(&got, TEST_MAX_EVENT, c->in, len, &pending), 0);
        if (got.n != want.n)
            fail_msg("%s: %zu events, want %zu", c->name, got.n, want.n);
        for (k = 0; k < want.n; k++) {
            assert_int_equal(got.len[k], want.len[k]);
            assert_memory_equal(got.ev[k], want.ev[k], want.len[k]);
        }
        assert_int_equal(pending, c->pending);
        check_all_splits(&want, TEST_MAX_EVENT, c->in, len, 0, c->pending, 1);
        sink_release(&got);
        sink_release(&want);
    }
}

/* ---- recorded upstream streams ---- */

struct fixture_case {
    const char *path;
    size_t events; /* how many the stream holds */
    int done;      /* ends with the OpenAI "[DONE]" sentinel */
};

static const struct fixture_case fixtures[] = {
    {"gemini/stream-text.sse", 3, 0},
    {"gemini/stream-thinking.sse", 23, 0},
    {"gemini/stream-grounding-google-search.sse", 10, 0},
    {"gemini/stream-function-call.sse", 1, 0},
    {"gemini/stream-code-execution.sse", 6, 0},
    {"gemini/stream-usage-mid-stream.sse", 3, 0},
    {"gemini/stream-prompt-blocked-legacy.sse", 1, 0},
    {"gemini/stream-function-call-gemini3.sse", 2, 0},
    {"openai/chat-completion-chunks.sse", 12, 1},
};

/* Every event is one JSON object, except a final "[DONE]". */
static void check_events_are_json(const struct sink *s, int done)
{
    json_error_t jerr;
    json_t *j;
    size_t k;

    for (k = 0; k < s->n; k++) {
        if (done && k == s->n - 1) {
            assert_string_equal(s->ev[k], "[DONE]");
            continue;
        }
        assert_int_equal(s->ev[k][0], '{');
        j = json_loadb(s->ev[k], s->len[k], 0, &jerr);
        if (j == NULL)
            fail_msg("event %zu: %s at %d", k, jerr.text, jerr.position);
        assert_true(json_is_object(j));
        json_decref(j);
    }
}

/* Copies in with every line ending (CRLF, CR or LF) replaced by eol. */
static char *with_line_endings(const char *in, size_t len, const char *eol, size_t *out_len)
{
    size_t i, n = 0, el = strlen(eol);
    char *out = malloc(len * el + 1);

    assert_non_null(out);
    for (i = 0; i < len; i++) {
        if (in[i] == '\r' || in[i] == '\n') {
            if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
                i++;
            memcpy(out + n, eol, el);
            n += el;
        } else {
            out[n++] = in[i];
        }
    }
    out[n] = '\0';
    *out_len = n;
    return out;
}

static void test_fixtures(void **state)
{
    static const char *const eols[] = {"\n", "\r"};
    size_t i, e, len, vlen;
    char *in, *variant;

    (void)state;
    for (i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        struct sink want;
        int pending;

        print_message("fixture: %s\n", fixtures[i].path);
        in = gb_test_read_fixture(fixtures[i].path, &len);
        memset(&want, 0, sizeof want);
        assert_int_equal(feed_once(&want, TEST_MAX_EVENT, in, len, &pending), 0);
        assert_int_equal(want.n, fixtures[i].events);
        assert_int_equal(pending, 0);
        check_events_are_json(&want, fixtures[i].done);
        check_all_splits(&want, TEST_MAX_EVENT, in, len, 0, 0, 0);
        /* the same stream with other line endings gives the same events */
        for (e = 0; e < sizeof eols / sizeof eols[0]; e++) {
            variant = with_line_endings(in, len, eols[e], &vlen);
            check_all_splits(&want, TEST_MAX_EVENT, variant, vlen, 0, 0, 0);
            free(variant);
        }
        sink_release(&want);
        free(in);
    }
}

/* A fixture's events whole, and each fed in chunks of prime sizes. */
static void test_fixture_chunked(void **state)
{
    static const size_t sizes[] = {2, 3, 7, 61, 509, 4093};
    size_t i, z, len, from;

    (void)state;
    for (i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        char *in = gb_test_read_fixture(fixtures[i].path, &len);
        struct sink want, s;

        memset(&want, 0, sizeof want);
        assert_int_equal(feed_once(&want, TEST_MAX_EVENT, in, len, NULL), 0);
        for (z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
            struct gb_sse_parser p;

            memset(&s, 0, sizeof s);
            s.want = &want;
            gb_sse_parser_init(&p, TEST_MAX_EVENT, on_event, &s);
            for (from = 0; from < len; from += sizes[z]) {
                size_t n = len - from < sizes[z] ? len - from : sizes[z];

                assert_int_equal(gb_sse_parser_feed(&p, in + from, n), 0);
            }
            assert_int_equal(s.n, want.n);
            assert_false(gb_sse_parser_pending(&p));
            gb_sse_parser_release(&p);
        }
        sink_release(&want);
        free(in);
    }
}

/* ---- max_event ---- */

/* Checks in gives exactly the events in want (NULL-terminated) under
 * max_event, fed in every way. */
static void check_limit_ok(size_t max_event, const char *in, const char *const *want_ev)
{
    struct sink want, got;
    size_t k;

    memset(&want, 0, sizeof want);
    for (k = 0; want_ev[k] != NULL; k++)
        on_event(&want, want_ev[k], strlen(want_ev[k]));
    memset(&got, 0, sizeof got);
    assert_int_equal(feed_once(&got, max_event, in, strlen(in), NULL), 0);
    assert_int_equal(got.n, want.n);
    check_all_splits(&want, max_event, in, strlen(in), 0, 0, 1);
    sink_release(&got);
    sink_release(&want);
}

/* Checks in fails with GB_ETOOBIG under max_event, fed in every way, after
 * giving the events in want (NULL-terminated). */
static void check_limit_fails(size_t max_event, const char *in, const char *const *want_ev)
{
    struct sink want;
    size_t k;

    memset(&want, 0, sizeof want);
    for (k = 0; want_ev[k] != NULL; k++)
        on_event(&want, want_ev[k], strlen(want_ev[k]));
    /* pending: the parser stops inside the event that was too big */
    check_all_splits(&want, max_event, in, strlen(in), GB_ETOOBIG, 1, 1);
    sink_release(&want);
}

static void test_max_event_exact(void **state)
{
    (void)state;
    check_limit_ok(10, "data: 0123456789\r\n\r\n", (const char *const[]){"0123456789", NULL});
    /* the "\n" joining data lines counts */
    check_limit_ok(10, "data: 01234\ndata: 5678\n\n", (const char *const[]){"01234\n5678", NULL});
    check_limit_ok(2, "data\ndata\ndata\n\n", (const char *const[]){"\n\n", NULL});
    /* the limit is per event: the buffer is emptied after each */
    check_limit_ok(10, "data:0123456789\n\ndata:abcdefghij\n\n",
                   (const char *const[]){"0123456789", "abcdefghij", NULL});
    /* a skipped line of exactly max_event bytes */
    check_limit_ok(10, ":123456789\nevent: 12\ndata: a\n\n", (const char *const[]){"a", NULL});
    check_limit_ok(0, "data:\n\n", (const char *const[]){"", NULL});
}

static void test_max_event_plus_one(void **state)
{
    (void)state;
    check_limit_fails(10, "data: 0123456789A\r\n\r\n", (const char *const[]){NULL});
    check_limit_fails(10, "data: 01234\ndata: 56789\n\n", (const char *const[]){NULL});
    check_limit_fails(2, "data\ndata\ndata\ndata\n\n", (const char *const[]){NULL});
    check_limit_fails(10, "data: ok\n\ndata: 0123456789A\n\ndata: never\n\n",
                      (const char *const[]){"ok", NULL});
    check_limit_fails(10, ":1234567890\ndata: a\n\n", (const char *const[]){NULL});
    check_limit_fails(10, "event: 1234\ndata: a\n\n", (const char *const[]){NULL});
    check_limit_fails(0, "data: x\n\n", (const char *const[]){NULL});
}

/* Once failed, the parser keeps returning the failure without calling back. */
static void test_too_big_is_sticky(void **state)
{
    struct gb_sse_parser p;
    struct sink s;

    (void)state;
    memset(&s, 0, sizeof s);
    gb_sse_parser_init(&p, 4, on_event, &s);
    assert_int_equal(FEED_LIT(&p, "data: 12345"), GB_ETOOBIG);
    assert_int_equal(FEED_LIT(&p, "\n\ndata: 1\n\n"), GB_ETOOBIG);
    assert_int_equal(s.n, 0);
    gb_sse_parser_release(&p);
    sink_release(&s);
}

/* An event bigger than the memory the parser keeps between events, in
 * small chunks, then a small one. */
static void test_large_event(void **state)
{
    const size_t big = 200000;
    struct gb_sse_parser p;
    struct sink s;
    size_t from, n, len;
    char *in;

    (void)state;
    static const char head[] = "data: ", tail[] = "\r\n\r\ndata: y\r\n\r\n";
    in = malloc(big + sizeof head + sizeof tail);
    assert_non_null(in);
    memcpy(in, head, sizeof head - 1);
    memset(in + sizeof head - 1, 'x', big);
    memcpy(in + sizeof head - 1 + big, tail, sizeof tail - 1);
    len = sizeof head - 1 + big + sizeof tail - 1;
    memset(&s, 0, sizeof s);
    gb_sse_parser_init(&p, big, on_event, &s);
    for (from = 0; from < len; from += n) {
        n = len - from < 777 ? len - from : 777;
        assert_int_equal(gb_sse_parser_feed(&p, in + from, n), 0);
    }
    assert_int_equal(s.n, 2);
    assert_int_equal(s.len[0], big);
    assert_int_equal(s.ev[0][0], 'x');
    assert_int_equal(s.ev[0][big - 1], 'x');
    assert_string_equal(s.ev[1], "y");
    assert_false(gb_sse_parser_pending(&p));
    gb_sse_parser_release(&p);
    sink_release(&s);
    free(in);
}

/* ---- callback stop value ---- */

static void test_callback_stop(void **state)
{
    static const char in[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    struct gb_sse_parser p;
    struct sink s;

    (void)state;
    memset(&s, 0, sizeof s);
    s.stop_at = 2;
    s.stop_rc = 7;
    gb_sse_parser_init(&p, TEST_MAX_EVENT, on_event, &s);
    assert_int_equal(FEED_LIT(&p, in), 7);
    assert_int_equal(s.n, 2); /* event 3, in the same chunk, is not delivered */
    assert_string_equal(s.ev[1], "2");
    /* fed again after all: same value, no callback */
    assert_int_equal(FEED_LIT(&p, "data: 4\n\n"), 7);
    assert_int_equal(s.n, 2);
    gb_sse_parser_release(&p);
    sink_release(&s);
}

static void test_callback_stop_across_feeds(void **state)
{
    struct gb_sse_parser p;
    struct sink s;

    (void)state;
    memset(&s, 0, sizeof s);
    s.stop_at = 2;
    s.stop_rc = GB_EABORT;
    gb_sse_parser_init(&p, TEST_MAX_EVENT, on_event, &s);
    assert_int_equal(FEED_LIT(&p, "data: 1\r\n\r\ndata: 2\r\n"), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(FEED_LIT(&p, "\r\ndata: 3\r\n\r\n"), GB_EABORT);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.ev[1], "2");
    gb_sse_parser_release(&p);
    sink_release(&s);
}

/* The blank line's CR dispatches at once: the event does not wait for the LF
 * that may follow in the next feed. */
static void test_callback_stop_on_cr(void **state)
{
    struct gb_sse_parser p;
    struct sink s;

    (void)state;
    memset(&s, 0, sizeof s);
    s.stop_at = 2;
    s.stop_rc = GB_EABORT;
    gb_sse_parser_init(&p, TEST_MAX_EVENT, on_event, &s);
    assert_int_equal(FEED_LIT(&p, "data: 1\r\n\r\ndata: 2\r\n\r"), GB_EABORT);
    assert_int_equal(s.n, 2);
    assert_int_equal(FEED_LIT(&p, "\n"), GB_EABORT);
    assert_int_equal(s.n, 2);
    gb_sse_parser_release(&p);
    sink_release(&s);
}

/* ---- pending ---- */

static void test_pending(void **state)
{
    static const struct {
        const char *in;
        int pending;
    } steps[] = {
        {"", 0},     {"da", 1}, {"ta:", 1},       {" abc", 1},      {"\r", 1},          {"\n", 1},
        {"\r", 0},   {"\n", 0}, {": comment", 1}, {"\n", 0},        {"event: x", 1},    {"\r\n", 0},
        {"data", 1}, {"\n", 1}, {"\n", 0},        {"id: 1\n\n", 0}, {"data: z\n\n", 0},
    };
    struct gb_sse_parser p;
    struct sink s;
    size_t i;

    (void)state;
    memset(&s, 0, sizeof s);
    gb_sse_parser_init(&p, TEST_MAX_EVENT, on_event, &s);
    assert_false(gb_sse_parser_pending(&p));
    for (i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        assert_int_equal(gb_sse_parser_feed(&p, steps[i].in, strlen(steps[i].in)), 0);
        if (gb_sse_parser_pending(&p) != steps[i].pending)
            fail_msg("after step %zu (\"%s\"): pending %d", i, steps[i].in, !steps[i].pending);
    }
    assert_int_equal(s.n, 3);
    assert_string_equal(s.ev[0], "abc");
    assert_string_equal(s.ev[1], "");
    assert_string_equal(s.ev[2], "z");
    gb_sse_parser_release(&p);
    sink_release(&s);
}

/* ---- bytes ---- */

/* A JSON event with 2-, 3- and 4-byte characters, cut at every offset
 * (so inside each character): the event and its JSON string come out whole. */
static void test_utf8_split(void **state)
{
    static const char in[] = "data: {\"t\":\"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80!\"}\r\n\r\n";
    static const char text[] = "h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80!";
    size_t at;

    (void)state;
    for (at = 0; at < sizeof in; at++) {
        struct sink s;
        json_error_t jerr;
        json_t *j;

        memset(&s, 0, sizeof s);
        assert_int_equal(feed_pieces(&s, TEST_MAX_EVENT, in, sizeof in - 1, &at, 1, NULL), 0);
        assert_int_equal(s.n, 1);
        j = json_loadb(s.ev[0], s.len[0], 0, &jerr);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "t")), text);
        json_decref(j);
        sink_release(&s);
    }
}

/* NUL is an ordinary byte in a value: len, not strlen, gives the size. */
static void test_embedded_nul(void **state)
{
    static const char in[] = "data: a\0b\n\n";
    struct sink want;

    (void)state;
    memset(&want, 0, sizeof want);
    on_event(&want, "a\0b", 3);
    check_all_splits(&want, TEST_MAX_EVENT, in, sizeof in - 1, 0, 0, 1);
    sink_release(&want);
}

/* ---- lifecycle ---- */

static void test_release_and_reinit(void **state)
{
    struct gb_sse_parser p;
    struct sink s;

    (void)state;
    memset(&s, 0, sizeof s);
    gb_sse_parser_init(&p, TEST_MAX_EVENT, on_event, &s);
    gb_sse_parser_release(&p); /* never fed */
    gb_sse_parser_init(&p, TEST_MAX_EVENT, on_event, &s);
    assert_int_equal(gb_sse_parser_feed(&p, NULL, 0), 0);
    assert_int_equal(FEED_LIT(&p, "data: lost\ndata: half"), 0);
    assert_true(gb_sse_parser_pending(&p));
    gb_sse_parser_release(&p);
    /* a fresh start forgets the cut event */
    gb_sse_parser_init(&p, TEST_MAX_EVENT, on_event, &s);
    assert_false(gb_sse_parser_pending(&p));
    assert_int_equal(FEED_LIT(&p, "data: x\n\n"), 0);
    assert_false(gb_sse_parser_pending(&p));
    gb_sse_parser_release(&p);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.ev[0], "x");
    sink_release(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_fixture_chunked),
        cmocka_unit_test(test_max_event_exact),
        cmocka_unit_test(test_max_event_plus_one),
        cmocka_unit_test(test_too_big_is_sticky),
        cmocka_unit_test(test_large_event),
        cmocka_unit_test(test_callback_stop),
        cmocka_unit_test(test_callback_stop_across_feeds),
        cmocka_unit_test(test_callback_stop_on_cr),
        cmocka_unit_test(test_pending),
        cmocka_unit_test(test_utf8_split),
        cmocka_unit_test(test_embedded_nul),
        cmocka_unit_test(test_release_and_reinit),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
