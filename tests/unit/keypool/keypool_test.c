/* keypool_test.c - round robin, tried-key avoidance, failures, cooldowns. */
#include "test.h"

#include "core/err.h"
#include "keypool/keypool.h"

static struct gb_keypool *pool_of(const char *csv, long max_failures)
{
    struct gb_strlist l;
    struct gb_keypool *kp;

    assert_int_equal(gb_strlist_parse(csv, &l), 0);
    kp = gb_keypool_new(&l, max_failures);
    gb_strlist_release(&l);
    assert_non_null(kp);
    return kp;
}

static uint32_t pick(struct gb_keypool *kp)
{
    uint32_t idx = 99;
    int64_t ra;

    assert_int_equal(gb_keypool_pick(kp, NULL, 0, &idx, &ra), 0);
    return idx;
}

static void test_round_robin_and_dedup(void **state)
{
    struct gb_keypool *kp = pool_of("k0,k1,k2,k1", 3);

    (void)state;
    assert_int_equal(gb_keypool_size(kp), 3);
    for (int round = 0; round < 3; round++) {
        assert_int_equal(pick(kp), 0);
        assert_int_equal(pick(kp), 1);
        assert_int_equal(pick(kp), 2);
    }
    assert_string_equal(gb_keypool_key(kp, 2), "k2");
    gb_keypool_free(kp);
}

static void test_empty_pool(void **state)
{
    struct gb_keypool *kp = pool_of("", 3);
    uint32_t idx;
    int64_t ra;

    (void)state;
    assert_int_equal(gb_keypool_pick(kp, NULL, 0, &idx, &ra), GB_ENOKEY);
    gb_keypool_free(kp);
}

static void test_tried_keys_avoided_then_reused(void **state)
{
    struct gb_keypool *kp = pool_of("k0,k1", 3);
    uint32_t tried[2] = {0, 1}, idx;
    int64_t ra;

    (void)state;
    assert_int_equal(gb_keypool_pick(kp, tried, 1, &idx, &ra), 0);
    assert_int_equal(idx, 1);
    /* both tried: a usable key is still better than none */
    assert_int_equal(gb_keypool_pick(kp, tried, 2, &idx, &ra), 0);
    gb_keypool_free(kp);
}

static void test_failures_disable_and_success_resets(void **state)
{
    struct gb_keypool *kp = pool_of("k0,k1", 2);
    struct gb_keypool_stats st;

    (void)state;
    gb_keypool_report(kp, 0, GB_KEY_FAILED, 0);
    gb_keypool_report(kp, 0, GB_KEY_OK, 0); /* consecutive count reset */
    gb_keypool_report(kp, 0, GB_KEY_FAILED, 0);
    gb_keypool_stats(kp, &st);
    assert_int_equal(st.disabled, 0);
    gb_keypool_report(kp, 0, GB_KEY_FAILED, 0);
    gb_keypool_stats(kp, &st);
    assert_int_equal(st.disabled, 1);
    assert_int_equal(st.usable, 1);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pick(kp), 1);
    gb_keypool_report(kp, 1, GB_KEY_NEUTRAL, 0); /* 5xx: no penalty */
    gb_keypool_stats(kp, &st);
    assert_int_equal(st.usable, 1);
    gb_keypool_free(kp);
}

static void test_cooldown_and_all_busy(void **state)
{
    struct gb_keypool *kp = pool_of("k0,k1", 3);
    struct gb_keypool_stats st;
    uint32_t idx;
    int64_t ra = 0;

    (void)state;
    gb_keypool_report(kp, 0, GB_KEY_LIMITED, 30000);
    gb_keypool_stats(kp, &st);
    assert_int_equal(st.cooling, 1);
    assert_int_equal(pick(kp), 1);
    assert_int_equal(pick(kp), 1);
    gb_keypool_report(kp, 1, GB_KEY_LIMITED, 5000);
    assert_int_equal(gb_keypool_pick(kp, NULL, 0, &idx, &ra), GB_EBUSY);
    assert_true(ra > 4000 && ra <= 5000); /* the soonest cooldown */
    gb_keypool_free(kp);
}

static void test_cooldown_expires(void **state)
{
    struct gb_keypool *kp = pool_of("k0", 3);

    (void)state;
    gb_keypool_report(kp, 0, GB_KEY_LIMITED, 1); /* 1 ms */
    usleep(5000);
    assert_int_equal(pick(kp), 0);
    gb_keypool_free(kp);
}

static void test_all_disabled_retry_after(void **state)
{
    struct gb_keypool *kp = pool_of("k0", 1);
    uint32_t idx;
    int64_t ra = 0;

    (void)state;
    gb_keypool_report(kp, 0, GB_KEY_FAILED, 0);
    assert_int_equal(gb_keypool_pick(kp, NULL, 0, &idx, &ra), GB_EBUSY);
    assert_int_equal(ra, GB_KEY_ALL_DISABLED_RETRY_MS);
    gb_keypool_free(kp);
}

static void test_key_ids_are_masked(void **state)
{
    struct gb_keypool *kp = pool_of("AIzaSyA-1234567890abcdefghijklmnopqrstu,short", 3);

    (void)state;
    assert_string_equal(gb_keypool_key_id(kp, 0), "#0...rstu");
    assert_string_equal(gb_keypool_key_id(kp, 1), "#1***");
    gb_keypool_free(kp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_robin_and_dedup),
        cmocka_unit_test(test_empty_pool),
        cmocka_unit_test(test_tried_keys_avoided_then_reused),
        cmocka_unit_test(test_failures_disable_and_success_resets),
        cmocka_unit_test(test_cooldown_and_all_busy),
        cmocka_unit_test(test_cooldown_expires),
        cmocka_unit_test(test_all_disabled_retry_after),
        cmocka_unit_test(test_key_ids_are_masked),
    };
    return cmocka_run_group_tests_name("keypool", tests, NULL, NULL);
}
