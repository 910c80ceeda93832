/*
 * config.c - configuration table, .env reader and generic value parsers.
 *
 * Sections: the table (one row per variable) - value parsers - .env reader -
 * load - example and help writers.
 */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/err.h"
#include "core/jsonw.h"
#include "core/log.h"
#include "keypool/keypool.h"

/* ---- the table ---------------------------------------------------------- */

enum cfg_type {
    T_STR,
    T_LONG,
    T_BOOL,
    T_LIST,
    T_JSON_ARRAY,
    T_BYTES,
    T_LOGLEVEL,
    T_LOGFORMAT,
    T_STRATEGY,
    T_JSON_OBJECT
};

struct cfg_row {
    const char *name;
    const char *alias; /* older name also accepted, or NULL */
    enum cfg_type type;
    size_t offset;      /* into struct gb_config */
    const char *def;    /* default as text ("" = unset) */
    long long min, max; /* bounds for T_LONG / T_BYTES */
    const char *help;
};

#define F(field) offsetof(struct gb_config, field)
#define DEFAULT_SAFETY                                                                             \
    "[{\"category\":\"HARM_CATEGORY_HARASSMENT\",\"threshold\":\"OFF\"},"                          \
    "{\"category\":\"HARM_CATEGORY_HATE_SPEECH\",\"threshold\":\"OFF\"},"                          \
    "{\"category\":\"HARM_CATEGORY_SEXUALLY_EXPLICIT\",\"threshold\":\"OFF\"},"                    \
    "{\"category\":\"HARM_CATEGORY_DANGEROUS_CONTENT\",\"threshold\":\"OFF\"},"                    \
    "{\"category\":\"HARM_CATEGORY_CIVIC_INTEGRITY\",\"threshold\":\"BLOCK_NONE\"}]"

