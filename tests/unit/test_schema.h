/*
 * test_schema.h - helpers shared by the schema-cleaning tests
 * (tests/unit/api/schema_test.c, tests/unit/issues/schema_request_budget_test.c).
 */
#ifndef GB_TEST_SCHEMA_H
#define GB_TEST_SCHEMA_H

#include <jansson.h>
#include <stdio.h>

#include "api/schema.h"

/* Nodes of a cleaned schema (properties, items, anyOf). */
static inline size_t gb_test_count_nodes(const json_t *s)
{
    const char *k;
    json_t *v;
    size_t i, n = 1;

    json_object_foreach(json_object_get(s, "properties"), k, v)
    {
        n += gb_test_count_nodes(v);
    }
    if (json_object_get(s, "items") != NULL)
        n += gb_test_count_nodes(json_object_get(s, "items"));
    json_array_foreach(json_object_get(s, "anyOf"), i, v)
    {
        n += gb_test_count_nodes(v);
    }
    return n;
}

/* A schema whose $refs fan out: GB_SCHEMA_REF_DEPTH + 2 levels of 40
 * properties, each a $ref to the next level (40^depth nodes if inlined
 * without a bound).  New reference. */
static inline json_t *gb_test_fan_out_schema(void)
{
    json_t *in = json_object(), *defs = json_object();
    char name[16], ref[32], prop[16];

    for (int level = 0; level < GB_SCHEMA_REF_DEPTH + 2; level++) {
        json_t *props = json_object();

        snprintf(ref, sizeof ref, "#/$defs/L%d", level + 1);
        for (int k = 0; k < 40; k++) {
            snprintf(prop, sizeof prop, "p%d", k);
            json_object_set_new(props, prop, json_pack("{s:s}", "$ref", ref));
        }
        snprintf(name, sizeof name, "L%d", level);
        json_object_set_new(defs, name,
                            json_pack("{s:s,s:o}", "type", "object", "properties", props));
    }
    json_object_set_new(in, "$defs", defs);
    json_object_set_new(in, "$ref", json_string("#/$defs/L0"));
    return in;
}

#endif
