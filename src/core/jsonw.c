/* jsonw.c - JSON string escaping into a gb_buf (see jsonw.h). */
#include "core/jsonw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

int gb_jsonw_string(struct gb_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF"; /* jansson writes \u001F */
    size_t start = 0;
    int rc = gb_buf_append(b, "\"", 1);

    for (size_t i = 0; i < n && rc == 0; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        size_t elen = 2;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        esc[0] = '\\';
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        rc = gb_buf_append(b, s + start, i - start);
        if (rc == 0)
            rc = gb_buf_append(b, esc, elen);
        start = i + 1;
    }
    if (rc == 0)
        rc = gb_buf_append(b, s + start, n - start);
    if (rc == 0)
        rc = gb_buf_append(b, "\"", 1);
    return rc;
}

int gb_jsonw_cstring(struct gb_buf *b, const char *s)
{
    return gb_jsonw_string(b, s, strlen(s));
}

/* Integers as jansson prints them ("%" JSON_INTEGER_FORMAT). */
int gb_jsonw_integer(struct gb_buf *b, long long v)
{
    char tmp[24], *p = tmp + sizeof tmp;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    return gb_buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}

/* Reals as jansson 2.14 prints them: "%.17g", then ".0" when it would read
 * back as an integer. */
static int put_real(struct gb_buf *b, double v)
{
    char tmp[64];
    int n = snprintf(tmp, sizeof tmp, "%.17g", v);

    if (n < 0 || (size_t)n >= sizeof tmp - 3)
        return GB_EINVAL;
    for (int i = 0; i < n; i++)
        if (tmp[i] == ',')
            tmp[i] = '.'; /* a locale's decimal comma */
    if (strpbrk(tmp, ".eE") == NULL && strcmp(tmp, "inf") != 0 && strcmp(tmp, "nan") != 0) {
        memcpy(tmp + n, ".0", 3);
        n += 2;
    }
    /* as jansson: no '+' and no leading zeros in the exponent ("1e300", "1e-5") */
    char *e = strchr(tmp, 'e');
    if (e != NULL) {
        char *start = e + 1, *end = e + 2;
        if (*start == '-')
            start++;
        while (*end == '0')
            end++;
        if (end != start) {
            memmove(start, end, (size_t)(tmp + n - end) + 1);
            n -= (int)(end - start);
        }
    }
    return gb_buf_append(b, tmp, (size_t)n);
}

int gb_jsonw_value(struct gb_buf *b, const json_t *v)
{
    int rc = 0;

    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *val;
        int first = 1;
        rc = gb_buf_append(b, "{", 1);
        json_object_foreach((json_t *)v, key, val)
        {
            if (rc == 0 && !first)
                rc = gb_buf_append(b, ",", 1);
            first = 0;
            if (rc == 0)
                rc = gb_jsonw_cstring(b, key);
            if (rc == 0)
                rc = gb_buf_append(b, ":", 1);
            if (rc == 0)
                rc = gb_jsonw_value(b, val);
        }
        return rc ? rc : gb_buf_append(b, "}", 1);
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *val;
        rc = gb_buf_append(b, "[", 1);
        json_array_foreach(v, i, val)
        {
            if (rc == 0 && i > 0)
                rc = gb_buf_append(b, ",", 1);
            if (rc == 0)
                rc = gb_jsonw_value(b, val);
        }
        return rc ? rc : gb_buf_append(b, "]", 1);
    }
    case JSON_STRING:
        return gb_jsonw_string(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return gb_jsonw_integer(b, json_integer_value(v));
    case JSON_REAL:
        return put_real(b, json_real_value(v));
    case JSON_TRUE:
        return gb_buf_append(b, "true", 4);
    case JSON_FALSE:
        return gb_buf_append(b, "false", 5);
    case JSON_NULL:
        return gb_buf_append(b, "null", 4);
    }
    return GB_EINVAL;
}

char *gb_jsonw_dumps(const json_t *v, size_t *len)
{
    struct gb_buf b;

    if (v == NULL)
        return NULL;
    gb_buf_init(&b, (size_t)1 << 31);
    if (gb_jsonw_value(&b, v) < 0 || gb_buf_append(&b, "", 0) < 0) {
        gb_buf_release(&b);
        return NULL;
    }
    return gb_buf_take(&b, len);
}

size_t gb_json_depth(const char *p, size_t n)
{
    size_t depth = 0, max = 0;
    int in_str = 0, esc = 0;

    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > max)
                max = depth;
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    return max;
}