static const struct cfg_row rows[] = {
    {"API_KEYS", NULL, T_LIST, F(api_keys), "", 0, 0,
     "Gemini API keys of the pool: [\"k1\",\"k2\"] or k1,k2"},
    {"ALLOWED_TOKENS", NULL, T_LIST, F(allowed_tokens), "", 0, 0,
     "tokens your clients use as their API key (required)"},
    {"AUTH_TOKEN", NULL, T_STR, F(auth_token), "", 0, 0,
     "admin token (default: the first of ALLOWED_TOKENS)"},
    {"BASE_URL", NULL, T_STR, F(base_url), GB_DEFAULT_BASE_URL, 0, 0, "Gemini API base URL"},
    {"HOST", NULL, T_STR, F(host), "0.0.0.0", 0, 0, "address to listen on"},
    {"PORT", NULL, T_LONG, F(port), "8000", 0, 65535, "port to listen on (0: any free port)"},
    {"WORKERS", NULL, T_LONG, F(workers), "0", 0, 256, "event-loop threads (0: one per CPU)"},
    {"MAX_FAILURES", NULL, T_LONG, F(max_failures), "3", 1, 1000000,
     "consecutive failures that disable a key"},
    {"MAX_RETRIES", NULL, T_LONG, F(max_retries), "3", 0, 100,
     "further attempts on other keys after a failed one"},
    {"TIME_OUT", NULL, T_LONG, F(time_out), "300", 1, 86400,
     "seconds a whole upstream request may take"},
    {"CONNECT_TIMEOUT", NULL, T_LONG, F(connect_timeout), "10", 1, 3600,
     "seconds to connect to the upstream"},
    {"SEARCH_MODELS", "MODEL_SEARCH", T_LIST, F(search_models),
     "[\"gemini-2.5-flash\",\"gemini-2.5-pro\"]", 0, 0,
     "models also offered as <model>-search (Google Search grounding)"},
    {"TOOLS_CODE_EXECUTION_ENABLED", NULL, T_BOOL, F(code_execution), "false", 0, 0,
     "add the code execution tool to chat requests"},
    {"SHOW_SEARCH_LINK", NULL, T_BOOL, F(show_search_link), "true", 0, 0,
     "append grounding sources to answers as a markdown list"},
    {"SAFETY_SETTINGS", NULL, T_JSON_ARRAY, F(safety_settings), DEFAULT_SAFETY, 0, 0,
     "Gemini safetySettings sent with chat requests (JSON array)"},
    {"ALLOWED_ORIGINS", NULL, T_LIST, F(allowed_origins), "*", 0, 0,
     "CORS origins allowed (* for any)"},
    {"MAX_REQUEST_BYTES", NULL, T_BYTES, F(max_request_bytes), "33554432", 1024, (long long)1 << 40,
     "largest request body accepted, in bytes"},
    {"PROXY", NULL, T_STR, F(proxy), "", 0, 0,
     "upstream proxy URL (http://, https://, socks5://); empty: none"},
    {"SHOW_THINKING_PROCESS", NULL, T_BOOL, F(show_thinking), "true", 0, 0,
     "return the model's thoughts as reasoning_content (false: drop them)"},
    {"THINKING_BUDGET_MAP", NULL, T_JSON_OBJECT, F(thinking_budget_map), "{}", 0, 0,
     "default thinking budget per model when the client sets no reasoning_effort: "
     "{\"gemini-2.5-flash\":1024}"},
    {"IMAGE_FETCH_MAX_BYTES", NULL, T_LONG, F(image_fetch_max_bytes), "20971520", 0, 1073741824,
     "largest image the gateway downloads for an image_url (0: never download)"},
    {"IMAGE_FETCH_PRIVATE", NULL, T_BOOL, F(image_fetch_private), "false", 0, 0,
     "let image_url downloads reach loopback, private and link-local addresses (off: a client "
     "token cannot make the gateway probe its own network; with PROXIES the proxy decides)"},
    {"CLIENT_TIMEOUT", NULL, T_LONG, F(client_timeout_s), "60", 1, 3600,
     "seconds a client may take to send a whole request (from connect or its previous answer), "
     "and an idle keep-alive connection lives"},
    {"STREAM_IDLE_TIMEOUT", NULL, T_LONG, F(stream_idle_timeout_s), "120", 0, 86400,
     "seconds an upstream stream may stay silent before it counts as broken (0: no limit)"},
    {"SHUTDOWN_TIMEOUT", NULL, T_LONG, F(shutdown_timeout_s), "30", 0, 3600,
     "seconds SIGTERM waits for requests and streams in flight"},
    {"MAX_HEADERS", NULL, T_LONG, F(max_headers), "100", 8, 10000,
     "request headers accepted at most (431 beyond)"},
    {"MAX_HEADER_BYTES", NULL, T_BYTES, F(max_header_bytes), "65536", 1024, 16777216,
     "largest request head (request line and headers), in bytes (431 beyond)"},
    {"MAX_CONNECTIONS", NULL, T_LONG, F(max_connections), "10000", 1, 10000000,
     "client connections open at once; beyond it a new one gets 503 and is closed "
     "(also capped by the open-files limit)"},
    {"STREAM_BUFFER_BYTES", NULL, T_BYTES, F(stream_buffer_bytes), "262144", 16384, 67108864,
     "answer bytes queued for a slow client before the upstream read pauses"},
    {"MAX_JSON_DEPTH", NULL, T_LONG, F(max_json_depth), "64", 4, 1000,
     "deepest nesting of arrays and objects accepted in a JSON request body"},
    {"STREAM_KEEPALIVE_SECONDS", NULL, T_LONG, F(stream_keepalive_s), "15", 0, 3600,
     "send an SSE comment when a stream is silent this long (0: never)"},
    {"FAKE_STREAM_ENABLED", NULL, T_BOOL, F(fake_stream), "false", 0, 0,
     "answer stream requests from a non-stream upstream call, with keep-alives meanwhile"},
    {"KEY_STRATEGY", NULL, T_STRATEGY, F(key_strategy), "round_robin", 0, 0,
     "how the next key is chosen: round_robin, random or least_used"},
    {"KEY_RPM_LIMIT", NULL, T_LONG, F(key_rpm_limit), "0", 0, 1000000,
     "requests per minute sent to one key at most (0: no limit)"},
    {"KEY_RPD_LIMIT", NULL, T_LONG, F(key_rpd_limit), "0", 0, 100000000,
     "requests per day (Pacific time) sent to one key at most (0: no limit)"},
    {"CHECK_INTERVAL_HOURS", NULL, T_LONG, F(check_interval_hours), "1", 0, 720,
     "hours between re-checks of disabled keys (0: never)"},
    {"CHECK_INTERVAL_SECONDS", NULL, T_LONG, F(check_interval_seconds), "0", 0, 2592000,
     "re-check interval in seconds, overriding CHECK_INTERVAL_HOURS (0: use the hours)"},
    {"TEST_MODEL", NULL, T_STR, F(test_model), "gemini-2.5-flash-lite", 0, 0,
     "model used to re-check disabled keys"},
    {"DATA_DIR", NULL, T_STR, F(data_dir), "./data", 0, 0,
     "directory of the SQLite database (key health, logs, usage)"},
    {"REQUEST_LOG_DAYS", NULL, T_LONG, F(request_log_days), "30", 1, 3650,
     "days the request log is kept"},
    {"ERROR_LOG_DAYS", NULL, T_LONG, F(error_log_days), "7", 1, 3650, "days the error log is kept"},
    {"METRICS_TOKEN", NULL, T_STR, F(metrics_token), "", 0, 0,
     "token required for /metrics (empty: open; the admin token always works)"},
    {"REDIS_URL", NULL, T_STR, F(redis_url), "", 0, 0,
     "redis://[:password@]host[:port][/db]: instances sharing it share key state (empty: "
     "single instance)"},
    {"LOG_LEVEL", NULL, T_LOGLEVEL, F(log_level), "info", 0, 0, "debug, info, warn or error"},
    {"LOG_FORMAT", NULL, T_LOGFORMAT, F(log_json), "text", 0, 0, "text or json"},
};

