/*
 * gemini_scan_test.c - tests for the tree-less path of the chat translation:
 * gb_gem_scan (src/api/gemini_scan.c) and the writers that use it,
 * gb_chat_stream_text / gb_chat_stream_scanned / gb_chat_response_write
 * (src/api/openai_chat.c).
 *
 * The fast path must write exactly the bytes of the general path (jansson
 * tree, gb_chat_stream_event, gb_chat_response_from_gemini), and must
 * really be taken for the common answers: each recorded body and stream is
 * translated both ways and compared, under every option that changes the
 * output, and the test says which fixtures must take the fast path and
 * which must not.
 */
#include "test.h"

#include <jansson.h>

#include "api/gemini_scan.h"
#include "api/openai_chat.h"
#include "core/err.h"
#include "core/jsonw.h"

static const char id[] = "chatcmpl-test0123456789abcdefgh";

static struct gb_chat_req req_of(int include_usage)
{
    struct gb_chat_req r;

    memset(&r, 0, sizeof r);
    strcpy(r.model, "gemini-2.5-flash");
    strcpy(r.client_model, "gemini-2.5-flash");
    r.stream = 1;
    r.include_usage = include_usage;
    r.n = 1;
    return r;
}

/* Splits SSE text into its data payloads (in place): returns how many. */
static size_t sse_events(char *text, const char **ev, size_t *len, size_t max)
{
    size_t n = 0;
    char *p = text, *line;

    while (n < max && (line = strstr(p, "data: ")) != NULL) {
        char *eol = strchr(line, '\n');
        size_t l = eol ? (size_t)(eol - line - 6) : strlen(line + 6);

        while (l > 0 && line[6 + l - 1] == '\r')
            l--;
        ev[n] = line + 6;
        len[n] = l;
        n++;
        p = line + 6 + l;
    }
    return n;
}

/*
 * Translates the events both ways (text through gb_chat_stream_text, with
 * jansson where it answers GB_EAGAIN; parsed through gb_chat_stream_event)
 * and fails unless the outputs match byte for byte.  Returns how many
 * events took the fast path.
 */
static size_t diff_stream(const char *name, const char *const *ev, const size_t *len, size_t n,
                          const struct gb_chat_opts *opts, int include_usage)
{
    struct gb_chat_req req = req_of(include_usage);
    struct gb_chat_stream slow, fast;
    struct gb_buf a, b;
    size_t scanned = 0;

    gb_buf_init(&a, SIZE_MAX);
    gb_buf_init(&b, SIZE_MAX);
    gb_chat_stream_init(&slow, &req, opts, id, 1700000000);
    gb_chat_stream_init(&fast, &req, opts, id, 1700000000);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_loadb(ev[i], len[i], 0, NULL);
        int rs = 0, rf;

        if (json_is_object(v))
            rs = gb_chat_stream_event(&slow, v, &a);
        rf = gb_chat_stream_text(&fast, ev[i], len[i], 0, &b);
        if (rf == GB_EAGAIN)
            rf = json_is_object(v) ? gb_chat_stream_event(&fast, v, &b) : 0;
        else
            scanned++;
        json_decref(v);
        assert_int_equal(rs, rf);
        if (a.len != b.len || (a.len > 0 && memcmp(a.data, b.data, a.len) != 0))
            fail_msg("%s: event %zu: general path wrote\n%s\nscanned path wrote\n%s", name, i,
                     a.data ? a.data : "", b.data ? b.data : "");
    }
    assert_int_equal(gb_chat_stream_finish(&slow, &a), 0);
    assert_int_equal(gb_chat_stream_finish(&fast, &b), 0);
    if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
        fail_msg("%s: the ends differ:\n%s\n---\n%s", name, a.data, b.data);
    gb_chat_stream_release(&slow);
    gb_chat_stream_release(&fast);
    gb_buf_release(&a);
    gb_buf_release(&b);
    return scanned;
}

/* The same for a whole reply: returns 1 when it was scanned (and then
 * matched), 0 when the scan refused it. */
