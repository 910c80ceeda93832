/* config_test.c - the .env reader, the table parsers and their error messages. */
#include "test.h"

#include "config/config.h"
#include "core/err.h"

/* A fake environment: NAME=value pairs, NULL-terminated. */
static const char *const *fake_env;

static char *fake_getenv(const char *name)
{
    size_t n = strlen(name);

    for (const char *const *e = fake_env; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return (char *)*e + n + 1;
    return NULL;
}

static char *write_tmp(const char *text)
{
    static char path[64];
    FILE *f;

    snprintf(path, sizeof path, "/tmp/gb-config-test-%d.env", (int)getpid());
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static struct gb_config *load(const char *dotenv, const char *const *env, char *err)
{
    fake_env = env;
    return gb_config_load(dotenv ? write_tmp(dotenv) : "/dev/null", fake_getenv, err, 512);
}

static void test_defaults(void **state)
{
    static const char *const env[] = {"ALLOWED_TOKENS=sk-1", NULL};
    char err[512];
    struct gb_config *c = load(NULL, env, err);

    (void)state;
    assert_non_null(c);
    assert_int_equal(c->port, 8000);
    assert_string_equal(c->host, "0.0.0.0");
    assert_string_equal(c->base_url, "https://generativelanguage.googleapis.com/v1beta");
    assert_int_equal(c->max_failures, 3);
    assert_int_equal(c->max_retries, 3);
    assert_int_equal(c->time_out, 300);
    assert_int_equal(c->connect_timeout, 10);
    assert_int_equal(c->api_keys.n, 0);
    assert_string_equal(c->auth_token, "sk-1"); /* defaults to the first token */
    assert_int_equal(c->search_models.n, 2);
    assert_string_equal(c->search_models.v[1], "gemini-2.5-pro");
    assert_int_equal(c->code_execution, 0);
    assert_int_equal(c->show_search_link, 1);
    assert_int_equal(json_array_size(c->safety_settings), 5);
    assert_true(gb_strlist_has(&c->allowed_origins, "*"));
    assert_int_equal(c->max_request_bytes, 32LL * 1024 * 1024);
    assert_null(c->proxy);
    assert_true(c->workers >= 1); /* 0 means one per CPU */
    gb_config_free(c);
}

static void test_dotenv_forms_and_env_wins(void **state)
{
    static const char *const env[] = {"PORT=9001", "MODEL_SEARCH=a-model", NULL};
    char err[512];
    struct gb_config *c = load("# comment\n"
                               "export API_KEYS=[\"k1\", \"k2\",\"k1\"]\n"
                               "ALLOWED_TOKENS = t1, t2 \n"
                               "PORT=8001\n"
                               "BASE_URL=\"http://127.0.0.1:9/v1beta/\"\n"
                               "PROXY='socks5://h:1'\n"
                               "LOG_LEVEL=debug # trailing comment\n"
                               "TOOLS_CODE_EXECUTION_ENABLED=yes\r\n",
                               env, err);

    (void)state;
    assert_non_null(c);
    assert_int_equal(c->api_keys.n, 3); /* the pool drops the duplicate, not the parser */
    assert_string_equal(c->api_keys.v[1], "k2");
    assert_int_equal(c->allowed_tokens.n, 2);
    assert_string_equal(c->allowed_tokens.v[1], "t2");
    assert_int_equal(c->port, 9001);                               /* environment wins */
    assert_string_equal(c->base_url, "http://127.0.0.1:9/v1beta"); /* slash dropped */
    assert_string_equal(c->proxy, "socks5://h:1");
    assert_int_equal(c->log_level, 0);
    assert_int_equal(c->code_execution, 1);
    assert_int_equal(c->search_models.n, 1); /* alias read */
    assert_string_equal(c->search_models.v[0], "a-model");
    gb_config_free(c);
}

struct bad_case {
    const char *env;
    const char *want; /* substring of the error */
};

static void test_bad_values_name_the_variable(void **state)
{
    static const struct bad_case cases[] = {
        {"PORT=abc", "PORT: expected an integer from 0 to 65535"},
        {"PORT=70000", "PORT"},
        {"MAX_RETRIES=-1", "MAX_RETRIES"},
        {"MAX_FAILURES=0", "MAX_FAILURES"},
        {"SHOW_SEARCH_LINK=maybe", "SHOW_SEARCH_LINK: expected true or false"},
        {"SAFETY_SETTINGS={}", "SAFETY_SETTINGS: expected a JSON array"},
        {"SAFETY_SETTINGS=[1]", "SAFETY_SETTINGS"},
        {"API_KEYS=[\"a\",", "API_KEYS: expected a list"},
        {"LOG_LEVEL=loud", "LOG_LEVEL"},
        {"LOG_FORMAT=xml", "LOG_FORMAT"},
        {"BASE_URL=ftp://x", "BASE_URL"},
        {"MAX_REQUEST_BYTES=12", "MAX_REQUEST_BYTES"},
    };
    char err[512];

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *env[] = {"ALLOWED_TOKENS=t", cases[i].env, NULL};
        struct gb_config *c = load(NULL, env, err);
        if (c != NULL || strstr(err, cases[i].want) == NULL)
            fail_msg("case %s: got %s", cases[i].env, c ? "success" : err);
    }
}

static void test_refuses_without_tokens(void **state)
{
    static const char *const env[] = {"API_KEYS=k", NULL};
    char err[512];

    (void)state;
    assert_null(load(NULL, env, err));
    assert_non_null(strstr(err, "ALLOWED_TOKENS"));
    static const char *const env2[] = {"ALLOWED_TOKENS=[]", NULL};
    assert_null(load(NULL, env2, err));
}

static void test_missing_env_file_is_an_error(void **state)
{
    char err[512];

    (void)state;
    fake_env = NULL;
    assert_null(gb_config_load("/nonexistent/.env", fake_getenv, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/.env"));
}

static void test_bad_dotenv_line(void **state)
{
    char err[512];

    (void)state;
    assert_null(load("ALLOWED_TOKENS=t\nthis is not an assignment\n", NULL, err));
    assert_non_null(strstr(err, ":2:"));
}

static void test_strlist(void **state)
{
    struct gb_strlist l;

    (void)state;
    assert_int_equal(gb_strlist_parse(" a , ,b,", &l), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.v[0], "a");
    assert_string_equal(l.v[1], "b");
    gb_strlist_release(&l);
    assert_int_equal(gb_strlist_parse("", &l), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(gb_strlist_parse("[\"x\", 1]", &l), GB_EPARSE);
}

/* .env.example is generated from the table: the checked-in copy must match. */
static void test_env_example_in_sync(void **state)
{
    char *want = NULL, *got;
    size_t wlen = 0, glen;
    FILE *m = open_memstream(&want, &wlen);

    (void)state;
    gb_config_write_example(m);
    fclose(m);
    got = gb_test_read_file(".env.example", &glen);
    if (glen != wlen || memcmp(got, want, wlen) != 0)
        fail_msg(".env.example is stale: run ./build/gemini-balance --print-env-example > "
                 ".env.example");
    free(got);
    free(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_dotenv_forms_and_env_wins),
        cmocka_unit_test(test_bad_values_name_the_variable),
        cmocka_unit_test(test_refuses_without_tokens),
        cmocka_unit_test(test_missing_env_file_is_an_error),
        cmocka_unit_test(test_bad_dotenv_line),
        cmocka_unit_test(test_strlist),
        cmocka_unit_test(test_env_example_in_sync),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
