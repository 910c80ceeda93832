/*
 * routes.h - request handlers for the API routes.  Each takes a request whose
 * auth already passed, and ends it (now or later) through gb_req_finish().
 */
#ifndef GB_API_ROUTES_H
#define GB_API_ROUTES_H

#include "server/req.h"

/* POST /v1/chat/completions */
void gb_route_chat(struct gb_req *r);

/* POST /v1/embeddings */
void gb_route_embeddings(struct gb_req *r);

/* GET /v1/models; GET /v1/models/{id} with id (borrowed) non-NULL */
void gb_route_models(struct gb_req *r, const char *id);

/* The native Gemini API: rest is the path after the API prefix (e.g.
 * "/models/gemini-2.5-flash:generateContent"); is_post: POST, else GET. */
void gb_route_native(struct gb_req *r, const char *rest, int is_post);

/* Token counts of a native answer, from its last "usageMetadata" object. */
struct gb_native_usage {
    long prompt;
    long completion; /* candidates + thoughts */
    long total;
};

/* Finds the last "usageMetadata" object in p[0..n) and reads its top-level
 * counts (absent ones are 0) without parsing the rest.  0, or -1 when there
 * is none or it is cut off. */
int gb_native_usage(const char *p, size_t n, struct gb_native_usage *u);

/* 1 when p[0..n) is one whole JSON object, else 0: the brackets outside
 * strings balance and close at the end, with only whitespace around.  A
 * scan, not a parse (a native answer is relayed as it is): enough to catch
 * an empty or cut-off answer, wherever it was cut, at about a byte per
 * instruction for pretty-printed JSON (memchr through strings, a table
 * through the rest). */
int gb_native_whole(const char *p, size_t n);

/* Checks a client-given model name for use in an upstream URL path:
 * [A-Za-z0-9._-] only, 1..GB_MODEL_NAME_MAX bytes.  1 when fine. */
int gb_model_name_ok(const char *m);

#endif