#define NROWS (sizeof rows / sizeof rows[0])

/* ---- value parsers ------------------------------------------------------ */

void gb_strlist_release(struct gb_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

int gb_strlist_has(const struct gb_strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return 1;
    return 0;
}

static int strlist_push(struct gb_strlist *l, const char *s, size_t n)
{
    char **v;
    char *copy;

    while (n > 0 && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    if (n == 0)
        return 0;
    copy = strndup(s, n);
    v = realloc(l->v, (l->n + 1) * sizeof *v);
    if (copy == NULL || v == NULL) {
        free(copy);
        if (v != NULL)
            l->v = v;
        return GB_ENOMEM;
    }
    l->v = v;
    l->v[l->n++] = copy;
    return 0;
}

int gb_strlist_parse(const char *s, struct gb_strlist *out)
{
    const char *p;
    int rc = 0;

    out->v = NULL;
    out->n = 0;
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '[') {
        json_error_t jerr;
        json_t *arr = json_loads(s, 0, &jerr);
        size_t i;
        json_t *it;

        if (!json_is_array(arr)) {
            json_decref(arr);
            return GB_EPARSE;
        }
        json_array_foreach(arr, i, it)
        {
            if (!json_is_string(it)) {
                rc = GB_EPARSE;
                break;
            }
            rc = strlist_push(out, json_string_value(it), json_string_length(it));
            if (rc < 0)
                break;
        }
        json_decref(arr);
        if (rc < 0)
            gb_strlist_release(out);
        return rc;
    }
    for (p = s;; p++) {
        if (*p == ',' || *p == '\0') {
            rc = strlist_push(out, s, (size_t)(p - s));
            if (rc < 0 || *p == '\0')
                break;
            s = p + 1;
        }
    }
    if (rc < 0)
        gb_strlist_release(out);
    return rc;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = 1, 0;
        if (strcasecmp(s, no[i]) == 0)
            return *out = 0, 0;
    }
    return GB_EPARSE;
}

static int parse_ll(const char *s, long long *out)
{
    char *end;

    errno = 0;
    *out = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return GB_EPARSE;
    return 0;
}

/* Parses one row's value into c.  On failure writes what was expected to
 * expect and returns GB_EPARSE (or GB_ENOMEM). */
