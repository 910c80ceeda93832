/*
 * metrics_test.c - unit tests for src/metrics/metrics.c, the Prometheus
 * counters.
 *
 * Every render is checked by a strict text-format validator written here,
 * independently of the code under test: line grammar, each family declared
 * once with HELP and TYPE before its samples, samples of a family contiguous,
 * no duplicate series, counters non-negative, histogram buckets with
 * increasing le, cumulative counts, and a +Inf bucket equal to _count.
 * The validator's own strictness is tested on a table of broken inputs.
 *
 * The metrics state is process-wide; every test starts with a reset.
 */
#include "test.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "metrics/metrics.h"

#define P "gemini_balance_"

/* ---------------------------------------------------------------------
 * Strict Prometheus text-format validator
 */

#define V_NAME_MAX 256
#define V_LABEL_MAX 512 /* unescaped label value */
#define V_LABELS_MAX 8

struct vfam {
    char name[V_NAME_MAX];
    char type[16]; /* "" until TYPE is seen */
    int help;
};

struct vgroup {
    char key[V_NAME_MAX + V_LABELS_MAX * (V_NAME_MAX + V_LABEL_MAX)];
    int buckets;
    double last_le, last_count;
    int has_inf, has_sum, has_count;
    double inf_count, count;
};

struct vlabel {
    char name[V_NAME_MAX];
    char value[V_LABEL_MAX];
};

struct validator {
    struct vfam fam[64];
    int nfam;
    int cur; /* family of the last HELP/TYPE line, -1 before any */
    struct vgroup *grp;
    int ngrp;
    char **series;
    int nseries;
    char err[1024];
    int line;
};

__attribute__((format(printf, 2, 3))) static int verr(struct validator *v, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(v->err, sizeof v->err, "line %d: ", v->line);

    va_start(ap, fmt);
    vsnprintf(v->err + n, sizeof v->err - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Independent UTF-8 check (no overlongs, surrogates or > U+10FFFF). */
static int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned c = s[i];
        size_t k;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            k = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            k = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            k = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + k > n)
            return 0;
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k;
    }
    return 1;
}

/* Reads a metric (colon allowed) or label name at *p. */
static int vname(const char **p, char *out, int metric)
{
    const char *s = *p;
    size_t n = 0;

    while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') || s[n] == '_' ||
           (metric && s[n] == ':') || (n > 0 && s[n] >= '0' && s[n] <= '9')) {
        if (n + 1 >= V_NAME_MAX)
            return -1;
        out[n] = s[n];
        n++;
    }
    out[n] = '\0';
    *p = s + n;
    return n > 0 ? 0 : -1;
}

/* A sample value: a float literal, +Inf, -Inf or NaN, spanning all of s. */
static int vvalue(const char *s, double *out)
{
    char *end;

    if (strcmp(s, "+Inf") == 0) {
        *out = INFINITY;
        return 0;
    }
    if (strcmp(s, "-Inf") == 0) {
        *out = -INFINITY;
        return 0;
    }
    if (strcmp(s, "NaN") == 0) {
        *out = NAN;
        return 0;
    }
    if (*s == '\0' || strspn(s, "0123456789.eE+-") != strlen(s))
        return -1;
    *out = strtod(s, &end);
    return *end == '\0' ? 0 : -1;
}

static int vfind(struct validator *v, const char *name)
{
    for (int i = 0; i < v->nfam; i++)
        if (strcmp(v->fam[i].name, name) == 0)
            return i;
    return -1;
}

static int vdescriptor(struct validator *v, const char *s)
{
    int help = strncmp(s, "# HELP ", 7) == 0;
    char name[V_NAME_MAX];
    int f;

    if (!help && strncmp(s, "# TYPE ", 7) != 0)
        return verr(v, "comment lines other than HELP and TYPE are not allowed");
    s += 7;
    if (vname(&s, name, 1) < 0 || *s != ' ')
        return verr(v, "bad family name");
    s++;
    f = vfind(v, name);
    if (f < 0) {
        if (v->nfam == 64)
            return verr(v, "too many families");
        f = v->nfam++;
        snprintf(v->fam[f].name, sizeof v->fam[f].name, "%s", name);
    } else if (f != v->cur) {
        return verr(v, "family %s declared again after other families", name);
    }
    v->cur = f;
    if (help) {
        if (v->fam[f].help)
            return verr(v, "second HELP for %s", name);
        if (v->fam[f].type[0] != '\0')
            return verr(v, "HELP after TYPE for %s", name);
        v->fam[f].help = 1;
        for (; *s != '\0'; s++) {
            if (*s != '\\')
                continue;
            if (s[1] != '\\' && s[1] != 'n')
                return verr(v, "bad escape in HELP");
            s++;
        }
        return 0;
    }
    if (v->fam[f].type[0] != '\0')
        return verr(v, "second TYPE for %s", name);
    if (strcmp(s, "counter") != 0 && strcmp(s, "gauge") != 0 && strcmp(s, "histogram") != 0 &&
        strcmp(s, "summary") != 0 && strcmp(s, "untyped") != 0)
        return verr(v, "bad type '%s'", s);
    snprintf(v->fam[f].type, sizeof v->fam[f].type, "%s", s);
    return 0;
}

static int vlabels(struct validator *v, const char **p, struct vlabel *l, int *n)
{
    const char *s = *p;

    *n = 0;
    if (*s != '{')
        return 0;
    s++;
    while (*s != '}') {
        size_t k = 0;

        if (*n == V_LABELS_MAX)
            return verr(v, "too many labels");
        if (vname(&s, l[*n].name, 0) < 0)
            return verr(v, "bad label name");
        for (int i = 0; i < *n; i++)
            if (strcmp(l[i].name, l[*n].name) == 0)
                return verr(v, "duplicate label %s", l[*n].name);
        if (s[0] != '=' || s[1] != '"')
            return verr(v, "expected =\" after label name");
        s += 2;
        while (*s != '"') {
            char c = *s;

            if (c == '\0')
                return verr(v, "unterminated label value");
            if (c == '\\') {
                c = s[1] == '\\' ? '\\' : s[1] == '"' ? '"' : s[1] == 'n' ? '\n' : 0;
                if (c == 0)
                    return verr(v, "bad escape in label value");
                s++;
            }
            if (k + 1 >= V_LABEL_MAX)
                return verr(v, "label value too long");
            l[*n].value[k++] = c;
            s++;
        }
        l[*n].value[k] = '\0';
        s++;
        (*n)++;
        if (*s == ',')
            s++;
        else if (*s != '}')
            return verr(v, "expected , or } after label value");
        if (s[-1] == ',' && *s == '}')
            return verr(v, "trailing comma in labels");
    }
    *p = s + 1;
    return 0;
}

