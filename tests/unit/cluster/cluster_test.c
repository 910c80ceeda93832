/*
 * cluster_test.c - the parts of the cluster that need no Redis: REDIS_URL
 * parsing (table of rows), the state message (secret only for admin-added
 * keys, round trip through gb_keypool_apply_remote), the table that holds
 * unsent picks and states, and start/stop against a port nobody listens on
 * (the instance keeps working; nothing leaks).  The .c is included to reach
 * its statics (STYLE.md rule 22).
 */
#include "test.h"

#include <event2/thread.h>

#include "cluster/cluster.c"

struct url_row {
    const char *url;
    int ok;
    const char *host, *user, *pass;
    int port, db;
};

static const struct url_row url_rows[] = {
    {"redis://127.0.0.1:6379/0", 1, "127.0.0.1", NULL, NULL, 6379, 0},
    {"redis://localhost", 1, "localhost", NULL, NULL, 6379, 0},
    {"redis://redis:6380/", 1, "redis", NULL, NULL, 6380, 0},
    {"redis://:s3cret@h:1/15", 1, "h", NULL, "s3cret", 1, 15},
    {"redis://alice:p%40ss%2Fw@h/2", 1, "h", "alice", "p@ss/w", 6379, 2},
    {"redis://onlypass@h", 1, "h", NULL, "onlypass", 6379, 0},
    {"redis://:p@ss@h:7000", 1, "h", NULL, "p@ss", 7000, 0}, /* the last @ ends it */
    {"redis://[::1]:6390/3", 1, "::1", NULL, NULL, 6390, 3},
    {"redis://[::1]", 1, "::1", NULL, NULL, 6379, 0},
    {"rediss://h:6379", 0, NULL, NULL, NULL, 0, 0},
    {"http://h:6379", 0, NULL, NULL, NULL, 0, 0},
    {"redis://", 0, NULL, NULL, NULL, 0, 0},
    {"redis://:pw@", 0, NULL, NULL, NULL, 0, 0},
    {"redis://h:0", 0, NULL, NULL, NULL, 0, 0},
    {"redis://h:65536", 0, NULL, NULL, NULL, 0, 0},
    {"redis://h:12x", 0, NULL, NULL, NULL, 0, 0},
    {"redis://h:", 0, NULL, NULL, NULL, 0, 0},
    {"redis://h/x", 0, NULL, NULL, NULL, 0, 0},
    {"redis://h/-1", 0, NULL, NULL, NULL, 0, 0},
    {"redis://[::1", 0, NULL, NULL, NULL, 0, 0},
    {"redis://[::1]x", 0, NULL, NULL, NULL, 0, 0},
    {"redis://:bad%zzescape@h", 0, NULL, NULL, NULL, 0, 0},
    {"redis://:bad%4@h", 0, NULL, NULL, NULL, 0, 0},
};

static void test_parse_url(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof url_rows / sizeof url_rows[0]; i++) {
        const struct url_row *r = &url_rows[i];
        struct gb_cluster c;
        char err[256] = "";
        int rc;

        memset(&c, 0, sizeof c);
        rc = parse_url(&c, r->url, err, sizeof err);
        if (!r->ok) {
            if (rc == 0)
                fail_msg("row %zu (%s): accepted", i, r->url);
            assert_true(err[0] != '\0');
            /* the message never repeats the password */
            assert_null(strstr(err, "zzescape"));
        } else {
            if (rc != 0)
                fail_msg("row %zu (%s): %s", i, r->url, err);
            assert_string_equal(c.host, r->host);
            assert_int_equal(c.port, r->port);
            assert_int_equal(c.db, r->db);
            if (r->user == NULL)
                assert_null(c.user);
            else
                assert_string_equal(c.user, r->user);
            if (r->pass == NULL)
                assert_null(c.pass);
            else
                assert_string_equal(c.pass, r->pass);
            assert_null(strstr(c.where, "s3cret"));
        }
        free(c.user);
        free_secret(c.pass);
    }
}

