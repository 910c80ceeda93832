/*
 * keypool_test.c - selection, failures, per-model and per-day cooldowns,
 * local limits, pool-wide throttling, strategies, administration.  The clock
 * is injected: no test sleeps.
 */
#include "test.h"

#include "core/err.h"
#include "keypool/keypool.h"

static int64_t fake_now;
static int64_t clock_fn(void)
{
    return fake_now;
}

/* 2026-01-15 12:00:00 UTC (PST, UTC-8) */
#define T_WINTER 1768478400000LL
/* 2026-07-15 12:00:00 UTC (PDT, UTC-7) */
#define T_SUMMER 1784116800000LL

static struct gb_keypool *pool_with(const char *csv, long max_failures, enum gb_key_strategy st,
                                    long rpm, long rpd)
{
    struct gb_keypool_opts o = {0};
    struct gb_strlist l;
    struct gb_keypool *kp;

    o.max_failures = max_failures;
    o.strategy = st;
    o.rpm_limit = rpm;
    o.rpd_limit = rpd;
    o.now_ms = clock_fn;
    assert_int_equal(gb_strlist_parse(csv, &l), 0);
    kp = gb_keypool_new(&l, &o);
    gb_strlist_release(&l);
    assert_non_null(kp);
    return kp;
}

static struct gb_keypool *pool_of(const char *csv, long max_failures)
{
    return pool_with(csv, max_failures, GB_PICK_ROUND_ROBIN, 0, 0);
}

static uint32_t pick_for(struct gb_keypool *kp, const char *model)
{
    uint32_t idx = 99;
    int64_t ra;
    int rc = gb_keypool_pick(kp, model, NULL, 0, &idx, &ra);

    if (rc != 0)
        fail_msg("pick for %s failed: %d", model ? model : "-", rc);
    return idx;
}

static int setup(void **state)
{
    (void)state;
    fake_now = T_WINTER;
    return 0;
}

static void test_round_robin_and_dedup(void **state)
{
    struct gb_keypool *kp = pool_of("k0,k1,k2,k1", 3);
    char buf[32];

    (void)state;
    assert_int_equal(gb_keypool_size(kp), 3);
    for (int round = 0; round < 3; round++)
        for (uint32_t i = 0; i < 3; i++)
            assert_int_equal(pick_for(kp, "m"), i);
    assert_string_equal(gb_keypool_key(kp, 2, buf, sizeof buf), "k2");
    gb_keypool_free(kp);
}

static void test_empty_pool(void **state)
{
    struct gb_keypool *kp = pool_of("", 3);
    uint32_t idx;
    int64_t ra;

    (void)state;
    assert_int_equal(gb_keypool_pick(kp, "m", NULL, 0, &idx, &ra), GB_ENOKEY);
    gb_keypool_free(kp);
}

static void test_tried_keys_avoided_then_reused(void **state)
{
    struct gb_keypool *kp = pool_of("k0,k1", 3);
    uint32_t tried[2] = {0, 1}, idx;
    int64_t ra;

    (void)state;
    assert_int_equal(gb_keypool_pick(kp, "m", tried, 1, &idx, &ra), 0);
    assert_int_equal(idx, 1);
    assert_int_equal(gb_keypool_pick(kp, "m", tried, 2, &idx, &ra), 0); /* better than none */
    gb_keypool_free(kp);
}

static void test_failures_disable_and_success_resets(void **state)
{
    struct gb_keypool *kp = pool_of("k0,k1", 2);
    struct gb_keypool_stats st;
    struct gb_key_info info;
    struct gb_key_report rep = {0, 0, "400 API_KEY_INVALID", 0};

    (void)state;
    gb_keypool_report(kp, 0, "m", GB_KEY_FAILED, &rep);
    gb_keypool_report(kp, 0, "m", GB_KEY_OK, NULL);
    gb_keypool_report(kp, 0, "m", GB_KEY_FAILED, &rep);
    gb_keypool_stats(kp, &st);
    assert_int_equal(st.disabled, 0);
    gb_keypool_report(kp, 0, "m", GB_KEY_FAILED, &rep);
    gb_keypool_stats(kp, &st);
    assert_int_equal(st.disabled, 1);
    assert_int_equal(st.usable, 1);
    assert_int_equal(gb_keypool_info(kp, 0, &info), 0);
    assert_string_equal(info.last_error, "400 API_KEY_INVALID");
    for (int i = 0; i < 4; i++)
        assert_int_equal(pick_for(kp, "m"), 1);
    assert_int_equal(gb_keypool_set_disabled(kp, 0, 0), 0); /* by hand */
    gb_keypool_stats(kp, &st);
    assert_int_equal(st.usable, 2);
    gb_keypool_free(kp);
}

