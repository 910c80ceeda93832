/*
 * jscan_test.c - tests for the strict pull scanner (src/core/jscan.c).
 *
 * The contract that matters: the scanner never accepts text jansson refuses,
 * and decodes strings and integers as jansson does.  Every case below is
 * checked against json_loadb on the same bytes; cases jansson refuses must
 * be refused, and the cases the scanner refuses on purpose (big numbers,
 * "\u0000", deep nesting, escaped keys) are named.
 */
#include "test.h"

#include <jansson.h>

#include "core/jscan.h"

/* Validates a whole text with the scanner: one value, then only
 * whitespace. */
static int scan_all(const char *p, size_t n)
{
    struct gb_jscan j;

    gb_jscan_init(&j, p, n);
    if (gb_jscan_skip(&j) < 0)
        return -1;
    return gb_jscan_finish(&j);
}

static int jansson_ok(const char *p, size_t n)
{
    json_t *v = json_loadb(p, n, JSON_DECODE_ANY, NULL);
    int ok = v != NULL;

    json_decref(v);
    return ok;
}

/* Texts both accept. */
static void test_accepts_what_jansson_accepts(void **state)
{
    static const char *const ok[] = {
        "{}",
        "[]",
        " { \"a\" : [ 1 , -2 , 3.5 , -0 , 0.25e-3 , 1E+2 , true , false , null ] } \r\n\t",
        "{\"a\":{\"b\":{\"c\":[[],[{}]]}}}",
        "{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u20AC\\ud83d\\ude00\"}",
        "{\"utf8\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbf\xf4\x8f\xbf\xbf\"}",
        "{\"k\xc3\xa9y\":1}",
        "{\"a\":1,\"a\":2}",
        "{\"n\":123456789012345678}",
        "{\"r\":1e299}",
        "{\"r\":1e-400}",
        "\"plain\"",
        "42",
    };

    (void)state;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (!jansson_ok(ok[i], strlen(ok[i])))
            fail_msg("case %zu: jansson refuses it: %s", i, ok[i]);
        if (scan_all(ok[i], strlen(ok[i])) != 0)
            fail_msg("case %zu: the scanner refuses it: %s", i, ok[i]);
    }
}

/* Texts jansson refuses: the scanner must refuse every one. */
static void test_refuses_what_jansson_refuses(void **state)
{
    static const struct {
        const char *text;
        size_t len; /* 0: strlen */
    } bad[] = {
        {"", 0},
        {"{", 0},
        {"{\"a\"}", 0},
        {"{\"a\":}", 0},
        {"{\"a\":1,}", 0},
        {"[1,]", 0},
        {"[,1]", 0},
        {"{,\"a\":1}", 0},
        {"{\"a\":1 \"b\":2}", 0},
        {"[1 2]", 0},
        {"{} {}", 0},
        {"{}x", 0},
        {"{'a':1}", 0},
        {"{a:1}", 0},
        {"[01]", 0},
        {"[1.]", 0},
        {"[.5]", 0},
        {"[1e]", 0},
        {"[1e+]", 0},
        {"[-]", 0},
        {"[+1]", 0},
        {"[tru]", 0},
        {"[nul]", 0},
        {"[True]", 0},
        {"[\"a]", 0},
        {"[\"\\x\"]", 0},
        {"[\"\\u12\"]", 0},
        {"[\"\\u12g4\"]", 0},
        {"[\"\\ud800\"]", 0},        /* high surrogate alone */
        {"[\"\\ud800\\u0041\"]", 0}, /* high surrogate, then not a low one */
        {"[\"\\udc00\"]", 0},        /* low surrogate alone */
        {"[\"a\tb\"]", 0},           /* raw control character */
        {"[\"a\x01\"]", 0},
        {"[\"\x80\"]", 0},             /* stray continuation byte */
        {"[\"\xc0\xaf\"]", 0},         /* overlong '/' */
        {"[\"\xc1\xbf\"]", 0},         /* overlong */
        {"[\"\xe0\x80\xaf\"]", 0},     /* overlong */
        {"[\"\xed\xa0\x80\"]", 0},     /* UTF-8 encoded surrogate */
        {"[\"\xf0\x80\x80\xaf\"]", 0}, /* overlong */
        {"[\"\xf4\x90\x80\x80\"]", 0}, /* above U+10FFFF */
        {"[\"\xf5\x80\x80\x80\"]", 0},
        {"[\"\xff\"]", 0},
        {"[\"\xc3\"]", 0},     /* cut sequence */
        {"[\"\xe2\x82\"]", 0}, /* cut sequence */
        {"[\"a\0b\"]", 6},     /* raw NUL */
        {"[1]\0", 4},
        {"[99999999999999999999999]", 0}, /* jansson: too big integer */
        {"[1e400]", 0},                   /* jansson: real overflow */
        {"\xef\xbb\xbf{}", 0},            /* byte order mark */
    };

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = bad[i].len ? bad[i].len : strlen(bad[i].text);

        if (jansson_ok(bad[i].text, n))
            fail_msg("case %zu: jansson accepts it, fix the case", i);
        if (scan_all(bad[i].text, n) == 0)
            fail_msg("case %zu: the scanner accepts what jansson refuses", i);
    }
}