static int cmp_label(const void *a, const void *b)
{
    return strcmp(((const struct vlabel *)a)->name, ((const struct vlabel *)b)->name);
}

/* Canonical "name{a=v,b=v}" (labels sorted, le left out when skip_le). */
static void vkey(char *out, size_t cap, const char *name, struct vlabel *l, int n, int skip_le)
{
    size_t used = (size_t)snprintf(out, cap, "%s{", name);

    qsort(l, (size_t)n, sizeof *l, cmp_label);
    for (int i = 0; i < n && used < cap; i++)
        if (!skip_le || strcmp(l[i].name, "le") != 0)
            used += (size_t)snprintf(out + used, cap - used, "%s=%s,", l[i].name, l[i].value);
    if (used < cap)
        snprintf(out + used, cap - used, "}");
}

static struct vgroup *vgroup_get(struct validator *v, const char *key)
{
    for (int i = 0; i < v->ngrp; i++)
        if (strcmp(v->grp[i].key, key) == 0)
            return &v->grp[i];
    v->grp = realloc(v->grp, (size_t)(v->ngrp + 1) * sizeof *v->grp);
    assert_non_null(v->grp);
    memset(&v->grp[v->ngrp], 0, sizeof *v->grp);
    snprintf(v->grp[v->ngrp].key, sizeof v->grp[v->ngrp].key, "%s", key);
    v->grp[v->ngrp].last_le = -INFINITY;
    return &v->grp[v->ngrp++];
}

static int vsample(struct validator *v, const char *s)
{
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    char name[V_NAME_MAX], base[V_NAME_MAX];
    struct vlabel l[V_LABELS_MAX];
    char key[sizeof v->grp->key];
    int n, f, suffix = -1;
    const char *le = NULL;
    double val;

    if (vname(&s, name, 1) < 0)
        return verr(v, "bad metric name");
    if (vlabels(v, &s, l, &n) < 0)
        return -1;
    if (*s != ' ')
        return verr(v, "expected a space before the value");
    if (vvalue(s + 1, &val) < 0)
        return verr(v, "bad value '%s' (timestamps not expected)", s + 1);

    f = vfind(v, name);
    if (f >= 0 && strcmp(v->fam[f].type, "histogram") == 0)
        return verr(v, "bare sample of histogram %s", name);
    for (int i = 0; f < 0 && i < 3; i++) {
        size_t nl = strlen(name), sl = strlen(suffixes[i]);

        if (nl > sl && strcmp(name + nl - sl, suffixes[i]) == 0) {
            snprintf(base, sizeof base, "%.*s", (int)(nl - sl), name);
            f = vfind(v, base);
            if (f >= 0 && strcmp(v->fam[f].type, "histogram") == 0)
                suffix = i;
            else
                f = -1;
        }
    }
    if (f < 0)
        return verr(v, "sample %s of an undeclared family", name);
    if (f != v->cur)
        return verr(v, "sample %s not right after its family's declaration", name);
    if (v->fam[f].type[0] == '\0')
        return verr(v, "sample %s before its TYPE", name);
    if (!v->fam[f].help)
        return verr(v, "family of %s has no HELP", name);
    if (strcmp(v->fam[f].type, "counter") == 0 && !(val >= 0))
        return verr(v, "negative or NaN counter %s", name);

    vkey(key, sizeof key, name, l, n, 0);
    v->series = realloc(v->series, (size_t)(v->nseries + 1) * sizeof *v->series);
    assert_non_null(v->series);
    v->series[v->nseries] = strdup(key);
    assert_non_null(v->series[v->nseries++]);

    if (suffix < 0)
        return 0;
    for (int i = 0; i < n; i++)
        if (strcmp(l[i].name, "le") == 0)
            le = l[i].value;
    if ((suffix == 0) != (le != NULL))
        return verr(v, "le label on %s wrong", name);
    vkey(key, sizeof key, base, l, n, 1);
    struct vgroup *g = vgroup_get(v, key);
    if (suffix == 0) {
        double lev;

        if (vvalue(le, &lev) < 0 || isnan(lev))
            return verr(v, "bad le '%s'", le);
        if (g->has_inf || lev <= g->last_le)
            return verr(v, "le not increasing in %s", key);
        if (!(val >= g->last_count))
            return verr(v, "bucket counts not cumulative in %s", key);
        if (val != floor(val))
            return verr(v, "fractional bucket count in %s", key);
        g->last_le = lev;
        g->last_count = val;
        g->buckets++;
        if (isinf(lev)) {
            g->has_inf = 1;
            g->inf_count = val;
        }
    } else if (suffix == 1) {
        if (g->has_sum++)
            return verr(v, "second _sum for %s", key);
    } else {
        if (g->has_count++)
            return verr(v, "second _count for %s", key);
        g->count = val;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int vfinish(struct validator *v)
{
    v->line = 0;
    for (int i = 0; i < v->nfam; i++)
        if (!v->fam[i].help || v->fam[i].type[0] == '\0')
            return verr(v, "family %s lacks HELP or TYPE", v->fam[i].name);
    for (int i = 0; i < v->ngrp; i++) {
        struct vgroup *g = &v->grp[i];

        if (!g->has_inf || !g->has_sum || !g->has_count)
            return verr(v, "histogram %s lacks +Inf, _sum or _count", g->key);
        if (g->inf_count != g->count)
            return verr(v, "histogram %s: +Inf %.0f != _count %.0f", g->key, g->inf_count,
                        g->count);
    }
    qsort(v->series, (size_t)v->nseries, sizeof *v->series, cmp_str);
    for (int i = 1; i < v->nseries; i++)
        if (strcmp(v->series[i - 1], v->series[i]) == 0)
            return verr(v, "duplicate series %s", v->series[i]);
    return 0;
}

/* Returns NULL when text is valid exposition text, else a static message. */
static const char *validate(const char *text, size_t len)
{
    static struct validator v;
    const char *p = text, *end = text + len;
    int rc = 0;

    memset(&v, 0, sizeof v);
    v.cur = -1;
    if (strlen(text) != len)
        rc = verr(&v, "NUL inside the text");
    else if (!valid_utf8((const unsigned char *)text, len))
        rc = verr(&v, "not UTF-8");
    else if (len == 0 || text[len - 1] != '\n')
        rc = verr(&v, "text does not end with a newline");
    while (rc == 0 && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        char *line = strndup(p, (size_t)(nl - p));

        assert_non_null(line);
        v.line++;
        if (line[0] == '\0')
            rc = verr(&v, "empty line");
        else if (line[0] == '#')
            rc = vdescriptor(&v, line);
        else
            rc = vsample(&v, line);
        free(line);
        p = nl + 1;
    }
    if (rc == 0)
        rc = vfinish(&v);
    for (int i = 0; i < v.nseries; i++)
        free(v.series[i]);
    free(v.series);
    free(v.grp);
    return rc == 0 ? NULL : v.err;
}

/* ---------------------------------------------------------------------
 * Helpers
 */

static const struct gb_metrics_keys keys3 = {
    .total = 3, .usable = 1, .cooling = 1, .disabled = 1, .throttled = 1};

/* Renders, fails the test unless the text is valid; caller frees. */
static char *render_valid(const struct gb_metrics_keys *keys, uint64_t dropped, size_t *len)
{
    size_t n = 0;
    char *text = gb_metrics_render(keys, dropped, &n);
    const char *err;

    assert_non_null(text);
    assert_int_equal(strlen(text), n);
    err = validate(text, n);
    if (err != NULL)
        fail_msg("invalid exposition text: %s", err);
    if (len != NULL)
        *len = n;
    return text;
}

/* Whether text holds exactly this line. */
static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return 1;
    return 0;
}

#define assert_line(text, line)                                                                    \
    do {                                                                                           \
        if (!has_line((text), (line)))                                                             \
            fail_msg("missing line: %s", (line));                                                  \
    } while (0)

/* Number of lines starting with prefix. */
static int count_lines(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    int count = 0;

    for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (strncmp(p, prefix, n) == 0)
            count++;
    return count;
}

static int setup(void **state)
{
    (void)state;
    gb_metrics_reset();
    return 0;
}

/* ---------------------------------------------------------------------
 * Tests
 */

static void test_empty_render_is_valid(void **state)
{
    static const char *const families[] = {
        P "requests_total counter",
        P "request_duration_seconds histogram",
        P "time_to_first_byte_seconds histogram",
        P "upstream_attempts_total counter",
        P "key_cooldowns_total counter",
        P "keys gauge",
        P "keys_total gauge",
        P "pool_throttled gauge",
        P "store_dropped_total counter",
        "process_start_time_seconds gauge",
        "process_resident_memory_bytes gauge",
        "process_cpu_seconds_total counter",
    };
    char *text = render_valid(&keys3, 0, NULL);
    char line[256];

    (void)state;
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        snprintf(line, sizeof line, "# TYPE %s", families[i]);
        assert_line(text, line);
    }
    assert_int_equal(count_lines(text, P "requests_total{"), 0);
    assert_line(text, P "request_duration_seconds_bucket{route=\"chat\",le=\"+Inf\"} 0");
    assert_line(text, P "request_duration_seconds_count{route=\"other\"} 0");
    assert_line(text, P "request_duration_seconds_sum{route=\"admin\"} 0.000000");
    assert_line(text, P "upstream_attempts_total{outcome=\"transport\"} 0");
    assert_line(text, P "key_cooldowns_total 0");
    free(text);
}

