/*
 * sse.h - incremental Server-Sent Events parser.
 *
 * Feed it bytes exactly as they arrive from the network, split anywhere
 * (inside a line, inside a CRLF pair, inside a multi-byte UTF-8 sequence);
 * it calls back once per complete event with the event's data.  It follows
 * the WHATWG event-stream rules that matter to us: lines end in CRLF, LF or
 * CR; "data:" lines (one optional space after the colon is removed) are
 * joined with "\n"; lines starting with ':' are comments; other fields
 * (event, id, retry) are ignored; an empty line dispatches the event, and an
 * event with no data line is not dispatched.  Gemini frames its events as
 * "data: <json>\r\n\r\n".
 *
 * Memory is bounded: an event whose joined data would grow beyond max_event
 * bytes makes feed fail with GB_ETOOBIG.  Only data values are kept, never
 * whole lines, so "data: " prefixes and line endings do not count; a line
 * that is skipped (comment, other field) fails the same way when it is longer
 * than max_event bytes, so a stream cannot hide unbounded junk in one line.
 *
 * Cost: the input is scanned with memchr and each data value is copied once,
 * into the event buffer that the callback sees (the callback's data must be
 * NUL-terminated, which the caller's read-only input cannot provide).
 */
#ifndef GB_SSE_SSE_H
#define GB_SSE_SSE_H

#include <stddef.h>

#include "core/buf.h"

/* Default bound for one event, in bytes (Gemini events are a few KB; images
 * inlined in a response can reach megabytes). */
#define GB_SSE_MAX_EVENT_BYTES (64u * 1024 * 1024)

/* Called once per event.  data is NUL-terminated, len bytes long, and lives
 * only until the callback returns.  Return 0 to go on; any other value stops
 * the feed, which then returns that value. */
typedef int (*gb_sse_event_cb)(void *ud, const char *data, size_t len);

struct gb_sse_parser {
    /* private */
    struct gb_buf data;     /* data lines of the current event, joined with "\n" */
    size_t line_len;        /* bytes of the current line seen so far, ending not counted */
    size_t max_event;       /* largest joined data (and skipped line), in bytes */
    gb_sse_event_cb cb;     /* called once per dispatched event */
    void *ud;               /* passed to cb */
    int err;                /* 0, or what a stopped feed returned (returned again) */
    unsigned char state;    /* where in the current line we are (enum in sse.c) */
    unsigned char name;     /* bytes of "data" matched so far in the field name */
    unsigned char has_data; /* a data line was seen in the current event */
    unsigned char last_cr;  /* the previous feed ended in CR: skip one leading LF */
};

/* Sets up a parser on caller storage.  Allocates nothing. */
void gb_sse_parser_init(struct gb_sse_parser *p, size_t max_event, gb_sse_event_cb cb, void *ud);

/* Parses len bytes (buf may be NULL when len is 0); calls cb for each event
 * completed by them, from inside this call.  Returns 0, GB_ETOOBIG,
 * GB_ENOMEM, or the callback's non-zero value.  Parsing stops there: the
 * parser must not be fed again, and if it is, feed returns the same value
 * without calling back. */
int gb_sse_parser_feed(struct gb_sse_parser *p, const char *buf, size_t len);

/* Returns 1 when bytes of an unfinished event are pending (a stream that
 * ends here was cut short), else 0.  That is: the input stopped inside a
 * line, or after data lines whose event has not been ended by an empty line.
 * An event with only comments or other fields is not pending (it would never
 * be dispatched). */
int gb_sse_parser_pending(const struct gb_sse_parser *p);

/* Frees the parser's memory; it may be initialised again. */
void gb_sse_parser_release(struct gb_sse_parser *p);

#endif
