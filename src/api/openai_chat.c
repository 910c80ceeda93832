/*
 * openai_chat.c - OpenAI chat completions <-> Gemini generateContent.
 *
 * The request side checks an OpenAI body field by field and rebuilds it as
 * a Gemini body; every client mistake becomes a gb_chat_err naming the
 * parameter, so the gateway can answer 400 without calling upstream.  The
 * response side turns a Gemini reply (whole, or one SSE event at a time)
 * into OpenAI's shapes, building objects in OpenAI's key order so the
 * output reads like the real thing.  Nothing here does I/O or keeps global
 * state; the stream state lives in the caller's struct gb_chat_stream.
 * A plain text request costs one pass over the messages: tools, schemas
 * and media are only looked at when the request has them.
 *
 * Sections:
 *   1. errors and small helpers
 *   2. request: content parts (text, images, audio, files)
 *   3. request: messages -> contents and systemInstruction
 *   4. request: tools, tool_choice
 *   5. request: generationConfig (a table of parameters, thinking)
 *   6. request: entry point, remote parts
 *   7. response: parts -> content, reasoning and tool_calls, usage
 *   8. response: whole reply
 *   9. stream
 */
#include "api/openai_chat.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/schema.h"
#include "core/err.h"
#include "core/jscan.h"
#include "core/jsonw.h"

/* Largest text we assemble in one piece (joined system prompt, one choice's
 * content, one tool result), in bytes.  Request bodies are bounded by the
 * gateway well below this; it only keeps the buffers formally bounded. */
#define GB_CHAT_TEXT_MAX (64u * 1024 * 1024)

/* Substring of the model names that take thinkingLevel and check thought
 * signatures (Gemini 3). */
#define GB_CHAT_GEMINI3 "gemini-3"

/* Signature Google documents for function calls it did not produce (a
 * client that dropped extra_content, a history from another model): it
 * lets Gemini 3 accept the call instead of answering 400. */
#define GB_CHAT_SKIP_SIGNATURE "skip_thought_signature_validator"

/* Content of the reply to a blocked prompt (%s: promptFeedback.blockReason). */
#define GB_CHAT_BLOCKED_FMT "The prompt was blocked by Gemini (reason: %s)."

/* Characters after "call_" in a generated tool call id. */
#define GB_CHAT_TOOL_ID_RAND 24

/* ---- 1. errors and small helpers ---------------------------------------- */

/* Translation context of one request. */
struct xl {
    const struct gb_chat_opts *opts; /* borrowed, may be NULL */
    struct gb_chat_req *out;         /* what the gateway learns, filled as we go */
    struct gb_chat_err *err;         /* where client errors go */
    char path[48];                   /* "messages[i]": prefix of error params */
    json_t *contents;                /* Gemini contents, borrowed from the body */
    struct gb_buf system;            /* system/developer texts joined with "\n" */
    json_t *call_names;              /* tool call id -> function name, owned */
    json_t *tool_turn;               /* "user" content collecting tool results, borrowed */
    size_t schema_nodes;             /* schema nodes left for this request (schema.h) */
    int gemini3;                     /* 1: the model is a Gemini 3 model */
};

static void copy_str(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);

    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Records a client error; param is x->path followed by suffix.  Returns
 * GB_EINVAL so callers can "return bad(...)". */
__attribute__((format(printf, 3, 4))) static int bad(struct xl *x, const char *suffix,
                                                     const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    vsnprintf(x->err->message, sizeof x->err->message, fmt, ap);
    va_end(ap);
    n = snprintf(x->err->param, sizeof x->err->param, "%s%s", x->path, suffix);
    if (n < 0)
        x->err->param[0] = '\0';
    return GB_EINVAL;
}

static int oom(struct xl *x)
{
    copy_str(x->err->message, sizeof x->err->message, "out of memory");
    x->err->param[0] = '\0';
    return GB_ENOMEM;
}

/* json_object_set_new / json_array_append_new steal v even when they fail,
 * so these wrappers only turn the result into a GB_E* code. */
static int set(struct xl *x, json_t *o, const char *key, json_t *v)
{
    return json_object_set_new(o, key, v) < 0 ? oom(x) : 0;
}

static int push(struct xl *x, json_t *a, json_t *v)
{
    return json_array_append_new(a, v) < 0 ? oom(x) : 0;
}

/* A parameter that is absent or JSON null counts as not sent. */
static const json_t *get(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    return json_is_null(v) ? NULL : v;
}

static int buf_add_string(struct gb_buf *b, const json_t *s)
{
    return gb_buf_append(b, json_string_value(s), json_string_length(s));
}

/* ---- 2. request: content parts (text, images, audio, files) ------------- */

/* Appends {"text": s} unless s is empty (Gemini rejects empty text parts). */
static int add_text_part(struct xl *x, json_t *parts, const json_t *s)
{
    if (json_string_length(s) == 0)
        return 0;
    return push(x, parts, json_pack("{s:s%}", "text", json_string_value(s), json_string_length(s)));
}

static int add_inline(struct xl *x, json_t *parts, const char *mime, size_t mime_len,
                      const char *data)
{
    return push(
        x, parts,
        json_pack("{s:{s:s%,s:s}}", "inlineData", "mimeType", mime, mime_len, "data", data));
}

/* "data:<mime>;base64,<data>" -> {"inlineData":{"mimeType","data"}}.  Only
 * base64 data urls: Gemini's inlineData holds base64. */
static int add_data_url(struct xl *x, const char *where, const char *url, json_t *parts)
{
    const char *mime = url + 5, *comma = strchr(mime, ',');
    size_t mime_len = strcspn(mime, ";,");

    if (comma == NULL || mime_len == 0)
        return bad(x, where, "malformed data url: expected data:<media type>;base64,<data>");
    if (comma - mime < 7 || memcmp(comma - 7, ";base64", 7) != 0)
        return bad(x, where, "data url must be base64-encoded");
    return add_inline(x, parts, mime, mime_len, comma + 1);
}

/* {"type":"image_url","image_url":{"url":U}}: a data: url becomes
 * inlineData; an http(s) url becomes the placeholder {"_gb_fetch": U},
 * which the gateway replaces with the fetched bytes (gb_chat_remote_parts);
 * "detail" has no Gemini equivalent and is ignored. */
static int add_image_part(struct xl *x, const char *where, const json_t *p, json_t *parts)
{
    const json_t *iu = json_object_get(p, "image_url");
    const char *url;

    url =
        json_is_string(iu) ? json_string_value(iu) : json_string_value(json_object_get(iu, "url"));
    if (url == NULL)
        return bad(x, where, "image_url.url must be a string");
    if (strncmp(url, "data:", 5) == 0)
        return add_data_url(x, where, url, parts);
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
        return bad(x, where, "unsupported image url: use a base64 data: url or an http(s) url");
    x->out->remote_parts++;
    return push(x, parts, json_pack("{s:s}", GB_CHAT_FETCH_KEY, url));
}

static const struct {
    const char *format;
    const char *mime;
} audio_formats[] = {{"wav", "audio/wav"}, {"mp3", "audio/mp3"}};

/* {"type":"input_audio","input_audio":{"data":base64,"format":F}}. */
static int add_audio_part(struct xl *x, const char *where, const json_t *p, json_t *parts)
{
    const json_t *ia = json_object_get(p, "input_audio");
    const char *data = json_string_value(json_object_get(ia, "data"));
    const char *format = json_string_value(json_object_get(ia, "format"));
    char at[96];
    size_t i;

    snprintf(at, sizeof at, "%s.input_audio", where);
    if (data == NULL || data[0] == '\0')
        return bad(x, at, "input_audio.data must be a non-empty base64 string");
    for (i = 0; format != NULL && i < sizeof audio_formats / sizeof audio_formats[0]; i++) {
        if (strcmp(format, audio_formats[i].format) == 0)
            return add_inline(x, parts, audio_formats[i].mime, strlen(audio_formats[i].mime), data);
    }
    snprintf(at, sizeof at, "%s.input_audio.format", where);
    return bad(x, at, "unsupported audio format: %s (use wav or mp3)", format ? format : "(none)");
}

static int ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);

    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

/* {"type":"file","file":{"file_data":D,"filename":N}}: D is a data: url,
 * or bare base64 when N ends in .pdf.  Uploaded files (file_id) live on
 * OpenAI's side and cannot be sent. */
static int add_file_part(struct xl *x, const char *where, const json_t *p, json_t *parts)
{
    const json_t *f = json_object_get(p, "file");
    const char *data = json_string_value(json_object_get(f, "file_data"));
    const char *name = json_string_value(json_object_get(f, "filename"));
    char at[96];

    snprintf(at, sizeof at, "%s.file.file_data", where);
    if (data == NULL && json_object_get(f, "file_id") != NULL)
        return bad(x, at, "file_id is not supported: send the file content as file_data");
    if (data == NULL || data[0] == '\0')
        return bad(x, at, "file.file_data must be a non-empty string");
    if (strncmp(data, "data:", 5) == 0)
        return add_data_url(x, at, data, parts);
    if (name == NULL || !ends_with_ci(name, ".pdf"))
        return bad(x, at,
                   "file_data must be a data: url (bare base64 is accepted for .pdf files only)");
    return add_inline(x, parts, "application/pdf", strlen("application/pdf"), data);
}

static int add_content_part(struct xl *x, size_t j, const json_t *p, json_t *parts)
{
    char where[48];
    const char *type;

    snprintf(where, sizeof where, ".content[%zu]", j);
    if (!json_is_object(p))
        return bad(x, where, "content part must be an object");
    type = json_string_value(json_object_get(p, "type"));
    if (type == NULL)
        return bad(x, where, "content part type must be a string");
    if (strcmp(type, "text") == 0) {
        if (!json_is_string(json_object_get(p, "text")))
            return bad(x, where, "text content part needs a string text");
        return add_text_part(x, parts, json_object_get(p, "text"));
    }
    if (strcmp(type, "image_url") == 0)
        return add_image_part(x, where, p, parts);
    if (strcmp(type, "input_audio") == 0)
        return add_audio_part(x, where, p, parts);
    if (strcmp(type, "file") == 0)
        return add_file_part(x, where, p, parts);
    return bad(x, where, "unsupported content part type: %s", type);
}