static void test_request_counts_exact(void **state)
{
    char *text;

    (void)state;
    gb_metrics_request(GB_ROUTE_CHAT, "gemini-2.0-flash", 200, 0.2, 0.05);
    gb_metrics_request(GB_ROUTE_CHAT, "gemini-2.0-flash", 200, 0.3, 0.05);
    gb_metrics_request(GB_ROUTE_CHAT, "gemini-2.0-flash", 200, 0.4, -1);
    gb_metrics_request(GB_ROUTE_CHAT, "gemini-2.0-flash", 429, 0.01, -1);
    gb_metrics_request(GB_ROUTE_CHAT, "gemini-1.5-pro", 200, 1.5, 0.7);
    gb_metrics_request(GB_ROUTE_EMBEDDINGS, "text-embedding-004", 200, 0.02, 0.02);
    gb_metrics_request(GB_ROUTE_MODELS, NULL, 200, 0.001, 0.001);
    gb_metrics_request(GB_ROUTE_MODELS, "", 401, 0.001, 0.001);
    gb_metrics_request(GB_ROUTE_NATIVE, "gemini-2.0-flash", 502, 30, 2);
    gb_metrics_request(GB_ROUTE__COUNT, "x", 404, 0, 0); /* out of range route -> other */

    text = render_valid(NULL, 0, NULL);
    assert_line(text,
                P "requests_total{route=\"chat\",model=\"gemini-2.0-flash\",status=\"200\"} 3");
    assert_line(text,
                P "requests_total{route=\"chat\",model=\"gemini-2.0-flash\",status=\"429\"} 1");
    assert_line(text, P "requests_total{route=\"chat\",model=\"gemini-1.5-pro\",status=\"200\"} 1");
    assert_line(
        text,
        P "requests_total{route=\"embeddings\",model=\"text-embedding-004\",status=\"200\"} 1");
    assert_line(text, P "requests_total{route=\"models\",model=\"\",status=\"200\"} 1");
    assert_line(text, P "requests_total{route=\"models\",model=\"\",status=\"401\"} 1");
    assert_line(text,
                P "requests_total{route=\"native\",model=\"gemini-2.0-flash\",status=\"502\"} 1");
    assert_line(text, P "requests_total{route=\"other\",model=\"x\",status=\"404\"} 1");
    assert_int_equal(count_lines(text, P "requests_total{"), 8);

    /* chat durations: 0.01, 0.2, 0.3, 0.4, 1.5 */
    assert_line(text, P "request_duration_seconds_bucket{route=\"chat\",le=\"0.005\"} 0");
    assert_line(text, P "request_duration_seconds_bucket{route=\"chat\",le=\"0.01\"} 1");
    assert_line(text, P "request_duration_seconds_bucket{route=\"chat\",le=\"0.25\"} 2");
    assert_line(text, P "request_duration_seconds_bucket{route=\"chat\",le=\"0.5\"} 4");
    assert_line(text, P "request_duration_seconds_bucket{route=\"chat\",le=\"1\"} 4");
    assert_line(text, P "request_duration_seconds_bucket{route=\"chat\",le=\"2.5\"} 5");
    assert_line(text, P "request_duration_seconds_bucket{route=\"chat\",le=\"+Inf\"} 5");
    assert_line(text, P "request_duration_seconds_sum{route=\"chat\"} 2.410000");
    assert_line(text, P "request_duration_seconds_count{route=\"chat\"} 5");
    /* chat ttfb: only the three with ttfb >= 0 */
    assert_line(text, P "time_to_first_byte_seconds_count{route=\"chat\"} 3");
    assert_line(text, P "time_to_first_byte_seconds_sum{route=\"chat\"} 0.800000");
    assert_line(text, P "time_to_first_byte_seconds_bucket{route=\"chat\",le=\"0.05\"} 2");
    assert_line(text, P "time_to_first_byte_seconds_bucket{route=\"chat\",le=\"0.5\"} 2");
    assert_line(text, P "time_to_first_byte_seconds_bucket{route=\"chat\",le=\"1\"} 3");
    assert_line(text, P "request_duration_seconds_count{route=\"native\"} 1");
    assert_line(text, P "request_duration_seconds_bucket{route=\"native\",le=\"10\"} 0");
    assert_line(text, P "request_duration_seconds_bucket{route=\"native\",le=\"30\"} 1");
    /* keys == NULL leaves the key-pool gauges out */
    assert_null(strstr(text, P "keys"));
    assert_null(strstr(text, P "pool_throttled"));
    free(text);
}

