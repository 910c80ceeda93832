/*
 * upstream.h - the attempt loop: send a request upstream with a pool key,
 * classify the answer (policy.h), retry on another key, relay or reply.
 *
 * The route sets r->up_url, r->up_payload (NULL for GET), r->up_stream and
 * r->ops, then calls gb_upstream_start().  From then on the request ends in
 * one of: ops->on_body (non-streamed 2xx), ops->on_event/on_stream_end
 * (streamed 2xx), or an error reply made here.
 */
#ifndef GB_UPSTREAM_UPSTREAM_H
#define GB_UPSTREAM_UPSTREAM_H

#include "server/req.h"

/* Starts the first attempt (or, for a route that chains requests such as
 * model-list pages, the next request with a fresh attempt count). */
void gb_upstream_start(struct gb_req *r);

/* From ops->on_body: the 2xx answer is unusable (e.g. empty); try another
 * key if the retry budget allows.  Returns 0 when an attempt started (the
 * request goes on), -1 when the budget is spent (the caller must answer). */
int gb_upstream_retry(struct gb_req *r, const char *why);

/* Replies to the client with the current attempt's upstream error (status
 * and message kept, key masked, in the client's API format). */
void gb_upstream_reply_error(struct gb_req *r);

#endif
