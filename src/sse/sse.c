/*
 * sse.c - incremental Server-Sent Events parser; see sse.h for the contract.
 *
 * The parser never keeps a line.  It reads a line's field name one byte at a
 * time (at most five bytes decide whether it is "data:"), then finds the end
 * of the line with memchr and either appends the value straight to the event
 * buffer or skips it.  So each value byte is copied once, from the input into
 * the buffer the callback sees, however the input was split, and that buffer
 * is the parser's only memory.  The state of a half-read line is a small enum
 * plus a count of matched name bytes, which is what lets a split fall
 * anywhere: inside "data:", between ':' and its space, between CR and LF.
 */
#include "sse/sse.h"

#include <stdint.h>
#include <string.h>

#include "core/err.h"

/* After an event larger than this many bytes the event buffer is freed
 * rather than reset, so one inline image of megabytes does not pin that
 * memory for the rest of a long stream.  Smaller buffers are kept: Gemini
 * events are a few KB, so the buffer stops growing after the first events. */
#define SSE_KEEP_BYTES (64u * 1024)

/* Where in the current line the parser is (p->state). */
enum sse_state {
    SSE_BOL,   /* nothing of the line seen yet */
    SSE_NAME,  /* in a field name that so far matches "data" (p->name bytes) */
    SSE_SPACE, /* right after "data:"; one space here is dropped */
    SSE_VALUE, /* in a data value, appended to p->data */
    SSE_SKIP,  /* in a comment or another field's line, dropped */
};

static const char data_field[] = "data";
#define DATA_FIELD_LEN (sizeof data_field - 1)

void gb_sse_parser_init(struct gb_sse_parser *p, size_t max_event, gb_sse_event_cb cb, void *ud)
{
    gb_buf_init(&p->data, max_event);
    p->line_len = 0;
    p->max_event = max_event;
    p->cb = cb;
    p->ud = ud;
    p->err = 0;
    p->state = SSE_BOL;
    p->name = 0;
    p->has_data = 0;
    p->last_cr = 0;
}

void gb_sse_parser_release(struct gb_sse_parser *p)
{
    gb_buf_release(&p->data);
    p->has_data = 0;
    p->state = SSE_BOL;
}

int gb_sse_parser_pending(const struct gb_sse_parser *p)
{
    return p->state != SSE_BOL || p->has_data;
}

/* A data line starts: join it to the previous ones with "\n". */
static int begin_data(struct gb_sse_parser *p)
{
    int rc = 0;

    if (p->has_data)
        rc = gb_buf_append(&p->data, "\n", 1);
    p->has_data = 1;
    return rc;
}

/* An empty line: hand the event to the callback, if it has data. */
static int dispatch(struct gb_sse_parser *p)
{
    int rc;

    if (!p->has_data)
        return 0;
    p->has_data = 0;
    /* data.data is NULL when the only data lines were empty ones */
    rc = p->cb(p->ud, p->data.data != NULL ? p->data.data : "", p->data.len);
    if (p->data.len > SSE_KEEP_BYTES)
        gb_buf_release(&p->data);
    else
        gb_buf_reset(&p->data);
    return rc;
}

/* buf[*i] is CR or LF: step over the line ending (CRLF counts as one, even
 * when the LF comes in the next feed) and act on the line it ends. */
static int end_line(struct gb_sse_parser *p, const char *buf, size_t len, size_t *i)
{
    enum sse_state state = p->state;
    int is_data_name = p->name == DATA_FIELD_LEN;

    if (buf[*i] == '\r') {
        if (*i + 1 == len)
            p->last_cr = 1;
        else if (buf[*i + 1] == '\n')
            (*i)++;
    }
    (*i)++;
    p->state = SSE_BOL;
    p->name = 0;
    p->line_len = 0;
    switch (state) {
    case SSE_BOL:
        return dispatch(p);
    case SSE_NAME:
        /* a line "data" without a colon is a data line with an empty value */
        return is_data_name ? begin_data(p) : 0;
    case SSE_SPACE:
    case SSE_VALUE:
    case SSE_SKIP:
        return 0;
    }
    GB_UNREACHABLE();
}

/* Index of the first CR or LF in buf[i, len), or len.  *cr and *lf cache
 * the next CR and LF found by an earlier call (len: none left in this chunk;
 * SIZE_MAX: not searched yet).  Each is searched again only once passed, so
 * every byte of a chunk is scanned at most twice however many lines it holds
 * (searching for both on every line would be quadratic on LF-only streams). */
static size_t find_eol(const char *buf, size_t len, size_t i, size_t *cr, size_t *lf)
{
    const char *q;

    if (*cr < i || *cr > len) {
        q = memchr(buf + i, '\r', len - i);
        *cr = q != NULL ? (size_t)(q - buf) : len;
    }
    if (*lf < i || *lf > len) {
        q = memchr(buf + i, '\n', len - i);
        *lf = q != NULL ? (size_t)(q - buf) : len;
    }
    return *cr < *lf ? *cr : *lf;
}

/* One step on the bytes of a field name (state SSE_BOL or SSE_NAME). */
static int on_name_byte(struct gb_sse_parser *p, char c)
{
    p->line_len++;
    if (c == ':') {
        if (p->name == DATA_FIELD_LEN) {
            p->state = SSE_SPACE;
            return begin_data(p);
        }
        p->state = SSE_SKIP; /* a comment, or a field we ignore */
        return 0;
    }
    if (p->name < DATA_FIELD_LEN && c == data_field[p->name]) {
        p->name++;
        p->state = SSE_NAME;
    } else {
        p->state = SSE_SKIP;
    }
    return 0;
}

int gb_sse_parser_feed(struct gb_sse_parser *p, const char *buf, size_t len)
{
    size_t i = 0, cr = SIZE_MAX, lf = SIZE_MAX, eol, n; /* see find_eol */
    int rc = 0;

    if (p->err != 0)
        return p->err;
    if (len == 0)
        return 0;
    if (p->last_cr) {
        p->last_cr = 0;
        if (buf[0] == '\n')
            i = 1;
    }
    while (i < len && rc == 0) {
        switch ((enum sse_state)p->state) {
        case SSE_BOL:
        case SSE_NAME:
            if (buf[i] == '\r' || buf[i] == '\n')
                rc = end_line(p, buf, len, &i);
            else
                rc = on_name_byte(p, buf[i++]);
            break;
        case SSE_SPACE:
            if (buf[i] == ' ')
                i++;
            p->state = SSE_VALUE;
            break;
        case SSE_VALUE:
            eol = find_eol(buf, len, i, &cr, &lf);
            rc = gb_buf_append(&p->data, buf + i, eol - i);
            i = eol;
            if (rc == 0 && i < len)
                rc = end_line(p, buf, len, &i);
            break;
        case SSE_SKIP:
            eol = find_eol(buf, len, i, &cr, &lf);
            n = eol - i;
            if (n > p->max_event || p->line_len > p->max_event - n) {
                rc = GB_ETOOBIG;
                break;
            }
            p->line_len += n;
            i = eol;
            if (i < len)
                rc = end_line(p, buf, len, &i);
            break;
        }
    }
    if (rc != 0)
        p->err = rc;
    return rc;
}