/* User/assistant content: a string, an array of parts, or null. */
static int add_content(struct xl *x, const json_t *content, json_t *parts)
{
    const json_t *p;
    size_t j;
    int rc;

    if (content == NULL)
        return 0;
    if (json_is_string(content))
        return add_text_part(x, parts, content);
    if (!json_is_array(content))
        return bad(x, ".content", "content must be a string, an array of content parts or null");
    json_array_foreach(content, j, p)
    {
        rc = add_content_part(x, j, p, parts);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- 3. request: messages -> contents and systemInstruction -------------- */

static int is_text_part(const json_t *p)
{
    const char *type = json_string_value(json_object_get(p, "type"));

    return type != NULL && strcmp(type, "text") == 0 && json_is_string(json_object_get(p, "text"));
}

/* Appends the text of a string or text-parts content to b, each piece
 * preceded by sep when b is not empty. */
static int collect_text(struct xl *x, const json_t *content, const char *sep, struct gb_buf *b)
{
    const json_t *p;
    char where[48];
    size_t j;

    if (content == NULL)
        return 0;
    if (json_is_string(content)) {
        if ((b->len > 0 && gb_buf_puts(b, sep) < 0) || buf_add_string(b, content) < 0)
            return oom(x);
        return 0;
    }
    if (!json_is_array(content))
        return bad(x, ".content", "content must be a string, an array of text parts or null");
    json_array_foreach(content, j, p)
    {
        snprintf(where, sizeof where, ".content[%zu]", j);
        if (!is_text_part(p))
            return bad(x, where, "only text content parts are supported in this message");
        if ((b->len > 0 && gb_buf_puts(b, sep) < 0) ||
            buf_add_string(b, json_object_get(p, "text")) < 0)
            return oom(x);
    }
    return 0;
}

/* Appends {"role": role, "parts": parts} to contents, or drops parts when
 * empty (Gemini refuses a content without parts). */
static int add_turn(struct xl *x, const char *role, json_t *parts)
{
    if (json_array_size(parts) == 0) {
        json_decref(parts);
        return 0;
    }
    return push(x, x->contents, json_pack("{s:s,s:o}", "role", role, "parts", parts));
}

static int on_system(struct xl *x, const json_t *m)
{
    return collect_text(x, get(m, "content"), "\n", &x->system);
}

static int on_user(struct xl *x, const json_t *m)
{
    json_t *parts = json_array();
    int rc;

    if (parts == NULL)
        return oom(x);
    rc = add_content(x, get(m, "content"), parts);
    if (rc < 0) {
        json_decref(parts);
        return rc;
    }
    return add_turn(x, "user", parts);
}

/* tool_calls[k].extra_content.google.thought_signature (how Google's own
 * OpenAI-compatible endpoint carries a Gemini 3 thought signature), or the
 * same on the message; NULL when absent. */
static const char *signature_of(const json_t *o)
{
    const json_t *g = json_object_get(json_object_get(o, "extra_content"), "google");

    return json_string_value(json_object_get(g, "thought_signature"));
}

/* The arguments string -> args object.  An object sent as it is (not
 * encoded) is taken too; absent or "" is {}.  A string that does not hold a
 * JSON object (a call cut off at max_tokens, which clients replay as it is:
 * the OpenAI reference warns the model may write invalid JSON) goes as
 * {"raw_arguments": the string}, so the conversation can go on. */
static int tool_call_args(struct xl *x, const char *where, const json_t *args_s, json_t **args)
{
    if (args_s == NULL || (json_is_string(args_s) && json_string_length(args_s) == 0))
        *args = json_object();
    else if (json_is_object(args_s))
        *args = json_deep_copy(args_s);
    else if (!json_is_string(args_s))
        return bad(x, where, "tool call arguments must be a string holding a json object");
    else if ((*args = json_loadb(json_string_value(args_s), json_string_length(args_s),
                                 JSON_DECODE_ANY, NULL)) == NULL ||
             !json_is_object(*args)) {
        json_decref(*args);
        *args = json_pack("{s:O}", "raw_arguments", args_s);
    }
    return *args == NULL ? oom(x) : 0;
}

/* One assistant tool call -> {"functionCall":{"name","args"}} (with its
 * thoughtSignature when the client sent one back); remembers id -> name
 * for the tool results that follow. */
static int add_tool_call(struct xl *x, size_t k, const json_t *tc, json_t *parts)
{
    char where[64], at_args[96];
    const json_t *fn = json_object_get(tc, "function");
    const char *name = json_string_value(json_object_get(fn, "name"));
    const char *id = json_string_value(json_object_get(tc, "id"));
    const char *sig = signature_of(tc);
    json_t *args = NULL, *part;
    int rc;

    snprintf(where, sizeof where, ".tool_calls[%zu]", k);
    snprintf(at_args, sizeof at_args, "%s.function.arguments", where);
    if (!json_is_object(tc) || !json_is_object(fn) || name == NULL || name[0] == '\0')
        return bad(x, where, "tool call needs a function with a non-empty name");
    rc = tool_call_args(x, at_args, get(fn, "arguments"), &args);
    if (rc < 0)
        return rc;
    if (id != NULL && id[0] != '\0' && set(x, x->call_names, id, json_string(name)) < 0) {
        json_decref(args);
        return GB_ENOMEM;
    }
    part = json_pack("{s:{s:s,s:o}}", "functionCall", "name", name, "args", args);
    if (part != NULL && sig != NULL && set(x, part, "thoughtSignature", json_string(sig)) < 0) {
        json_decref(part);
        return GB_ENOMEM;
    }
    return push(x, parts, part);
}

/* The first functionCall of a model turn without a signature gets the
 * message-level one (the Gemini-compatible endpoint puts it there), else,
 * for Gemini 3, the documented skip signature: Gemini 3 answers 400 when
 * the calls of the current turn come back unsigned. */
static int sign_first_call(struct xl *x, const json_t *m, json_t *parts)
{
    const char *sig = signature_of(m);
    json_t *p;
    size_t i;

    json_array_foreach(parts, i, p)
    {
        if (json_object_get(p, "functionCall") == NULL)
            continue;
        if (json_object_get(p, "thoughtSignature") != NULL)
            return 0;
        if (sig == NULL && x->gemini3)
            sig = GB_CHAT_SKIP_SIGNATURE;
        return sig ? set(x, p, "thoughtSignature", json_string(sig)) : 0;
    }
    return 0;
}

static int on_assistant(struct xl *x, const json_t *m)
{
    const json_t *tcs = get(m, "tool_calls"), *tc;
    json_t *parts = json_array();
    size_t k;
    int rc;

    if (parts == NULL)
        return oom(x);
    rc = add_content(x, get(m, "content"), parts);
    if (rc == 0 && tcs != NULL && !json_is_array(tcs))
        rc = bad(x, ".tool_calls", "tool_calls must be an array");
    json_array_foreach(tcs, k, tc)
    {
        if (rc < 0)
            break;
        rc = add_tool_call(x, k, tc, parts);
    }
    if (rc == 0 && json_array_size(tcs) > 0)
        rc = sign_first_call(x, m, parts);
    if (rc < 0) {
        json_decref(parts);
        return rc;
    }
    return add_turn(x, "model", parts);
}

/* Tool result text -> the functionResponse "response": a JSON object as it
 * is, other JSON as {"result": value}, anything else as {"result": text}. */
static json_t *tool_response(const struct gb_buf *text)
{
    json_t *v = NULL;

    if (text->len > 0)
        v = json_loadb(text->data, text->len, JSON_DECODE_ANY, NULL);
    if (json_is_object(v))
        return v;
    if (v != NULL)
        return json_pack("{s:o}", "result", v);
    return json_pack("{s:s%}", "result", text->len ? text->data : "", text->len);
}

/* Adds the result to the current tool turn, opening one when the previous
 * message was not a tool result: consecutive results share one "user" turn. */
static int add_tool_result(struct xl *x, const char *name, json_t *response)
{
    json_t *part =
        json_pack("{s:{s:s,s:o}}", "functionResponse", "name", name, "response", response);

    if (part == NULL)
        return oom(x);
    if (x->tool_turn == NULL) {
        x->tool_turn = json_pack("{s:s,s:[]}", "role", "user", "parts");
        if (push(x, x->contents, x->tool_turn) < 0) {
            x->tool_turn = NULL;
            json_decref(part);
            return GB_ENOMEM;
        }
    }
    return push(x, json_object_get(x->tool_turn, "parts"), part);
}

static int on_tool(struct xl *x, const json_t *m)
{
    const char *id = json_string_value(json_object_get(m, "tool_call_id"));
    const char *name;
    struct gb_buf text;
    json_t *response;
    int rc;

    if (id == NULL)
        return bad(x, ".tool_call_id", "tool message needs a string tool_call_id");
    name = json_string_value(json_object_get(x->call_names, id));
    if (name == NULL)
        name = json_string_value(json_object_get(m, "name"));
    if (name == NULL)
        return bad(x, ".tool_call_id", "no earlier assistant tool call has id %s", id);
    gb_buf_init(&text, GB_CHAT_TEXT_MAX);
    rc = collect_text(x, get(m, "content"), "", &text);
    if (rc == 0) {
        response = tool_response(&text);
        rc = response ? add_tool_result(x, name, response) : oom(x);
    }
    gb_buf_release(&text);
    return rc;
}

typedef int (*role_cb)(struct xl *x, const json_t *m);

static const struct {
    const char *role;
    role_cb fn;
} roles[] = {
    {"system", on_system},       {"developer", on_system}, {"user", on_user},
    {"assistant", on_assistant}, {"tool", on_tool},
};

static int add_message(struct xl *x, const json_t *m)
{
    const char *role;
    size_t i;

    if (!json_is_object(m))
        return bad(x, "", "message must be an object");
    role = json_string_value(json_object_get(m, "role"));
    if (role == NULL)
        return bad(x, ".role", "message role must be a string");
    if (strcmp(role, "tool") != 0)
        x->tool_turn = NULL;
    for (i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        if (strcmp(role, roles[i].role) == 0)
            return roles[i].fn(x, m);
    }
    if (strcmp(role, "function") == 0)
        return bad(x, ".role",
                   "role function is OpenAI's deprecated form of tool results: send role tool "
                   "with the tool_call_id of the assistant's tool call");
    return bad(x, ".role", "unknown message role: %s", role);
}

/* systemInstruction from the joined system texts.  A conversation made of
 * system messages only is sent as one user turn instead: Gemini needs at
 * least one content. */
static int add_system(struct xl *x, json_t *body)
{
    json_t *parts;

    if (json_array_size(x->contents) == 0 && x->system.len == 0) {
        x->path[0] = '\0';
        return bad(x, "messages", "messages must contain at least one message with content");
    }
    if (x->system.len == 0)
        return 0;
    parts = json_pack("[{s:s%}]", "text", x->system.data, x->system.len);
    if (parts == NULL)
        return oom(x);
    if (json_array_size(x->contents) == 0)
        return push(x, x->contents, json_pack("{s:s,s:o}", "role", "user", "parts", parts));
    return set(x, body, "systemInstruction", json_pack("{s:o}", "parts", parts));
}

static int add_messages(struct xl *x, const json_t *oai, json_t *body)
{
    const json_t *msgs = get(oai, "messages"), *m;
    size_t i;
    int rc;

    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return bad(x, "messages", "messages must be a non-empty array");
    json_array_foreach(msgs, i, m)
    {
        snprintf(x->path, sizeof x->path, "messages[%zu]", i);
        rc = add_message(x, m);
        if (rc < 0)
            return rc;
    }
    x->path[0] = '\0';
    return add_system(x, body);
}

/* ---- 4. request: tools, tool_choice ------------------------------------- */

/* The client's JSON Schema for a *JsonSchema field: a copy without
 * "$schema" (a draft URL, not part of what Gemini reads); NULL when out of
 * memory. */
static json_t *json_schema_copy(const json_t *schema)
{
    json_t *c = json_deep_copy(schema);

    if (c != NULL)
        json_object_del(c, "$schema");
    return c;
}

/* {"type":"function","function":{name, description, parameters}} ->
 * {name, description, parameters}: the JSON Schema cleaned into Gemini's
 * Schema subset (schema.h), left out when it declares no parameters
 * (Gemini refuses an OBJECT without properties).  "strict" has no Gemini
 * equivalent and is ignored. */
static int add_function_decl(struct xl *x, size_t i, const json_t *t, json_t *decls)
{
    char where[32];
    const json_t *fn = json_object_get(t, "function");
    const char *type = json_string_value(json_object_get(t, "type"));
    const json_t *desc = get(fn, "description"), *params = get(fn, "parameters");
    const char *name = json_string_value(json_object_get(fn, "name"));
    json_t *decl, *schema = NULL;

    snprintf(where, sizeof where, "tools[%zu]", i);
    if (type == NULL || strcmp(type, "function") != 0)
        return bad(x, where, "unsupported tool type: %s", type ? type : "(none)");
    if (!json_is_object(fn) || name == NULL || name[0] == '\0')
        return bad(x, where, "function tool needs a non-empty function.name");
    if ((desc != NULL && !json_is_string(desc)) || (params != NULL && !json_is_object(params)))
        return bad(x, where, "function description must be a string and parameters an object");
    decl = json_pack("{s:s}", "name", name);
    if (decl == NULL)
        return oom(x);
    if (desc != NULL && set(x, decl, "description", json_deep_copy(desc)) < 0)
        goto fail;
    if (params != NULL && (schema = gb_schema_clean_budget(params, &x->schema_nodes)) == NULL) {
        oom(x);
        goto fail;
    }
    if (schema != NULL && gb_schema_is_empty_object(schema)) {
        json_decref(schema);
    } else if (schema != NULL && gb_schema_has_free_object(schema) &&
               gb_schema_has_free_map(params)) {
        /* a free-form map inside (MCP tools have them): Gemini's Schema
         * has no way to say it, its JSON Schema field has */
        json_decref(schema);
        if (set(x, decl, "parametersJsonSchema", json_schema_copy(params)) < 0)
            goto fail;
    } else if (schema != NULL && set(x, decl, "parameters", schema) < 0) {
        goto fail;
    }
    return push(x, decls, decl);
fail:
    json_decref(decl);
    return GB_ENOMEM;
}

static int add_function_tools(struct xl *x, const json_t *oai, json_t *tools)
{
    const json_t *list = get(oai, "tools"), *t;
    json_t *decls;
    size_t i;
    int rc = 0;

    if (list == NULL)
        return 0;
    if (!json_is_array(list))
        return bad(x, "tools", "tools must be an array");
    decls = json_array();
    if (decls == NULL)
        return oom(x);
    json_array_foreach(list, i, t)
    {
        rc = add_function_decl(x, i, t, decls);
        if (rc < 0)
            break;
    }
    if (rc < 0 || json_array_size(decls) == 0) {
        json_decref(decls);
        return rc;
    }
    return push(x, tools, json_pack("{s:o}", "functionDeclarations", decls));
}

/* Function tools, then the built-in tools: googleSearch for a "-search"
 * model and codeExecution from opts, unless the request has function
 * tools, which win (Gemini refuses built-in and function tools together on
 * most models); out->builtin_dropped records that. */
static int add_tools(struct xl *x, const json_t *oai, struct gb_chat_req *out, json_t *body)
{
    int code = x->opts != NULL && x->opts->code_execution;
    json_t *tools = json_array();
    int rc;

    if (tools == NULL)
        return oom(x);
    /* the form tools replaced in 2023: taken silently, the model could never
     * call them; answered in tools' form, a client of the old one would not
     * see the call either */
    if (get(oai, "functions") != NULL || get(oai, "function_call") != NULL) {
        json_decref(tools);
        return bad(x, get(oai, "functions") != NULL ? "functions" : "function_call",
                   "functions and function_call are OpenAI's deprecated form of tools and "
                   "tool_choice: send tools (and tool_choice) instead");
    }
    rc = add_function_tools(x, oai, tools);
    if (rc == 0 && json_array_size(tools) > 0) {
        out->builtin_dropped = out->search || code;
    } else {
        if (rc == 0 && out->search)
            rc = push(x, tools, json_pack("{s:{}}", "googleSearch"));
        if (rc == 0 && code)
            rc = push(x, tools, json_pack("{s:{}}", "codeExecution"));
    }
    if (rc < 0 || json_array_size(tools) == 0) {
        json_decref(tools);
        return rc;
    }
    return set(x, body, "tools", tools);
}

static const struct {
    const char *openai;
    const char *mode;
} tool_modes[] = {{"none", "NONE"}, {"auto", "AUTO"}, {"required", "ANY"}};

/* tool_choice -> toolConfig.functionCallingConfig: "none"/"auto"/"required"
 * -> NONE/AUTO/ANY, {"type":"function","function":{"name":N}} -> ANY limited
 * to N.  parallel_tool_calls has no Gemini equivalent (Gemini decides how
 * many calls to make) and is ignored. */
static int add_tool_choice(struct xl *x, const json_t *oai, json_t *body)
{
    const json_t *tc = get(oai, "tool_choice");
    const char *s = json_string_value(tc), *name;
    size_t i;

    if (tc == NULL)
        return 0;
    for (i = 0; s != NULL && i < sizeof tool_modes / sizeof tool_modes[0]; i++) {
        if (strcmp(s, tool_modes[i].openai) == 0)
            return set(x, body, "toolConfig",
                       json_pack("{s:{s:s}}", "functionCallingConfig", "mode", tool_modes[i].mode));
    }
    name = json_string_value(json_object_get(json_object_get(tc, "function"), "name"));
    if (name == NULL)
        return bad(x, "tool_choice",
                   "tool_choice must be none, auto, required or {\"type\":\"function\",...}");
    return set(x, body, "toolConfig",
               json_pack("{s:{s:s,s:[s]}}", "functionCallingConfig", "mode", "ANY",
                         "allowedFunctionNames", name));
}

/* ---- 5. request: generationConfig --------------------------------------- */

enum gen_kind {
    GEN_NUMBER,  /* any JSON number within [min, max] */
    GEN_INTEGER, /* JSON integer within [min, max] */
    GEN_STOP     /* string or array of strings -> array */
};

/* One OpenAI sampling parameter and where it goes.  Rows are applied in
 * order, so a later row for the same Gemini key wins. */
struct gen_param {
    const char *openai; /* OpenAI name, also the error param */
    const char *gemini; /* generationConfig key */
    enum gen_kind kind;
    double min, max;   /* inclusive range (numbers and integers) */
    const char *range; /* how the range reads in an error message */
};

static const struct gen_param gen_params[] = {
    {"temperature", "temperature", GEN_NUMBER, 0, 2, "between 0 and 2"},
    {"top_p", "topP", GEN_NUMBER, 0, 1, "between 0 and 1"},
    {"max_tokens", "maxOutputTokens", GEN_INTEGER, 1, INT_MAX, "at least 1"},
    {"max_completion_tokens", "maxOutputTokens", GEN_INTEGER, 1, INT_MAX, "at least 1"},
    {"stop", "stopSequences", GEN_STOP, 0, 0, NULL},
    {"n", "candidateCount", GEN_INTEGER, 1, GB_CHAT_MAX_CHOICES, "between 1 and 8"},
    {"presence_penalty", "presencePenalty", GEN_NUMBER, -2, 2, "between -2 and 2"},
    {"frequency_penalty", "frequencyPenalty", GEN_NUMBER, -2, 2, "between -2 and 2"},
    {"seed", "seed", GEN_INTEGER, INT_MIN, INT_MAX, "a 32-bit integer"},
};

static int stop_sequences(struct xl *x, const json_t *v, json_t **res)
{
    const json_t *s;
    size_t i;

    /* an empty string stops nothing (OpenAI ignores it); Gemini would take
     * it as a sequence; none left: no stopSequences (*res NULL) */
    if (json_is_string(v)) {
        if (json_string_length(v) == 0)
            return 0;
        *res = json_pack("[O]", v);
        return *res ? 0 : oom(x);
    }
    if (!json_is_array(v))
        return bad(x, "stop", "stop must be a string or an array of strings");
    json_array_foreach(v, i, s)
    {
        if (!json_is_string(s))
            return bad(x, "stop", "stop must be a string or an array of strings");
    }
    if ((*res = json_array()) == NULL)
        return oom(x);
    json_array_foreach(v, i, s)
    {
        if (json_string_length(s) > 0 &&
            json_array_append_new(*res, json_stringn(json_string_value(s), json_string_length(s))) <
                0) {
            json_decref(*res);
            *res = NULL;
            return oom(x);
        }
    }
    if (json_array_size(*res) == 0) {
        json_decref(*res);
        *res = NULL;
    }
    return 0;
}

/* Checks one present parameter; *res gets the Gemini value. */
static int gen_value(struct xl *x, const struct gen_param *p, const json_t *v, json_t **res)
{
    double d;

    if (p->kind == GEN_STOP)
        return stop_sequences(x, v, res);
    if (p->kind == GEN_INTEGER && !json_is_integer(v))
        return bad(x, p->openai, "%s must be an integer", p->openai);
    if (!json_is_number(v))
        return bad(x, p->openai, "%s must be a number", p->openai);
    d = json_number_value(v);
    if (d < p->min || d > p->max)
        return bad(x, p->openai, "%s must be %s", p->openai, p->range);
    *res = json_deep_copy(v);
    return *res ? 0 : oom(x);
}

/* response_format: json_object -> JSON mime type; json_schema -> also
 * responseSchema, the schema cleaned like function parameters (the field
 * every Gemini model takes; responseJsonSchema is newer and narrower). */
static int add_response_format(struct xl *x, const json_t *oai, json_t *gc)
{
    const json_t *rf = get(oai, "response_format");
    const char *type = json_string_value(json_object_get(rf, "type"));
    const json_t *schema;
    json_t *clean;

    if (rf == NULL || (type != NULL && strcmp(type, "text") == 0))
        return 0;
    if (type == NULL || (strcmp(type, "json_object") != 0 && strcmp(type, "json_schema") != 0))
        return bad(x, "response_format",
                   "response_format type must be text, json_object or json_schema");
    if (set(x, gc, "responseMimeType", json_string("application/json")) < 0)
        return GB_ENOMEM;
    if (strcmp(type, "json_object") == 0)
        return 0;
    schema = json_object_get(json_object_get(rf, "json_schema"), "schema");
    if (!json_is_object(schema))
        return bad(x, "response_format", "response_format json_schema needs a schema object");
    clean = gb_schema_clean_budget(schema, &x->schema_nodes);
    if (clean != NULL && gb_schema_has_free_object(clean) && gb_schema_has_free_map(schema)) {
        json_decref(clean);
        return set(x, gc, "responseJsonSchema", json_schema_copy(schema));
    }
    if (clean == NULL || gb_schema_add_ordering(clean) < 0) {
        json_decref(clean);
        return oom(x);
    }
    return set(x, gc, "responseSchema", clean);
}

/* reasoning_effort -> thinkingConfig.  Gemini 3 takes a level (it cannot
 * turn thinking off: none and minimal ask for its lowest level), earlier
 * models a budget in tokens.  2.5 Pro cannot turn it off either ("Budget 0
 * is invalid. This model only works in thinking mode."): none is its least
 * budget, 128.  xhigh and max (openai 6's ReasoningEffort) are the model's
 * largest budget: 32768 for Pro, 24576 for Flash. */
#define BUDGET_MODEL_MAX (-2)
static const struct {
    const char *effort;
    int budget;        /* thinkingBudget, tokens */
    const char *level; /* thinkingLevel (Gemini 3) */
} efforts[] = {
    {"none", 0, "low"},
    {"minimal", 512, "low"},
    {"low", 1024, "low"},
    {"medium", 8192, "high"},
    {"high", 24576, "high"},
    {"xhigh", BUDGET_MODEL_MAX, "high"},
    {"max", BUDGET_MODEL_MAX, "high"},
};

/* thinkingConfig from reasoning_effort, else from opts->thinking_budget_map
 * (exact upstream model name -> budget).  includeThoughts is asked for only
 * when thinking is on and opts->show_thinking will show the thoughts. */
static int add_thinking(struct xl *x, const json_t *oai, json_t *gc)
{
    const json_t *re = get(oai, "reasoning_effort"), *mb;
    const char *e = json_string_value(re);
    int show = x->opts != NULL && x->opts->show_thinking, thinking, budget;
    int pro = strstr(x->out->model, "-pro") != NULL;
    json_t *tc = NULL;
    size_t i;

    if (re != NULL) {
        for (i = 0; e != NULL && i < sizeof efforts / sizeof efforts[0]; i++) {
            if (strcmp(e, efforts[i].effort) == 0)
                break;
        }
        if (e == NULL || i == sizeof efforts / sizeof efforts[0])
            return bad(x, "reasoning_effort",
                       "reasoning_effort must be none, minimal, low, medium, high, xhigh or max");
        budget = efforts[i].budget;
        if (budget == 0 && pro)
            budget = 128;
        else if (budget == BUDGET_MODEL_MAX)
            budget = pro ? 32768 : 24576;
        thinking = x->gemini3 || efforts[i].budget != 0;
        tc = x->gemini3 ? json_pack("{s:s}", "thinkingLevel", efforts[i].level)
                        : json_pack("{s:i}", "thinkingBudget", budget);
    } else {
        const char *model = x->out->model;

        if (strncmp(model, "models/", 7) == 0)
            model += 7;
        mb = x->opts ? json_object_get(x->opts->thinking_budget_map, model) : NULL;
        if (!json_is_integer(mb))
            return 0;
        thinking = json_integer_value(mb) != 0;
        tc = json_pack("{s:I}", "thinkingBudget", json_integer_value(mb));
    }
    if (tc != NULL && thinking && show &&
        json_object_set_new(tc, "includeThoughts", json_true()) < 0) {
        json_decref(tc);
        return oom(x);
    }
    return set(x, gc, "thinkingConfig", tc);
}

static int add_generation_config(struct xl *x, const json_t *oai, struct gb_chat_req *out,
                                 json_t *body)
{
    json_t *gc = json_object(), *v = NULL;
    size_t i;
    int rc = gc ? 0 : oom(x);

    for (i = 0; rc == 0 && i < sizeof gen_params / sizeof gen_params[0]; i++) {
        const json_t *in = get(oai, gen_params[i].openai);

        if (in == NULL)
            continue;
        v = NULL;
        rc = gen_value(x, &gen_params[i], in, &v);
        if (rc == 0 && v != NULL) /* NULL: nothing to send (stop: "") */
            rc = set(x, gc, gen_params[i].gemini, v);
        if (rc == 0 && strcmp(gen_params[i].openai, "n") == 0)
            out->n = (int)json_integer_value(in);
    }
    if (rc == 0)
        rc = add_response_format(x, oai, gc);
    if (rc == 0)
        rc = add_thinking(x, oai, gc);
    if (rc < 0 || json_object_size(gc) == 0) {
        json_decref(gc);
        return rc;
    }
    return set(x, body, "generationConfig", gc);
}

/* ---- 6. request: entry point, remote parts ------------------------------ */

static int parse_model(struct xl *x, const json_t *oai, struct gb_chat_req *out)
{
    const json_t *m = get(oai, "model");
    size_t len = json_string_length(m), sfx = strlen(GB_SEARCH_SUFFIX);

    if (!json_is_string(m) || len == 0)
        return bad(x, "model", "model must be a non-empty string");
    if (len > GB_MODEL_NAME_MAX || strlen(json_string_value(m)) != len)
        return bad(x, "model", "model name must be at most %d bytes", GB_MODEL_NAME_MAX);
    copy_str(out->client_model, sizeof out->client_model, json_string_value(m));
    copy_str(out->model, sizeof out->model, out->client_model);
    if (len > sfx && strcmp(out->model + len - sfx, GB_SEARCH_SUFFIX) == 0) {
        out->model[len - sfx] = '\0';
        out->search = 1;
    }
    x->gemini3 = strstr(out->model, GB_CHAT_GEMINI3) != NULL;
    return 0;
}

static int parse_stream(struct xl *x, const json_t *oai, struct gb_chat_req *out)
{
    const json_t *st = get(oai, "stream"), *so = get(oai, "stream_options"), *iu;

    if (st != NULL && !json_is_boolean(st))
        return bad(x, "stream", "stream must be a boolean");
    if (so != NULL && !json_is_object(so))
        return bad(x, "stream_options", "stream_options must be an object");
    iu = get(so, "include_usage");
    if (iu != NULL && !json_is_boolean(iu))
        return bad(x, "stream_options.include_usage", "include_usage must be a boolean");
    out->stream = json_is_true(st);
    out->include_usage = json_is_true(iu);
    return 0;
}

static int add_safety(struct xl *x, json_t *body)
{
    const json_t *ss = x->opts ? x->opts->safety_settings : NULL;

    if (!json_is_array(ss))
        return 0;
    /* shared, not copied: the config marks it immortal (see config.c), so
     * this incref and the body's decref do not touch it from many threads */
    return set(x, body, "safetySettings", json_incref((json_t *)ss));
}

json_t *gb_chat_request_to_gemini(const json_t *oai, const struct gb_chat_opts *opts,
                                  struct gb_chat_req *out, struct gb_chat_err *err)
{
    struct xl x = {.opts = opts, .out = out, .err = err, .schema_nodes = GB_SCHEMA_REQUEST_NODES};
    json_t *body = NULL;

    err->message[0] = '\0';
    err->param[0] = '\0';
    memset(out, 0, sizeof *out);
    out->n = 1;
    gb_buf_init(&x.system, GB_CHAT_TEXT_MAX);
    x.call_names = json_object();
    body = json_object();
    x.contents = json_array();
    if (json_object_set_new(body, "contents", x.contents) < 0 || x.call_names == NULL) {
        oom(&x);
        goto fail;
    }
    if (!json_is_object(oai)) {
        bad(&x, "", "request body must be a json object");
        goto fail;
    }
    if (parse_model(&x, oai, out) < 0 || parse_stream(&x, oai, out) < 0 ||
        add_messages(&x, oai, body) < 0 || add_tools(&x, oai, out, body) < 0 ||
        add_tool_choice(&x, oai, body) < 0 || add_generation_config(&x, oai, out, body) < 0 ||
        add_safety(&x, body) < 0)
        goto fail;
    gb_buf_release(&x.system);
    json_decref(x.call_names);
    return body;
fail:
    json_decref(body);
    gb_buf_release(&x.system);
    json_decref(x.call_names);
    return NULL;
}

char *gb_chat_body_dumps(json_t *body, const json_t *shared, const char *shared_text, size_t *len)
{
    const char *last = NULL;
    struct gb_buf b;
    void *it;

    for (it = json_object_iter(body); it != NULL; it = json_object_iter_next(body, it))
        last = json_object_iter_key(it);
    if (shared == NULL || shared_text == NULL || last == NULL ||
        strcmp(last, "safetySettings") != 0 || json_object_get(body, last) != shared)
        return gb_jsonw_dumps(body, len);
    json_object_del(body, "safetySettings");
    gb_buf_init(&b, (size_t)1 << 31);
    if (gb_jsonw_value(&b, body) < 0) {
        gb_buf_release(&b);
        return NULL;
    }
    gb_buf_truncate(&b, b.len - 1); /* the closing brace */
    if (gb_buf_puts(&b, b.len > 1 ? ",\"safetySettings\":" : "\"safetySettings\":") < 0 ||
        gb_buf_puts(&b, shared_text) < 0 || gb_buf_puts(&b, "}") < 0) {
        gb_buf_release(&b);
        return NULL;
    }
    return gb_buf_take(&b, len);
}

/* ---- 6b. request without a tree ------------------------------------------ */

/* What a scanned request walks with. */
struct rscan {
    struct gb_jscan j;
    struct gb_buf *body;  /* the Gemini body being written */
    struct gb_buf system; /* system and developer texts, joined */
    struct gb_buf text;   /* the content of the message being read */
    size_t turns;         /* contents written */
};

/* One message, {"role": ..., "content": "..."} in either order. */
static int rscan_message(struct rscan *x)
{
    const char *k, *r = NULL;
    size_t rlen = 0, klen;
    unsigned seen = 0;
    int rc;

    gb_buf_reset(&x->text);
    if (gb_jscan_object(&x->j) < 0)
        return GB_EAGAIN;
    while ((rc = gb_jscan_key(&x->j, &k, &klen)) == 1) {
        if (gb_jscan_is(k, klen, "content") && !(seen & 1u)) {
            seen |= 1u;
            rc = gb_jscan_string(&x->j, &x->text);
        } else if (gb_jscan_is(k, klen, "role") && !(seen & 2u)) {
            seen |= 2u;
            rc = gb_jscan_plain(&x->j, &r, &rlen); /* an escaped role: the general path */
        } else {
            return GB_EAGAIN; /* name, tool calls, a repeated member ... */
        }
        if (rc < 0)
            return GB_EAGAIN;
    }
    if (rc < 0 || seen != 3u)
        return GB_EAGAIN;
    if (gb_jscan_is(r, rlen, "system") || gb_jscan_is(r, rlen, "developer")) {
        /* as collect_text: joined with "\n", empty texts too */
        if (x->system.len > 0 && gb_buf_puts(&x->system, "\n") < 0)
            return GB_ENOMEM;
        return gb_buf_append(&x->system, x->text.data ? x->text.data : "", x->text.len);
    }
    if (!gb_jscan_is(r, rlen, "user") && !gb_jscan_is(r, rlen, "assistant"))
        return GB_EAGAIN;
    if (x->text.len == 0)
        return 0; /* a turn without parts is left out */
    rc = gb_buf_puts(x->body, x->turns++ > 0 ? ",{\"role\":\"" : "{\"role\":\"");
    rc = rc ? rc : gb_buf_puts(x->body, r[0] == 'u' ? "user" : "model");
    rc = rc ? rc : gb_buf_puts(x->body, "\",\"parts\":[{\"text\":");
    rc = rc ? rc : gb_jsonw_string(x->body, x->text.data, x->text.len);
    return rc ? rc : gb_buf_puts(x->body, "}]}");
}

/* "stream_options": {"include_usage": bool, ...}. */
static int rscan_stream_options(struct rscan *x, struct gb_chat_req *out)
{
    unsigned seen = 0;
    const char *k;
    size_t klen;
    int rc, v;

    if (gb_jscan_object(&x->j) < 0)
        return GB_EAGAIN;
    while ((rc = gb_jscan_key(&x->j, &k, &klen)) == 1) {
        if (gb_jscan_is(k, klen, "include_usage")) {
            if (seen++ > 0 || gb_jscan_bool(&x->j, &v) < 0)
                return GB_EAGAIN;
            out->include_usage = v;
        } else if (gb_jscan_skip(&x->j) < 0) {
            return GB_EAGAIN;
        }
    }
    return rc < 0 ? GB_EAGAIN : 0;
}

/* "model": a plain name the general path would keep as it is. */
static int rscan_model(struct rscan *x, const struct gb_chat_opts *opts, struct gb_chat_req *out)
{
    size_t sfx = strlen(GB_SEARCH_SUFFIX), len;
    const char *model;

    gb_buf_reset(&x->text);
    if (gb_jscan_string(&x->j, &x->text) < 0 || x->text.len == 0 || x->text.len > GB_MODEL_NAME_MAX)
        return GB_EAGAIN;
    len = x->text.len;
    if (len > sfx && strcmp(x->text.data + len - sfx, GB_SEARCH_SUFFIX) == 0)
        return GB_EAGAIN; /* search: tools */
    model = strncmp(x->text.data, "models/", 7) == 0 ? x->text.data + 7 : x->text.data;
    if (opts != NULL && json_object_get(opts->thinking_budget_map, model) != NULL)
        return GB_EAGAIN; /* a thinking budget: generationConfig */
    copy_str(out->client_model, sizeof out->client_model, x->text.data);
    copy_str(out->model, sizeof out->model, x->text.data);
    return 0;
}

static int rscan_body(struct rscan *x, const struct gb_chat_opts *opts, const char *safety_text,
                      struct gb_chat_req *out)
{
    unsigned seen = 0;
    const char *k;
    size_t klen;
    int rc, v;

    if (gb_jscan_object(&x->j) < 0 || gb_buf_puts(x->body, "{\"contents\":[") < 0)
        return GB_EAGAIN;
    while ((rc = gb_jscan_key(&x->j, &k, &klen)) == 1) {
        if (gb_jscan_is(k, klen, "model") && !(seen & 1u)) {
            seen |= 1u;
            rc = rscan_model(x, opts, out);
        } else if (gb_jscan_is(k, klen, "messages") && !(seen & 2u)) {
            seen |= 2u;
            if (gb_jscan_array(&x->j) < 0)
                return GB_EAGAIN;
            while ((rc = gb_jscan_item(&x->j)) == 1) {
                if ((rc = rscan_message(x)) < 0)
                    return rc;
            }
        } else if (gb_jscan_is(k, klen, "stream") && !(seen & 4u)) {
            seen |= 4u;
            rc = gb_jscan_bool(&x->j, &v);
            out->stream = v;
        } else if (gb_jscan_is(k, klen, "stream_options") && !(seen & 8u)) {
            seen |= 8u;
            rc = rscan_stream_options(x, out);
        } else {
            return GB_EAGAIN; /* any other parameter: the general path */
        }
        if (rc < 0)
            return rc == GB_ENOMEM ? rc : GB_EAGAIN;
    }
    if (rc < 0 || (seen & 3u) != 3u || gb_jscan_finish(&x->j) < 0)
        return GB_EAGAIN;
    if (x->turns == 0 && x->system.len == 0)
        return GB_EAGAIN; /* no content: the general path says so */
    if (x->turns == 0) {  /* system messages only: one user turn */
        rc = gb_buf_puts(x->body, "{\"role\":\"user\",\"parts\":[{\"text\":");
        rc = rc ? rc : gb_jsonw_string(x->body, x->system.data, x->system.len);
        rc = rc ? rc : gb_buf_puts(x->body, "}]}]");
    } else {
        rc = gb_buf_puts(x->body, "]");
        if (rc == 0 && x->system.len > 0) {
            rc = gb_buf_puts(x->body, ",\"systemInstruction\":{\"parts\":[{\"text\":");
            rc = rc ? rc : gb_jsonw_string(x->body, x->system.data, x->system.len);
            rc = rc ? rc : gb_buf_puts(x->body, "}]}");
        }
    }
    if (rc == 0 && safety_text != NULL) {
        rc = gb_buf_puts(x->body, ",\"safetySettings\":");
        rc = rc ? rc : gb_buf_puts(x->body, safety_text);
    }
    return rc ? rc : gb_buf_puts(x->body, "}");
}

int gb_chat_request_scan(const char *p, size_t n, const struct gb_chat_opts *opts,
                         const char *safety_text, struct gb_chat_req *out, struct gb_buf *body)
{
    struct rscan x;
    int rc;

    memset(out, 0, sizeof *out);
    out->n = 1;
    if (opts != NULL &&
        (opts->code_execution || (json_is_array(opts->safety_settings) && safety_text == NULL)))
        return GB_EAGAIN; /* tools; or settings without their text */
    if (opts == NULL || !json_is_array(opts->safety_settings))
        safety_text = NULL;
    memset(&x, 0, sizeof x);
    gb_jscan_init(&x.j, p, n);
    x.body = body;
    gb_buf_init(&x.system, GB_CHAT_TEXT_MAX);
    gb_buf_init(&x.text, GB_CHAT_TEXT_MAX);
    rc = rscan_body(&x, opts, safety_text, out);
    gb_buf_release(&x.system);
    gb_buf_release(&x.text);
    return rc < 0 ? GB_EAGAIN : 0;
}

size_t gb_chat_remote_parts(json_t *gemini_body, json_t **parts, size_t max)
{
    json_t *content, *part;
    size_t i, k, n = 0;

    json_array_foreach(json_object_get(gemini_body, "contents"), i, content)
    {
        json_array_foreach(json_object_get(content, "parts"), k, part)
        {
            if (json_object_get(part, GB_CHAT_FETCH_KEY) == NULL)
                continue;
            if (n < max)
                parts[n] = part;
            n++;
        }
    }
    return n;
}

/* ---- 7. response: parts -> content, reasoning and tool_calls, usage ---- */

static const struct {
    const char *gemini;
    const char *openai;
} finish_reasons[] = {
    {"STOP", "stop"},
    {"MAX_TOKENS", "length"},
    {"SAFETY", "content_filter"},
    {"RECITATION", "content_filter"},
    {"BLOCKLIST", "content_filter"},
    {"PROHIBITED_CONTENT", "content_filter"},
    {"SPII", "content_filter"},
    {"IMAGE_SAFETY", "content_filter"},
};

const char *gb_chat_finish_reason(const char *gemini_reason)
{
    size_t i;

    if (gemini_reason == NULL)
        return NULL;
    for (i = 0; i < sizeof finish_reasons / sizeof finish_reasons[0]; i++) {
        if (strcmp(gemini_reason, finish_reasons[i].gemini) == 0)
            return finish_reasons[i].openai;
    }
    return "stop";
}

/* finish_reason of a choice: "tool_calls" replaces a plain "stop" when the
 * choice called tools; JSON null when Gemini gave no reason. */
static json_t *finish_json(const char *gemini_reason, int has_tool_calls)
{
    const char *r = gb_chat_finish_reason(gemini_reason);

    if (r == NULL)
        return json_null();
    if (has_tool_calls && strcmp(r, "stop") == 0)
        r = "tool_calls";
    return json_string(r);
}

void gb_chat_usage_read(const json_t *um, struct gb_gem_usage *u)
{
    const json_t *thoughts = json_object_get(um, "thoughtsTokenCount");
    const json_t *total = json_object_get(um, "totalTokenCount");
    const json_t *cached = json_object_get(um, "cachedContentTokenCount");

    memset(u, 0, sizeof *u);
    u->prompt = json_integer_value(json_object_get(um, "promptTokenCount"));
    u->candidates = json_integer_value(json_object_get(um, "candidatesTokenCount"));
    u->thoughts = json_integer_value(thoughts);
    u->total = json_integer_value(total);
    u->cached = json_integer_value(cached);
    u->has_thoughts = json_is_integer(thoughts);
    u->has_total = json_is_integer(total);
    u->has_cached = json_is_integer(cached);
}

/* Sums that wrap instead of overflowing on absurd counts. */
static long long add_ll(long long a, long long b)
{
    return (long long)((unsigned long long)a + (unsigned long long)b);
}

/* OpenAI's usage numbers: completion counts thoughts too; total is
 * Gemini's, else the sum. */
static void usage_counts(const struct gb_gem_usage *u, long long *completion, long long *total)
{
    *completion = add_ll(u->candidates, u->thoughts);
    *total = u->has_total ? u->total : add_ll(u->prompt, *completion);
}

/* OpenAI usage as a tree. */
static json_t *usage_new(const struct gb_gem_usage *u)
{
    long long completion, total;
    json_t *o;

    usage_counts(u, &completion, &total);
    o = json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)u->prompt, "completion_tokens",
                  (json_int_t)completion, "total_tokens", (json_int_t)total);
    if (o != NULL && u->has_cached &&
        json_object_set_new(o, "prompt_tokens_details",
                            json_pack("{s:I}", "cached_tokens", (json_int_t)u->cached)) < 0)
        goto fail;
    if (o != NULL && u->has_thoughts &&
        json_object_set_new(o, "completion_tokens_details",
                            json_pack("{s:I}", "reasoning_tokens", (json_int_t)u->thoughts)) < 0)
        goto fail;
    return o;
fail:
    json_decref(o);
    return NULL;
}

