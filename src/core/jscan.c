/* jscan.c - strict pull scanner over JSON text (see jscan.h). */
#include "core/jscan.h"

#include <string.h>

#include "core/utf8.h"

/* Largest exponent-adjusted magnitude of a real number taken: strtod, which
 * jansson uses, overflows (an error there) only beyond 1.8e308. */
#define JSCAN_REAL_MAX_MAG 300
/* Longest integer taken: 18 digits always fit a long long. */
#define JSCAN_INT_MAX_DIGITS 18

void gb_jscan_init(struct gb_jscan *j, const char *p, size_t n)
{
    j->p = p;
    j->end = p + n;
    j->depth = 0;
    j->first = 0;
}

static void skip_ws_run(struct gb_jscan *j)
{
    const char *p = j->p;

    while (p < j->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    j->p = p;
}

/* Inlined for the common case, a byte that is not whitespace: one compare
 * instead of a call (some 60 per stream event). */
static inline void skip_ws(struct gb_jscan *j)
{
    if (j->p < j->end && (unsigned char)*j->p > ' ')
        return;
    skip_ws_run(j);
}

enum gb_jtype gb_jscan_peek(struct gb_jscan *j)
{
    skip_ws(j);
    if (j->p >= j->end)
        return GB_JT_BAD;
    switch (*j->p) {
    case '{':
        return GB_JT_OBJECT;
    case '[':
        return GB_JT_ARRAY;
    case '"':
        return GB_JT_STRING;
    case 't':
        return GB_JT_TRUE;
    case 'f':
        return GB_JT_FALSE;
    case 'n':
        return GB_JT_NULL;
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        return GB_JT_NUMBER;
    default:
        return GB_JT_BAD;
    }
}

static int open_container(struct gb_jscan *j, enum gb_jtype t)
{
    if (gb_jscan_peek(j) != t || j->depth >= GB_JSCAN_MAX_DEPTH)
        return GB_JSCAN_NO;
    j->p++;
    j->depth++;
    j->first = 1;
    return 0;
}

int gb_jscan_object(struct gb_jscan *j)
{
    return open_container(j, GB_JT_OBJECT);
}

int gb_jscan_array(struct gb_jscan *j)
{
    return open_container(j, GB_JT_ARRAY);
}

static int hex4(const unsigned char *s, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = s[i];
        unsigned d;

        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return GB_JSCAN_NO;
        *v = *v << 4 | d;
    }
    return 0;
}

/* Decodes the escape at *sp (just after the backslash) into out; moves *sp
 * past it. */
static int unescape(const unsigned char **sp, const unsigned char *end, struct gb_buf *out)
{
    const unsigned char *s = *sp;
    unsigned char u[4];
    unsigned cp, lo;
    size_t n;
    char c;

    if (s >= end)
        return GB_JSCAN_NO;
    switch (*s) {
    case '"':
    case '\\':
    case '/':
        c = (char)*s;
        break;
    case 'b':
        c = '\b';
        break;
    case 'f':
        c = '\f';
        break;
    case 'n':
        c = '\n';
        break;
    case 'r':
        c = '\r';
        break;
    case 't':
        c = '\t';
        break;
    case 'u':
        if (end - s < 5 || hex4(s + 1, &cp) < 0)
            return GB_JSCAN_NO;
        s += 5;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return GB_JSCAN_NO; /* a low surrogate alone */
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (end - s < 6 || s[0] != '\\' || s[1] != 'u' || hex4(s + 2, &lo) < 0 || lo < 0xDC00 ||
                lo > 0xDFFF)
                return GB_JSCAN_NO;
            s += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (cp == 0)
            return GB_JSCAN_NO; /* jansson refuses it without JSON_ALLOW_NUL */
        *sp = s;
        if (out == NULL)
            return 0;
        if (cp < 0x80) {
            u[0] = (unsigned char)cp;
            n = 1;
        } else if (cp < 0x800) {
            u[0] = (unsigned char)(0xC0 | cp >> 6);
            u[1] = (unsigned char)(0x80 | (cp & 0x3F));
            n = 2;
        } else if (cp < 0x10000) {
            u[0] = (unsigned char)(0xE0 | cp >> 12);
            u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
            u[2] = (unsigned char)(0x80 | (cp & 0x3F));
            n = 3;
        } else {
            u[0] = (unsigned char)(0xF0 | cp >> 18);
            u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
            u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
            u[3] = (unsigned char)(0x80 | (cp & 0x3F));
            n = 4;
        }
        return gb_buf_append(out, u, n);
    default:
        return GB_JSCAN_NO;
    }
    *sp = s + 1;
    return out ? gb_buf_append(out, &c, 1) : 0;
}

