/* urlcache_test.c - the parsed-URL cache: hits, the bound, eviction only of
 * entries no transfer holds, refusals, and the parse matching libcurl's. */
#include "test.h"

#include "upstream/urlcache.h"

#define BASE "https://generativelanguage.googleapis.com/v1beta/models/"

static void url_of(char *out, size_t n, int i)
{
    snprintf(out, n, BASE "model-%d:generateContent", i);
}

/* The URL a cached handle gives back, freed by the caller. */
static char *url_back(struct gb_urlcache_ent *e)
{
    char *u = NULL;

    assert_int_equal(curl_url_get(gb_urlcache_curlu(e), CURLUPART_URL, &u, 0), CURLUE_OK);
    return u;
}

static void test_hit_and_miss(void **state)
{
    struct gb_urlcache *c = gb_urlcache_new(4);
    struct gb_urlcache_ent *a, *b, *a2;
    char *u;

    (void)state;
    assert_non_null(c);
    a = gb_urlcache_get(c, BASE "gemini-2.5-flash:generateContent");
    assert_non_null(a);
    b = gb_urlcache_get(c, BASE "gemini-2.5-pro:generateContent");
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    a2 = gb_urlcache_get(c, BASE "gemini-2.5-flash:generateContent");
    assert_ptr_equal(a, a2); /* a hit: the same parsed handle */
    assert_ptr_equal(gb_urlcache_curlu(a), gb_urlcache_curlu(a2));
    assert_int_equal(gb_urlcache_count(c), 2);
    u = url_back(a);
    assert_string_equal(u, BASE "gemini-2.5-flash:generateContent");
    curl_free(u);
    gb_urlcache_put(c, a);
    gb_urlcache_put(c, a2);
    gb_urlcache_put(c, b);
    /* unreferenced entries stay cached */
    assert_ptr_equal(gb_urlcache_get(c, BASE "gemini-2.5-pro:generateContent"), b);
    gb_urlcache_put(c, b);
    gb_urlcache_free(c);
}

static void test_bound_and_lru(void **state)
{
    struct gb_urlcache *c = gb_urlcache_new(8);
    struct gb_urlcache_ent *e[8], *n;
    char url[256];

    (void)state;
    for (int i = 0; i < 8; i++) {
        url_of(url, sizeof url, i);
        e[i] = gb_urlcache_get(c, url);
        assert_non_null(e[i]);
        gb_urlcache_put(c, e[i]);
    }
    /* use 0 again: 1 is now the least recently used */
    url_of(url, sizeof url, 0);
    assert_ptr_equal(gb_urlcache_get(c, url), e[0]);
    gb_urlcache_put(c, e[0]);
    for (int i = 8; i < 100; i++) {
        url_of(url, sizeof url, i);
        n = gb_urlcache_get(c, url);
        assert_non_null(n);
        gb_urlcache_put(c, n);
        assert_true(gb_urlcache_count(c) <= 8);
        if (i == 8)
            assert_ptr_equal(n, e[1]); /* took the slot of the oldest */
    }
    assert_int_equal(gb_urlcache_count(c), 8);
    gb_urlcache_free(c);
}

static void test_no_eviction_while_referenced(void **state)
{
    struct gb_urlcache *c = gb_urlcache_new(4);
    struct gb_urlcache_ent *held[4], *n;
    char url[256], *u;

    (void)state;
    for (int i = 0; i < 4; i++) {
        url_of(url, sizeof url, i);
        held[i] = gb_urlcache_get(c, url); /* transfers in flight */
        assert_non_null(held[i]);
    }
    /* every slot is held: a new URL is refused, nothing is evicted */
    for (int i = 4; i < 20; i++) {
        url_of(url, sizeof url, i);
        assert_null(gb_urlcache_get(c, url));
    }
    for (int i = 0; i < 4; i++) {
        url_of(url, sizeof url, i);
        u = url_back(held[i]); /* still the URL its transfer was given */
        assert_string_equal(u, url);
        curl_free(u);
    }
    /* one transfer ends: only its entry may go */
    gb_urlcache_put(c, held[2]);
    url_of(url, sizeof url, 50);
    n = gb_urlcache_get(c, url);
    assert_ptr_equal(n, held[2]);
    u = url_back(n);
    assert_string_equal(u, url);
    curl_free(u);
    for (int i = 0; i < 4; i++) {
        if (i == 2)
            continue;
        url_of(url, sizeof url, i);
        u = url_back(held[i]);
        assert_string_equal(u, url);
        curl_free(u);
    }
    /* a held entry is found again (a second reference), not replaced */
    url_of(url, sizeof url, 0);
    assert_ptr_equal(gb_urlcache_get(c, url), held[0]);
    gb_urlcache_put(c, held[0]);
    for (int i = 0; i < 4; i++)
        gb_urlcache_put(c, i == 2 ? n : held[i]);
    gb_urlcache_free(c);
}

