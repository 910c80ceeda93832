/*
 * openai_models.h - Gemini model list -> OpenAI model list.
 */
#ifndef GB_API_OPENAI_MODELS_H
#define GB_API_OPENAI_MODELS_H

#include <jansson.h>
#include <stddef.h>

/*
 * Builds {"object":"list","data":[...]} from the Gemini "models" arrays of
 * all pages (models is a JSON array of Gemini model objects, borrowed).
 * Each entry becomes {"id": name without "models/", "object":"model",
 * "created": created, "owned_by":"google"}; for each model whose id is in
 * search_models (n_search entries) an extra "<id>-search" entry follows it.
 * Entries without a name are skipped and an id seen before is not listed
 * again; models that is NULL or not an array gives an empty list.
 * Returns a new reference, NULL only on out-of-memory.
 */
json_t *gb_models_to_openai(const json_t *models, const char *const *search_models, size_t n_search,
                            long long created);

#endif