/* Statuses are listed in code order, whatever order they were first seen in. */
static void test_status_order_and_range(void **state)
{
    char *text, *a, *b, *c;

    (void)state;
    gb_metrics_request(GB_ROUTE_CHAT, "m", 503, 0, -1);
    gb_metrics_request(GB_ROUTE_CHAT, "m", 200, 0, -1);
    gb_metrics_request(GB_ROUTE_CHAT, "m", 404, 0, -1);
    gb_metrics_request(GB_ROUTE_CHAT, "m", 99, 0, -1);
    gb_metrics_request(GB_ROUTE_CHAT, "m", 600, 0, -1);
    gb_metrics_request(GB_ROUTE_CHAT, "m", -1, 0, -1);
    gb_metrics_request(GB_ROUTE_CHAT, "m", 100, 0, -1);
    gb_metrics_request(GB_ROUTE_CHAT, "m", 599, 0, -1);
    text = render_valid(NULL, 0, NULL);
    a = strstr(text, "status=\"200\"");
    b = strstr(text, "status=\"404\"");
    c = strstr(text, "status=\"503\"");
    assert_true(a != NULL && b != NULL && c != NULL && a < b && b < c);
    assert_line(text, P "requests_total{route=\"chat\",model=\"m\",status=\"other\"} 3");
    assert_line(text, P "requests_total{route=\"chat\",model=\"m\",status=\"100\"} 1");
    assert_line(text, P "requests_total{route=\"chat\",model=\"m\",status=\"599\"} 1");
    free(text);
}

/* le is inclusive: a value equal to a bound counts in that bucket. */
static void test_histogram_boundaries(void **state)
{
    static const struct {
        double v;
        const char *first_le; /* smallest bucket that holds v */
    } rows[] = {
        {0, "0.005"},
        {0.005, "0.005"},
        {0.0050001, "0.01"},
        {0.01, "0.01"},
        {0.025, "0.025"},
        {0.05, "0.05"},
        {0.1, "0.1"},
        {0.10000001, "0.25"},
        {0.25, "0.25"},
        {0.5, "0.5"},
        {1, "1"},
        {1.000001, "2.5"},
        {2.5, "2.5"},
        {5, "5"},
        {10, "10"},
        {30, "30"},
        {60, "60"},
        {120, "120"},
        {120.000001, "+Inf"},
        {1e6, "+Inf"},
        {-3, "0.005"},
        {NAN, "0.005"},
        {INFINITY, "+Inf"},
    };
    static const char *const les[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
                                      "2.5",   "5",    "10",    "30",   "60",  "120",  "+Inf"};
    (void)state;
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        char *text;
        int reached = 0;

        gb_metrics_reset();
        gb_metrics_request(GB_ROUTE_NATIVE, "m", 200, rows[r].v, rows[r].v);
        text = render_valid(NULL, 0, NULL);
        for (size_t i = 0; i < sizeof les / sizeof les[0]; i++) {
            char line[256];

            reached |= strcmp(les[i], rows[r].first_le) == 0;
            snprintf(line, sizeof line,
                     P "request_duration_seconds_bucket{route=\"native\",le=\"%s\"} %d", les[i],
                     reached);
            if (!has_line(text, line))
                fail_msg("value %.9g: missing %s", rows[r].v, line);
            snprintf(line, sizeof line,
                     P "time_to_first_byte_seconds_bucket{route=\"native\",le=\"%s\"} %d", les[i],
                     rows[r].v >= 0 ? reached : 0);
            if (!has_line(text, line))
                fail_msg("ttfb %.9g: missing %s", rows[r].v, line);
        }
        free(text);
    }
}

static void test_histogram_sum_exact_and_clamped(void **state)
{
    char *text;

    (void)state;
    gb_metrics_request(GB_ROUTE_CHAT, "m", 200, 0.000001, 0.1234567);
    gb_metrics_request(GB_ROUTE_CHAT, "m", 200, 59.999999, -1);
    gb_metrics_request(GB_ROUTE_ADMIN, NULL, 200, INFINITY, -1);
    gb_metrics_request(GB_ROUTE_ADMIN, NULL, 200, 1e300, -1);
    text = render_valid(NULL, 0, NULL);
    assert_line(text, P "request_duration_seconds_sum{route=\"chat\"} 60.000000");
    assert_line(text, P "time_to_first_byte_seconds_sum{route=\"chat\"} 0.123457");
    /* a time above a day adds a day to _sum; both still count in +Inf */
    assert_line(text, P "request_duration_seconds_sum{route=\"admin\"} 172800.000000");
    assert_line(text, P "request_duration_seconds_bucket{route=\"admin\",le=\"120\"} 0");
    assert_line(text, P "request_duration_seconds_bucket{route=\"admin\",le=\"+Inf\"} 2");
    assert_line(text, P "time_to_first_byte_seconds_count{route=\"admin\"} 0");
    free(text);
}