static int diff_reply(const char *name, const char *text, size_t n, const struct gb_chat_opts *opts)
{
    struct gb_chat_req req = req_of(0);
    struct gb_gem_event ev;
    struct gb_gem_usage u;
    struct gb_buf out;
    json_t *gem, *resp;
    char *want;
    int scanned;

    gb_gem_init(&ev);
    scanned = gb_gem_scan(&ev, text, n, opts->show_thinking, opts->show_search_link) == 0;
    gem = json_loadb(text, n, 0, NULL);
    if (scanned) {
        assert_true(json_is_object(gem));
        assert_int_equal(gb_gem_is_empty(&ev), gb_chat_response_is_empty(gem));
        gb_chat_usage_read(json_object_get(gem, "usageMetadata"), &u);
        assert_int_equal(ev.usage.prompt, u.prompt);
        assert_int_equal(ev.usage.candidates, u.candidates);
        assert_int_equal(ev.usage.thoughts, u.thoughts);
        assert_int_equal(ev.usage.total, u.total);
        assert_int_equal(ev.usage.has_total, u.has_total);
        assert_int_equal(ev.usage.has_thoughts, u.has_thoughts);
        resp = gb_chat_response_from_gemini(gem, &req, opts, id, 1700000000);
        want = gb_jsonw_dumps(resp, NULL);
        assert_non_null(want);
        gb_buf_init(&out, SIZE_MAX);
        assert_int_equal(gb_chat_response_write(&ev, &req, id, 1700000000, &out), 0);
        if (strlen(want) != out.len || memcmp(want, out.data, out.len) != 0)
            fail_msg("%s: general reply\n%s\nscanned reply\n%s", name, want, out.data);
        gb_buf_release(&out);
        free(want);
        json_decref(resp);
    }
    json_decref(gem);
    gb_gem_release(&ev);
    return scanned;
}

/* The option sets that change what is written. */
static const struct gb_chat_opts opt_sets[] = {
    {.show_thinking = 0, .show_search_link = 0},
    {.show_thinking = 1, .show_search_link = 0},
    {.show_thinking = 0, .show_search_link = 1},
    {.show_thinking = 1, .show_search_link = 1},
};
#define NOPTS (sizeof opt_sets / sizeof opt_sets[0])

/* Every recorded stream, every option set: same bytes; and the common
 * streams take the fast path for every event. */
static void test_recorded_streams(void **state)
{
    static const struct {
        const char *file;
        int all_fast;  /* 1: every event must be scanned, under every option set */
        int some_slow; /* 1: at least one event must go to jansson */
    } files[] = {
        {"gemini/stream-text.sse", 1, 0},
        {"gemini/stream-thinking.sse", 1, 0},
        {"gemini/stream-usage-mid-stream.sse", 1, 0},
        {"gemini/stream-function-call.sse", 0, 1},
        {"gemini/stream-function-call-gemini3.sse", 0, 1},
        {"gemini/stream-code-execution.sse", 0, 1},
        {"gemini/stream-grounding-google-search.sse", 0, 0},
        {"gemini/stream-prompt-blocked-legacy.sse", 0, 1},
    };
    const char *ev[256];
    size_t len[256];

    (void)state;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *text = gb_test_read_fixture(files[i].file, NULL);
        size_t n = sse_events(text, ev, len, 256);

        assert_true(n > 0);
        for (size_t o = 0; o < NOPTS; o++) {
            for (int usage = 0; usage <= 1; usage++) {
                size_t fast = diff_stream(files[i].file, ev, len, n, &opt_sets[o], usage);

                if (files[i].all_fast && fast != n)
                    fail_msg("%s: only %zu of %zu events scanned", files[i].file, fast, n);
                if (files[i].some_slow && fast == n)
                    fail_msg("%s: every event scanned, the general path never ran", files[i].file);
            }
        }
        free(text);
    }
}

