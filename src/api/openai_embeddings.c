/*
 * openai_embeddings.c - OpenAI embeddings <-> Gemini batchEmbedContents.
 *
 * The request side checks the OpenAI body once and can then cut it into
 * batchEmbedContents bodies of at most GB_EMBED_BATCH_MAX inputs; the
 * response side turns each answer's vectors into OpenAI embedding objects,
 * as numbers or as base64 of little-endian float32 (what the openai SDKs
 * ask for by default).  No I/O, no globals.
 */
#include "api/openai_embeddings.h"

#include <limits.h>
#include <nettle/base64.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* Prefix of Gemini resource names, dropped from the client's model. */
#define GB_EMBED_MODELS_PREFIX "models/"

/* ---- request ------------------------------------------------------------ */

__attribute__((format(printf, 3, 4))) static int bad(struct gb_chat_err *err, const char *param,
                                                     const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    snprintf(err->param, sizeof err->param, "%s", param);
    return GB_EINVAL;
}

/* input: one non-empty string, or an array of them; *n gets the count. */
static int check_input(const json_t *input, size_t *n, struct gb_chat_err *err)
{
    const json_t *v;
    char param[32];
    size_t i;

    if (json_is_string(input)) {
        if (json_string_length(input) == 0)
            return bad(err, "input", "input must not be empty");
        *n = 1;
        return 0;
    }
    if (!json_is_array(input))
        return bad(err, "input", "input must be a string or an array of strings");
    if (json_array_size(input) == 0)
        return bad(err, "input", "input must not be empty");
    if (json_array_size(input) > GB_EMBED_INPUTS_MAX)
        return bad(err, "input", "input must have at most %d items", GB_EMBED_INPUTS_MAX);
    json_array_foreach(input, i, v)
    {
        snprintf(param, sizeof param, "input[%zu]", i);
        if (json_is_integer(v) || json_is_array(v))
            return bad(err, "input",
                       "token array inputs are not supported: send text (LangChain's "
                       "OpenAIEmbeddings sends tokens unless check_embedding_ctx_length=False)");
        if (!json_is_string(v))
            return bad(err, param, "input items must be strings");
        if (json_string_length(v) == 0)
            return bad(err, param, "input items must not be empty strings");
    }
    *n = json_array_size(input);
    return 0;
}

static int check_request(const json_t *oai, struct gb_embed_req *out, struct gb_chat_err *err)
{
    const json_t *m = json_object_get(oai, "model"), *d = json_object_get(oai, "dimensions");
    const json_t *ef = json_object_get(oai, "encoding_format");
    const char *fmt = json_string_value(ef);
    const char *model = json_string_value(m);
    size_t plen = strlen(GB_EMBED_MODELS_PREFIX);

    if (!json_is_object(oai))
        return bad(err, "", "request body must be a json object");
    if (model == NULL || json_string_length(m) == 0)
        return bad(err, "model", "model must be a non-empty string");
    if (json_string_length(m) > GB_MODEL_NAME_MAX || strlen(model) != json_string_length(m))
        return bad(err, "model", "model name must be at most %d bytes", GB_MODEL_NAME_MAX);
    snprintf(out->client_model, sizeof out->client_model, "%s", model);
    if (strncmp(model, GB_EMBED_MODELS_PREFIX, plen) == 0)
        model += plen;
    if (model[0] == '\0')
        return bad(err, "model", "model must be a non-empty string");
    snprintf(out->model, sizeof out->model, "%s", model);
    if (check_input(json_object_get(oai, "input"), &out->n, err) < 0)
        return GB_EINVAL;
    if (d != NULL && !json_is_null(d)) {
        if (!json_is_integer(d) || json_integer_value(d) < 1 || json_integer_value(d) > INT_MAX)
            return bad(err, "dimensions", "dimensions must be a positive integer");
        out->dimensions = (int)json_integer_value(d);
    }
    if (ef == NULL || json_is_null(ef))
        return 0;
    if (fmt != NULL && strcmp(fmt, "base64") == 0)
        out->base64 = 1;
    else if (fmt == NULL || strcmp(fmt, "float") != 0)
        return bad(err, "encoding_format", "encoding_format must be float or base64");
    return 0;
}

