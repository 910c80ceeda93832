/*
 * openai_chat.h - OpenAI chat completions <-> Gemini generateContent.
 *
 * Pure functions over jansson values: no I/O, no globals, no config lookups
 * (what they need from the configuration comes in struct gb_chat_opts).
 * Ownership follows jansson: returned json_t references belong to the
 * caller (json_decref them); arguments are borrowed.
 */
#ifndef GB_API_OPENAI_CHAT_H
#define GB_API_OPENAI_CHAT_H

#include <jansson.h>
#include <stddef.h>

#include "api/gemini_scan.h"
#include "core/buf.h"

/* Longest model name we accept from a client, in bytes. */
#define GB_MODEL_NAME_MAX 128
/* Suffix that asks for Google Search grounding on a model. */
#define GB_SEARCH_SUFFIX "-search"
/* Most choices a request may ask for ("n"); Gemini's candidateCount limit. */
#define GB_CHAT_MAX_CHOICES 8
/* Key of the placeholder part that stands for a remote image in a
 * translated body: {"_gb_fetch": "<http(s) url>"} (gb_chat_remote_parts). */
#define GB_CHAT_FETCH_KEY "_gb_fetch"

/* What the translation needs from the configuration.  All borrowed. */
struct gb_chat_opts {
    const json_t *safety_settings;     /* JSON array sent as safetySettings, or NULL for none */
    int code_execution;                /* 1: add the codeExecution tool */
    int show_search_link;              /* 1: append grounding sources as a markdown list */
    const json_t *thinking_budget_map; /* JSON object: model -> thinkingBudget (tokens), used
                                          when the client sent no reasoning_effort; or NULL */
    int show_thinking;                 /* 1: thoughts go out as reasoning_content (and are asked
                                          for with includeThoughts); 0: dropped */
};

/* What the gateway needs to know about a translated request. */
struct gb_chat_req {
    char model[GB_MODEL_NAME_MAX + 1];        /* upstream model, "-search" removed */
    char client_model[GB_MODEL_NAME_MAX + 1]; /* model as the client named it (echoed) */
    int stream;                               /* 1: "stream": true */
    int include_usage;                        /* 1: stream_options.include_usage */
    int search;                               /* 1: model had the -search suffix */
    int n;                                    /* choices asked for (1 when absent) */
    int builtin_dropped; /* 1: googleSearch/codeExecution left out for function tools */
    size_t remote_parts; /* {"_gb_fetch"} placeholders in the body (remote images) */
};

/* A client error found while translating: message for the client, and the
 * offending parameter (empty when none). */
struct gb_chat_err {
    char message[512];
    char param[64];
};

