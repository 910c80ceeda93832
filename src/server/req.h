/*
 * req.h - one client request: its state machine, its upstream attempt and
 * its single exit, gb_req_finish() (STYLE.md rules 9 and 10).
 *
 * struct gb_req is shared by the server, the upstream attempt loop and the
 * route handlers (the src/api route files), which all run on the request's worker
 * thread; no other thread ever sees it.  Fields marked "owned" are freed by
 * gb_req_finish().
 */
#ifndef GB_SERVER_REQ_H
#define GB_SERVER_REQ_H

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdint.h>

#include "api/openai_chat.h"
#include "api/openai_embeddings.h"
#include "core/buf.h"
#include "sse/sse.h"
#include "upstream/curlev.h"

struct gb_worker;
struct gb_req;

/* Keys one request may try (attempts beyond this reuse the list's end). */
#define GB_REQ_MAX_TRIED 32
/* Largest upstream error body kept for the failure policy, in bytes. */
#define GB_UPSTREAM_ERROR_MAX (256u * 1024)
/* Largest non-streamed upstream answer accepted, in bytes. */
#define GB_UPSTREAM_BODY_MAX (64u * 1024 * 1024)
/* Largest client output waiting for one flush (r->out), in bytes. */
#define GB_REQ_OUT_MAX (64u * 1024 * 1024)
/* Longest Content-Type we relay, in bytes. */
#define GB_CTYPE_MAX 128
/* Longest request path we route on, in bytes. */
#define GB_PATH_MAX 2048

#define GB_REQ_STATES(X) X(READ) X(AUTH) X(PARSE) X(TRANSLATE) X(ATTEMPT) X(RELAY) X(DONE)

enum gb_req_state {
#define GB_REQ_STATE_ENUM(s) GB_REQ_##s,
    GB_REQ_STATES(GB_REQ_STATE_ENUM)
#undef GB_REQ_STATE_ENUM
};

/* Which API the client speaks: decides the error format. */
enum gb_api { GB_API_NONE, GB_API_OPENAI, GB_API_GEMINI };

/* What a route does with the upstream's answer. */
struct gb_route_ops {
    /* Non-streamed 2xx answer, whole body in r->up_body.  Must reply. */
    void (*on_body)(struct gb_req *r);
    /* Streamed: one SSE event's data; append client output to r->out.
     * Return 0, or <0 to end the stream with an error.  NULL: relay the
     * upstream's bytes as they are (native API), with its content type. */
    int (*on_event)(struct gb_req *r, const char *data, size_t len);
    /* Streamed: the upstream ended cleanly; append the last output to r->out.
     * May be NULL. */
    void (*on_stream_end)(struct gb_req *r);
    /* Relayed as it is (on_event NULL): sees each piece after it was sent,
     * for statistics.  May be NULL. */
    void (*on_raw)(struct gb_req *r, const char *p, size_t n);
};

struct gb_req {
    /* --- set at start, read-only after --- */
    unsigned magic;
    struct gb_worker *w;
    struct evhttp_request *ev;       /* NULL once handed back to evhttp or freed */
    struct evhttp_connection *evcon; /* NULL once the client is gone */
    enum gb_api api;
    int route; /* enum gb_metric_route, for metrics and the request log */
    const struct gb_route_ops *ops;
    char method[8];
    char path[GB_PATH_MAX]; /* normalised, without the query */
    const char *query;      /* borrowed from ev's URI, NULL when none */
    int64_t t0_us;

    /* --- state --- */
    enum gb_req_state state;
    int client_gone;         /* 1: the client went; 2: we closed it (gb_req_stream_abort) */
    int reply_started;       /* streamed reply headers sent */
    int relaying;            /* the upstream's 2xx answer began to flow to the client */
    int client_stream;       /* the client asked for a stream (OpenAI: keep-alives apply) */
    struct event *keepalive; /* owned: SSE comment timer while the stream is silent */
    int64_t sent_ms;         /* when the stream last sent a chunk (gb_now_ms):
                                the keep-alive timer is re-armed lazily */
    int status;              /* status sent to the client */
    const char *error;       /* short reason for the access log (static string) */
    struct event *hup;       /* owned: watches the client socket while we wait */

    /* --- upstream attempt --- */
    char *up_url;     /* owned */
    char *up_payload; /* request body sent upstream, NULL for GET; owned unless
                         up_payload_borrowed (then it is ev's input buffer) */
    size_t up_payload_len;
    int up_payload_borrowed;
    int up_stream;                 /* 1: SSE expected */
    CURL *easy;                    /* owned while an attempt runs */
    struct curl_slist *up_headers; /* owned */
    struct gb_curlev_xfer xfer;
    long up_status;              /* of the current attempt, 0 until known */
    char up_ctype[GB_CTYPE_MAX]; /* upstream Content-Type of the current attempt */
    int64_t up_retry_after_ms;
    struct gb_buf up_body; /* owned: answer or error body of the current attempt */
    int paused;            /* upstream read paused for a slow client */
    struct event *idle;    /* owned: STREAM_IDLE_TIMEOUT of a streamed attempt */
    int64_t up_data_ms;    /* when the attempt last received bytes (gb_now_ms) */
    uint32_t tried[GB_REQ_MAX_TRIED];
    size_t ntried;
    int attempts;       /* all attempts of this request (for the log) */
    int round_attempts; /* attempts of the current upstream request (retry budget) */
    uint32_t key_idx;
    int has_key;
    const char *pool_model; /* model the key pool tracks cooldowns for (borrowed from this
                               request), NULL for none */
    int64_t attempt_t0_us;
    struct event *backoff; /* owned */
    struct gb_sse_parser sse;
    int sse_init;