/* Bytes a string may hold as they are: printable ASCII but '"' and '\\'. */
static const unsigned char plain[256] = {
    [0x20] = 1, [0x21] = 1, [0x23 ... 0x5B] = 1, [0x5D ... 0x7E] = 1, [0x7F] = 1,
};

/* Scans the string at j->p (its opening quote); decodes into out when not
 * NULL.  escapes 0 refuses any backslash (keys). */
static int scan_string(struct gb_jscan *j, struct gb_buf *out, int escapes)
{
    const unsigned char *s = (const unsigned char *)j->p + 1;
    const unsigned char *end = (const unsigned char *)j->end, *run = s;
    int rc;

    while (s < end) {
        unsigned char c = *s;
        size_t n;

        if (plain[c]) {
            s++;
            while (s < end && plain[*s])
                s++;
            continue;
        }
        if (c == '"') {
            if (out != NULL && s > run && (rc = gb_buf_append(out, run, (size_t)(s - run))) < 0)
                return rc;
            j->p = (const char *)s + 1;
            return 0;
        }
        if (c == '\\') {
            if (!escapes)
                return GB_JSCAN_NO;
            if (out != NULL && s > run && (rc = gb_buf_append(out, run, (size_t)(s - run))) < 0)
                return rc;
            s++;
            if ((rc = unescape(&s, end, out)) < 0)
                return rc;
            run = s;
            continue;
        }
        if (c < 0x20 || (n = gb_utf8_seq(s, (size_t)(end - s))) == 0)
            return GB_JSCAN_NO;
        s += n;
    }
    return GB_JSCAN_NO; /* unterminated */
}

int gb_jscan_string(struct gb_jscan *j, struct gb_buf *out)
{
    if (gb_jscan_peek(j) != GB_JT_STRING)
        return GB_JSCAN_NO;
    return scan_string(j, out, 1);
}

int gb_jscan_plain(struct gb_jscan *j, const char **s, size_t *n)
{
    const char *at;

    if (gb_jscan_peek(j) != GB_JT_STRING)
        return GB_JSCAN_NO;
    at = j->p + 1;
    if (scan_string(j, NULL, 0) < 0)
        return GB_JSCAN_NO;
    *s = at;
    *n = (size_t)(j->p - 1 - at);
    return 0;
}

/* Steps over a number, checking what jansson would refuse; *is_int and *v
 * tell an integer's value. */
static int scan_number(struct gb_jscan *j, int *is_int, long long *v)
{
    const char *s = j->p, *end = j->end;
    int neg = 0, digits = 0, real = 0, eneg = 0;
    long long acc = 0, exp = 0;

    if (s < end && *s == '-') {
        neg = 1;
        s++;
    }
    if (s >= end || *s < '0' || *s > '9')
        return GB_JSCAN_NO;
    if (*s == '0') {
        s++;
        digits = 1;
        if (s < end && *s >= '0' && *s <= '9')
            return GB_JSCAN_NO; /* leading zero */
    } else {
        for (; s < end && *s >= '0' && *s <= '9'; s++, digits++) {
            if (digits < JSCAN_INT_MAX_DIGITS)
                acc = acc * 10 + (*s - '0');
        }
    }
    if (s < end && *s == '.') {
        real = 1;
        if (++s >= end || *s < '0' || *s > '9')
            return GB_JSCAN_NO;
        while (s < end && *s >= '0' && *s <= '9')
            s++;
    }
    if (s < end && (*s == 'e' || *s == 'E')) {
        real = 1;
        s++;
        if (s < end && (*s == '+' || *s == '-'))
            eneg = *s++ == '-';
        if (s >= end || *s < '0' || *s > '9')
            return GB_JSCAN_NO;
        for (; s < end && *s >= '0' && *s <= '9'; s++) {
            if (exp <= JSCAN_REAL_MAX_MAG)
                exp = exp * 10 + (*s - '0');
        }
    }
    if (real) {
        if (digits + (eneg ? 0 : exp) > JSCAN_REAL_MAX_MAG)
            return GB_JSCAN_NO; /* might overflow a double: jansson's call */
    } else if (digits > JSCAN_INT_MAX_DIGITS) {
        return GB_JSCAN_NO; /* might not fit json_int_t: jansson's call */
    }
    j->p = s;
    *is_int = !real;
    *v = neg ? -acc : acc;
    return 0;
}