/* The same usage written as compact JSON text (the bytes of usage_new's
 * tree). */
static int usage_write(struct gb_buf *b, const struct gb_gem_usage *u)
{
    long long completion, total;
    int rc;

    usage_counts(u, &completion, &total);
    rc = gb_buf_puts(b, "{\"prompt_tokens\":");
    rc = rc ? rc : gb_jsonw_integer(b, u->prompt);
    rc = rc ? rc : gb_buf_puts(b, ",\"completion_tokens\":");
    rc = rc ? rc : gb_jsonw_integer(b, completion);
    rc = rc ? rc : gb_buf_puts(b, ",\"total_tokens\":");
    rc = rc ? rc : gb_jsonw_integer(b, total);
    if (u->has_cached) {
        rc = rc ? rc : gb_buf_puts(b, ",\"prompt_tokens_details\":{\"cached_tokens\":");
        rc = rc ? rc : gb_jsonw_integer(b, u->cached);
        rc = rc ? rc : gb_buf_puts(b, "}");
    }
    if (u->has_thoughts) {
        rc = rc ? rc : gb_buf_puts(b, ",\"completion_tokens_details\":{\"reasoning_tokens\":");
        rc = rc ? rc : gb_jsonw_integer(b, u->thoughts);
        rc = rc ? rc : gb_buf_puts(b, "}");
    }
    return rc ? rc : gb_buf_puts(b, "}");
}