json_t *gb_embeddings_batch(const json_t *oai, const struct gb_embed_req *req, size_t from,
                            size_t to)
{
    const json_t *input = json_object_get(oai, "input");
    json_t *requests, *body;
    char model[sizeof GB_EMBED_MODELS_PREFIX + GB_MODEL_NAME_MAX];
    size_t i;

    if (to > req->n)
        to = req->n;
    if (from >= to)
        return NULL;
    snprintf(model, sizeof model, "%s%s", GB_EMBED_MODELS_PREFIX, req->model);
    requests = json_array();
    body = json_pack("{s:o}", "requests", requests);
    if (body == NULL)
        return NULL;
    for (i = from; i < to; i++) {
        const json_t *text = json_is_string(input) ? input : json_array_get(input, i);
        json_t *r =
            json_pack("{s:s,s:{s:[{s:O}]}}", "model", model, "content", "parts", "text", text);

        if (r != NULL && req->dimensions > 0 &&
            json_object_set_new(r, "outputDimensionality", json_integer(req->dimensions)) < 0) {
            json_decref(r);
            r = NULL;
        }
        if (json_array_append_new(requests, r) < 0) {
            json_decref(body);
            return NULL;
        }
    }
    return body;
}

json_t *gb_embeddings_request_to_gemini(const json_t *oai, struct gb_embed_req *out,
                                        struct gb_chat_err *err)
{
    json_t *body;

    memset(out, 0, sizeof *out);
    err->message[0] = '\0';
    err->param[0] = '\0';
    if (check_request(oai, out, err) < 0)
        return NULL;
    body = gb_embeddings_batch(oai, out, 0, GB_EMBED_BATCH_MAX);
    if (body == NULL) {
        snprintf(err->message, sizeof err->message, "out of memory");
        err->param[0] = '\0';
    }
    return body;
}

size_t gb_embeddings_batches(const struct gb_embed_req *req)
{
    return (req->n + GB_EMBED_BATCH_MAX - 1) / GB_EMBED_BATCH_MAX;
}

/* ---- response ----------------------------------------------------------- */

/* Base64 (with padding) of n bytes into out (4 * ceil(n / 3) + 1 bytes). */
static void b64_encode(const unsigned char *in, size_t n, char *out)
{
    base64_encode_raw(out, n, in);
    out[BASE64_ENCODE_RAW_LENGTH(n)] = '\0';
}

/* The values as base64 of little-endian float32 (byte order written out,
 * so the host's does not matter). */
static json_t *embedding_base64(const json_t *values)
{
    size_t n = json_array_size(values), i;
    unsigned char *bytes = malloc(n * 4 + 1);
    char *text = malloc((n * 4 + 2) / 3 * 4 + 1);
    const json_t *v;
    json_t *s = NULL;

    if (bytes == NULL || text == NULL)
        goto done;
    json_array_foreach(values, i, v)
    {
        float f = (float)json_number_value(v);
        uint32_t u;

        memcpy(&u, &f, sizeof u);
        bytes[4 * i] = (unsigned char)(u & 0xff);
        bytes[4 * i + 1] = (unsigned char)((u >> 8) & 0xff);
        bytes[4 * i + 2] = (unsigned char)((u >> 16) & 0xff);
        bytes[4 * i + 3] = (unsigned char)(u >> 24);
    }
    b64_encode(bytes, n * 4, text);
    s = json_string(text);
done:
    free(bytes);
    free(text);
    return s;
}

static json_t *embedding_floats(const json_t *values)
{
    json_t *a = json_array();
    const json_t *v;
    size_t i;

    json_array_foreach(values, i, v)
    {
        if (json_array_append_new(a, json_real(json_number_value(v))) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static int is_vector(const json_t *values)
{
    const json_t *v;
    size_t i;

    if (!json_is_array(values))
        return 0;
    json_array_foreach(values, i, v)
    {
        if (!json_is_number(v))
            return 0;
    }
    return 1;
}

int gb_embeddings_append(json_t *data_array, const json_t *gemini_batch_response,
                         size_t first_index, int base64)
{
    const json_t *embs = json_object_get(gemini_batch_response, "embeddings"), *e;
    size_t i;

    if (!json_is_array(embs) || !json_is_array(data_array))
        return GB_EINVAL;
    json_array_foreach(embs, i, e)
    {
        if (!is_vector(json_object_get(e, "values")))
            return GB_EINVAL;
    }
    json_array_foreach(embs, i, e)
    {
        const json_t *values = json_object_get(e, "values");
        json_t *vec = base64 ? embedding_base64(values) : embedding_floats(values);

        if (json_array_append_new(data_array,
                                  json_pack("{s:s,s:I,s:o}", "object", "embedding", "index",
                                            (json_int_t)(first_index + i), "embedding", vec)) < 0)
            return GB_ENOMEM;
    }
    return 0;
}

json_int_t gb_embeddings_prompt_tokens(const json_t *gemini_batch_response)
{
    return json_integer_value(json_object_get(
        json_object_get(gemini_batch_response, "usageMetadata"), "promptTokenCount"));
}

json_t *gb_embeddings_response(json_t *data, const char *model, json_int_t prompt_tokens)
{
    return json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model", model,
                     "usage", "prompt_tokens", prompt_tokens, "total_tokens", prompt_tokens);
}