static void test_refusals(void **state)
{
    struct gb_urlcache *c = gb_urlcache_new(2);
    char *big = malloc(GB_URLCACHE_URL_MAX + 2);
    size_t pre = strlen(BASE);

    (void)state;
    assert_null(gb_urlcache_new(0));
    assert_non_null(big);
    /* exactly the limit is cached, one byte more is not */
    memcpy(big, BASE, pre);
    memset(big + pre, 'a', GB_URLCACHE_URL_MAX + 1 - pre);
    big[GB_URLCACHE_URL_MAX + 1] = '\0';
    assert_null(gb_urlcache_get(c, big));
    big[GB_URLCACHE_URL_MAX] = '\0';
    struct gb_urlcache_ent *e = gb_urlcache_get(c, big);
    assert_non_null(e);
    gb_urlcache_put(c, e);
    /* what libcurl's own parse of CURLOPT_URL rejects is not cached either */
    assert_null(gb_urlcache_get(c, BASE "a model:generateContent"));
    assert_null(gb_urlcache_get(c, "http://[::1/x"));
    assert_int_equal(gb_urlcache_count(c), 1);
    free(big);
    gb_urlcache_free(c);
}

/* The cached parse is the one libcurl makes of a CURLOPT_URL string (same
 * flags): parts that go on the wire come out the same. */
static void test_parse_matches_libcurl(void **state)
{
    static const char *const urls[] = {
        BASE "gemini-2.5-flash:streamGenerateContent?alt=sse",
        "http://127.0.0.1:18100/v1beta/models/x:generateContent?alt=json&$fields=a",
        "generativelanguage.googleapis.com/v1beta/models", /* no scheme: guessed */
        "HTTPS://Example.COM:443/a/./b/../c?q=%20",
    };
    static const CURLUPart parts[] = {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT,
                                      CURLUPART_PATH, CURLUPART_QUERY};
    struct gb_urlcache *c = gb_urlcache_new(8);

    (void)state;
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        struct gb_urlcache_ent *e = gb_urlcache_get(c, urls[i]);
        CURLU *ref = curl_url();

        assert_non_null(e);
        assert_int_equal(curl_url_set(ref, CURLUPART_URL, urls[i],
                                      CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME),
                         CURLUE_OK);
        for (size_t p = 0; p < sizeof parts / sizeof parts[0]; p++) {
            char *a = NULL, *b = NULL;
            unsigned fl = parts[p] == CURLUPART_PORT ? CURLU_DEFAULT_PORT : 0;
            CURLUcode ua = curl_url_get(gb_urlcache_curlu(e), parts[p], &a, fl);
            CURLUcode ub = curl_url_get(ref, parts[p], &b, fl);
            assert_int_equal(ua, ub);
            if (ua == CURLUE_OK)
                assert_string_equal(a, b);
            curl_free(a);
            curl_free(b);
        }
        curl_url_cleanup(ref);
        gb_urlcache_put(c, e);
    }
    gb_urlcache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_and_miss),
        cmocka_unit_test(test_bound_and_lru),
        cmocka_unit_test(test_no_eviction_while_referenced),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_parse_matches_libcurl),
    };
    return cmocka_run_group_tests_name("urlcache", tests, NULL, NULL);
}