static void test_attempts_cooldowns_gauges(void **state)
{
    struct gb_metrics_keys k = {.total = 7, .usable = 4, .cooling = 2, .disabled = 1};
    char *text;

    (void)state;
    for (int i = 0; i < 5; i++)
        gb_metrics_attempt(GB_ATTEMPT_OK);
    gb_metrics_attempt(GB_ATTEMPT_KEY_INVALID);
    gb_metrics_attempt(GB_ATTEMPT_RATE_LIMITED);
    gb_metrics_attempt(GB_ATTEMPT_RATE_LIMITED);
    gb_metrics_attempt(GB_ATTEMPT_SERVER_ERROR);
    gb_metrics_attempt(GB_ATTEMPT_CLIENT_ERROR);
    gb_metrics_attempt(GB_ATTEMPT__COUNT);            /* ignored */
    gb_metrics_attempt((enum gb_metric_attempt) - 1); /* ignored */
    gb_metrics_cooldown();
    gb_metrics_cooldown();
    text = render_valid(&k, 12345678901234ull, NULL);
    assert_line(text, P "upstream_attempts_total{outcome=\"ok\"} 5");
    assert_line(text, P "upstream_attempts_total{outcome=\"key_invalid\"} 1");
    assert_line(text, P "upstream_attempts_total{outcome=\"rate_limited\"} 2");
    assert_line(text, P "upstream_attempts_total{outcome=\"server_error\"} 1");
    assert_line(text, P "upstream_attempts_total{outcome=\"transport\"} 0");
    assert_line(text, P "upstream_attempts_total{outcome=\"client_error\"} 1");
    assert_int_equal(count_lines(text, P "upstream_attempts_total{"), 6);
    assert_line(text, P "key_cooldowns_total 2");
    assert_line(text, P "keys{state=\"usable\"} 4");
    assert_line(text, P "keys{state=\"cooling\"} 2");
    assert_line(text, P "keys{state=\"disabled\"} 1");
    assert_line(text, P "keys_total 7");
    assert_line(text, P "pool_throttled 0");
    assert_line(text, P "store_dropped_total 12345678901234");
    free(text);

    k.throttled = 5; /* any non-zero is rendered as 1 */
    text = render_valid(&k, 0, NULL);
    assert_line(text, P "pool_throttled 1");
    free(text);
}

static void test_process_metrics(void **state)
{
    char *text = render_valid(NULL, 0, NULL);
    const char *p;
    double start, rss, cpu;
    time_t now = time(NULL);

    (void)state;
    p = strstr(text, "\nprocess_start_time_seconds ");
    assert_non_null(p);
    start = strtod(p + strlen("\nprocess_start_time_seconds "), NULL);
    assert_true(start > (double)now - 3600 && start <= (double)now + 1);
    p = strstr(text, "\nprocess_resident_memory_bytes ");
    assert_non_null(p);
    rss = strtod(p + strlen("\nprocess_resident_memory_bytes "), NULL);
    assert_true(rss >= 4096);
    p = strstr(text, "\nprocess_cpu_seconds_total ");
    assert_non_null(p);
    cpu = strtod(p + strlen("\nprocess_cpu_seconds_total "), NULL);
    assert_true(cpu >= 0 && cpu < 3600);
    free(text);
}

/* GB_METRICS_MAX_MODELS names get their own series; every later one,
 * however many, lands in model="other", and the text stops growing. */
static void test_model_overflow_other(void **state)
{
    char name[64], line[256];
    size_t len_at_limit, len_after;
    char *text;

    (void)state;
    for (int i = 0; i < GB_METRICS_MAX_MODELS + 1; i++) {
        snprintf(name, sizeof name, "model-%04d", i);
        gb_metrics_request(GB_ROUTE_CHAT, name, 200, 0.1, 0.1);
    }
    text = render_valid(NULL, 0, &len_at_limit);
    for (int i = 0; i < GB_METRICS_MAX_MODELS; i++) {
        snprintf(line, sizeof line,
                 P "requests_total{route=\"chat\",model=\"model-%04d\",status=\"200\"} 1", i);
        assert_line(text, line);
    }
    assert_line(text, P "requests_total{route=\"chat\",model=\"other\",status=\"200\"} 1");
    assert_int_equal(count_lines(text, P "requests_total{"), GB_METRICS_MAX_MODELS + 1);
    free(text);

    for (int i = GB_METRICS_MAX_MODELS + 1; i < 20000; i++) {
        snprintf(name, sizeof name, "model-%04d", i);
        gb_metrics_request(GB_ROUTE_CHAT, name, 200, 0.1, 0.1);
    }
    /* a known model still counts under its own name */
    gb_metrics_request(GB_ROUTE_CHAT, "model-0007", 200, 0.1, 0.1);
    /* the literal "other" shares the overflow series */
    gb_metrics_request(GB_ROUTE_CHAT, "other", 200, 0.1, 0.1);
    text = render_valid(NULL, 0, &len_after);
    snprintf(line, sizeof line,
             P "requests_total{route=\"chat\",model=\"other\",status=\"200\"} %d",
             20000 - GB_METRICS_MAX_MODELS + 1);
    assert_line(text, line);
    assert_line(text, P "requests_total{route=\"chat\",model=\"model-0007\",status=\"200\"} 2");
    assert_int_equal(count_lines(text, P "requests_total{"), GB_METRICS_MAX_MODELS + 1);
    /* only counts grew: a few more digits, not more series */
    assert_true(len_after < len_at_limit + 1024);
    free(text);
}

/* "other" sent before the table fills does not take a slot. */
static void test_literal_other_takes_no_slot(void **state)
{
    char name[64], line[256];
    char *text;

    (void)state;
    gb_metrics_request(GB_ROUTE_CHAT, "other", 200, 0.1, 0.1);
    for (int i = 0; i < GB_METRICS_MAX_MODELS; i++) {
        snprintf(name, sizeof name, "m%d", i);
        gb_metrics_request(GB_ROUTE_CHAT, name, 200, 0.1, 0.1);
    }
    text = render_valid(NULL, 0, NULL);
    snprintf(line, sizeof line, P "requests_total{route=\"chat\",model=\"m%d\",status=\"200\"} 1",
             GB_METRICS_MAX_MODELS - 1);
    assert_line(text, line);
    assert_line(text, P "requests_total{route=\"chat\",model=\"other\",status=\"200\"} 1");
    free(text);
}

