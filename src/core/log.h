/*
 * log.h - leveled logging to stderr, as text or JSON lines, with secret masking.
 *
 * Every line is written with one write(2), so lines of concurrent threads never
 * interleave.  Secrets (API keys, client tokens) are never logged: callers log
 * a masked form made by gb_log_mask().
 */
#ifndef GB_CORE_LOG_H
#define GB_CORE_LOG_H

#include <stddef.h>

enum gb_log_level {
    GB_LOG_DEBUG,
    GB_LOG_INFO,
    GB_LOG_WARN,
    GB_LOG_ERROR,
    GB_LOG_NOTICE /* always written, whatever the threshold (start-up lines) */
};

/* Longest log line, in bytes; longer messages are cut. */
#define GB_LOG_LINE_MAX 4096
/* Size of a buffer able to hold any output of gb_log_mask(). */
#define GB_MASK_MAX 16

/* Sets the threshold and the format (json: 1 for JSON lines).  Call before
 * starting threads. */
void gb_log_setup(enum gb_log_level level, int json);

/* Parses "debug", "info", "warn"/"warning", "error".  Returns the level, or
 * -1 for anything else. */
int gb_log_level_parse(const char *s);

/* 1 when messages at this level are written. */
int gb_log_enabled(enum gb_log_level level);

/* Writes one message line (printf format).  Never fails visibly. */
void gb_log(enum gb_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One line per finished request: the access log. */
struct gb_log_access {
    const char *method;
    const char *path;  /* without the query string */
    const char *model; /* NULL when none */
    int status;
    int attempts; /* upstream attempts made */
    double latency_ms;
    const char *key_id; /* masked id of the last key used, NULL when none */
    const char *error;  /* short reason when status >= 400, or NULL */
};
void gb_log_request(const struct gb_log_access *a);

/* Writes a masked form of secret s into out (GB_MASK_MAX bytes): "..." plus
 * its last 4 characters for secrets of 12 characters or more, "***"
 * otherwise.  Returns out. */
char *gb_log_mask(const char *s, char *out);

#define gb_debug(...) gb_log(GB_LOG_DEBUG, __VA_ARGS__)
#define gb_info(...) gb_log(GB_LOG_INFO, __VA_ARGS__)
#define gb_warn(...) gb_log(GB_LOG_WARN, __VA_ARGS__)
#define gb_error(...) gb_log(GB_LOG_ERROR, __VA_ARGS__)

#endif