/* Refused on purpose although jansson takes them: the caller falls back to
 * jansson, which reads them its way. */
static void test_refuses_where_it_could_differ(void **state)
{
    static const char *const cases[] = {
        "[\"\\u0000\"]",         /* jansson refuses it too, without JSON_ALLOW_NUL */
        "[1234567890123456789]", /* 19 digits: fits, but beyond the scanner's 18 */
        "[1e301]",               /* might overflow: jansson's call */
        "[123456789.0e295]",     /* the same, by its integer digits */
    };
    struct gb_jscan j;
    const char *k;
    size_t kl;
    char deep[2 * GB_JSCAN_MAX_DEPTH + 8];
    size_t n = 0;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_not_equal(scan_all(cases[i], strlen(cases[i])), 0);
    /* nesting: GB_JSCAN_MAX_DEPTH levels pass, one more does not */
    for (int d = 0; d < GB_JSCAN_MAX_DEPTH; d++)
        deep[n++] = '[';
    for (int d = 0; d < GB_JSCAN_MAX_DEPTH; d++)
        deep[n++] = ']';
    assert_int_equal(scan_all(deep, n), 0);
    memmove(deep + 1, deep, n);
    deep[0] = '[';
    deep[++n] = ']';
    n++;
    assert_true(jansson_ok(deep, n));
    assert_int_not_equal(scan_all(deep, n), 0);
    /* an escaped key could name "text": refused, not compared raw */
    gb_jscan_init(&j, "{\"te\\u0078t\":1}", 15);
    assert_int_equal(gb_jscan_object(&j), 0);
    assert_true(gb_jscan_key(&j, &k, &kl) < 0);
}

/* Decoded strings are the bytes jansson decodes. */
static void test_strings_decode_as_jansson(void **state)
{
    static const char *const cases[] = {
        "\"\"",
        "\"plain ascii\"",
        "\"\\\"quoted\\\" \\\\ back \\/ slash\"",
        "\"\\b\\f\\n\\r\\t\"",
        "\"\\u0001\\u001f\\u007f\\u0080\\u07ff\\u0800\\uffff\"",
        "\"\\ud83d\\ude00 and \\uD834\\uDD1E\"",
        "\"\\u003cb\\u003e \\u0026amp; \\u2028\"",
        "\"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80 mixed \\u00e9\"",
    };
    struct gb_jscan j;
    struct gb_buf out;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v = json_loads(cases[i], JSON_DECODE_ANY, NULL);

        assert_non_null(v);
        gb_buf_init(&out, 4096);
        gb_jscan_init(&j, cases[i], strlen(cases[i]));
        assert_int_equal(gb_jscan_string(&j, &out), 0);
        assert_int_equal(gb_jscan_finish(&j), 0);
        assert_int_equal(out.len, json_string_length(v));
        if (out.len > 0)
            assert_memory_equal(out.data, json_string_value(v), out.len);
        gb_buf_release(&out);
        json_decref(v);
    }
    /* a buffer too small: its error comes back, not a refusal */
    gb_buf_init(&out, 3);
    gb_jscan_init(&j, "\"abcdef\"", 8);
    assert_int_equal(gb_jscan_string(&j, &out), GB_ETOOBIG);
    gb_buf_release(&out);
}

/* Walking an object: keys in order, values read or skipped, types
 * checked. */