/* Per route: GB_METRICS_MAX_STATUSES exact codes, then status="other". */
static void test_status_overflow_per_route(void **state)
{
    char line[256];
    char *text;

    (void)state;
    for (int code = 200; code < 200 + GB_METRICS_MAX_STATUSES + 10; code++)
        gb_metrics_request(GB_ROUTE_NATIVE, "m", code, 0.1, -1);
    gb_metrics_request(GB_ROUTE_NATIVE, "m", 200 + GB_METRICS_MAX_STATUSES + 3, 0.1, -1);
    gb_metrics_request(GB_ROUTE_NATIVE, "m", 200, 0.1, -1);
    /* another route has its own budget */
    gb_metrics_request(GB_ROUTE_CHAT, "m", 200 + GB_METRICS_MAX_STATUSES + 5, 0.1, -1);
    text = render_valid(NULL, 0, NULL);
    assert_line(text, P "requests_total{route=\"native\",model=\"m\",status=\"200\"} 2");
    snprintf(line, sizeof line, P "requests_total{route=\"native\",model=\"m\",status=\"%d\"} 1",
             200 + GB_METRICS_MAX_STATUSES - 1);
    assert_line(text, line);
    snprintf(line, sizeof line, P "requests_total{route=\"native\",model=\"m\",status=\"%d\"}",
             200 + GB_METRICS_MAX_STATUSES);
    assert_int_equal(count_lines(text, line), 0);
    assert_line(text, P "requests_total{route=\"native\",model=\"m\",status=\"other\"} 11");
    snprintf(line, sizeof line, P "requests_total{route=\"chat\",model=\"m\",status=\"%d\"} 1",
             200 + GB_METRICS_MAX_STATUSES + 5);
    assert_line(text, line);
    assert_int_equal(count_lines(text, P "requests_total{route=\"native\""),
                     GB_METRICS_MAX_STATUSES + 1);
    free(text);
}

static void test_label_escaping(void **state)
{
    char *text;

    (void)state;
    gb_metrics_request(GB_ROUTE_CHAT, "a\"b\\c\nd", 200, 0.1, 0.1);
    gb_metrics_request(GB_ROUTE_CHAT, "\\\\\"\"\n", 200, 0.1, 0.1);
    gb_metrics_request(GB_ROUTE_CHAT, "gemini-\xc3\xa9t\xc3\xa9-\xf0\x9f\x98\x80", 200, 0.1, 0.1);
    text = render_valid(NULL, 0, NULL);
    assert_line(text,
                P "requests_total{route=\"chat\",model=\"a\\\"b\\\\c\\nd\",status=\"200\"} 1");
    assert_line(text,
                P "requests_total{route=\"chat\",model=\"\\\\\\\\\\\"\\\"\\n\",status=\"200\"} 1");
    assert_line(text, P "requests_total{route=\"chat\",model=\"gemini-\xc3\xa9t\xc3\xa9-"
                        "\xf0\x9f\x98\x80\",status=\"200\"} 1");
    free(text);
}

/* Invalid UTF-8 and control characters become '?', so the text stays valid. */
static void test_invalid_bytes_replaced(void **state)
{
    char *text;

    (void)state;
    gb_metrics_request(GB_ROUTE_CHAT,
                       "a\x01"
                       "b\tc\r\x7f",
                       200, 0.1, 0.1);
    gb_metrics_request(GB_ROUTE_CHAT, "x\xff\xc3y\xed\xa0\x80z\xc0\xaf", 200, 0.1, 0.1);
    /* same label value as the first: must share its series */
    gb_metrics_request(GB_ROUTE_CHAT, "a?b?c??", 200, 0.1, 0.1);
    text = render_valid(NULL, 0, NULL);
    assert_line(text, P "requests_total{route=\"chat\",model=\"a?b?c??\",status=\"200\"} 2");
    assert_line(text, P "requests_total{route=\"chat\",model=\"x??y???z??\",status=\"200\"} 1");
    assert_int_equal(count_lines(text, P "requests_total{"), 2);
    free(text);
}

/* Names are cut to GB_METRICS_MODEL_MAX_BYTES at a character boundary. */
static void test_model_truncation(void **state)
{
    char long1[400], long2[400], want[400], line[600];
    char *text;

    (void)state;
    memset(long1, 'a', sizeof long1 - 1);
    long1[sizeof long1 - 1] = '\0';
    memcpy(long2, long1, sizeof long2);
    long2[GB_METRICS_MODEL_MAX_BYTES + 5] = 'b'; /* differs only past the cut */
    gb_metrics_request(GB_ROUTE_CHAT, long1, 200, 0.1, 0.1);
    gb_metrics_request(GB_ROUTE_CHAT, long2, 200, 0.1, 0.1);

    /* 127 ASCII bytes then a 2-byte character: the character does not fit */
    memset(long2, 'z', GB_METRICS_MODEL_MAX_BYTES - 1);
    memcpy(long2 + GB_METRICS_MODEL_MAX_BYTES - 1, "\xc3\xa9tail", 7);
    gb_metrics_request(GB_ROUTE_CHAT, long2, 200, 0.1, 0.1);

    /* exactly the limit: kept whole */
    memset(long2, 'y', GB_METRICS_MODEL_MAX_BYTES);
    long2[GB_METRICS_MODEL_MAX_BYTES] = '\0';
    gb_metrics_request(GB_ROUTE_CHAT, long2, 200, 0.1, 0.1);

    /* a quote at the cut: escaping happens after the cut */
    memset(long2, 'q', GB_METRICS_MODEL_MAX_BYTES - 1);
    memcpy(long2 + GB_METRICS_MODEL_MAX_BYTES - 1, "\"\"", 3);
    gb_metrics_request(GB_ROUTE_CHAT, long2, 200, 0.1, 0.1);

    text = render_valid(NULL, 0, NULL);
    snprintf(line, sizeof line, P "requests_total{route=\"chat\",model=\"%.*s\",status=\"200\"} 2",
             GB_METRICS_MODEL_MAX_BYTES, long1);
    assert_line(text, line);
    memset(want, 'z', GB_METRICS_MODEL_MAX_BYTES - 1);
    want[GB_METRICS_MODEL_MAX_BYTES - 1] = '\0';
    snprintf(line, sizeof line, P "requests_total{route=\"chat\",model=\"%s\",status=\"200\"} 1",
             want);
    assert_line(text, line);
    memset(want, 'y', GB_METRICS_MODEL_MAX_BYTES);
    want[GB_METRICS_MODEL_MAX_BYTES] = '\0';
    snprintf(line, sizeof line, P "requests_total{route=\"chat\",model=\"%s\",status=\"200\"} 1",
             want);
    assert_line(text, line);
    memset(want, 'q', GB_METRICS_MODEL_MAX_BYTES - 1);
    want[GB_METRICS_MODEL_MAX_BYTES - 1] = '\0';
    snprintf(line, sizeof line,
             P "requests_total{route=\"chat\",model=\"%s\\\"\",status=\"200\"} 1", want);
    assert_line(text, line);
    assert_int_equal(count_lines(text, P "requests_total{"), 4);
    free(text);
}