/*
 * Translates an OpenAI chat.completions request body into a Gemini
 * generateContent body.  Fills *out.  Returns a new reference, or NULL with
 * *err filled when the request is invalid (missing/empty model or messages,
 * wrong types, unknown role, out-of-range values ...); err->param names the
 * offending parameter ("model", "temperature", "messages[2].role",
 * "messages[1].tool_calls[0].function.arguments", ...).  Out-of-memory also
 * returns NULL, with err->message "out of memory".  opts may be NULL (all
 * zero).
 *
 * Messages: system/developer -> systemInstruction (several joined with
 * "\n"; a conversation of system messages only becomes one user turn);
 * user -> "user", assistant -> "model" contents, kept one per message;
 * messages without any content are left out.  Content is a string or an
 * array of parts: text; image_url with a base64 data: URL -> inlineData
 * (MIME type from the URL); image_url with an http(s) URL -> the
 * placeholder part {"_gb_fetch": url} in place (counted in
 * out->remote_parts; see gb_chat_remote_parts); input_audio (wav, mp3) ->
 * inlineData audio/wav or audio/mp3; file with file_data (a data: URL, or
 * bare base64 for a filename ending in .pdf) -> inlineData; anything else
 * is refused.
 *
 * Tool calls: an assistant message's text comes first, then one
 * functionCall part per tool_calls entry, args parsed from the arguments
 * string (not a JSON object -> error).  A tool call's
 * extra_content.google.thought_signature (as Google's OpenAI-compatible
 * endpoint and gb_chat_response_from_gemini hand it out) becomes the part's
 * thoughtSignature; a message-level extra_content.google.thought_signature
 * signs the first call instead; and for a model whose name contains
 * "gemini-3" an unsigned first call gets Google's documented
 * "skip_thought_signature_validator" (Gemini 3 refuses unsigned calls).
 * tool messages -> functionResponse parts, name found from the earlier
 * call id (unknown id -> error), response = the content if it is a JSON
 * object, else {"result": <other JSON value, or the raw text>};
 * consecutive tool messages share one "user" turn.
 *
 * tools (type function) -> one tool with functionDeclarations whose
 * parameters are gb_schema_clean(parameters) (schema.h), left out when the
 * function has none.  tool_choice -> toolConfig.functionCallingConfig
 * (none/auto/required -> NONE/AUTO/ANY, a named function -> ANY with
 * allowedFunctionNames).  parallel_tool_calls is ignored: Gemini has no
 * such switch.  The model's "-search" suffix adds the googleSearch tool
 * and opts->code_execution adds codeExecution, but not when the request
 * has function tools: those win, because Gemini refuses built-in tools next
 * to function declarations on most models; out->builtin_dropped is then 1
 * (out->search stays 1).
 *
 * generationConfig, only what is present (JSON null counts as absent; no
 * injected defaults, and no generationConfig at all when empty):
 * temperature (0..2), top_p (0..1), max_tokens/max_completion_tokens (>= 1;
 * the latter wins), stop (string or list -> list), n
 * (1..GB_CHAT_MAX_CHOICES), presence_penalty, frequency_penalty (-2..2),
 * seed (32-bit); response_format json_object -> responseMimeType
 * application/json, json_schema -> also responseSchema =
 * gb_schema_clean(schema), text -> nothing; reasoning_effort
 * (none/minimal/low/medium/high) -> thinkingConfig: thinkingLevel for
 * gemini-3 models ("low" for none/minimal/low, "high" for medium/high),
 * else thinkingBudget 0/512/1024/8192/24576; without reasoning_effort, a
 * budget from opts->thinking_budget_map for the exact upstream model name.
 * includeThoughts: true is added when thinking is on (a level, or a budget
 * other than 0) and opts->show_thinking is set.  opts->safety_settings
 * becomes safetySettings (copied).
 */
json_t *gb_chat_request_to_gemini(const json_t *oai, const struct gb_chat_opts *opts,
                                  struct gb_chat_req *out, struct gb_chat_err *err);

/*
 * Translates a Gemini generateContent response into an OpenAI
 * chat.completion object with the given id and created time; "model" is
 * req->client_model.  Every candidate becomes a choice:
 *   content        text parts joined, null when there is none;
 *                  executableCode as "```<language lower case>\n<code>\n```\n"
 *                  and codeExecutionResult as "```output\n<output>\n```\n"
 *                  plus "Outcome: <outcome>\n" when not OUTCOME_OK (blocks
 *                  start on a new line; one trailing newline of code or
 *                  output is dropped); with opts->show_search_link the
 *                  grounding web sources appended once as a markdown list
 *   reasoning_content  thought parts joined, only with opts->show_thinking
 *                  (thoughts never go into content)
 *   tool_calls     one per functionCall part, in order: id (functionCall.id,
 *                  else "call_" + 24 characters derived from id, choice and
 *                  position), type "function", function {name, arguments:
 *                  compact JSON of args}, and extra_content.google.
 *                  thought_signature when the part had a thoughtSignature;
 *                  finish_reason then "tool_calls" instead of "stop"
 * A reply without candidates (blocked prompt) gives one choice with content
 * "The prompt was blocked by Gemini (reason: <blockReason>)." and
 * finish_reason "content_filter" (no block reason: null content, "stop").
 * usage is always present (zeros when Gemini sent no usageMetadata).
 * Returns a new reference (never NULL except on out-of-memory).
 */
json_t *gb_chat_response_from_gemini(const json_t *gem, const struct gb_chat_req *req,
                                     const struct gb_chat_opts *opts, const char *id,
                                     long long created);

