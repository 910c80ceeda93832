/* jsonw.c - JSON string escaping into a gb_buf (see jsonw.h). */
#include "core/jsonw.h"

#include <string.h>

#include "core/err.h"

int gb_jsonw_string(struct gb_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
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
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
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
