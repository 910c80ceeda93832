/*
 * schema.h - JSON Schema -> the Schema subset Gemini accepts.
 *
 * OpenAI clients describe function parameters and structured output with
 * full JSON Schema (zod-to-json-schema, pydantic, MCP servers).  Gemini's
 * "parameters" and "responseSchema" take Google's OpenAPI-style Schema
 * message instead, parsed as a protobuf: any keyword it does not know is a
 * 400 ("Unknown name \"additionalProperties\""), and some shapes it knows
 * are refused too (an array without items, enum on a non-string type).
 * gb_schema_clean rewrites one into the other.  Pure function, no globals.
 *
 * What comes out (a whitelist: every other keyword is dropped, among them
 * $schema, $id, $comment, $defs, definitions, additionalProperties,
 * patternProperties, default, examples, exclusiveMinimum, multipleOf, not,
 * if/then/else):
 *   type          kept when it is one of string, number, integer, boolean,
 *                 array, object (any case); ["T","null"] -> "T" + nullable;
 *                 several non-null types -> anyOf of one branch per type;
 *                 absent -> inferred: object with properties, array with
 *                 items, string with enum
 *   nullable      true when the schema allows null (type list, a null
 *                 anyOf/oneOf branch, a null enum value, nullable: true)
 *   format        only what Gemini accepts for the type: string
 *                 "enum"/"date-time", number "float"/"double", integer
 *                 "int32"/"int64"; anything else dropped
 *   enum, const   const -> enum [value]; values as strings (numbers and
 *                 booleans as their JSON text, null -> nullable, objects
 *                 and arrays dropped); dropped on a non-string type, where
 *                 Gemini refuses enums
 *   properties    each value cleaned; an empty map is left out
 *   required      filtered to names in properties; left out when empty
 *   propertyOrdering  filtered the same way
 *   items         cleaned; a tuple (array of schemas) uses its first
 *                 schema; an array without items gets {"type":"string"}
 *                 (Gemini: "items: missing field")
 *   anyOf, oneOf  oneOf becomes anyOf; null branches become nullable; one
 *                 branch left -> flattened into the schema
 *   allOf         branches merged into the schema (properties and required
 *                 united; the schema's own keywords win)
 *   $ref          "#", "#/$defs/X", "#/definitions/X" or any "#/..." JSON
 *                 pointer into the schema is inlined (cleaned), keeping
 *                 the title/description written next to it; more than
 *                 GB_SCHEMA_REF_DEPTH nested inlinings (recursive types),
 *                 an unresolvable ref, or a result past GB_SCHEMA_MAX_NODES
 *                 nodes -> {"type":"object"}
 *   title, description, pattern (strings), minimum, maximum (numbers),
 *   minItems, maxItems, minLength, maxLength, minProperties,
 *   maxProperties (non-negative integers): copied when well typed
 *
 * Known limit: Gemini also refuses an object node without properties
 * (free-form maps written with additionalProperties, and the ref-depth
 * fallback), "properties: should be non-empty for OBJECT type"; such a node
 * comes out as {"type":"object"} and there is no lossless rewrite.  A
 * schema with one (gb_schema_has_free_object) is sent instead as it was
 * written, in the fields that take full JSON Schema: parametersJsonSchema,
 * responseJsonSchema.
 */
#ifndef GB_API_SCHEMA_H
#define GB_API_SCHEMA_H

#include <jansson.h>

/* Most $ref inlinings nested inside one another (recursive types). */
#define GB_SCHEMA_REF_DEPTH 6
/* Most schema nodes one cleaned schema may have once refs are inlined;
 * bounds the output of ref chains that fan out (2^depth copies), and so the
 * CPU one tool schema can cost a worker: 20000 let a 1.3 KB schema of
 * self-referencing "$ref":"#" take ~100 ms (found by fuzzing); real tool
 * schemas have tens to a few hundred nodes. */
#define GB_SCHEMA_MAX_NODES 4000

/*
 * Returns the Gemini Schema for a JSON Schema (borrowed).  A schema that is
 * not an object (true, false, garbage) gives {}.  Returns a new reference;
 * NULL only on out-of-memory.  Cost: one walk over the schema, plus one per
 * inlined $ref.
 */
json_t *gb_schema_clean(const json_t *schema);

/* Most schema nodes the schemas of one request (its tools and its
 * response_format) may have together. */
#define GB_SCHEMA_REQUEST_NODES 8000

/* gb_schema_clean with a node budget shared by several schemas: at most
 * min(*budget, GB_SCHEMA_MAX_NODES) nodes are built (past that, nodes are
 * {}), and *budget drops by what was built. */
json_t *gb_schema_clean_budget(const json_t *schema, size_t *budget);

/*
 * Returns 1 when a cleaned schema declares no parameters at all: an object
 * (or untyped) schema without properties, anyOf, items or enum, e.g. {} or
 * {"type":"object"}.  Gemini refuses an OBJECT "parameters" without
 * properties, so such a function declaration is sent without parameters.
 */
int gb_schema_is_empty_object(const json_t *cleaned);

/*
 * Adds "propertyOrdering" (the keys of "properties", in the order the
 * client wrote them) to every object of a cleaned schema that has two
 * properties or more and no ordering yet, through properties, items and
 * anyOf.  Gemini writes structured output's properties in alphabetical
 * order unless told: a schema meant to be answered "reasoning" first and
 * "answer" second would be answered the other way round.  For
 * responseSchema only (function declarations take no ordering).  Returns 0,
 * or GB_ENOMEM (the schema may then be partly ordered).
 */
int gb_schema_add_ordering(json_t *cleaned);

/*
 * Returns 1 when a cleaned schema has, below its root, an object node that
 * Gemini's Schema refuses: one without properties, anyOf, items or enum (a
 * free-form map, or the ref-depth fallback), through properties, items and
 * anyOf.  The root is not looked at: an empty root means no parameters.
 */
int gb_schema_has_free_object(const json_t *cleaned);

/*
 * Returns 1 when a client's JSON Schema itself writes, below its root, an
 * object without properties: {"type":"object"} alone, or a map written with
 * additionalProperties.  Looks through properties, items, prefixItems,
 * anyOf, oneOf, allOf, $defs and definitions (not through $ref), at most
 * 64 levels and 4000 nodes.  With gb_schema_has_free_object it tells a map
 * the client wrote (worth sending as JSON Schema) from the {"type":"object"}
 * the cleaner puts for a recursive or unresolvable $ref or a spent node
 * budget (kept: the raw schema of a $ref bomb is not sent on).
 */
int gb_schema_has_free_map(const json_t *schema);

#endif