static void test_cooldown_is_per_model(void **state)
{
    struct gb_keypool *kp = pool_of("k0,k1", 3);
    struct gb_key_report rep = {30000, 0, NULL, 0};
    uint32_t idx;
    int64_t ra = 0;

    (void)state;
    gb_keypool_report(kp, 0, "gemini-2.5-pro", GB_KEY_LIMITED, &rep);
    /* pro: only k1; flash: both */
    assert_int_equal(pick_for(kp, "gemini-2.5-pro"), 1);
    assert_int_equal(pick_for(kp, "gemini-2.5-pro"), 1);
    assert_int_equal(pick_for(kp, "gemini-2.5-flash"), 0);
    assert_int_equal(pick_for(kp, "gemini-2.5-flash"), 1);
    rep.cooldown_ms = 5000;
    gb_keypool_report(kp, 1, "gemini-2.5-pro", GB_KEY_LIMITED, &rep);
    assert_int_equal(gb_keypool_pick(kp, "gemini-2.5-pro", NULL, 0, &idx, &ra), GB_EBUSY);
    assert_int_equal(ra, 5000); /* the soonest cooldown */
    fake_now += 5000;
    assert_int_equal(pick_for(kp, "gemini-2.5-pro"), 1);
    fake_now += 25000;
    assert_int_equal(pick_for(kp, "gemini-2.5-pro"), 0);
    gb_keypool_free(kp);
}

static void test_no_retry_delay_cools_to_next_minute(void **state)
{
    struct gb_keypool *kp = pool_of("k0", 3);
    uint32_t idx;
    int64_t ra;

    (void)state;
    fake_now = T_WINTER + 20000; /* 20 s into a minute */
    gb_keypool_report(kp, 0, "m", GB_KEY_LIMITED, NULL);
    assert_int_equal(gb_keypool_pick(kp, "m", NULL, 0, &idx, &ra), GB_EBUSY);
    assert_int_equal(ra, 40000);
    gb_keypool_free(kp);
}

static void test_per_day_quota_until_pacific_midnight(void **state)
{
    struct gb_keypool *kp = pool_of("k0,k1", 3);
    struct gb_key_report rep = {26000, 1, NULL, 0};
    struct gb_key_info info;

    (void)state;
    gb_keypool_report(kp, 0, "m", GB_KEY_LIMITED, &rep);
    assert_int_equal(gb_keypool_info(kp, 0, &info), 0);
    assert_int_equal(info.ncool, 1);
    assert_string_equal(info.cool_model[0], "m");
    /* 2026-01-16 00:00 PST = 08:00 UTC */
    assert_int_equal(info.cool_until[0], 1768550400000LL);
    gb_keypool_free(kp);
}

static void test_pacific_midnight(void **state)
{
    (void)state;
    /* winter: 2026-01-15 12:00 UTC = 04:00 PST -> 2026-01-16 08:00 UTC */
    assert_int_equal(gb_keypool_pacific_midnight_after(T_WINTER), 1768550400000LL);
    /* summer: 2026-07-15 12:00 UTC = 05:00 PDT -> 2026-07-16 07:00 UTC */
    assert_int_equal(gb_keypool_pacific_midnight_after(T_SUMMER), 1784185200000LL);
    /* 2026-01-15 07:59:59 UTC is 23:59:59 PST on the 14th: reset a second later */
    assert_int_equal(gb_keypool_pacific_midnight_after(1768463999000LL), 1768464000000LL);
    /* DST starts 2026-03-08: 2026-03-08 09:00 UTC = 01:00 PST -> next midnight is PDT:
     * 2026-03-09 07:00 UTC */
    assert_int_equal(gb_keypool_pacific_midnight_after(1772960400000LL), 1773039600000LL);
}

static void test_pool_wide_throttle(void **state)
{
    struct gb_keypool *kp = pool_of("k0,k1,k2,k3", 3);
    struct gb_key_report rep = {30000, 0, NULL, 0};
    struct gb_keypool_stats st;
    uint32_t idx;
    int64_t ra;

    (void)state;
    gb_keypool_report(kp, 0, "m", GB_KEY_LIMITED, &rep);
    fake_now += 1000;
    gb_keypool_report(kp, 1, "m", GB_KEY_LIMITED, &rep);
    gb_keypool_stats(kp, &st);
    assert_int_equal(st.cooling, 2);
    assert_false(st.throttled);
    fake_now += 1000;
    gb_keypool_report(kp, 2, "m", GB_KEY_LIMITED, &rep); /* 3 of 4 keys within 10 s */
    gb_keypool_stats(kp, &st);
    assert_true(st.throttled);
    assert_int_equal(st.cooling, 0); /* the keys were not blamed */
    assert_int_equal(gb_keypool_pick(kp, "m", NULL, 0, &idx, &ra), GB_EAGAIN);
    assert_int_equal(ra, GB_THROTTLE_FIRST_MS);
    /* 429s during the throttle do not cool keys */
    gb_keypool_report(kp, 3, "m", GB_KEY_LIMITED, &rep);
    fake_now += GB_THROTTLE_FIRST_MS;
    gb_keypool_stats(kp, &st);
    assert_false(st.throttled);
    assert_int_equal(st.usable, 4);
    /* recurring soon after: the backoff doubles */
    for (uint32_t k = 0; k < 3; k++)
        gb_keypool_report(kp, k, "m", GB_KEY_LIMITED, &rep);
    assert_int_equal(gb_keypool_pick(kp, "m", NULL, 0, &idx, &ra), GB_EAGAIN);
    assert_int_equal(ra, 2 * GB_THROTTLE_FIRST_MS);
    gb_keypool_free(kp);
}

