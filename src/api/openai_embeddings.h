/*
 * openai_embeddings.h - OpenAI embeddings <-> Gemini batchEmbedContents.
 *
 * Pure functions over jansson values, like openai_chat.h.  One OpenAI
 * request may carry more inputs than one batchEmbedContents call takes
 * (GB_EMBED_BATCH_MAX), so the request side builds one body per batch of
 * inputs [from, to) and the response side appends each batch's vectors to
 * one data array, numbered from the batch's first input; the caller
 * appends the answers in batch order (so data stays sorted by index, which
 * clients expect) and wraps the array with gb_embeddings_response.
 *
 *   body = gb_embeddings_request_to_gemini(oai, &req, &err);   inputs [0, 100)
 *   for (b = 0; b < gb_embeddings_batches(&req); b++) {
 *       from = b * GB_EMBED_BATCH_MAX;
 *       body_b = b == 0 ? body : gb_embeddings_batch(oai, &req, from, from + GB_EMBED_BATCH_MAX);
 *       ... POST models/<req.model>:batchEmbedContents, parse the answer ...
 *       gb_embeddings_append(data, answer, from, req.base64);
 *       tokens += gb_embeddings_prompt_tokens(answer);
 *   }
 *   reply = gb_embeddings_response(data, req.client_model, tokens);
 */
#ifndef GB_API_OPENAI_EMBEDDINGS_H
#define GB_API_OPENAI_EMBEDDINGS_H

#include <jansson.h>
#include <stddef.h>

#include "api/openai_chat.h"

/* Most requests in one batchEmbedContents call (Gemini's limit). */
#define GB_EMBED_BATCH_MAX 100
/* Most inputs in one OpenAI embeddings request (OpenAI's limit). */
#define GB_EMBED_INPUTS_MAX 2048

/* What the gateway needs to know about a translated embeddings request. */
struct gb_embed_req {
    char model[GB_MODEL_NAME_MAX + 1];        /* upstream model, "models/" removed */
    char client_model[GB_MODEL_NAME_MAX + 1]; /* model as the client named it (echoed) */
    size_t n;                                 /* inputs, 1..GB_EMBED_INPUTS_MAX */
    int dimensions;                           /* outputDimensionality; 0: not asked */
    int base64;                               /* 1: encoding_format "base64" */
};

/*
 * Checks an OpenAI /v1/embeddings body and fills *out; returns the
 * batchEmbedContents body for the first batch, inputs [0, min(n,
 * GB_EMBED_BATCH_MAX)):
 *   {"requests":[{"model":"models/<m>","content":{"parts":[{"text":T}]}
 *                 [,"outputDimensionality":D]}, ...]}
 * input is a string or an array of strings (each non-empty; at most
 * GB_EMBED_INPUTS_MAX); token arrays (an array of integers or of arrays)
 * are refused with "token array inputs are not supported: send text".
 * dimensions (integer >= 1) -> outputDimensionality; encoding_format
 * "float" (default) or "base64"; user is ignored.  Returns a new
 * reference, or NULL with *err filled (err->param names the parameter:
 * "model", "input", "input[3]", "dimensions", "encoding_format"); on
 * out-of-memory NULL with err->message "out of memory".
 */
json_t *gb_embeddings_request_to_gemini(const json_t *oai, struct gb_embed_req *out,
                                        struct gb_chat_err *err);

/* Number of batchEmbedContents calls req needs: ceil(n / GB_EMBED_BATCH_MAX). */
size_t gb_embeddings_batches(const struct gb_embed_req *req);

/*
 * The batchEmbedContents body for inputs [from, to) of a request already
 * checked by gb_embeddings_request_to_gemini (to is clamped to req->n).
 * Returns a new reference; NULL on out-of-memory or an empty range.
 */
json_t *gb_embeddings_batch(const json_t *oai, const struct gb_embed_req *req, size_t from,
                            size_t to);

/*
 * Appends one entry per embedding of a batchEmbedContents answer
 * ({"embeddings":[{"values":[...]}, ...]}, borrowed) to data_array:
 *   {"object":"embedding","index":first_index + i,"embedding":E}
 * where E is the values as JSON numbers, or with base64 the base64 of the
 * values as little-endian float32 (each value rounded with a (float) cast,
 * as numpy's astype(float32) does).  Returns 0; GB_EINVAL when the answer
 * has no embeddings array or a vector is not an array of numbers (nothing
 * appended then); GB_ENOMEM (entries of this batch may be partly
 * appended).  The caller compares the count with the batch size.
 */
int gb_embeddings_append(json_t *data_array, const json_t *gemini_batch_response,
                         size_t first_index, int base64);

/* usageMetadata.promptTokenCount of a batchEmbedContents answer, 0 when
 * absent (older models do not report it). */
json_int_t gb_embeddings_prompt_tokens(const json_t *gemini_batch_response);

/*
 * {"object":"list","data":data,"model":model,"usage":{"prompt_tokens":N,
 * "total_tokens":N}}.  Takes over data (the reference is stolen, also on
 * failure).  Returns a new reference; NULL on out-of-memory.
 */
json_t *gb_embeddings_response(json_t *data, const char *model, json_int_t prompt_tokens);

#endif