static void test_why_lower_case(void **state)
{
    char why[64];

    (void)state;
    set_why(why, sizeof why, "Connection refused");
    assert_string_equal(why, "connection refused");
    set_why(why, sizeof why, "ERR invalid password");
    assert_string_equal(why, "ERR invalid password"); /* an acronym stays */
    set_why(why, sizeof why, "");
    assert_string_equal(why, "unknown error");
}

static struct gb_keypool *pool_of(const char *csv)
{
    struct gb_keypool_opts o = {0};
    struct gb_strlist l;
    struct gb_keypool *kp;

    o.max_failures = 3;
    assert_int_equal(gb_strlist_parse(csv, &l), 0);
    kp = gb_keypool_new(&l, &o);
    gb_strlist_release(&l);
    assert_non_null(kp);
    return kp;
}

/* The message of a snapshot carries the secret only for admin-added keys,
 * and applying it elsewhere reproduces the state (and adds the key). */
static void test_state_message_round_trip(void **state)
{
    struct gb_keypool *a = pool_of("good-one-111111,good-two-222222");
    struct gb_keypool *b = pool_of("good-one-111111,good-two-222222");
    struct gb_cluster c;
    struct gb_key_info info;
    struct state_fields f;
    const char *models[1] = {"gemini-2.5-pro"};
    int64_t until[1] = {INT64_MAX / 2};
    char *json;
    uint32_t idx;

    (void)state;
    memset(&c, 0, sizeof c);
    c.magic = GB_CLUSTER_MAGIC;
    c.kp = b;
    snprintf(c.self, sizeof c.self, "bbbbbbbbbbbbbbbb");
    assert_int_equal(gb_keypool_info(a, 0, &info), 0);

    /* a .env key: disabled, cooling for one model; no secret */
    memset(&f, 0, sizeof f);
    f.hash = info.hash;
    f.id = info.id;
    f.secret = NULL;
    f.disabled = 1;
    f.failures = 2;
    f.last_error = "bad \"key\"";
    f.ncool = 1;
    f.models = models;
    f.until = until;
    json = state_json(&c, &f);
    assert_non_null(json);
    assert_null(strstr(json, "secret"));
    snprintf(c.self, sizeof c.self, "aaaaaaaaaaaaaaaa"); /* received by another instance */
    apply_state(&c, json, strlen(json), 0);
    free_secret(json);
    assert_int_equal(gb_keypool_info(b, 0, &info), 0);
    assert_true(info.disabled);
    assert_int_equal(info.failures, 2);
    assert_string_equal(info.last_error, "bad \"key\"");
    assert_int_equal(info.ncool, 1);
    assert_string_equal(info.cool_model[0], "gemini-2.5-pro");

    /* our own message is ignored */
    f.hash = info.hash;
    f.disabled = 0;
    f.ncool = 0;
    json = state_json(&c, &f);
    apply_state(&c, json, strlen(json), 0);
    free_secret(json);
    assert_int_equal(gb_keypool_info(b, 0, &info), 0);
    assert_true(info.disabled);

    /* an admin-added key travels with its secret and is added */
    assert_int_equal(gb_keypool_add(a, "good-added-333333", 1, NULL), 2);
    assert_int_equal(gb_keypool_info(a, 2, &info), 0);
    memset(&f, 0, sizeof f);
    f.hash = info.hash;
    f.id = info.id;
    f.secret = "good-added-333333";
    snprintf(c.self, sizeof c.self, "cccccccccccccccc");
    json = state_json(&c, &f);
    assert_non_null(strstr(json, "\"secret\":\"good-added-333333\""));
    snprintf(c.self, sizeof c.self, "aaaaaaaaaaaaaaaa");
    apply_state(&c, json, strlen(json), 1);
    free_secret(json);
    assert_int_equal(gb_keypool_find(b, "good-added-333333", &idx), 0);
    assert_int_equal(c.sync_applied, 1);
    assert_int_equal(c.nseen, 1);

    /* a deleted key's message never carries the secret, and deletes */
    f.deleted = 1;
    snprintf(c.self, sizeof c.self, "cccccccccccccccc");
    json = state_json(&c, &f);
    assert_null(strstr(json, "secret"));
    snprintf(c.self, sizeof c.self, "aaaaaaaaaaaaaaaa");
    apply_state(&c, json, strlen(json), 0);
    free_secret(json);
    assert_int_equal(gb_keypool_find(b, "good-added-333333", &idx), GB_EINVAL);

    /* garbage is ignored */
    apply_state(&c, "{", 1, 0);
    apply_state(&c, "{\"hash\":\"xyz\"}", 14, 0);
    free(c.seen);
    gb_keypool_free(a);
    gb_keypool_free(b);
}

