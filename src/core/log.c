/*
 * log.c - leveled stderr logging (text or JSON lines) and secret masking.
 *
 * Lines are formatted into a stack buffer and written with one write(2):
 * no lock, no interleaving, no allocation.
 */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static enum gb_log_level log_level = GB_LOG_INFO;
static int log_json;

static const char *const level_names[] = {"debug", "info", "warn", "error", "info"};

void gb_log_setup(enum gb_log_level level, int json)
{
    log_level = level;
    log_json = json;
}

int gb_log_level_parse(const char *s)
{
    if (strcasecmp(s, "debug") == 0)
        return GB_LOG_DEBUG;
    if (strcasecmp(s, "info") == 0)
        return GB_LOG_INFO;
    if (strcasecmp(s, "warn") == 0 || strcasecmp(s, "warning") == 0)
        return GB_LOG_WARN;
    if (strcasecmp(s, "error") == 0 || strcasecmp(s, "critical") == 0)
        return GB_LOG_ERROR;
    return -1;
}

int gb_log_enabled(enum gb_log_level level)
{
    return level >= log_level;
}

/* Formats the current UTC time as ISO 8601 with milliseconds. */
static void timestamp(char *out, size_t n)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

/* Appends s to out[*len..cap) as the inside of a JSON string. */
static void json_escape(char *out, size_t *len, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    for (; *s != '\0' && *len + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[(*len)++] = '\\';
            out[(*len)++] = (char)c;
        } else if (c < 0x20) {
            out[(*len)++] = '\\';
            out[(*len)++] = 'u';
            out[(*len)++] = '0';
            out[(*len)++] = '0';
            out[(*len)++] = hex[c >> 4];
            out[(*len)++] = hex[c & 15];
        } else {
            out[(*len)++] = (char)c;
        }
    }
}

static void emit(char *line, size_t len)
{
    ssize_t w;

    line[len++] = '\n';
    do {
        w = write(STDERR_FILENO, line, len);
    } while (w < 0 && errno == EINTR);
}

void gb_log(enum gb_log_level level, const char *fmt, ...)
{
    char msg[GB_LOG_LINE_MAX], line[GB_LOG_LINE_MAX + 256], ts[96];
    size_t len;
    va_list ap;
    int n;

    if (level < log_level)
        return;
    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    timestamp(ts, sizeof ts);
    if (log_json) {
        len = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts,
                               level_names[level]);
        json_escape(line, &len, sizeof line - 4, msg);
        line[len++] = '"';
        line[len++] = '}';
    } else {
        n = snprintf(line, sizeof line - 1, "%s %-5s %s", ts, level_names[level], msg);
        len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
    }
    emit(line, len);
}

void gb_log_request(const struct gb_log_access *a)
{
    char line[GB_LOG_LINE_MAX], ts[96];
    size_t len;
    int n;

    if (GB_LOG_INFO < log_level)
        return;
    timestamp(ts, sizeof ts);
    if (log_json) {
        len = (size_t)snprintf(
            line, sizeof line,
            "{\"ts\":\"%s\",\"level\":\"info\",\"msg\":\"request\",\"method\":\"", ts);
        json_escape(line, &len, sizeof line - 256, a->method);
        memcpy(line + len, "\",\"path\":\"", 10);
        len += 10;
        json_escape(line, &len, sizeof line - 256, a->path);
        line[len++] = '"';
        if (a->model != NULL) {
            memcpy(line + len, ",\"model\":\"", 10);
            len += 10;
            json_escape(line, &len, sizeof line - 200, a->model);
            line[len++] = '"';
        }
        len += (size_t)snprintf(line + len, sizeof line - len,
                                ",\"status\":%d,\"attempts\":%d,\"latency_ms\":%.2f", a->status,
                                a->attempts, a->latency_ms);
        if (a->key_id != NULL)
            len += (size_t)snprintf(line + len, sizeof line - len, ",\"key\":\"%s\"", a->key_id);
        if (a->error != NULL) {
            memcpy(line + len, ",\"error\":\"", 10);
            len += 10;
            json_escape(line, &len, sizeof line - 4, a->error);
            line[len++] = '"';
        }
        line[len++] = '}';
    } else {
        n = snprintf(line, sizeof line - 1,
                     "%s info  %s %s model=%s status=%d attempts=%d latency_ms=%.2f key=%s%s%s", ts,
                     a->method, a->path, a->model ? a->model : "-", a->status, a->attempts,
                     a->latency_ms, a->key_id ? a->key_id : "-", a->error ? " error=" : "",
                     a->error ? a->error : "");
        len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
    }
    emit(line, len);
}

char *gb_log_mask(const char *s, char *out)
{
    size_t n = s ? strlen(s) : 0;

    if (n >= 12)
        snprintf(out, GB_MASK_MAX, "...%s", s + n - 4);
    else
        snprintf(out, GB_MASK_MAX, "***");
    return out;
}
