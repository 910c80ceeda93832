/*
 * gemini_scan.h - reads the common shape of a Gemini generateContent answer
 * or stream event straight from its JSON text, without a jansson tree.
 *
 * "Common" means: candidates whose parts are text (thought or not), with
 * finishReason and index, plus usageMetadata.  Anything else the
 * translators act on (functionCall, executableCode, codeExecutionResult,
 * promptFeedback, error, groundingMetadata when sources are shown), a
 * duplicated key that matters, an unexpected type, or text jansson might
 * read differently (core/jscan.h) makes gb_gem_scan refuse, and the caller
 * parses the text with jansson and takes the general path.  What the scan
 * accepts, the general path would translate to the same bytes: the unit
 * tests and the translate_response fuzz target compare the two.
 */
#ifndef GB_API_GEMINI_SCAN_H
#define GB_API_GEMINI_SCAN_H

#include <stddef.h>

#include "core/buf.h"

/* Most candidates a scanned answer may have (more: refused). */
#define GB_GEM_MAX_CANDS 8
/* Longest finishReason taken, in bytes (longer: refused). */
#define GB_GEM_REASON_MAX 31

/* usageMetadata's counts; a count that is absent reads 0. */
struct gb_gem_usage {
    long long prompt;                                  /* promptTokenCount */
    long long candidates;                              /* candidatesTokenCount */
    long long thoughts;                                /* thoughtsTokenCount */
    long long total;                                   /* totalTokenCount */
    long long cached;                                  /* cachedContentTokenCount */
    unsigned char has_thoughts, has_total, has_cached; /* 1: the count was given */
};

/* One candidate: its text and thought text are ranges of the event's
 * buffers. */
struct gb_gem_cand {
    long long index;                    /* "index", else its position */
    char reason[GB_GEM_REASON_MAX + 1]; /* finishReason, "" when none */
    unsigned char has_reason;           /* 1: finishReason was given */
    size_t parts;                       /* parts in content.parts */
    size_t text_off, text_len;          /* non-thought text, in ev->text */
    size_t thought_off, thought_len;    /* thought text, in ev->thoughts (when kept) */
};

/* A scanned answer or event.  The buffers are reused from scan to scan. */
struct gb_gem_event {
    struct gb_buf text;     /* every candidate's text, one after the other */
    struct gb_buf thoughts; /* every candidate's thought text, when kept */
    struct gb_gem_cand cand[GB_GEM_MAX_CANDS];
    size_t ncand;
    int has_usage; /* 1: usageMetadata was given */
    struct gb_gem_usage usage;
};

/* Sets up an empty event; allocates nothing.  Pair with gb_gem_release. */
void gb_gem_init(struct gb_gem_event *ev);

/* Frees the buffers. */
void gb_gem_release(struct gb_gem_event *ev);

/*
 * Scans the JSON text p[0..n) into ev (whatever ev held is dropped).
 * keep_thoughts 1 collects thought text (else it is dropped);
 * refuse_grounding 1 refuses candidates with groundingMetadata (the
 * translator shows their sources).  Returns 0, or a negative code when the
 * text is not of the common shape (or not JSON): then use jansson.
 */
int gb_gem_scan(struct gb_gem_event *ev, const char *p, size_t n, int keep_thoughts,
                int refuse_grounding);

/* 1 when no candidate has a part or a finishReason (as
 * gb_chat_response_is_empty: worth another try). */
int gb_gem_is_empty(const struct gb_gem_event *ev);

#endif