static int parse_value(const struct cfg_row *r, const char *v, struct gb_config *c, char *expect,
                       size_t elen)
{
    void *field = (char *)c + r->offset;
    long long n;
    int rc;

    switch (r->type) {
    case T_STR:
        if (*v == '\0')
            return 0;
        *(char **)field = strdup(v);
        return *(char **)field ? 0 : GB_ENOMEM;
    case T_LONG:
    case T_BYTES:
        if (parse_ll(v, &n) < 0 || n < r->min || n > r->max) {
            snprintf(expect, elen, "an integer from %lld to %lld", r->min, r->max);
            return GB_EPARSE;
        }
        if (r->type == T_LONG)
            *(long *)field = (long)n;
        else
            *(long long *)field = n;
        return 0;
    case T_BOOL:
        if (parse_bool(v, (int *)field) < 0) {
            snprintf(expect, elen, "true or false");
            return GB_EPARSE;
        }
        return 0;
    case T_LIST:
        rc = gb_strlist_parse(v, (struct gb_strlist *)field);
        if (rc == GB_EPARSE)
            snprintf(expect, elen, "a list: [\"a\",\"b\"] or a,b");
        return rc;
    case T_JSON_ARRAY:
    case T_JSON_OBJECT: {
        json_error_t jerr;
        json_t *j = json_loads(v, 0, &jerr);
        int ok = r->type == T_JSON_ARRAY ? json_is_array(j) : json_is_object(j);
        if (!ok) {
            json_decref(j);
            snprintf(expect, elen, r->type == T_JSON_ARRAY ? "a JSON array" : "a JSON object");
            return GB_EPARSE;
        }
        *(json_t **)field = j;
        return 0;
    }
    case T_LOGLEVEL:
        rc = gb_log_level_parse(v);
        if (rc < 0) {
            snprintf(expect, elen, "debug, info, warn or error");
            return GB_EPARSE;
        }
        *(long *)field = rc;
        return 0;
    case T_STRATEGY:
        rc = gb_keypool_strategy_parse(v);
        if (rc < 0) {
            snprintf(expect, elen, "round_robin, random or least_used");
            return GB_EPARSE;
        }
        *(long *)field = rc;
        return 0;
    case T_LOGFORMAT:
        if (strcasecmp(v, "text") != 0 && strcasecmp(v, "json") != 0) {
            snprintf(expect, elen, "text or json");
            return GB_EPARSE;
        }
        *(int *)field = strcasecmp(v, "json") == 0;
        return 0;
    }
    GB_UNREACHABLE();
}

/* ---- .env reader -------------------------------------------------------- */

struct dotenv {
    char **names, **values;
    size_t n;
};

static void dotenv_release(struct dotenv *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->names[i]);
        free(d->values[i]);
    }
    free(d->names);
    free(d->values);
}

static const char *dotenv_get(const struct dotenv *d, const char *name)
{
    /* the last assignment wins, as in a shell */
    for (size_t i = d->n; i-- > 0;)
        if (strcmp(d->names[i], name) == 0)
            return d->values[i];
    return NULL;
}

/* Unquotes an .env value in place: 'single' is literal, "double" knows \n,
 * \" and \\; an unquoted value ends at " #" (a comment). */
static void unquote(char *v)
{
    size_t n = strlen(v);
    char *w, *r;

    if (n >= 2 && v[0] == '\'' && v[n - 1] == '\'') {
        memmove(v, v + 1, n - 2);
        v[n - 2] = '\0';
        return;
    }
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v[n - 1] = '\0';
        for (w = v, r = v + 1; *r != '\0'; r++) {
            if (*r == '\\' && (r[1] == 'n' || r[1] == '"' || r[1] == '\\')) {
                r++;
                *w++ = *r == 'n' ? '\n' : *r;
            } else {
                *w++ = *r;
            }
        }
        *w = '\0';
        return;
    }
    for (r = v; *r != '\0'; r++) {
        if (*r == '#' && (r == v || isspace((unsigned char)r[-1]))) {
            *r = '\0';
            break;
        }
    }
    for (n = strlen(v); n > 0 && isspace((unsigned char)v[n - 1]);)
        v[--n] = '\0';
}

