/*
 * policy.c - classify upstream answers (DESIGN.md §5).
 *
 * The table, in order of checks:
 *   transport error (timeout, refused, reset)  -> neutral, retry after backoff
 *   2xx                                        -> key ok, no retry
 *   400 with reason API_KEY_INVALID, 401, 403  -> key failure, retry
 *   429                                        -> key cooled down, retry
 *   5xx                                        -> neutral, retry after backoff
 *   any other 4xx                              -> neutral, answer the client now
 */
#include "upstream/policy.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t gb_policy_parse_duration(const char *s)
{
    char *end;
    double secs;

    if (s == NULL)
        return -1;
    secs = strtod(s, &end);
    if (end == s || *end != 's' || end[1] != '\0' || secs < 0)
        return -1;
    return (int64_t)(secs * 1000.0 + 0.5);
}

/* Finds error.details[] entries; returns the first value of field in an
 * entry whose "@type" ends with type_suffix, or NULL. */
static const char *detail_field(json_t *root, const char *type_suffix, const char *field)
{
    json_t *details = json_object_get(json_object_get(root, "error"), "details");
    size_t i, n = strlen(type_suffix);
    json_t *d;

    json_array_foreach(details, i, d)
    {
        const char *t = json_string_value(json_object_get(d, "@type"));
        size_t tl = t ? strlen(t) : 0;
        if (t != NULL && tl >= n && strcmp(t + tl - n, type_suffix) == 0) {
            const char *v = json_string_value(json_object_get(d, field));
            if (v != NULL)
                return v;
        }
    }
    return NULL;
}

/* 1 when a QuotaFailure violation names a per-day quota
 * (e.g. GenerateRequestsPerDayPerProjectPerModel-FreeTier). */
static int quota_per_day(json_t *root)
{
    json_t *details = json_object_get(json_object_get(root, "error"), "details");
    json_t *d, *viol;
    size_t i, j;

    json_array_foreach(details, i, d)
    {
        json_array_foreach(json_object_get(d, "violations"), j, viol)
        {
            const char *q = json_string_value(json_object_get(viol, "quotaId"));
            if (q != NULL && strstr(q, "PerDay") != NULL)
                return 1;
        }
    }
    return 0;
}

static json_t *parse_error_body(const char *body, size_t len)
{
    json_t *root;

    if (body == NULL || len == 0)
        return NULL;
    root = json_loadb(body, len, 0, NULL);
    /* a streamed (non-SSE) error comes wrapped in an array */
    if (json_is_array(root)) {
        json_t *first = json_incref(json_array_get(root, 0));
        json_decref(root);
        root = first;
    }
    return root;
}

void gb_policy_classify(CURLcode result, long status, const char *body, size_t len,
                        int64_t retry_after_ms, struct gb_verdict *v)
{
    json_t *root = NULL;

    memset(v, 0, sizeof *v);
    v->key = GB_KEY_NEUTRAL;
    if (result != CURLE_OK && (status < 200 || status >= 300)) {
        v->retry = v->backoff = 1;
        return;
    }
    if (status >= 200 && status < 300) {
        v->key = GB_KEY_OK;
        return;
    }
    root = parse_error_body(body, len);
    {
        const char *reason = detail_field(root, "google.rpc.ErrorInfo", "reason");
        const char *st =
            json_string_value(json_object_get(json_object_get(root, "error"), "status"));
        snprintf(v->reason, sizeof v->reason, "%s", reason ? reason : st ? st : "");
    }
    if (status == 400) {
        const char *reason = detail_field(root, "google.rpc.ErrorInfo", "reason");
        const char *msg =
            json_string_value(json_object_get(json_object_get(root, "error"), "message"));
        if ((reason != NULL && strcmp(reason, "API_KEY_INVALID") == 0) ||
            (msg != NULL && strstr(msg, "API key not valid") != NULL) ||
            (msg != NULL && strstr(msg, "API key expired") != NULL)) {
            v->key = GB_KEY_FAILED;
            v->retry = 1;
        }
    } else if (status == 401 || status == 403) {
        v->key = GB_KEY_FAILED;
        v->retry = 1;
    } else if (status == 429) {
        v->key = GB_KEY_LIMITED;
        v->retry = 1;
        v->cooldown_ms =
            gb_policy_parse_duration(detail_field(root, "google.rpc.RetryInfo", "retryDelay"));
        v->per_day = quota_per_day(root);
        if (v->cooldown_ms < 0)
            v->cooldown_ms = retry_after_ms > 0 ? retry_after_ms : 0;
    } else if (status >= 500 || status == 0) {
        v->retry = v->backoff = 1;
    }
    json_decref(root);
}
