/* buf.c - bounded growable byte buffer; see buf.h for the contract. */
#include "core/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* First allocation; later growth doubles, capped at max + 1. */
#define GB_BUF_MIN_CAP 256

void gb_buf_init(struct gb_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

static int grow(struct gb_buf *b, size_t need)
{
    size_t cap;
    char *p;

    /* need == SIZE_MAX leaves no room for the terminator */
    if (need > b->max || need == SIZE_MAX)
        return GB_ETOOBIG;
    if (need < b->cap)
        return 0;
    cap = b->cap ? b->cap : GB_BUF_MIN_CAP;
    while (cap <= need)
        cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
    /* cap - 1, not max + 1: max may be SIZE_MAX ("no limit"), and max + 1
     * would wrap to 0 and shrink the allocation below need */
    if (cap - 1 > b->max)
        cap = b->max + 1;
    p = realloc(b->data, cap);
    if (p == NULL)
        return GB_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int gb_buf__append(struct gb_buf *b, const void *p, size_t n)
{
    int rc;

    if (n > b->max - b->len)
        return GB_ETOOBIG;
    rc = grow(b, b->len + n);
    if (rc < 0)
        return rc;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int gb_buf_puts(struct gb_buf *b, const char *s)
{
    return gb_buf_append(b, s, strlen(s));
}

int gb_buf_vprintf(struct gb_buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    int n, rc;

    va_copy(cp, ap);
    n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return GB_EINVAL;
    if ((size_t)n > b->max - b->len)
        return GB_ETOOBIG;
    rc = grow(b, b->len + (size_t)n);
    if (rc < 0)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int gb_buf_printf(struct gb_buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = gb_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void gb_buf_consume(struct gb_buf *b, size_t n)
{
    if (n >= b->len) {
        gb_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

void gb_buf_truncate(struct gb_buf *b, size_t len)
{
    if (len >= b->len)
        return;
    b->len = len;
    b->data[len] = '\0';
}

void gb_buf_reset(struct gb_buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

void gb_buf_release(struct gb_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

char *gb_buf_take(struct gb_buf *b, size_t *len)
{
    char *p = b->data;

    if (len != NULL)
        *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
