/*
 * config.h - the gateway's configuration: one immutable snapshot loaded from
 * the environment and an .env file (the environment wins).
 *
 * Every variable is one row of a table (config.c): name, type, field,
 * default, bounds and a one-line help.  One generic parser walks the table,
 * so error messages, --help and .env.example all come from the same rows
 * (STYLE.md rule 15).  A snapshot is read-only once loaded and is shared by
 * all threads without locking.
 */
#ifndef GB_CONFIG_CONFIG_H
#define GB_CONFIG_CONFIG_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

/* Default Gemini endpoint. */
#define GB_DEFAULT_BASE_URL "https://generativelanguage.googleapis.com/v1beta"
/* Longest .env line we read, in bytes. */
#define GB_ENV_LINE_MAX (1024 * 1024)

/* A list of strings (keys, tokens, model names ...), owned by the config. */
struct gb_strlist {
    char **v;
    size_t n;
};

struct gb_config {
    struct gb_strlist api_keys;        /* Gemini keys of the pool */
    struct gb_strlist allowed_tokens;  /* client tokens */
    char *auth_token;                  /* admin token (defaults to the first allowed token) */
    char *base_url;                    /* upstream base, no trailing slash */
    char *host;                        /* listen address */
    long port;                         /* listen port; 0 = any free port */
    long workers;                      /* event-loop threads (0 in .env = CPUs) */
    long max_failures;                 /* consecutive failures that disable a key */
    long max_retries;                  /* extra attempts after the first */
    long time_out;                     /* whole upstream request, in seconds */
    long connect_timeout;              /* upstream connect, in seconds */
    struct gb_strlist search_models;   /* models offered with a -search twin */
    int code_execution;                /* add the codeExecution tool */
    int show_search_link;              /* append grounding sources */
    json_t *safety_settings;           /* JSON array, owned */
    char *safety_settings_text;        /* its compact JSON text, owned (chat bodies splice it in) */
    struct gb_strlist allowed_origins; /* CORS origins; "*" = any */
    long long max_request_bytes;       /* largest accepted request body */
    char *proxy;                       /* upstream proxy URL, or NULL */
    int show_thinking;                 /* thoughts as reasoning_content */
    json_t *thinking_budget_map;       /* JSON object model -> budget, owned; NULL = none */
    long image_fetch_max_bytes;        /* largest remote image fetched for a chat request */
    int image_fetch_private;           /* image URLs may point at loopback/private addresses */
    long client_timeout_s;             /* client read (headers, body) and idle keep-alive */
    long stream_idle_timeout_s;        /* upstream stream silent this long: broken; 0 = off */
    long shutdown_timeout_s;           /* SIGTERM: in-flight requests finish within this */
    long max_headers;                  /* request headers at most (431 beyond) */
    long long max_header_bytes;        /* largest request head */
    long max_connections;              /* client connections open at once */
    long long stream_buffer_bytes;     /* client backlog before the upstream read pauses */
    long max_json_depth;               /* deepest JSON nesting accepted in a request body */
    long stream_keepalive_s;           /* SSE comment after this many silent seconds; 0 = off */
    int fake_stream;                   /* stream:true runs upstream as non-stream */
    long key_strategy;                 /* enum gb_key_strategy */
    long key_rpm_limit, key_rpd_limit; /* per key; 0 = off */
    long check_interval_hours;         /* re-check of disabled keys; 0 = never */
    long check_interval_seconds;       /* finer override of the above; 0 = use hours */
    char *test_model;                  /* model of that check */
    char *data_dir;                    /* SQLite database directory */
    long request_log_days, error_log_days;
    char *metrics_token; /* NULL: /metrics is open */
    char *redis_url;     /* redis://...: share the key pool (cluster); NULL = off */
    long log_level;      /* enum gb_log_level */
    int log_json;        /* LOG_FORMAT=json */
};

/*
 * Loads a snapshot.  env_file is the .env path to read (NULL: "./.env" when
 * it exists; a named file that cannot be read is an error).  getenv_fn reads
 * the environment (pass getenv; tests pass a fake).  Returns a new config
 * (free with gb_config_free), or NULL with a message naming the variable
 * and what was expected written to err (errlen bytes).
 */
struct gb_config *gb_config_load(const char *env_file, char *(*getenv_fn)(const char *), char *err,
                                 size_t errlen);

/* Frees a snapshot and everything it owns; NULL is fine. */
void gb_config_free(struct gb_config *c);

/* Writes .env.example (every variable, its default and a comment) to f. */
void gb_config_write_example(FILE *f);

/* Writes the --help text for the variables to f. */
void gb_config_write_help(FILE *f);

/* Parses a list value: JSON ["a","b"] or a,b (blanks trimmed, empties
 * dropped).  Returns 0 or GB_EPARSE / GB_ENOMEM; *out is owned by the
 * caller (gb_strlist_release). */
int gb_strlist_parse(const char *s, struct gb_strlist *out);
void gb_strlist_release(struct gb_strlist *l);
/* 1 when s is in the list. */
int gb_strlist_has(const struct gb_strlist *l, const char *s);

#endif