    /* --- route data --- */
    int prompt_tokens, completion_tokens, total_tokens; /* from usageMetadata, 0 unknown */
    int64_t ttfb_us;                   /* first byte of the answer sent, 0 = none */
    char model[GB_MODEL_NAME_MAX + 1]; /* for the access log */
    json_t *oai;                       /* owned: parsed client body */
    struct gb_chat_req chat;
    struct gb_chat_stream cs;
    int cs_init;
    struct gb_buf out; /* owned: client output waiting to be sent */
    json_t *acc;       /* owned: route accumulator (models pages, chat body) */
    struct gb_embed_req embed;
    size_t embed_from; /* first input of the current batch */
    json_int_t embed_tokens;
    json_t **fetch_parts; /* owned array of borrowed parts: images to download */
    size_t nfetch, fetch_i;
    int pages;
    int stream_error_sent;                 /* an error event already ended the stream */
    char route_arg[GB_MODEL_NAME_MAX + 1]; /* e.g. the model id of GET /models/{id} */
};

/* Changes state; logs the transition at debug level. */
#define gb_req_set_state(r, s) gb_req__set_state((r), (s), __FILE__, __LINE__)
void gb_req__set_state(struct gb_req *r, enum gb_req_state s, const char *file, int line);

/* Name of a state, for logs. */
const char *gb_req_state_name(enum gb_req_state s);

/* The single exit of every request: cancels the upstream attempt, frees what
 * the request owns, writes the access log line and frees r.  The reply must
 * have been sent (or the client be gone). */
void gb_req_finish(struct gb_req *r);

/* Keeps watching the client's socket so that a hang-up while we wait for the
 * upstream cancels the request at once.  Returns 0 or GB_ENOMEM. */
int gb_req_watch_client(struct gb_req *r);

/* Sends a whole reply (status, content type, body) and finishes r. */
void gb_req_reply(struct gb_req *r, int status, const char *ctype, const char *body, size_t len);

/* Sends an error in the client's API format and finishes r (as a final
 * error event when a stream's headers already went out).  code is the
 * machine-readable code (OpenAI "code" / Gemini "status"), may be NULL;
 * param may be NULL. */
void gb_req_error(struct gb_req *r, int status, const char *code, const char *param,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Streams: sends the headers of a 200 reply of content type ctype (NULL:
 * text/event-stream for OpenAI clients). */
void gb_req_stream_start(struct gb_req *r, const char *ctype);
/* Streams: sends what r->out holds as one chunk and empties it. */
void gb_req_stream_flush(struct gb_req *r);
/* Streams: sends len bytes as one chunk (copied). */
void gb_req_stream_send(struct gb_req *r, const char *p, size_t len);
/* Streams: flushes r->out, ends the reply and finishes r. */
void gb_req_stream_end(struct gb_req *r);

/* Ends a stream that broke off by closing the connection without the
 * chunked body's last chunk, so the client sees an incomplete body instead
 * of a complete one that is cut short (RFC 9112 7.1, 8); what is queued in
 * r->out is written first.  For bodies with no error event to carry the
 * failure (a native JSON-array stream).  Finishes r. */
void gb_req_stream_abort(struct gb_req *r);

/* Streams: (re)arms the keep-alive timer: after STREAM_KEEPALIVE_SECONDS
 * without output an SSE comment is sent (headers first, if not yet sent).
 * No-op when keep-alives are off or the client asked for no stream. */
void gb_req_keepalive_arm(struct gb_req *r);

/* Adds the CORS headers the request's Origin calls for to headers. */
void gb_req_add_cors(struct gb_req *r, struct evkeyvalq *headers);

/* Adds Retry-After (whole seconds, rounded up from ms) to the answer, and
 * exposes it to browser code (CORS); returns the seconds, for the message. */
long long gb_req_retry_after(struct gb_req *r, int64_t ms);

/* 405 with the Allow header RFC 9110 asks for (allow: "POST", "GET, HEAD"),
 * in the request's API error format. */
void gb_req_not_allowed(struct gb_req *r, const char *allow, const char *code);

/* 1 when ev came as HTTP/1.0 (no chunked replies, no Host needed). */
int gb_req_http10(const struct evhttp_request *ev);

/* The first query parameter called name, percent-decoded ('+' is a space),
 * malloc'd for the caller to free; NULL when absent.  Unlike
 * evhttp_parse_query_str, a parameter without '=' elsewhere in the query
 * (?key=t&debug) does not make the whole query unreadable. */
char *gb_req_query_param(const struct gb_req *r, const char *name);

#endif
