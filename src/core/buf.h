/*
 * buf.h - a bounded, growable byte buffer (curl dynbuf model).
 *
 * Every buffer gets its maximum size at init; growing past it fails with
 * GB_ETOOBIG and leaves the contents unchanged.  The data is always kept
 * NUL-terminated (the terminator is not counted in len), so a buffer holding
 * text can be passed to string functions directly.  Fields are read-only for
 * callers: change them only through these functions.
 */
#ifndef GB_CORE_BUF_H
#define GB_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

struct gb_buf {
    char *data; /* read-only: NULL until the first append, NUL-terminated after */
    size_t len; /* read-only: bytes used, terminator not counted */
    size_t cap; /* private: bytes allocated */
    size_t max; /* private: largest len allowed */
};

/* Sets up an empty buffer that may hold at most max bytes.  Allocates nothing. */
void gb_buf_init(struct gb_buf *b, size_t max);

/* The out-of-line part of gb_buf_append: growing, and its errors. */
int gb_buf__append(struct gb_buf *b, const void *p, size_t n);

/* Appends n bytes.  Returns 0, GB_ETOOBIG (over max) or GB_ENOMEM.  Inline
 * when the bytes fit the allocation (the JSON writers append a token at a
 * time): since cap <= max + 1, fitting also means staying within max. */
static inline int gb_buf_append(struct gb_buf *b, const void *p, size_t n)
{
    if (n > 0 && n < b->cap - b->len) { /* n 0: p may be NULL, memcpy must not see it */
        memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
    }
    return gb_buf__append(b, p, n);
}

/* Appends a NUL-terminated string.  Same returns as gb_buf_append. */
int gb_buf_puts(struct gb_buf *b, const char *s);

/* Appends printf-formatted text.  Same returns as gb_buf_append. */
int gb_buf_printf(struct gb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int gb_buf_vprintf(struct gb_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Drops the first n bytes (all of them when n >= len); keeps the memory. */
void gb_buf_consume(struct gb_buf *b, size_t n);

/* Cuts the contents back to len bytes (no-op when len >= b->len). */
void gb_buf_truncate(struct gb_buf *b, size_t len);

/* Empties the buffer but keeps its memory for reuse. */
void gb_buf_reset(struct gb_buf *b);

/* Frees the memory; the buffer is empty afterwards and may be reused. */
void gb_buf_release(struct gb_buf *b);

/* Hands the memory to the caller (who frees it with free()) and empties the
 * buffer.  Returns NULL when nothing was ever appended; *len gets the length
 * when len is not NULL. */
char *gb_buf_take(struct gb_buf *b, size_t *len);

#endif