/* Worst case: every label at its longest and every series in use.  The
 * render must fit GB_METRICS_RENDER_MAX_BYTES. */
static void test_worst_case_size_fits(void **state)
{
    char name[GB_METRICS_MODEL_MAX_BYTES + 1], num[16];
    size_t len;
    char *text;

    (void)state;
    for (int m = 0; m < GB_METRICS_MAX_MODELS + 2; m++) {
        memset(name, '"', sizeof name - 1); /* escapes to twice its length */
        name[sizeof name - 1] = '\0';
        snprintf(num, sizeof num, "%07d", m);
        memcpy(name, num, 7);
        for (int r = 0; r < GB_ROUTE__COUNT; r++)
            for (int s = 0; s <= GB_METRICS_MAX_STATUSES; s++)
                gb_metrics_request((enum gb_metric_route)r,
                                   m == GB_METRICS_MAX_MODELS + 1 ? NULL : name, 100 + s, 1, 1);
    }
    text = render_valid(&keys3, UINT64_MAX, &len);
    assert_int_equal(count_lines(text, P "requests_total{"),
                     GB_ROUTE__COUNT * (GB_METRICS_MAX_MODELS + 2) * (GB_METRICS_MAX_STATUSES + 1));
    assert_true(len < GB_METRICS_RENDER_MAX_BYTES);
    print_message("worst-case render: %zu bytes\n", len);
    free(text);
}

/* No key-looking string appears unless a caller passes one as the model. */
static void test_no_key_strings(void **state)
{
    char *text;

    (void)state;
    for (int i = 0; i < 1000; i++) {
        gb_metrics_request((enum gb_metric_route)(i % GB_ROUTE__COUNT), "gemini-2.0-flash",
                           i % 3 ? 200 : 429, 0.1, 0.05);
        gb_metrics_attempt((enum gb_metric_attempt)(i % GB_ATTEMPT__COUNT));
        gb_metrics_cooldown();
    }
    text = render_valid(&keys3, 5, NULL);
    assert_null(strstr(text, "AIza"));
    assert_null(strstr(text, "Bearer"));
    assert_null(strstr(text, "key="));
    free(text);

    /* the module does not filter model names: callers pass only validated ones
     * (the key-shaped name is put together at run time, so the tree holds
     * nothing that looks like a real key) */
    char fake_key[64];
    snprintf(fake_key, sizeof fake_key, "%s%s", "AIza", "SyDUMMYDUMMYDUMMYDUMMYDUMMYDUMMY00");
    gb_metrics_request(GB_ROUTE_CHAT, fake_key, 200, 0.1, 0.1);
    text = render_valid(NULL, 0, NULL);
    assert_non_null(strstr(text, "AIza"));
    free(text);
}

static void test_reset(void **state)
{
    char *text;

    (void)state;
    gb_metrics_request(GB_ROUTE_CHAT, "m1", 200, 0.1, 0.1);
    gb_metrics_request(GB_ROUTE_CHAT, "m2", 500, 0.1, 0.1);
    gb_metrics_attempt(GB_ATTEMPT_OK);
    gb_metrics_cooldown();
    gb_metrics_reset();
    text = render_valid(NULL, 0, NULL);
    assert_int_equal(count_lines(text, P "requests_total{"), 0);
    assert_line(text, P "request_duration_seconds_count{route=\"chat\"} 0");
    assert_line(text, P "request_duration_seconds_sum{route=\"chat\"} 0.000000");
    assert_line(text, P "time_to_first_byte_seconds_bucket{route=\"chat\",le=\"+Inf\"} 0");
    assert_line(text, P "upstream_attempts_total{outcome=\"ok\"} 0");
    assert_line(text, P "key_cooldowns_total 0");
    free(text);

    /* labels are forgotten too: the full model budget is available again */
    for (int i = 0; i < GB_METRICS_MAX_MODELS; i++) {
        char name[32];

        snprintf(name, sizeof name, "n%d", i);
        gb_metrics_request(GB_ROUTE_EMBEDDINGS, name, 201, 0.1, 0.1);
    }
    text = render_valid(NULL, 0, NULL);
    assert_int_equal(count_lines(text, P "requests_total{route=\"embeddings\",model=\"n"),
                     GB_METRICS_MAX_MODELS);
    assert_null(strstr(text, "model=\"other\""));
    assert_null(strstr(text, "m1"));
    free(text);
}

/* ---------------------------------------------------------------------
 * Concurrency
 */

#define THREADS 4
#define UPDATES 100000
#define NMODELS 8

static const char *const conc_models[NMODELS] = {"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"};
static const int conc_status[3] = {200, 429, 500};
static atomic_int conc_done;

static void *conc_worker(void *arg)
{
    int t = (int)(intptr_t)arg;

    for (int i = 0; i < UPDATES; i++) {
        /* each thread walks the names from a different start, so they race
         * to create the same series */
        int m = (i + t) % NMODELS;

        gb_metrics_request(GB_ROUTE_CHAT, conc_models[m], conc_status[i % 3], 0.001 * (i % 4),
                           i % 2 ? -1 : 0.002);
        gb_metrics_attempt((enum gb_metric_attempt)(i % GB_ATTEMPT__COUNT));
        if (i % 10 == 0)
            gb_metrics_cooldown();
    }
    atomic_fetch_add(&conc_done, 1);
    return NULL;
}

/* Renders while the workers run: every snapshot must be valid text. */
static void *conc_renderer(void *arg)
{
    int *renders = arg;

    while (atomic_load(&conc_done) < THREADS) {
        size_t len;
        char *text = gb_metrics_render(&keys3, 0, &len);
        const char *err;

        /* no cmocka asserts off the main thread: they longjmp */
        if (text == NULL) {
            fprintf(stderr, "concurrent render failed\n");
            abort();
        }
        err = validate(text, len);
        if (err != NULL) {
            fprintf(stderr, "concurrent render invalid: %s\n", err);
            abort();
        }
        free(text);
        (*renders)++;
    }
    return NULL;
}