static void test_rpm_and_rpd_limits(void **state)
{
    struct gb_keypool *kp = pool_with("k0,k1", 3, GB_PICK_ROUND_ROBIN, 2, 0);
    uint32_t idx;
    int64_t ra;

    (void)state;
    fake_now = T_WINTER + 1000;
    for (int i = 0; i < 4; i++)
        pick_for(kp, "m");
    assert_int_equal(gb_keypool_pick(kp, "m", NULL, 0, &idx, &ra), GB_EBUSY);
    assert_int_equal(ra, 59000); /* the next minute */
    fake_now += 59000;
    pick_for(kp, "m");
    gb_keypool_free(kp);

    kp = pool_with("k0", 3, GB_PICK_ROUND_ROBIN, 0, 3);
    for (int i = 0; i < 3; i++)
        pick_for(kp, "other-model");
    assert_int_equal(gb_keypool_pick(kp, "m", NULL, 0, &idx, &ra), GB_EBUSY);
    fake_now = gb_keypool_pacific_midnight_after(fake_now);
    pick_for(kp, "m");
    gb_keypool_free(kp);
}

static void test_random_and_least_used_spread(void **state)
{
    struct gb_keypool *kp = pool_with("k0,k1,k2,k3", 3, GB_PICK_RANDOM, 0, 0);
    int counts[4] = {0};

    (void)state;
    for (int i = 0; i < 4000; i++)
        counts[pick_for(kp, "m")]++;
    for (int k = 0; k < 4; k++)
        assert_true(counts[k] > 700 && counts[k] < 1300);
    gb_keypool_free(kp);

    kp = pool_with("k0,k1,k2", 3, GB_PICK_LEAST_USED, 0, 0);
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < 300; i++)
        counts[pick_for(kp, "m")]++;
    for (int k = 0; k < 3; k++)
        assert_int_equal(counts[k], 100); /* exactly even */
    gb_keypool_free(kp);
}

static void test_admin_add_delete_sync(void **state)
{
    struct gb_keypool *kp = pool_of("k0,k1", 3);
    struct gb_strlist l;
    uint32_t idx = 0;

    (void)state;
    assert_int_equal(gb_keypool_add(kp, "key-k2", 1, NULL), 2);
    assert_int_equal(gb_keypool_add(kp, "key-k2", 1, &idx), GB_EAGAIN);
    assert_int_equal(idx, 2);
    assert_int_equal(gb_keypool_add(kp, "bad key x", 1, NULL), GB_EINVAL);
    assert_int_equal(gb_keypool_add(kp, "", 1, NULL), GB_EINVAL);
    assert_int_equal(gb_keypool_add(kp, "short", 1, NULL), GB_EINVAL);
    assert_int_equal(gb_keypool_add(kp, "key\"quote", 1, NULL), GB_EINVAL);
    assert_int_equal(gb_keypool_delete(kp, 0), 0);
    assert_int_equal(gb_keypool_size(kp), 2);
    for (int i = 0; i < 6; i++)
        assert_int_not_equal(pick_for(kp, "m"), 0);
    assert_int_equal(gb_keypool_find(kp, "k0", &idx), GB_EINVAL);
    assert_int_equal(gb_keypool_add(kp, "k0", 1, NULL), GB_EINVAL); /* admins: too short */
    assert_int_equal(gb_keypool_add(kp, "k0", 0, NULL), 0);         /* .env: the slot comes back */
    /* reload: k0 and k1 dropped, key-k0 and key-k3 added, key-k2 (admin) kept */
    assert_int_equal(gb_strlist_parse("key-k0,key-k3", &l), 0);
    assert_int_equal(gb_keypool_sync(kp, &l), 4);
    gb_strlist_release(&l);
    assert_int_equal(gb_keypool_find(kp, "k1", &idx), GB_EINVAL);
    assert_int_equal(gb_keypool_find(kp, "key-k2", &idx), 0);
    assert_int_equal(gb_keypool_find(kp, "key-k3", &idx), 0);
    assert_int_equal(gb_keypool_size(kp), 3);
    /* a deleted key added again gets its slot back */
    assert_int_equal(gb_keypool_delete(kp, 2), 0);
    assert_int_equal(gb_keypool_add(kp, "key-k2", 1, NULL), 2);
    gb_keypool_free(kp);
}