static void test_walk(void **state)
{
    const char *text = "{\"n\": -42, \"b\": true, \"f\": false, \"x\": [1, {\"y\": null}], "
                       "\"r\": 1.5, \"s\": \"v\"}";
    struct gb_jscan j;
    const char *k;
    size_t kl;
    long long v = 0;
    int b = -1;

    (void)state;
    gb_jscan_init(&j, text, strlen(text));
    assert_int_equal(gb_jscan_peek(&j), GB_JT_OBJECT);
    assert_int_equal(gb_jscan_object(&j), 0);
    assert_int_equal(gb_jscan_key(&j, &k, &kl), 1);
    assert_true(gb_jscan_is(k, kl, "n"));
    assert_false(gb_jscan_is(k, kl, "nn"));
    assert_int_equal(gb_jscan_int(&j, &v), 0);
    assert_int_equal(v, -42);
    assert_int_equal(gb_jscan_key(&j, &k, &kl), 1);
    assert_true(gb_jscan_is(k, kl, "b"));
    assert_int_equal(gb_jscan_bool(&j, &b), 0);
    assert_int_equal(b, 1);
    assert_int_equal(gb_jscan_key(&j, &k, &kl), 1);
    assert_int_equal(gb_jscan_bool(&j, &b), 0);
    assert_int_equal(b, 0);
    assert_int_equal(gb_jscan_key(&j, &k, &kl), 1);
    assert_true(gb_jscan_is(k, kl, "x"));
    assert_int_equal(gb_jscan_peek(&j), GB_JT_ARRAY);
    assert_int_equal(gb_jscan_skip(&j), 0);
    assert_int_equal(gb_jscan_key(&j, &k, &kl), 1);
    assert_true(gb_jscan_is(k, kl, "r"));
    assert_true(gb_jscan_int(&j, &v) < 0); /* a real is not an integer */
    assert_int_equal(gb_jscan_skip(&j), 0);
    assert_int_equal(gb_jscan_key(&j, &k, &kl), 1);
    assert_true(gb_jscan_bool(&j, &b) < 0); /* a string is not a boolean */
    assert_int_equal(gb_jscan_skip(&j), 0);
    assert_int_equal(gb_jscan_key(&j, &k, &kl), 0);
    assert_int_equal(gb_jscan_finish(&j), 0);
    /* an open container is not finished */
    gb_jscan_init(&j, "[1", 2);
    assert_int_equal(gb_jscan_array(&j), 0);
    assert_int_equal(gb_jscan_item(&j), 1);
    assert_int_equal(gb_jscan_skip(&j), 0);
    assert_true(gb_jscan_finish(&j) < 0);
}

/* Plain strings: their bytes as they stand, escapes refused. */
static void test_plain(void **state)
{
    struct gb_jscan j;
    const char *s;
    size_t n;

    (void)state;
    gb_jscan_init(&j, " \"us\xc3\xa9r\"", 8);
    assert_int_equal(gb_jscan_plain(&j, &s, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(s, "us\xc3\xa9r", 5);
    assert_int_equal(gb_jscan_finish(&j), 0);
    gb_jscan_init(&j, "\"us\\u0065r\"", 11);
    assert_true(gb_jscan_plain(&j, &s, &n) < 0);
    gb_jscan_init(&j, "\"a\x01\"", 4);
    assert_true(gb_jscan_plain(&j, &s, &n) < 0);
    gb_jscan_init(&j, "7", 1);
    assert_true(gb_jscan_plain(&j, &s, &n) < 0);
}

/* Every recorded Gemini body and stream event: the scanner accepts it, as
 * jansson does. */
static void test_recorded_bodies(void **state)
{
    static const char *const files[] = {
        "gemini/generate-content-text.json",
        "gemini/generate-content-thinking.json",
        "gemini/generate-content-function-call.json",
        "gemini/generate-content-grounding-google-search.json",
        "gemini/generate-content-code-execution.json",
        "gemini/models-list.json",
        "gemini/error-429-resource-exhausted.json",
        "gemini/stream-text.sse",
        "gemini/stream-thinking.sse",
        "gemini/stream-function-call.sse",
        "gemini/stream-grounding-google-search.sse",
    };

    (void)state;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        size_t n, events = 0;
        char *text = gb_test_read_fixture(files[i], &n);
        const char *p = text, *line;

        if (strstr(files[i], ".sse") == NULL) {
            assert_true(jansson_ok(text, n));
            if (scan_all(text, n) != 0)
                fail_msg("%s: refused", files[i]);
            free(text);
            continue;
        }
        while ((line = strstr(p, "data: ")) != NULL) {
            const char *eol = strchr(line, '\n');
            size_t len = eol ? (size_t)(eol - line - 6) : strlen(line + 6);

            while (len > 0 && line[6 + len - 1] == '\r')
                len--;
            assert_true(jansson_ok(line + 6, len));
            if (scan_all(line + 6, len) != 0)
                fail_msg("%s: event %zu refused", files[i], events);
            events++;
            p = line + 6;
        }
        assert_true(events > 0);
        free(text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_what_jansson_accepts),
        cmocka_unit_test(test_refuses_what_jansson_refuses),
        cmocka_unit_test(test_refuses_where_it_could_differ),
        cmocka_unit_test(test_strings_decode_as_jansson),
        cmocka_unit_test(test_walk),
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_recorded_bodies),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