/*
 * The common request read straight from its JSON text, without a tree:
 * "model", "messages" of system/developer/user/assistant messages with
 * string content (and no other member), "stream" and "stream_options".
 * Writes into body the bytes gb_chat_body_dumps(gb_chat_request_to_gemini(
 * parsed text)) would give, with safety_text the text of
 * opts->safety_settings (NULL when it has none), and fills *out alike.
 * Returns 0, or GB_EAGAIN, with body and *out in any state, for any other
 * request (other parameters, content parts, tools, a "-search" model, one
 * in opts->thinking_budget_map, code execution on, an invalid request, text
 * that is not JSON ...): then parse it and call gb_chat_request_to_gemini,
 * which also says what is wrong with it.
 */
int gb_chat_request_scan(const char *p, size_t n, const struct gb_chat_opts *opts,
                         const char *safety_text, struct gb_chat_req *out, struct gb_buf *body);

/*
 * Dumps a body made by gb_chat_request_to_gemini as compact JSON (the bytes
 * of gb_jsonw_dumps) into a malloc'd string; *len gets its length.  When
 * the body's last member is "safetySettings" holding exactly the value
 * shared (the configured array, put in by reference), that member is taken
 * out of the body and shared_text, its text made once, is written in its
 * place.  NULL on out-of-memory.
 */
char *gb_chat_body_dumps(json_t *body, const json_t *shared, const char *shared_text, size_t *len);

/*
 * Collects the placeholder parts ({"_gb_fetch": url}) of a body made by
 * gb_chat_request_to_gemini, in order: parts[0..max-1] get borrowed
 * pointers to the part objects, valid while the body lives.  Returns how
 * many placeholders the body has (which may be more than max; call with
 * max >= out->remote_parts to get them all).  The caller fetches each url
 * and rewrites the part in place: copy the url first, then
 * json_object_clear(part) and set "inlineData" {"mimeType", "data"}.  One
 * walk over contents; cannot fail.
 */
size_t gb_chat_remote_parts(json_t *gemini_body, json_t **parts, size_t max);

/*
 * Returns 1 when an HTTP 200 generateContent answer carries nothing: no
 * candidate has a part or a finishReason, and the prompt was not blocked
 * (promptFeedback.blockReason).  No candidates at all counts as empty too.
 * Such answers are worth another try on another key.  0 otherwise.
 */
int gb_chat_response_is_empty(const json_t *gem);

/* Maps a Gemini finishReason to OpenAI's finish_reason: STOP -> "stop",
 * MAX_TOKENS -> "length", SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT,
 * SPII, IMAGE_SAFETY -> "content_filter", anything else -> "stop"; NULL for
 * NULL.  (The translators turn "stop" into "tool_calls" for a choice that
 * called tools.)  Returns a static string. */
const char *gb_chat_finish_reason(const char *gemini_reason);

/* State of one translated stream.  Fields are private. */
struct gb_chat_stream {
    char id[64];
    char model[GB_MODEL_NAME_MAX + 1];
    long long created;
    int include_usage;
    int show_search_link;
    int show_thinking;
    int n;
    unsigned char role_sent[GB_CHAT_MAX_CHOICES]; /* per choice index: first chunk sent */
    int tool_calls[GB_CHAT_MAX_CHOICES];          /* per choice index: tool calls sent so far */
    char last_char[GB_CHAT_MAX_CHOICES];          /* per choice index: last content byte sent */
    int has_usage;                                /* 1: a usageMetadata came */
    struct gb_gem_usage usage;                    /* the last usageMetadata seen */
    json_t *grounding;  /* {"<choice index>": [{"uri","title"}...]} sources seen, owned */
    struct gb_buf head; /* the text every chunk starts with, made once */
    int finished;       /* 1 once gb_chat_stream_finish wrote [DONE] */
};

/* Sets up stream state (copies id and req->client_model); allocates nothing.
 * Pair with gb_chat_stream_release. */
void gb_chat_stream_init(struct gb_chat_stream *s, const struct gb_chat_req *req,
                         const struct gb_chat_opts *opts, const char *id, long long created);