/* Every recorded answer: same bytes, and the scan takes the common ones. */
static void test_recorded_replies(void **state)
{
    static const struct {
        const char *file;
        int fast; /* 1: must be scanned (with sources off), 0: must not, -1: either */
    } files[] = {
        {"gemini/generate-content-text.json", 1},
        {"gemini/generate-content-text-2.5-flash.json", 1},
        {"gemini/generate-content-thinking.json", 1},
        {"gemini/generate-content-thinking-include-thoughts.json", 1},
        {"gemini/generate-content-max-tokens.json", 1},
        {"gemini/generate-content-max-tokens-no-parts.json", 1},
        {"gemini/generate-content-recitation.json", -1},
        {"gemini/generate-content-safety-blocked.json", -1},
        {"gemini/generate-content-finish-reason-safety-legacy.json", -1},
        {"gemini/generate-content-url-context.json", -1},
        {"gemini/generate-content-function-call.json", 0},
        {"gemini/generate-content-function-call-gemini3.json", 0},
        {"gemini/generate-content-code-execution.json", 0},
        {"gemini/generate-content-code-execution-failed.json", 0},
        {"gemini/generate-content-prompt-blocked.json", 0},
        {"gemini/generate-content-prompt-blocked-legacy.json", 0},
        {"gemini/generate-content-grounding-google-search.json", -1},
    };

    (void)state;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        size_t n;
        char *text = gb_test_read_fixture(files[i].file, &n);

        for (size_t o = 0; o < NOPTS; o++) {
            int fast = diff_reply(files[i].file, text, n, &opt_sets[o]);

            if (files[i].fast >= 0 && !opt_sets[o].show_search_link && fast != files[i].fast)
                fail_msg("%s: scanned %d, expected %d", files[i].file, fast, files[i].fast);
        }
        free(text);
    }
    /* grounded answers go to the general path when sources are shown */
    {
        size_t n;
        char *text =
            gb_test_read_fixture("gemini/generate-content-grounding-google-search.json", &n);

        assert_int_equal(diff_reply("grounding", text, n, &opt_sets[2]), 0);
        free(text);
    }
}

/* Hand-made shapes: what is taken, what is refused, and same bytes
 * either way. */
static void test_shapes(void **state)
{
    static const struct {
        const char *text;
        int fast;
    } cases[] = {
        /* "thought" after "text" in the part */
        {"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hmm\",\"thought\":true},{\"text\":"
         "\"answer\"}]},\"finishReason\":\"STOP\"}]}",
         1},
        /* escapes and UTF-8 in text, control characters rewritten */
        {"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\\u003cb\\u003e \\\"q\\\" "
         "\\ud83d\\ude00 \xe6\x97\xa5 \\u0001\\n\"}]}}]}",
         1},
        /* several candidates with indexes, reasons of every kind */
        {"{\"candidates\":[{\"index\":1,\"content\":{\"parts\":[{\"text\":\"b\"}]},"
         "\"finishReason\":\"MAX_TOKENS\"},{\"index\":0,\"content\":{\"parts\":[{\"text\":\"a\"}]},"
         "\"finishReason\":\"SAFETY\"},{\"content\":{\"parts\":[]},\"finishReason\":\"ODD\"}],"
         "\"usageMetadata\":{\"promptTokenCount\":3,\"cachedContentTokenCount\":2,"
         "\"thoughtsTokenCount\":5}}",
         1},
        /* a candidate index outside the choices a stream may have */
        {"{\"candidates\":[{\"index\":9,\"content\":{\"parts\":[{\"text\":\"x\"}]}}]}", 1},
        /* no candidates at all, usage only */
        {"{\"usageMetadata\":{\"promptTokenCount\":3,\"totalTokenCount\":3}}", 1},
        /* parts the chat translation ignores (images) */
        {"{\"candidates\":[{\"content\":{\"parts\":[{\"inlineData\":{\"mimeType\":\"image/png\","
         "\"data\":\"AAAA\"}},{\"text\":\"t\",\"thoughtSignature\":\"c2ln\"}]}}]}",
         1},
        /* refused: a duplicated key jansson would read as the last */
        {"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\",\"text\":\"b\"}]}}]}", 0},
        {"{\"candidates\":[],\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"b\"}]}}]}", 0},
        /* refused: shapes the general path acts on */
        {"{\"error\":{\"code\":500,\"message\":\"boom\"}}", 0},
        {"{\"promptFeedback\":{\"blockReason\":\"OTHER\"}}", 0},
        {"{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\"}}]}}]}", 0},
        /* refused: unexpected types */
        {"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":7}]}}]}", 0},
        {"{\"candidates\":[{\"finishReason\":1}]}", 0},
        {"{\"candidates\":[{\"index\":\"0\"}]}", 0},
        {"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\",\"thought\":1}]}}]}", 0},
        {"{\"usageMetadata\":{\"promptTokenCount\":1.5}}", 0},
        {"{\"candidates\":{}}", 0},
        /* refused: too long a reason, too many candidates, not JSON */
        {"{\"candidates\":[{\"finishReason\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}", 0},
        {"{\"candidates\":[{},{},{},{},{},{},{},{},{}]}", 0},
        {"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]", 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *ev[1] = {cases[i].text};
        size_t len[1] = {strlen(cases[i].text)};
        char name[32];

        snprintf(name, sizeof name, "case %zu", i);
        for (size_t o = 0; o < NOPTS; o++) {
            int fast = diff_reply(name, cases[i].text, len[0], &opt_sets[o]);

            if (fast != cases[i].fast)
                fail_msg("%s: scanned %d, expected %d", name, fast, cases[i].fast);
            assert_int_equal(diff_stream(name, ev, len, 1, &opt_sets[o], 1), (size_t)cases[i].fast);
        }
    }
}