static void test_restore(void **state)
{
    struct gb_keypool *kp = pool_of("k0,k1", 3);
    const char *models[] = {"gemini-2.5-pro", ""};
    int64_t until[] = {T_WINTER + 10000, T_WINTER - 1};
    struct gb_keypool_stats st;

    (void)state;
    gb_keypool_restore(kp, 0, 1, 3, "403 PERMISSION_DENIED", 0, NULL, NULL);
    gb_keypool_restore(kp, 1, 0, 0, NULL, 2, models, until);
    gb_keypool_stats(kp, &st);
    assert_int_equal(st.disabled, 1);
    assert_int_equal(st.cooling, 1); /* the expired "" cooldown is ignored */
    gb_keypool_free(kp);
}

static int64_t changes;
static void on_change(void *ud, const struct gb_key_snapshot *s)
{
    (void)ud;
    (void)s;
    changes++;
}

static void test_change_callback(void **state)
{
    struct gb_keypool_opts o = {.max_failures = 3,
                                .strategy = GB_PICK_ROUND_ROBIN,
                                .now_ms = clock_fn,
                                .on_change = on_change};
    struct gb_strlist l;
    struct gb_keypool *kp;

    (void)state;
    assert_int_equal(gb_strlist_parse("k0", &l), 0);
    kp = gb_keypool_new(&l, &o);
    gb_strlist_release(&l);
    changes = 0;
    gb_keypool_report(kp, 0, "m", GB_KEY_OK, NULL); /* nothing changed */
    assert_int_equal(changes, 0);
    gb_keypool_report(kp, 0, "m", GB_KEY_FAILED, NULL);
    gb_keypool_report(kp, 0, "m", GB_KEY_LIMITED, NULL);
    gb_keypool_set_disabled(kp, 0, 1);
    assert_int_equal(changes, 3);
    gb_keypool_free(kp);
}

/* 50,000 keys, all but the last out of daily quota: picks still find the
 * one left (the bitmap skips full words through the summary level).  Daily
 * quotas do not count as pool-wide throttling. */
static void test_large_pool(void **state)
{
    enum { N = 50000 };
    struct gb_strlist l = {calloc(N, sizeof(char *)), N};
    struct gb_keypool_opts o = {
        .max_failures = 3, .strategy = GB_PICK_ROUND_ROBIN, .now_ms = clock_fn};
    struct gb_key_report rep = {0, 1, NULL, 0};
    struct gb_keypool *kp;

    (void)state;
    for (size_t i = 0; i < N; i++) {
        l.v[i] = malloc(16);
        snprintf(l.v[i], 16, "key-%05zu", i);
    }
    kp = gb_keypool_new(&l, &o);
    gb_strlist_release(&l);
    assert_non_null(kp);
    for (uint32_t i = 0; i < N - 1; i++)
        gb_keypool_report(kp, i, "m", GB_KEY_LIMITED, &rep);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(pick_for(kp, "m"), N - 1);
    assert_int_equal(pick_for(kp, "other"), 0); /* other models unaffected */
    gb_keypool_free(kp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_round_robin_and_dedup, setup),
        cmocka_unit_test_setup(test_empty_pool, setup),
        cmocka_unit_test_setup(test_tried_keys_avoided_then_reused, setup),
        cmocka_unit_test_setup(test_failures_disable_and_success_resets, setup),
        cmocka_unit_test_setup(test_cooldown_is_per_model, setup),
        cmocka_unit_test_setup(test_no_retry_delay_cools_to_next_minute, setup),
        cmocka_unit_test_setup(test_per_day_quota_until_pacific_midnight, setup),
        cmocka_unit_test_setup(test_pacific_midnight, setup),
        cmocka_unit_test_setup(test_pool_wide_throttle, setup),
        cmocka_unit_test_setup(test_rpm_and_rpd_limits, setup),
        cmocka_unit_test_setup(test_random_and_least_used_spread, setup),
        cmocka_unit_test_setup(test_admin_add_delete_sync, setup),
        cmocka_unit_test_setup(test_restore, setup),
        cmocka_unit_test_setup(test_change_callback, setup),
        cmocka_unit_test_setup(test_large_pool, setup),
    };
    return cmocka_run_group_tests_name("keypool", tests, NULL, NULL);
}
