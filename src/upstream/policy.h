/*
 * policy.h - the failure policy of DESIGN.md §5 as a pure function: what an
 * upstream answer means for the key and for the request.
 */
#ifndef GB_UPSTREAM_POLICY_H
#define GB_UPSTREAM_POLICY_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "keypool/keypool.h"

/* Pause before retrying after a 5xx, timeout or connection error, in ms. */
#define GB_RETRY_BACKOFF_MS 100

struct gb_verdict {
    enum gb_key_outcome key; /* what to report to the key pool */
    int retry;               /* 1: try again (on another key when one exists) */
    int backoff;             /* 1: wait GB_RETRY_BACKOFF_MS before that attempt */
    int64_t cooldown_ms;     /* with GB_KEY_LIMITED: from retryDelay/Retry-After, 0 = default */
    int per_day;             /* with GB_KEY_LIMITED: a per-day quota was hit */
    char reason[64];         /* ErrorInfo reason or error status, e.g. API_KEY_INVALID */
};

/*
 * Classifies one attempt.  result is libcurl's outcome; status the HTTP
 * status (0 when none arrived); body/len the error body (may be NULL);
 * retry_after_ms the upstream's Retry-After header in ms (-1 when absent).
 */
void gb_policy_classify(CURLcode result, long status, const char *body, size_t len,
                        int64_t retry_after_ms, struct gb_verdict *v);

/* Parses a protobuf Duration string such as "26s" or "1.5s" into ms;
 * returns -1 when it is not one. */
int64_t gb_policy_parse_duration(const char *s);

#endif