json_t *gb_chat_usage_from_gemini(const json_t *usage_metadata)
{
    struct gb_gem_usage u;

    if (usage_metadata == NULL)
        return NULL;
    gb_chat_usage_read(usage_metadata, &u);
    return usage_new(&u);
}

/* What one candidate's parts add up to. */
struct cand {
    struct gb_buf text;     /* content: non-thought text and code blocks */
    struct gb_buf thoughts; /* reasoning_content: thought text, when shown */
    json_t *tool_calls;     /* OpenAI tool_calls, owned; empty when none */
};

/* How one candidate's parts are read. */
struct cand_ctx {
    const char *id;    /* completion id: seeds generated tool call ids */
    json_int_t choice; /* choice index */
    int first_tool;    /* tool calls already sent on this choice (streams) */
    int with_index;    /* 1: tool calls carry "index" (stream deltas) */
    int show_thinking; /* 1: thought text goes to reasoning_content */
    char prev;         /* last content byte sent before these parts, 0 if none */
};

/* GB_CHAT_TOOL_ID_RAND characters of [A-Za-z0-9] derived from (id, choice,
 * k): FNV-1a over the three, then splitmix64 steps.  The same reply always
 * gets the same ids, and the calls of a reply get different ones. */
static void tool_call_rand(const char *id, json_int_t choice, int k, char *out)
{
    static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    uint64_t tail[2] = {(uint64_t)choice, (uint64_t)k};
    uint64_t h = 0xcbf29ce484222325ULL, z;
    const unsigned char *p;
    size_t i;

    for (p = (const unsigned char *)id; *p != '\0'; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    for (p = (const unsigned char *)tail; p < (const unsigned char *)(tail + 2); p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    for (i = 0; i < GB_CHAT_TOOL_ID_RAND; i++) {
        z = (h += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        out[i] = set[(z ^ (z >> 31)) % 62];
    }
    out[GB_CHAT_TOOL_ID_RAND] = '\0';
}

/* Tool call id: Gemini's functionCall.id when it has one, else "call_" and
 * GB_CHAT_TOOL_ID_RAND characters from tool_call_rand. */
static json_t *tool_call_id(const json_t *fc, const struct cand_ctx *cx, int k)
{
    const char *fid = json_string_value(json_object_get(fc, "id"));
    char buf[sizeof "call_" + GB_CHAT_TOOL_ID_RAND];

    if (fid != NULL && fid[0] != '\0')
        return json_string(fid);
    memcpy(buf, "call_", 5);
    tool_call_rand(cx->id, cx->choice, k, buf + 5);
    return json_string(buf);
}

/* A functionCall part -> {["index",] "id", "type", "function":{"name",
 * "arguments"}[, "extra_content":{"google":{"thought_signature"}}]}; index
 * (the call's position in the choice) is only used by stream deltas. */
static json_t *tool_call_new(const json_t *part, const struct cand_ctx *cx, int k)
{
    const json_t *fc = json_object_get(part, "functionCall");
    const json_t *args = json_object_get(fc, "args");
    const char *name = json_string_value(json_object_get(fc, "name"));
    const char *sig = json_string_value(json_object_get(part, "thoughtSignature"));
    char *args_s = args ? json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_t *tc = json_object();
    int rc = tc ? 0 : -1;

    if (cx->with_index)
        rc |= json_object_set_new(tc, "index", json_integer(k));
    rc |= json_object_set_new(tc, "id", tool_call_id(fc, cx, k));
    rc |= json_object_set_new(tc, "type", json_string("function"));
    rc |= json_object_set_new(
        tc, "function",
        json_pack("{s:s,s:s}", "name", name ? name : "", "arguments", args_s ? args_s : "{}"));
    if (sig != NULL)
        rc |= json_object_set_new(tc, "extra_content",
                                  json_pack("{s:{s:s}}", "google", "thought_signature", sig));
    free(args_s);
    if (rc < 0) {
        json_decref(tc);
        return NULL;
    }
    return tc;
}

/* "```<lang>\n<body>\n```\n", one trailing newline of body dropped (the
 * fence brings its own). */
static int code_block(struct gb_buf *b, const char *lang, const char *body)
{
    size_t n = strlen(body);
    int rc;

    if (n > 0 && body[n - 1] == '\n')
        n--;
    rc = gb_buf_printf(b, "```%s\n", lang);
    if (rc == 0)
        rc = gb_buf_append(b, body, n);
    if (rc == 0)
        rc = gb_buf_puts(b, "\n```\n");
    return rc;
}

/* executableCode -> a code block in its language (lower case), and
 * codeExecutionResult -> an "output" block plus "Outcome: X" when X is not
 * OUTCOME_OK, so code execution shows up in plain chat clients.  A block
 * starts on a new line: prev is the byte before it when b is empty (the
 * last one sent on this choice), 0 at the start. */
static int add_code_part(struct gb_buf *b, const json_t *ec, const json_t *cr, char prev)
{
    const char *output = json_string_value(json_object_get(cr, "output"));
    const char *outcome = json_string_value(json_object_get(cr, "outcome"));
    const char *code = json_string_value(json_object_get(ec, "code"));
    const char *lang = json_string_value(json_object_get(ec, "language"));
    int show_output = output != NULL && output[0] != '\0';
    int show_outcome = outcome != NULL && strcmp(outcome, "OUTCOME_OK") != 0;
    char lower[32];
    size_t i = 0;
    int rc = 0;

    if (ec == NULL && !show_output && !show_outcome)
        return 0;
    if (b->len > 0)
        prev = b->data[b->len - 1];
    if (prev != '\0' && prev != '\n')
        rc = gb_buf_puts(b, "\n");
    if (ec != NULL) {
        if (lang != NULL && strcmp(lang, "LANGUAGE_UNSPECIFIED") != 0) {
            for (; lang[i] != '\0' && i + 1 < sizeof lower; i++)
                lower[i] = (char)tolower((unsigned char)lang[i]);
        }
        lower[i] = '\0';
        return rc < 0 ? rc : code_block(b, lower, code ? code : "");
    }
    if (rc == 0 && show_output)
        rc = code_block(b, "output", output);
    if (rc == 0 && show_outcome)
        rc = gb_buf_printf(b, "Outcome: %s\n", outcome);
    return rc;
}

static int cand_part(struct cand *c, const json_t *part, const struct cand_ctx *cx)
{
    const json_t *text = json_object_get(part, "text");
    const json_t *fc = json_object_get(part, "functionCall");
    const json_t *ec = json_object_get(part, "executableCode");
    const json_t *cr = json_object_get(part, "codeExecutionResult");
    int k = cx->first_tool + (int)json_array_size(c->tool_calls);

    if (json_is_true(json_object_get(part, "thought")))
        return cx->show_thinking && json_is_string(text) ? buf_add_string(&c->thoughts, text) : 0;
    if (json_is_string(text))
        return buf_add_string(&c->text, text);
    if (json_is_object(fc))
        return json_array_append_new(c->tool_calls, tool_call_new(part, cx, k)) < 0 ? GB_ENOMEM : 0;
    if (json_is_object(ec) || json_is_object(cr))
        return add_code_part(&c->text, json_is_object(ec) ? ec : NULL, cr, cx->prev);
    return 0;
}

/* Collects a candidate's parts.  Release with cand_release even on
 * failure. */
static int cand_collect(struct cand *c, const json_t *cand, const struct cand_ctx *cx)
{
    const json_t *parts = json_object_get(json_object_get(cand, "content"), "parts"), *p;
    size_t i;
    int rc;

    gb_buf_init(&c->text, GB_CHAT_TEXT_MAX);
    gb_buf_init(&c->thoughts, GB_CHAT_TEXT_MAX);
    c->tool_calls = json_array();
    if (c->tool_calls == NULL)
        return GB_ENOMEM;
    json_array_foreach(parts, i, p)
    {
        rc = cand_part(c, p, cx);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void cand_release(struct cand *c)
{
    gb_buf_release(&c->text);
    gb_buf_release(&c->thoughts);
    json_decref(c->tool_calls);
    c->tool_calls = NULL;
}

/* Adds the web sources of groundingMetadata.groundingChunks to list
 * ([{"uri","title"}], deduplicated by uri). */
static int sources_add(json_t *list, const json_t *cand)
{
    const json_t *gm = json_object_get(cand, "groundingMetadata");
    const json_t *chunks = json_object_get(gm, "groundingChunks"), *ch, *seen;
    size_t i, j;

    json_array_foreach(chunks, i, ch)
    {
        const json_t *web = json_object_get(ch, "web");
        const char *uri = json_string_value(json_object_get(web, "uri"));
        const char *title = json_string_value(json_object_get(web, "title"));
        int dup = 0;

        if (uri == NULL)
            continue;
        json_array_foreach(list, j, seen)
        {
            dup |= strcmp(json_string_value(json_object_get(seen, "uri")), uri) == 0;
        }
        if (!dup && json_array_append_new(
                        list, json_pack("{s:s,s:s}", "uri", uri, "title", title ? title : uri)) < 0)
            return GB_ENOMEM;
    }
    return 0;
}

/* Appends "\n\n**Sources:**\n- [title](uri)\n..." when list has sources. */
static int sources_render(struct gb_buf *b, const json_t *list)
{
    const json_t *s;
    size_t i;
    int rc;

    if (json_array_size(list) == 0)
        return 0;
    rc = gb_buf_puts(b, "\n\n**Sources:**\n");
    json_array_foreach(list, i, s)
    {
        if (rc == 0)
            rc = gb_buf_printf(b, "- [%s](%s)\n", json_string_value(json_object_get(s, "title")),
                               json_string_value(json_object_get(s, "uri")));
    }
    return rc;
}

static json_t *text_or_null(const struct gb_buf *b)
{
    return b->len ? json_stringn(b->data, b->len) : json_null();
}

/* ---- 8. response: whole reply ------------------------------------------- */

static json_t *choice_new(json_int_t index, json_t *content, const struct gb_buf *reasoning,
                          json_t *tool_calls, json_t *finish)
{
    json_t *msg = json_pack("{s:s,s:o}", "role", "assistant", "content", content);

    if (msg != NULL && reasoning != NULL && reasoning->len > 0 &&
        json_object_set_new(msg, "reasoning_content",
                            json_stringn(reasoning->data, reasoning->len)) < 0) {
        json_decref(msg);
        msg = NULL;
    }
    if (msg != NULL && json_array_size(tool_calls) > 0 &&
        json_object_set(msg, "tool_calls", tool_calls) < 0) {
        json_decref(msg);
        msg = NULL;
    }
    return json_pack("{s:I,s:o,s:n,s:o}", "index", index, "message", msg, "logprobs",
                     "finish_reason", finish);
}

static json_t *choice_from_candidate(const json_t *cand, size_t pos, const char *id,
                                     const struct gb_chat_opts *opts)
{
    const json_t *ix = json_object_get(cand, "index");
    json_int_t index = json_is_integer(ix) ? json_integer_value(ix) : (json_int_t)pos;
    const char *reason = json_string_value(json_object_get(cand, "finishReason"));
    struct cand_ctx cx = {id, index, 0, 0, opts != NULL && opts->show_thinking, '\0'};
    struct cand c;
    json_t *sources = NULL, *choice = NULL;
    int rc;

    rc = cand_collect(&c, cand, &cx);
    if (rc == 0 && opts != NULL && opts->show_search_link) {
        sources = json_array();
        rc = sources ? sources_add(sources, cand) : GB_ENOMEM;
        if (rc == 0)
            rc = sources_render(&c.text, sources);
    }
    if (rc == 0)
        choice = choice_new(index, text_or_null(&c.text), &c.thoughts, c.tool_calls,
                            finish_json(reason, json_array_size(c.tool_calls) > 0));
    json_decref(sources);
    cand_release(&c);
    return choice;
}

static const char *block_reason(const json_t *gem)
{
    return json_string_value(
        json_object_get(json_object_get(gem, "promptFeedback"), "blockReason"));
}

static int blocked_text(struct gb_buf *b, const char *reason)
{
    return gb_buf_printf(b, GB_CHAT_BLOCKED_FMT, reason);
}

/* No candidates: the prompt was blocked (promptFeedback.blockReason); the
 * client still gets one choice, saying so, with "content_filter".  Without
 * a block reason the choice is empty, with "stop". */
static json_t *blocked_choice(const json_t *gem)
{
    const char *reason = block_reason(gem);
    struct gb_buf b;
    json_t *choice = NULL;

    if (reason == NULL)
        return choice_new(0, json_null(), NULL, NULL, json_string("stop"));
    gb_buf_init(&b, GB_CHAT_TEXT_MAX);
    if (blocked_text(&b, reason) == 0)
        choice = choice_new(0, text_or_null(&b), NULL, NULL, json_string("content_filter"));
    gb_buf_release(&b);
    return choice;
}

static json_t *choices_new(const json_t *gem, const char *id, const struct gb_chat_opts *opts)
{
    const json_t *cands = json_object_get(gem, "candidates"), *cand;
    json_t *choices = json_array();
    size_t i;

    if (choices == NULL)
        return NULL;
    json_array_foreach(cands, i, cand)
    {
        if (json_array_append_new(choices, choice_from_candidate(cand, i, id, opts)) < 0)
            goto fail;
    }
    if (json_array_size(choices) == 0 && json_array_append_new(choices, blocked_choice(gem)) < 0)
        goto fail;
    return choices;
fail:
    json_decref(choices);
    return NULL;
}

static json_t *usage_of(const json_t *gem)
{
    struct gb_gem_usage u;

    gb_chat_usage_read(json_object_get(gem, "usageMetadata"), &u);
    return usage_new(&u);
}

json_t *gb_chat_response_from_gemini(const json_t *gem, const struct gb_chat_req *req,
                                     const struct gb_chat_opts *opts, const char *id,
                                     long long created)
{
    return json_pack("{s:s,s:s,s:I,s:s,s:o,s:o}", "id", id, "object", "chat.completion", "created",
                     (json_int_t)created, "model", req->client_model, "choices",
                     choices_new(gem, id, opts), "usage", usage_of(gem));
}

int gb_chat_response_is_empty(const json_t *gem)
{
    const json_t *cand;
    size_t i;

    if (block_reason(gem) != NULL)
        return 0;
    json_array_foreach(json_object_get(gem, "candidates"), i, cand)
    {
        if (json_object_get(cand, "finishReason") != NULL ||
            json_array_size(json_object_get(json_object_get(cand, "content"), "parts")) > 0)
            return 0;
    }
    return 1;
}

/* ---- 9. stream ---------------------------------------------------------- */

void gb_chat_stream_init(struct gb_chat_stream *s, const struct gb_chat_req *req,
                         const struct gb_chat_opts *opts, const char *id, long long created)
{
    memset(s, 0, sizeof *s);
    copy_str(s->id, sizeof s->id, id);
    copy_str(s->model, sizeof s->model, req->client_model);
    s->created = created;
    s->include_usage = req->include_usage;
    s->show_search_link = opts != NULL && opts->show_search_link;
    s->show_thinking = opts != NULL && opts->show_thinking;
    s->n = req->n;
    gb_buf_init(&s->head, 1024 + 6 * GB_MODEL_NAME_MAX);
}

void gb_chat_stream_release(struct gb_chat_stream *s)
{
    json_decref(s->grounding);
    s->grounding = NULL;
    gb_buf_release(&s->head);
}

/* What one chunk's delta carries. */
struct delta {
    const char *text; /* content */
    size_t text_len;
    const char *thoughts; /* reasoning_content */
    size_t thoughts_len;
    const json_t *tool_calls; /* array, or NULL for none */
};

/* Appends the head every chunk shares, "data: {"id":..,"object":
 * "chat.completion.chunk","created":..,"model":..,"choices":[", made once
 * per stream. */
static int chunk_head(struct gb_chat_stream *s, struct gb_buf *out)
{
    struct gb_buf *h = &s->head;
    int rc = 0;

    if (h->len == 0) {
        rc = gb_buf_puts(h, "data: {\"id\":");
        rc = rc ? rc : gb_jsonw_cstring(h, s->id);
        rc = rc ? rc
                : gb_buf_printf(h, ",\"object\":\"chat.completion.chunk\",\"created\":%lld",
                                s->created);
        rc = rc ? rc : gb_buf_puts(h, ",\"model\":");
        rc = rc ? rc : gb_jsonw_cstring(h, s->model);
        rc = rc ? rc : gb_buf_puts(h, ",\"choices\":[");
        if (rc < 0) {
            gb_buf_reset(h);
            return rc;
        }
    }
    return gb_buf_append(out, h->data, h->len);
}

_Static_assert(GB_CHAT_MAX_CHOICES <= 10, "a choice index is one digit in stream_choice");

/* Writes one chunk with one choice straight as JSON text (the same bytes
 * jansson would dump for the chunk as a tree): a tree per event cost more
 * than the rest of the relay. */
static int stream_choice(struct gb_chat_stream *s, int idx, const struct delta *d,
                         const char *reason, struct gb_buf *out)
{
    int ntools = (int)json_array_size(d->tool_calls);
    const char *fr = gb_chat_finish_reason(reason);
    int rc, first = !s->role_sent[idx];
    size_t start = out->len;
    char num[] = "{\"index\":0,\"delta\":{";

    if (fr != NULL && s->tool_calls[idx] + ntools > 0 && strcmp(fr, "stop") == 0)
        fr = "tool_calls";
    rc = chunk_head(s, out);
    num[9] = (char)('0' + idx); /* 0 <= idx < GB_CHAT_MAX_CHOICES <= 10 */
    rc = rc ? rc : gb_buf_puts(out, num);
    if (first) {
        rc = rc ? rc : gb_buf_puts(out, "\"role\":\"assistant\"");
        if (d->text_len == 0)
            rc = rc ? rc : gb_buf_puts(out, ntools > 0 ? ",\"content\":null" : ",\"content\":\"\"");
    }
    if (d->text_len > 0) {
        rc = rc ? rc : gb_buf_puts(out, first ? ",\"content\":" : "\"content\":");
        rc = rc ? rc : gb_jsonw_string(out, d->text, d->text_len);
    }
    if (d->thoughts_len > 0) {
        rc = rc ? rc
                : gb_buf_puts(out, first || d->text_len > 0 ? ",\"reasoning_content\":"
                                                            : "\"reasoning_content\":");
        rc = rc ? rc : gb_jsonw_string(out, d->thoughts, d->thoughts_len);
    }
    if (ntools > 0) {
        rc = rc ? rc
                : gb_buf_puts(out, first || d->text_len > 0 || d->thoughts_len > 0
                                       ? ",\"tool_calls\":"
                                       : "\"tool_calls\":");
        rc = rc ? rc : gb_jsonw_value(out, d->tool_calls);
    }
    rc = rc ? rc : gb_buf_puts(out, "},\"logprobs\":null,\"finish_reason\":");
    if (fr != NULL)
        rc = rc ? rc : gb_jsonw_cstring(out, fr);
    else
        rc = rc ? rc : gb_buf_puts(out, "null");
    rc = rc ? rc : gb_buf_puts(out, "}]}\n\n");
    if (rc < 0)
        gb_buf_truncate(out, start); /* a chunk goes out whole or not at all */
    if (rc == 0) {
        s->role_sent[idx] = 1;
        s->tool_calls[idx] += ntools;
        if (d->text_len > 0)
            s->last_char[idx] = d->text[d->text_len - 1];
    }
    return rc;
}

/* The web sources remembered for choice idx (NULL when none). */
static json_t *stream_sources_of(const struct gb_chat_stream *s, int idx)
{
    char key[16];

    if (s->grounding == NULL)
        return NULL;
    snprintf(key, sizeof key, "%d", idx);
    return json_object_get(s->grounding, key);
}

/* Remembers the candidate's web sources under its choice index. */
static int stream_sources(struct gb_chat_stream *s, int idx, const json_t *cand, json_t **list)
{
    char key[16];

    snprintf(key, sizeof key, "%d", idx);
    if (s->grounding == NULL && (s->grounding = json_object()) == NULL)
        return GB_ENOMEM;
    *list = json_object_get(s->grounding, key);
    if (*list == NULL) {
        *list = json_array();
        if (json_object_set_new(s->grounding, key, *list) < 0)
            return GB_ENOMEM;
    }
    return sources_add(*list, cand);
}

/* Sends a choice's delta when it carries anything, or is the choice's
 * first. */
static int stream_delta(struct gb_chat_stream *s, int idx, const struct delta *d,
                        const char *reason, struct gb_buf *out)
{
    if (reason != NULL || d->text_len > 0 || d->thoughts_len > 0 ||
        json_array_size(d->tool_calls) > 0 || !s->role_sent[idx])
        return stream_choice(s, idx, d, reason, out);
    return 0;
}

static int stream_candidate(struct gb_chat_stream *s, const json_t *cand, size_t pos,
                            struct gb_buf *out)
{
    const json_t *ix = json_object_get(cand, "index");
    json_int_t index = json_is_integer(ix) ? json_integer_value(ix) : (json_int_t)pos;
    const char *reason = json_string_value(json_object_get(cand, "finishReason"));
    json_t *sources = NULL;
    struct cand_ctx cx = {s->id, index, 0, 1, s->show_thinking, '\0'};
    struct cand c;
    struct delta d;
    int idx, rc;

    if (index < 0 || index >= GB_CHAT_MAX_CHOICES)
        return 0;
    idx = (int)index;
    cx.first_tool = s->tool_calls[idx];
    cx.prev = s->last_char[idx];
    rc = cand_collect(&c, cand, &cx);
    if (rc == 0 && s->show_search_link)
        rc = stream_sources(s, idx, cand, &sources);
    if (rc == 0 && reason != NULL)
        rc = sources_render(&c.text, sources);
    if (rc == 0) {
        d = (struct delta){c.text.data, c.text.len, c.thoughts.data, c.thoughts.len, c.tool_calls};
        rc = stream_delta(s, idx, &d, reason, out);
    }
    cand_release(&c);
    return rc;
}

/* A blocked prompt has no candidates: choice 0 says so and closes as
 * filtered (any reason maps to content_filter, whatever blockReason says). */
static int stream_blocked(struct gb_chat_stream *s, const char *reason, struct gb_buf *out)
{
    struct gb_buf text;
    struct delta d;
    int rc;

    gb_buf_init(&text, GB_CHAT_TEXT_MAX);
    rc = blocked_text(&text, reason);
    if (rc == 0) {
        d = (struct delta){text.data, text.len, NULL, 0, NULL};
        rc = stream_choice(s, 0, &d, "SAFETY", out);
    }
    gb_buf_release(&text);
    return rc;
}

int gb_chat_stream_event(struct gb_chat_stream *s, const json_t *event, struct gb_buf *out)
{
    const json_t *um = json_object_get(event, "usageMetadata");
    const json_t *cands = json_object_get(event, "candidates"), *cand;
    size_t i;
    int rc;

    if (s->finished)
        return GB_EINVAL;
    if (json_is_object(um)) {
        gb_chat_usage_read(um, &s->usage);
        s->has_usage = 1;
    }
    if (json_array_size(cands) == 0) {
        if (block_reason(event) != NULL)
            return stream_blocked(s, block_reason(event), out);
        return 0;
    }
    json_array_foreach(cands, i, cand)
    {
        rc = stream_candidate(s, cand, i, out);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Text of a range of a scan buffer ("" when empty: the buffer may never
 * have been written). */
static const char *range(const struct gb_buf *b, size_t off, size_t len)
{
    return len > 0 ? b->data + off : "";
}

/* A scanned candidate: as stream_candidate, with no tool calls or code
 * (the scan refuses those) and no new sources (refused too), only the ones
 * earlier events brought, shown with the finish reason. */
static int stream_scanned_cand(struct gb_chat_stream *s, const struct gb_gem_event *ev,
                               const struct gb_gem_cand *gc, struct gb_buf *out)
{
    struct delta d = {range(&ev->text, gc->text_off, gc->text_len), gc->text_len,
                      range(&ev->thoughts, gc->thought_off, gc->thought_len), gc->thought_len,
                      NULL};
    const char *reason = gc->has_reason ? gc->reason : NULL;
    const json_t *sources;
    struct gb_buf text;
    int rc;

    if (gc->index < 0 || gc->index >= GB_CHAT_MAX_CHOICES)
        return 0;
    sources = s->show_search_link ? stream_sources_of(s, (int)gc->index) : NULL;
    if (reason == NULL || json_array_size(sources) == 0)
        return stream_delta(s, (int)gc->index, &d, reason, out);
    gb_buf_init(&text, GB_CHAT_TEXT_MAX);
    rc = gb_buf_append(&text, d.text, d.text_len);
    if (rc == 0)
        rc = sources_render(&text, sources);
    if (rc == 0) {
        d.text = text.data;
        d.text_len = text.len;
        rc = stream_delta(s, (int)gc->index, &d, reason, out);
    }
    gb_buf_release(&text);
    return rc;
}

int gb_chat_stream_scanned(struct gb_chat_stream *s, const struct gb_gem_event *ev,
                           struct gb_buf *out)
{
    int rc;

    if (s->finished)
        return GB_EINVAL;
    if (ev->has_usage) {
        s->usage = ev->usage;
        s->has_usage = 1;
    }
    for (size_t i = 0; i < ev->ncand; i++) {
        rc = stream_scanned_cand(s, ev, &ev->cand[i], out);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int gb_chat_stream_text(struct gb_chat_stream *s, const char *p, size_t n, int skip_empty,
                        struct gb_buf *out)
{
    struct gb_gem_event ev; /* on the stack: a held stream costs no memory for it */
    int rc;

    if (s->finished)
        return GB_EINVAL;
    gb_gem_init(&ev);
    if (gb_gem_scan(&ev, p, n, s->show_thinking, s->show_search_link) < 0)
        rc = GB_EAGAIN;
    else if (skip_empty && gb_gem_is_empty(&ev))
        rc = 0;
    else
        rc = gb_chat_stream_scanned(s, &ev, out);
    gb_gem_release(&ev);
    return rc;
}

int gb_chat_stream_finish(struct gb_chat_stream *s, struct gb_buf *out)
{
    size_t start = out->len;
    int rc = 0;

    if (s->finished)
        return 0;
    if (s->include_usage) {
        rc = chunk_head(s, out);
        rc = rc ? rc : gb_buf_puts(out, "],\"usage\":");
        rc = rc ? rc : usage_write(out, &s->usage);
        rc = rc ? rc : gb_buf_puts(out, "}\n\n");
    }
    rc = rc ? rc : gb_buf_puts(out, "data: [DONE]\n\n");
    if (rc < 0) {
        gb_buf_truncate(out, start);
        return rc;
    }
    s->finished = 1;
    return 0;
}

/* ---- 10. whole reply from a scan ---------------------------------------- */

static int write_choice(struct gb_buf *b, long long index, const char *text, size_t text_len,
                        const char *thoughts, size_t thoughts_len, const char *reason)
{
    const char *fr = gb_chat_finish_reason(reason);
    int rc = gb_buf_puts(b, "{\"index\":");

    rc = rc ? rc : gb_jsonw_integer(b, index);
    rc = rc ? rc : gb_buf_puts(b, ",\"message\":{\"role\":\"assistant\",\"content\":");

    if (text_len > 0)
        rc = rc ? rc : gb_jsonw_string(b, text, text_len);
    else
        rc = rc ? rc : gb_buf_puts(b, "null");
    if (thoughts_len > 0) {
        rc = rc ? rc : gb_buf_puts(b, ",\"reasoning_content\":");
        rc = rc ? rc : gb_jsonw_string(b, thoughts, thoughts_len);
    }
    rc = rc ? rc : gb_buf_puts(b, "},\"logprobs\":null,\"finish_reason\":");
    if (fr != NULL)
        rc = rc ? rc : gb_jsonw_cstring(b, fr);
    else
        rc = rc ? rc : gb_buf_puts(b, "null");
    return rc ? rc : gb_buf_puts(b, "}");
}

int gb_chat_response_write(const struct gb_gem_event *ev, const struct gb_chat_req *req,
                           const char *id, long long created, struct gb_buf *out)
{
    size_t start = out->len;
    int rc;

    rc = gb_buf_puts(out, "{\"id\":");
    rc = rc ? rc : gb_jsonw_cstring(out, id);
    rc = rc ? rc : gb_buf_puts(out, ",\"object\":\"chat.completion\",\"created\":");
    rc = rc ? rc : gb_jsonw_integer(out, created);
    rc = rc ? rc : gb_buf_puts(out, ",\"model\":");
    rc = rc ? rc : gb_jsonw_cstring(out, req->client_model);
    rc = rc ? rc : gb_buf_puts(out, ",\"choices\":[");
    for (size_t i = 0; i < ev->ncand && rc == 0; i++) {
        const struct gb_gem_cand *c = &ev->cand[i];

        if (i > 0)
            rc = gb_buf_puts(out, ",");
        rc = rc ? rc
                : write_choice(out, c->index, range(&ev->text, c->text_off, c->text_len),
                               c->text_len, range(&ev->thoughts, c->thought_off, c->thought_len),
                               c->thought_len, c->has_reason ? c->reason : NULL);
    }
    if (ev->ncand == 0) /* no candidates and no block reason: one empty choice */
        rc = rc ? rc : write_choice(out, 0, "", 0, "", 0, "STOP");
    rc = rc ? rc : gb_buf_puts(out, "],\"usage\":");
    rc = rc ? rc : usage_write(out, &ev->usage);
    rc = rc ? rc : gb_buf_puts(out, "}");
    if (rc < 0)
        gb_buf_truncate(out, start);
    return rc;
}