/*
 * Translates one Gemini stream event (a parsed GenerateContentResponse,
 * borrowed) into zero or more OpenAI chunks, each appended to out as
 * "data: <compact json>\n\n", one chunk per candidate, with the same
 * mapping as gb_chat_response_from_gemini: delta.content, delta.
 * reasoning_content (show_thinking), delta.tool_calls [{index, id, type,
 * function{name, arguments}, extra_content?}] (each call whole in one
 * delta).  The first chunk of each choice carries delta.role "assistant"
 * (it is sent even when the event holds only hidden thoughts, with content
 * ""); later events without text, thoughts, tool calls or finishReason send
 * nothing.  The chunk with Gemini's finishReason carries finish_reason
 * (and the grounding sources of every event of that choice, once, when
 * show_search_link).  usageMetadata is remembered from every event (the
 * last one wins); events with no candidates send nothing, except a blocked
 * prompt, which sends one chunk for choice 0 with the blocked message as
 * content and finish_reason "content_filter".  Candidates with an index
 * outside 0..GB_CHAT_MAX_CHOICES-1 are ignored.  Returns 0, GB_ETOOBIG or
 * GB_ENOMEM (each chunk is appended whole or not at all, but earlier chunks
 * of the same event stay), or GB_EINVAL after gb_chat_stream_finish.
 */
int gb_chat_stream_event(struct gb_chat_stream *s, const json_t *event, struct gb_buf *out);

/*
 * The same for an event given as JSON text, read with gb_gem_scan when it
 * has the common shape (text, thoughts, finishReason, usage): the chunks
 * are those gb_chat_stream_event would write for the parsed event, without
 * a jansson tree.  skip_empty 1 writes and remembers nothing for an event
 * gb_chat_response_is_empty would call empty.  Returns GB_EAGAIN, having
 * done nothing, when the event is not of that shape (or not JSON): parse it
 * and call gb_chat_stream_event.  Otherwise as gb_chat_stream_event.
 */
int gb_chat_stream_text(struct gb_chat_stream *s, const char *p, size_t n, int skip_empty,
                        struct gb_buf *out);

/* Translates a scanned event (gb_gem_scan, with keep_thoughts =
 * opts->show_thinking and refuse_grounding = opts->show_search_link) as
 * gb_chat_stream_event does the parsed one. */
int gb_chat_stream_scanned(struct gb_chat_stream *s, const struct gb_gem_event *ev,
                           struct gb_buf *out);

/*
 * Appends the chat.completion gb_chat_response_from_gemini would give for
 * a scanned answer (gb_gem_scan as above), dumped as compact JSON, the
 * same bytes.  Returns 0, GB_ETOOBIG or GB_ENOMEM.
 */
int gb_chat_response_write(const struct gb_gem_event *ev, const struct gb_chat_req *req,
                           const char *id, long long created, struct gb_buf *out);

/* Ends the stream: appends the usage chunk when include_usage was asked
 * (choices [] and usage from the last usageMetadata, zeros when none came),
 * then "data: [DONE]\n\n", both in one all-or-nothing append.  Returns 0
 * (also when called again: nothing more is written), GB_ETOOBIG or
 * GB_ENOMEM.  It does not invent a finish_reason for a stream that ended
 * without one. */
int gb_chat_stream_finish(struct gb_chat_stream *s, struct gb_buf *out);

/* Frees what the stream state holds. */
void gb_chat_stream_release(struct gb_chat_stream *s);

/* Converts a Gemini usageMetadata object to OpenAI usage: prompt_tokens,
 * completion_tokens (candidates + thoughts), total_tokens (totalTokenCount,
 * else the sum), prompt_tokens_details.cached_tokens when
 * cachedContentTokenCount is present, completion_tokens_details.
 * reasoning_tokens when thoughtsTokenCount is present.  Returns a new
 * reference; NULL for NULL (or out-of-memory). */
json_t *gb_chat_usage_from_gemini(const json_t *usage_metadata);

/* Reads usageMetadata's counts into *u (a count that is absent or not an
 * integer reads 0, and not given); um may be NULL. */
void gb_chat_usage_read(const json_t *um, struct gb_gem_usage *u);

#endif