/* A stream that switches between the paths keeps one state: roles, usage
 * and sources carried across. */
static void test_mixed_stream(void **state)
{
    static const char *const events[] = {
        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hello\"}]}}],"
        "\"usageMetadata\":{\"promptTokenCount\":4}}",
        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\" world\"}]},\"groundingMetadata\":"
        "{\"groundingChunks\":[{\"web\":{\"uri\":\"https://a.example/\",\"title\":\"A\"}}]}}]}",
        "{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{}}}]"
        "}}]}",
        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"!\"}]},\"finishReason\":\"STOP\"}],"
        "\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":3,"
        "\"totalTokenCount\":7}}",
    };
    const char *ev[4];
    size_t len[4];

    (void)state;
    for (size_t i = 0; i < 4; i++) {
        ev[i] = events[i];
        len[i] = strlen(events[i]);
    }
    for (size_t o = 0; o < NOPTS; o++) {
        size_t fast = diff_stream("mixed", ev, len, 4, &opt_sets[o], 1);

        /* events 0 and 3 always; 1 only when sources are off */
        assert_int_equal(fast, opt_sets[o].show_search_link ? 2 : 3);
    }
}

/* skip_empty: an event with nothing in it writes and remembers nothing. */
static void test_skip_empty(void **state)
{
    const char *empty = "{\"candidates\":[{\"content\":{\"role\":\"model\"}}],"
                        "\"usageMetadata\":{\"promptTokenCount\":9}}";
    struct gb_chat_req req = req_of(1);
    struct gb_chat_stream s;
    struct gb_buf out;

    (void)state;
    gb_buf_init(&out, SIZE_MAX);
    gb_chat_stream_init(&s, &req, NULL, id, 1);
    assert_int_equal(gb_chat_stream_text(&s, empty, strlen(empty), 1, &out), 0);
    assert_int_equal(out.len, 0);
    assert_int_equal(s.has_usage, 0);
    assert_int_equal(gb_chat_stream_text(&s, empty, strlen(empty), 0, &out), 0);
    assert_true(out.len > 0); /* the first chunk of the choice, with its role */
    assert_int_equal(s.has_usage, 1);
    assert_int_equal(s.usage.prompt, 9);
    assert_int_equal(gb_chat_stream_finish(&s, &out), 0);
    assert_int_equal(gb_chat_stream_text(&s, empty, strlen(empty), 0, &out), GB_EINVAL);
    gb_chat_stream_release(&s);
    gb_buf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recorded_streams), cmocka_unit_test(test_recorded_replies),
        cmocka_unit_test(test_shapes),           cmocka_unit_test(test_mixed_stream),
        cmocka_unit_test(test_skip_empty),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