static int scan_literal(struct gb_jscan *j, const char *lit, size_t n)
{
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
        return GB_JSCAN_NO;
    j->p += n;
    return 0;
}

int gb_jscan_int(struct gb_jscan *j, long long *v)
{
    int is_int;
    const char *at;

    if (gb_jscan_peek(j) != GB_JT_NUMBER)
        return GB_JSCAN_NO;
    at = j->p;
    if (scan_number(j, &is_int, v) < 0)
        return GB_JSCAN_NO;
    if (!is_int) {
        j->p = at;
        return GB_JSCAN_NO;
    }
    return 0;
}

int gb_jscan_bool(struct gb_jscan *j, int *v)
{
    switch (gb_jscan_peek(j)) {
    case GB_JT_TRUE:
        *v = 1;
        return scan_literal(j, "true", 4);
    case GB_JT_FALSE:
        *v = 0;
        return scan_literal(j, "false", 5);
    default:
        return GB_JSCAN_NO;
    }
}

/* Before a member or element: the separator, or the container's end (then
 * 0).  1 when a member or element follows. */
static int next_member(struct gb_jscan *j, char close)
{
    skip_ws(j);
    if (j->p >= j->end || j->depth == 0)
        return GB_JSCAN_NO;
    if (*j->p == close) {
        j->p++;
        j->depth--;
        j->first = 0; /* back in the parent, which has just had a member */
        return 0;
    }
    if (!j->first) {
        if (*j->p != ',')
            return GB_JSCAN_NO;
        j->p++;
        skip_ws(j);
        if (j->p < j->end && *j->p == close)
            return GB_JSCAN_NO; /* trailing comma */
    }
    j->first = 0;
    return 1;
}

int gb_jscan_key(struct gb_jscan *j, const char **key, size_t *klen)
{
    int rc = next_member(j, '}');
    const char *at;

    if (rc <= 0)
        return rc;
    /* next_member stopped on the key: gb_jscan_plain without its peek */
    if (j->p >= j->end || *j->p != '"')
        return GB_JSCAN_NO;
    at = j->p + 1;
    if (scan_string(j, NULL, 0) < 0)
        return GB_JSCAN_NO;
    *key = at;
    *klen = (size_t)(j->p - 1 - at);
    skip_ws(j);
    if (j->p >= j->end || *j->p != ':')
        return GB_JSCAN_NO;
    j->p++;
    return 1;
}

int gb_jscan_item(struct gb_jscan *j)
{
    return next_member(j, ']');
}

int gb_jscan_skip(struct gb_jscan *j)
{
    long long v;
    const char *k;
    size_t kl;
    int rc, is_int;

    switch (gb_jscan_peek(j)) {
    case GB_JT_OBJECT:
        if (gb_jscan_object(j) < 0)
            return GB_JSCAN_NO;
        while ((rc = gb_jscan_key(j, &k, &kl)) == 1) {
            if (gb_jscan_skip(j) < 0)
                return GB_JSCAN_NO;
        }
        return rc;
    case GB_JT_ARRAY:
        if (gb_jscan_array(j) < 0)
            return GB_JSCAN_NO;
        while ((rc = gb_jscan_item(j)) == 1) {
            if (gb_jscan_skip(j) < 0)
                return GB_JSCAN_NO;
        }
        return rc;
    case GB_JT_STRING:
        return scan_string(j, NULL, 1);
    case GB_JT_NUMBER:
        return scan_number(j, &is_int, &v);
    case GB_JT_TRUE:
        return scan_literal(j, "true", 4);
    case GB_JT_FALSE:
        return scan_literal(j, "false", 5);
    case GB_JT_NULL:
        return scan_literal(j, "null", 4);
    default:
        return GB_JSCAN_NO;
    }
}

int gb_jscan_finish(struct gb_jscan *j)
{
    skip_ws(j);
    return j->depth == 0 && j->p == j->end ? 0 : GB_JSCAN_NO;
}
