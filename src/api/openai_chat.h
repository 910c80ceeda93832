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

#include "core/buf.h"

/* Longest model name we accept from a client, in bytes. */
#define GB_MODEL_NAME_MAX 128
/* Suffix that asks for Google Search grounding on a model. */
#define GB_SEARCH_SUFFIX "-search"
/* Most choices a request may ask for ("n"); Gemini's candidateCount limit. */
#define GB_CHAT_MAX_CHOICES 8

/* What the translation needs from the configuration.  All borrowed. */
struct gb_chat_opts {
    const json_t *safety_settings; /* JSON array sent as safetySettings, or NULL for none */
    int code_execution;            /* 1: add the codeExecution tool */
    int show_search_link;          /* 1: append grounding sources as a markdown list */
};

/* What the gateway needs to know about a translated request. */
struct gb_chat_req {
    char model[GB_MODEL_NAME_MAX + 1];        /* upstream model, "-search" removed */
    char client_model[GB_MODEL_NAME_MAX + 1]; /* model as the client named it (echoed) */
    int stream;                               /* 1: "stream": true */
    int include_usage;                        /* 1: stream_options.include_usage */
    int search;                               /* 1: model had the -search suffix */
    int n;                                    /* choices asked for (1 when absent) */
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
 * offending parameter ("model", "temperature", "messages[2].role", ...).
 * Out-of-memory also returns NULL, with err->message "out of memory".
 *
 * Mapping: system/developer messages -> systemInstruction (several joined
 * with "\n"; a conversation of system messages only becomes one user turn);
 * user -> "user", assistant -> "model" contents, kept one per message;
 * string or array content (text parts, image_url parts with base64 data:
 * URLs -> inlineData; other part types are refused); messages without any
 * content are left out.  assistant tool_calls -> functionCall parts; tool
 * messages -> functionResponse parts (name found from the earlier call id,
 * response = the content if it is a JSON object, else {"result": text}),
 * consecutive ones in one "user" turn.  tools (type function) ->
 * functionDeclarations with the JSON Schema sent as parametersJsonSchema;
 * tool_choice -> toolConfig.functionCallingConfig.  temperature (0..2),
 * top_p (0..1), max_tokens/max_completion_tokens (>= 1; the latter wins),
 * stop (string or list -> list), n (1..GB_CHAT_MAX_CHOICES),
 * presence_penalty, frequency_penalty (-2..2), seed (32-bit) and
 * response_format (json_object/json_schema) -> generationConfig, only those
 * present (JSON null counts as absent; no injected defaults, and no
 * generationConfig at all when empty).  The model's "-search" suffix adds
 * the googleSearch tool; opts->code_execution adds codeExecution;
 * opts->safety_settings becomes safetySettings (copied).  opts may be NULL.
 */
json_t *gb_chat_request_to_gemini(const json_t *oai, const struct gb_chat_opts *opts,
                                  struct gb_chat_req *out, struct gb_chat_err *err);

/*
 * Translates a Gemini generateContent response into an OpenAI
 * chat.completion object with the given id and created time; "model" is
 * req->client_model.  Every candidate becomes a choice; its content is all
 * text parts joined (thought parts left out; executableCode and
 * codeExecutionResult as markdown code blocks), null when there is none;
 * functionCall parts become message.tool_calls with finish_reason
 * "tool_calls".  With opts->show_search_link the grounding web sources are
 * appended as a markdown list.  A reply without candidates (blocked prompt)
 * gives one empty choice with finish_reason "content_filter".  usage is
 * always present (zeros when Gemini sent no usageMetadata).  Returns a new
 * reference (never NULL except on out-of-memory).
 */
json_t *gb_chat_response_from_gemini(const json_t *gem, const struct gb_chat_req *req,
                                     const struct gb_chat_opts *opts, const char *id,
                                     long long created);

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
    int n;
    unsigned char role_sent[GB_CHAT_MAX_CHOICES]; /* per choice index: first chunk sent */
    int tool_calls[GB_CHAT_MAX_CHOICES];         /* per choice index: tool calls sent so far */
    json_t *usage;     /* last usageMetadata seen, owned */
    json_t *grounding; /* {"<choice index>": [{"uri","title"}...]} sources seen, owned */
    int finished;      /* 1 once gb_chat_stream_finish wrote [DONE] */
};

/* Sets up stream state (copies id and req->client_model); allocates nothing.
 * Pair with gb_chat_stream_release. */
void gb_chat_stream_init(struct gb_chat_stream *s, const struct gb_chat_req *req,
                         const struct gb_chat_opts *opts, const char *id, long long created);

/*
 * Translates one Gemini stream event (a parsed GenerateContentResponse,
 * borrowed) into zero or more OpenAI chunks, each appended to out as
 * "data: <compact json>\n\n", one chunk per candidate.  The first chunk of
 * each choice carries delta.role "assistant" (it is sent even when the event
 * holds only thoughts, with content ""); later events without text, tool
 * calls or finishReason send nothing.  The chunk with Gemini's finishReason
 * carries finish_reason (and the grounding sources when show_search_link).
 * usageMetadata is remembered from every event (the last one wins); events
 * with no candidates send nothing, except a blocked prompt, which closes
 * choice 0 with "content_filter".  Candidates with an index outside
 * 0..GB_CHAT_MAX_CHOICES-1 are ignored.  Returns 0, GB_ETOOBIG or GB_ENOMEM
 * (each chunk is appended whole or not at all, but earlier chunks of the
 * same event stay), or GB_EINVAL after gb_chat_stream_finish.
 */
int gb_chat_stream_event(struct gb_chat_stream *s, const json_t *event, struct gb_buf *out);

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

#endif
