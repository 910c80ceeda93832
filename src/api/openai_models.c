/*
 * openai_models.c - Gemini model list -> OpenAI model list.
 *
 * GET /v1/models answers from the Gemini "models" arrays the gateway
 * fetched (all pages concatenated).  Ids lose their "models/" prefix; a
 * model that appears twice (pages overlap, or a caller concatenated lists)
 * is listed once, so clients that key by id see no duplicates.  Models named
 * in the search list get a "<id>-search" twin right after them, which the
 * chat translation maps to Google Search grounding.
 */
#include "api/openai_models.h"

#include <stdlib.h>
#include <string.h>

/* Prefix Gemini puts on model names. */
#define GB_MODELS_PREFIX "models/"
/* Suffix of the search twins (same as GB_SEARCH_SUFFIX in openai_chat.h). */
#define GB_MODELS_SEARCH_SUFFIX "-search"

static json_t *entry_new(const char *id, long long created)
{
    return json_pack("{s:s,s:s,s:I,s:s}", "id", id, "object", "model", "created",
                     (json_int_t)created, "owned_by", "google");
}

static int is_search_model(const char *id, const char *const *search_models, size_t n_search)
{
    size_t i;

    for (i = 0; i < n_search; i++) {
        if (search_models[i] != NULL && strcmp(search_models[i], id) == 0)
            return 1;
    }
    return 0;
}

/* Appends "<id>-search".  Returns 0 or -1 on out-of-memory. */
static int add_search_twin(json_t *data, const char *id, long long created)
{
    size_t n = strlen(id), sfx = strlen(GB_MODELS_SEARCH_SUFFIX);
    char *name = malloc(n + sfx + 1);
    int rc;

    if (name == NULL)
        return -1;
    memcpy(name, id, n);
    memcpy(name + n, GB_MODELS_SEARCH_SUFFIX, sfx + 1);
    rc = json_array_append_new(data, entry_new(name, created));
    free(name);
    return rc;
}

/* Adds one Gemini model (and its search twin) unless it has no name or was
 * already listed.  Returns 0 or -1 on out-of-memory. */
static int add_model(json_t *data, json_t *seen, const json_t *m, const char *const *search_models,
                     size_t n_search, long long created)
{
    const char *id = json_string_value(json_object_get(m, "name"));
    size_t plen = strlen(GB_MODELS_PREFIX);

    if (id == NULL)
        return 0;
    if (strncmp(id, GB_MODELS_PREFIX, plen) == 0)
        id += plen;
    if (id[0] == '\0' || json_object_get(seen, id) != NULL)
        return 0;
    if (json_object_set_new(seen, id, json_true()) < 0 ||
        json_array_append_new(data, entry_new(id, created)) < 0)
        return -1;
    if (is_search_model(id, search_models, n_search))
        return add_search_twin(data, id, created);
    return 0;
}

json_t *gb_models_to_openai(const json_t *models, const char *const *search_models, size_t n_search,
                            long long created)
{
    json_t *data = json_array(), *seen = json_object();
    const json_t *m;
    size_t i;

    if (data == NULL || seen == NULL)
        goto fail;
    json_array_foreach(models, i, m)
    {
        if (add_model(data, seen, m, search_models, n_search, created) < 0)
            goto fail;
    }
    json_decref(seen);
    return json_pack("{s:s,s:o}", "object", "list", "data", data);
fail:
    json_decref(data);
    json_decref(seen);
    return NULL;
}