/* Picks while away are summed per window; an older window's picks arriving
 * late are not counted into the newer one. */
static void test_usage_table(void **state)
{
    struct gb_cluster c;
    char hash[HASH_LEN + 1];

    (void)state;
    memset(&c, 0, sizeof c);
    memset(hash, 'a', HASH_LEN);
    hash[HASH_LEN] = '\0';
    add_usage(&c, 5, hash, 60000, 1, 1000, 1);
    add_usage(&c, 5, hash, 60000, 1, 1000, 1);
    assert_int_equal(c.npending, 1);
    assert_int_equal(c.slots[5].minute_count, 2);
    assert_int_equal(c.slots[5].day_count, 2);
    add_usage(&c, 5, hash, 120000, 1, 1000, 1); /* next minute, same day */
    assert_int_equal(c.slots[5].minute_start, 120000);
    assert_int_equal(c.slots[5].minute_count, 1);
    assert_int_equal(c.slots[5].day_count, 3);
    add_usage(&c, 5, hash, 60000, 1, 1000, 1); /* late: the old minute is gone */
    assert_int_equal(c.slots[5].minute_count, 1);
    assert_int_equal(c.slots[5].day_count, 4);
    assert_int_equal(c.npending, 1);
    assert_string_equal(c.slots[5].hash, hash);
    /* a newer state replaces an unsent older one */
    set_dirty(&c, 5, hash, strdup("{\"old\":1}"));
    set_dirty(&c, 5, hash, strdup("{\"new\":1}"));
    assert_int_equal(c.ndirty, 1);
    assert_string_equal(c.slots[5].dirty, "{\"new\":1}");
    assert_int_equal(c.npending, 1);
    free_secret(c.slots[5].dirty);
    free(c.slots);
    free(c.pending);
}

/* Nobody listens: start returns at once, the pool keeps working, changes
 * and picks wait in the table, stop is quick and frees everything. */
static void test_unreachable(void **state)
{
    struct gb_keypool *kp = pool_of("good-one-111111,good-two-222222");
    char err[256];
    struct gb_cluster *c;
    uint32_t idx;
    int64_t retry;
    int64_t t0;

    (void)state;
    assert_null(gb_cluster_start("redis://:pw@h:0", kp, err, sizeof err));
    assert_null(strstr(err, "pw"));
    /* port 1 on loopback: refused at once */
    c = gb_cluster_start("redis://:secretpw@127.0.0.1:1/0", kp, err, sizeof err);
    assert_non_null(c);
    gb_keypool_set_callbacks(kp, gb_cluster_on_change, c, gb_cluster_on_pick, c);
    gb_cluster_set_limits(c, 10, 100);
    for (int i = 0; i < 50; i++)
        assert_int_equal(gb_keypool_pick(kp, "m", NULL, 0, &idx, &retry), 0);
    assert_int_equal(gb_keypool_set_disabled(kp, 0, 1), 0);
    usleep(100 * 1000);
    assert_false(gb_cluster_connected(c));
    assert_int_equal(gb_cluster_dropped(c), 0);
    gb_keypool_set_callbacks(kp, NULL, NULL, NULL, NULL);
    t0 = gb_now_ms();
    gb_cluster_stop(c);
    assert_true(gb_now_ms() - t0 < 1000);
    gb_cluster_stop(NULL);
    assert_false(gb_cluster_connected(NULL));
    gb_keypool_free(kp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_url),
        cmocka_unit_test(test_why_lower_case),
        cmocka_unit_test(test_state_message_round_trip),
        cmocka_unit_test(test_usage_table),
        cmocka_unit_test(test_unreachable),
    };

    evthread_use_pthreads();
    gb_log_setup(GB_LOG_ERROR, 0);
    return cmocka_run_group_tests_name("cluster", tests, NULL, NULL);
}