static void test_concurrent_exact_totals(void **state)
{
    pthread_t th[THREADS], rt;
    uint64_t want[NMODELS][3] = {{0}};
    char line[256];
    int renders = 0;
    char *text;

    (void)state;
    atomic_store(&conc_done, 0);
    assert_int_equal(pthread_create(&rt, NULL, conc_renderer, &renders), 0);
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, conc_worker, (void *)(intptr_t)t), 0);
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    assert_int_equal(pthread_join(rt, NULL), 0);

    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < UPDATES; i++)
            want[(i + t) % NMODELS][i % 3]++;
    text = render_valid(&keys3, 0, NULL);
    for (int m = 0; m < NMODELS; m++)
        for (int s = 0; s < 3; s++) {
            snprintf(line, sizeof line,
                     P "requests_total{route=\"chat\",model=\"%s\",status=\"%d\"} %" PRIu64,
                     conc_models[m], conc_status[s], want[m][s]);
            assert_line(text, line);
        }
    assert_int_equal(count_lines(text, P "requests_total{"), NMODELS * 3);
    snprintf(line, sizeof line, P "request_duration_seconds_count{route=\"chat\"} %d",
             THREADS * UPDATES);
    assert_line(text, line);
    /* latencies 0, 1, 2, 3 ms in turn: 1.5 ms on average */
    snprintf(line, sizeof line, P "request_duration_seconds_sum{route=\"chat\"} %d.000000",
             THREADS * UPDATES * 3 / 2 / 1000);
    assert_line(text, line);
    snprintf(line, sizeof line, P "time_to_first_byte_seconds_count{route=\"chat\"} %d",
             THREADS * UPDATES / 2);
    assert_line(text, line);
    snprintf(line, sizeof line, P "upstream_attempts_total{outcome=\"ok\"} %d",
             THREADS * ((UPDATES + GB_ATTEMPT__COUNT - 1) / GB_ATTEMPT__COUNT));
    assert_line(text, line);
    snprintf(line, sizeof line, P "key_cooldowns_total %d", THREADS * UPDATES / 10);
    assert_line(text, line);
    print_message("%d concurrent renders validated\n", renders);
    free(text);
}

/* Cost of one update on an existing series; the budget is 1 us. */
static void test_update_cost(void **state)
{
    enum { N = 1000000 };
    struct timespec a, b;
    double ns;

    (void)state;
    gb_metrics_request(GB_ROUTE_CHAT, "gemini-2.5-flash-preview-05-20", 200, 0.3, 0.1);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < N; i++)
        gb_metrics_request(GB_ROUTE_CHAT, "gemini-2.5-flash-preview-05-20", 200, 0.3, 0.1);
    clock_gettime(CLOCK_MONOTONIC, &b);
    ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / N;
    print_message("gb_metrics_request: %.1f ns per update\n", ns);
    /* loose, so sanitizer and loaded CI builds pass; see the message */
    assert_true(ns < 5000);
}

/* ---------------------------------------------------------------------
 * The validator itself rejects what a strict parser rejects
 */

static void test_validator_rejects(void **state)
{
    static const char *const bad[] = {
        "",
        "# HELP a x\n# TYPE a counter\na 1",                                  /* no final newline */
        "a 1\n",                                                              /* undeclared */
        "# HELP a x\n# TYPE a counter\n\na 1\n",                              /* empty line */
        "# HELP a x\n# TYPE a counter\na -1\n",                               /* negative counter */
        "# HELP a x\n# TYPE a counter\na 1 123\n",                            /* timestamp */
        "# HELP a x\n# TYPE a counter\na{b=\"c\",} 1\n",                      /* trailing comma */
        "# HELP a x\n# TYPE a counter\na{b=\"c\\t\"} 1\n",                    /* bad escape */
        "# HELP a x\n# TYPE a counter\na{b=\"c\"} 1\na{b=\"c\"} 2\n",         /* duplicate */
        "# HELP a x\n# TYPE a counter\n# TYPE a counter\na 1\n",              /* TYPE twice */
        "# HELP a x\n# TYPE a gauge\n# HELP b x\n# TYPE b gauge\nb 1\na 1\n", /* not contiguous */
        "# HELP a x\n# TYPE a foo\na 1\n",                                    /* bad type */
        "# TYPE a gauge\na 1\n",                                              /* no HELP */
        "# HELP a x\n# TYPE a gauge\na{b=\"\xff\"} 1\n",                      /* not UTF-8 */
        "# HELP a x\n# TYPE a gauge\na{1b=\"c\"} 1\n",                        /* bad label name */
        "# HELP a x\n# TYPE a gauge\na 1x\n",                                 /* bad value */
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
        "h_sum 1\nh_count 1\n", /* not cumulative */
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n"
        "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", /* le decreasing */
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
        "h_sum 1\nh_count 3\n", /* +Inf != count */
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", /* no +Inf */
        "# HELP h x\n# TYPE h histogram\nh 1\n", /* bare histogram sample */
    };
    const char *good = "# HELP h x\n# TYPE h histogram\nh_bucket{r=\"a\",le=\"1\"} 1\n"
                       "h_bucket{r=\"a\",le=\"+Inf\"} 2\nh_sum{r=\"a\"} 1.5\nh_count{r=\"a\"} 2\n"
                       "# HELP c x \\\\ \\n\n# TYPE c counter\nc{m=\"\\\"\\\\\\n\"} 1e3\n";

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (validate(bad[i], strlen(bad[i])) == NULL)
            fail_msg("validator accepted bad input %zu", i);
    if (validate(good, strlen(good)) != NULL)
        fail_msg("validator rejected good input: %s", validate(good, strlen(good)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validator_rejects),
        cmocka_unit_test_setup(test_empty_render_is_valid, setup),
        cmocka_unit_test_setup(test_request_counts_exact, setup),
        cmocka_unit_test_setup(test_status_order_and_range, setup),
        cmocka_unit_test_setup(test_histogram_boundaries, setup),
        cmocka_unit_test_setup(test_histogram_sum_exact_and_clamped, setup),
        cmocka_unit_test_setup(test_attempts_cooldowns_gauges, setup),
        cmocka_unit_test_setup(test_process_metrics, setup),
        cmocka_unit_test_setup(test_model_overflow_other, setup),
        cmocka_unit_test_setup(test_literal_other_takes_no_slot, setup),
        cmocka_unit_test_setup(test_status_overflow_per_route, setup),
        cmocka_unit_test_setup(test_label_escaping, setup),
        cmocka_unit_test_setup(test_invalid_bytes_replaced, setup),
        cmocka_unit_test_setup(test_model_truncation, setup),
        cmocka_unit_test_setup(test_worst_case_size_fits, setup),
        cmocka_unit_test_setup(test_no_key_strings, setup),
        cmocka_unit_test_setup(test_reset, setup),
        cmocka_unit_test_setup(test_concurrent_exact_totals, setup),
        cmocka_unit_test_setup(test_update_cost, setup),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