static int dotenv_read(const char *path, struct dotenv *d, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char *line = NULL, *p, *eq, *name, *value;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    int rc = 0;

    if (f == NULL) {
        snprintf(err, errlen, "cannot read env file %s: %s", path, strerror(errno));
        return GB_EIO;
    }
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        for (p = line; isspace((unsigned char)*p); p++)
            ;
        if (*p == '\0' || *p == '#')
            continue;
        if (strncmp(p, "export ", 7) == 0)
            p += 7;
        eq = strchr(p, '=');
        if (eq == NULL) {
            snprintf(err, errlen, "%s:%zu: expected NAME=value", path, lineno);
            rc = GB_EPARSE;
            break;
        }
        for (name = eq; name > p && isspace((unsigned char)name[-1]); name--)
            ;
        *name = '\0';
        for (value = eq + 1; isspace((unsigned char)*value); value++)
            ;
        unquote(value);
        name = strdup(p);
        value = strdup(value);
        char **nn = realloc(d->names, (d->n + 1) * sizeof *nn);
        if (nn != NULL)
            d->names = nn;
        char **vv = realloc(d->values, (d->n + 1) * sizeof *vv);
        if (vv != NULL)
            d->values = vv;
        if (name == NULL || value == NULL || nn == NULL || vv == NULL) {
            free(name);
            free(value);
            snprintf(err, errlen, "out of memory reading %s", path);
            rc = GB_ENOMEM;
            break;
        }
        d->names[d->n] = name;
        d->values[d->n++] = value;
    }
    free(line);
    fclose(f);
    return rc;
}

/* ---- load --------------------------------------------------------------- */

void gb_config_free(struct gb_config *c)
{
    if (c == NULL)
        return;
    gb_strlist_release(&c->api_keys);
    gb_strlist_release(&c->allowed_tokens);
    gb_strlist_release(&c->search_models);
    gb_strlist_release(&c->allowed_origins);
    free(c->auth_token);
    free(c->base_url);
    free(c->host);
    free(c->proxy);
    free(c->test_model);
    free(c->data_dir);
    free(c->metrics_token);
    free(c->redis_url);
    if (c->safety_settings != NULL)
        c->safety_settings->refcount = 1; /* mortal again: freed below */
    json_decref(c->safety_settings);
    free(c->safety_settings_text);
    json_decref(c->thinking_budget_map);
    free(c);
}

static const char *lookup(const struct cfg_row *r, const struct dotenv *d,
                          char *(*getenv_fn)(const char *))
{
    const char *v = getenv_fn(r->name);

    if (v == NULL && r->alias != NULL)
        v = getenv_fn(r->alias);
    if (v == NULL)
        v = dotenv_get(d, r->name);
    if (v == NULL && r->alias != NULL)
        v = dotenv_get(d, r->alias);
    return v != NULL ? v : r->def;
}

/* Checks that need several variables, and derived defaults. */
static int finish(struct gb_config *c, char *err, size_t errlen)
{
    size_t n;

    if (c->allowed_tokens.n == 0) {
        snprintf(err, errlen,
                 "ALLOWED_TOKENS: at least one client token is required (the gateway is never an "
                 "open relay); set it in .env or the environment");
        return GB_EINVAL;
    }
    if (c->auth_token == NULL && (c->auth_token = strdup(c->allowed_tokens.v[0])) == NULL)
        return GB_ENOMEM;
    if (c->base_url == NULL ||
        (strncmp(c->base_url, "http://", 7) != 0 && strncmp(c->base_url, "https://", 8) != 0)) {
        snprintf(err, errlen, "BASE_URL: expected an http:// or https:// URL");
        return GB_EINVAL;
    }
    n = strlen(c->base_url);
    while (n > 0 && c->base_url[n - 1] == '/')
        c->base_url[--n] = '\0';
    const char *host = c->base_url + (strncmp(c->base_url, "https", 5) == 0 ? 8 : 7);
    if (n <= (size_t)(host - c->base_url) || *host == '/' || *host == '?' || *host == '#') {
        snprintf(err, errlen, "BASE_URL: expected an http:// or https:// URL with a host");
        return GB_EINVAL;
    }
    if (c->workers == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        c->workers = cpus > 0 ? cpus : 1;
    }
    {
        const char *m;
        json_t *b;
        json_object_foreach(c->thinking_budget_map, m, b)
        {
            if (!json_is_integer(b) || json_integer_value(b) < -1) {
                snprintf(err, errlen,
                         "THINKING_BUDGET_MAP: expected integer budgets (tokens, -1 = dynamic), "
                         "got a bad value for \"%.64s\"",
                         m);
                return GB_EINVAL;
            }
        }
    }
    /* Every chat request puts this array into its upstream body by reference.
     * jansson reads the count before its atomic increment, a data race when
     * many workers share the value, so the snapshot makes it immortal
     * (refcount (size_t)-1: json_incref/json_decref leave it alone) and
     * gb_config_free makes it mortal again. */
    if (c->safety_settings != NULL)
        c->safety_settings->refcount = (size_t)-1;
    for (size_t i = 0; i < json_array_size(c->safety_settings); i++) {
        if (!json_is_object(json_array_get(c->safety_settings, i))) {
            snprintf(err, errlen, "SAFETY_SETTINGS: expected a JSON array of objects");
            return GB_EINVAL;
        }
    }
    if (c->safety_settings != NULL &&
        (c->safety_settings_text = gb_jsonw_dumps(c->safety_settings, NULL)) == NULL) {
        snprintf(err, errlen, "SAFETY_SETTINGS: out of memory");
        return GB_ENOMEM;
    }
    return 0;
}

struct gb_config *gb_config_load(const char *env_file, char *(*getenv_fn)(const char *), char *err,
                                 size_t errlen)
{
    struct dotenv d = {0};
    struct gb_config *c = calloc(1, sizeof *c);
    char expect[160];
    const char *v;
    size_t i;

    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (env_file != NULL) {
        if (dotenv_read(env_file, &d, err, errlen) < 0)
            goto fail;
    } else if (access(".env", F_OK) == 0) {
        if (dotenv_read(".env", &d, err, errlen) < 0)
            goto fail;
    }
    for (i = 0; i < NROWS; i++) {
        v = lookup(&rows[i], &d, getenv_fn);
        expect[0] = '\0';
        if (parse_value(&rows[i], v, c, expect, sizeof expect) < 0) {
            snprintf(err, errlen, "%s: expected %s, got \"%.64s\"", rows[i].name,
                     expect[0] ? expect : "a valid value", v);
            goto fail;
        }
    }
    if (finish(c, err, errlen) < 0)
        goto fail;
    dotenv_release(&d);
    return c;
fail:
    dotenv_release(&d);
    gb_config_free(c);
    return NULL;
}

/* ---- example and help --------------------------------------------------- */

void gb_config_write_example(FILE *f)
{
    fputs("# gemini-balance configuration. The environment overrides this file.\n"
          "# Lists take the JSON form [\"a\",\"b\"] or a,b. Generated by "
          "`gemini-balance --print-env-example`.\n",
          f);
    for (size_t i = 0; i < NROWS; i++) {
        fprintf(f, "\n# %s", rows[i].help);
        if (rows[i].alias != NULL)
            fprintf(f, " (also read as %s)", rows[i].alias);
        /* unquoted, so that `docker run --env-file` (which keeps quotes) reads it too */
        fprintf(f, "\n%s=%s\n", rows[i].name, rows[i].def);
    }
}

void gb_config_write_help(FILE *f)
{
    fputs("configuration (environment or .env; the environment wins):\n", f);
    for (size_t i = 0; i < NROWS; i++) {
        const char *def = rows[i].def;
        if (rows[i].type == T_JSON_ARRAY || rows[i].type == T_JSON_OBJECT)
            def = "(see .env.example)";
        fprintf(f, "  %-30s %s%s%s%s\n", rows[i].name, rows[i].help, *def ? " [default: " : "", def,
                *def ? "]" : "");
    }
}
