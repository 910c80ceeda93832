/*
 * schema.c - JSON Schema -> the Schema subset Gemini accepts (the mapping
 * is listed in schema.h).
 *
 * build() turns one node into its Gemini form; finish() then applies the
 * rules that need the whole node (required against properties, enum and
 * format against the type, items for arrays, type inference), after allOf
 * branches and a lone anyOf branch have been merged in.  Children are
 * cleaned (built and finished) on their own.  An allocation failure sets a
 * flag in the walk instead of unwinding every step; gb_schema_clean turns
 * the flag into NULL.
 */
#include "api/schema.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"

/* Deepest nesting of schema nodes walked; deeper ones become the fallback
 * object.  Real schemas nest a dozen levels; this bounds the recursion. */
#define GB_SCHEMA_MAX_NESTING 100
/* Longest JSON pointer token of a $ref, in bytes. */
#define GB_SCHEMA_REF_TOKEN_MAX 256

struct walk {
    const json_t *root; /* the schema as given: where $ref points into */
    size_t nodes;       /* nodes built so far */
    size_t limit;       /* nodes allowed (GB_SCHEMA_MAX_NODES or the budget left) */
    int oom;            /* 1 once an allocation failed */
};

/* Where a node sits: $ref inlinings above it, and its nesting level. */
struct at {
    int refs;
    int level;
};

static json_t *clean_node(struct walk *w, const json_t *s, struct at at, const char *force_type);

/* ---- helpers ------------------------------------------------------------ */

/* json_object_set_new steals v even when it fails, and fails on NULL v or
 * NULL o: one flag covers every allocation. */
static void put(struct walk *w, json_t *o, const char *key, json_t *v)
{
    if (json_object_set_new(o, key, v) < 0)
        w->oom = 1;
}

static void append(struct walk *w, json_t *a, json_t *v)
{
    if (json_array_append_new(a, v) < 0)
        w->oom = 1;
}

static json_t *fallback(void)
{
    return json_pack("{s:s}", "type", "object");
}

static const char *const known_types[] = {"string",  "number", "integer",
                                          "boolean", "array",  "object"};

static int known_type(const char *t)
{
    size_t i;

    for (i = 0; t != NULL && i < sizeof known_types / sizeof known_types[0]; i++) {
        if (strcasecmp(t, known_types[i]) == 0)
            return 1;
    }
    return 0;
}

static int type_is(const char *type, const char *want)
{
    return type != NULL && strcasecmp(type, want) == 0;
}

/* The formats Gemini's Schema accepts, per type. */
static const struct {
    const char *type;
    const char *format;
} formats[] = {
    {"string", "enum"},   {"string", "date-time"}, {"number", "float"},
    {"number", "double"}, {"integer", "int32"},    {"integer", "int64"},
};

static int format_ok(const char *type, const char *format)
{
    size_t i;

    for (i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        if (type_is(type, formats[i].type) && strcmp(format, formats[i].format) == 0)
            return 1;
    }
    return 0;
}

enum kw_kind {
    KW_STRING, /* any string */
    KW_NUMBER, /* any JSON number */
    KW_COUNT   /* non-negative integer */
};

/* Keywords copied as they are when well typed. */
static const struct {
    const char *name;
    enum kw_kind kind;
    int described; /* 1: title/description, left to the outer node of a type split */
} plain_keywords[] = {
    {"title", KW_STRING, 1},        {"description", KW_STRING, 1},  {"pattern", KW_STRING, 0},
    {"minimum", KW_NUMBER, 0},      {"maximum", KW_NUMBER, 0},      {"minItems", KW_COUNT, 0},
    {"maxItems", KW_COUNT, 0},      {"minLength", KW_COUNT, 0},     {"maxLength", KW_COUNT, 0},
    {"minProperties", KW_COUNT, 0}, {"maxProperties", KW_COUNT, 0},
};

static int kw_ok(const json_t *v, enum kw_kind kind)
{
    switch (kind) {
    case KW_STRING:
        return json_is_string(v);
    case KW_NUMBER:
        return json_is_number(v);
    case KW_COUNT:
        return json_is_integer(v) && json_integer_value(v) >= 0;
    }
    return 0;
}

static void copy_described(struct walk *w, const json_t *s, json_t *node)
{
    const json_t *v;

    if (json_is_string(v = json_object_get(s, "title")))
        put(w, node, "title", json_copy((json_t *)v));
    if (json_is_string(v = json_object_get(s, "description")))
        put(w, node, "description", json_copy((json_t *)v));
}

/* {"type":"null"}, {"type":["null"]} or {"const":null}: a branch that only
 * allows null. */
static int is_null_schema(const json_t *s)
{
    const json_t *t = json_object_get(s, "type"), *e;
    const char *ts = json_string_value(t);
    size_t i;

    if (ts != NULL)
        return strcmp(ts, "null") == 0;
    if (json_is_array(t) && json_array_size(t) > 0) {
        json_array_foreach(t, i, e)
        {
            if (!json_is_string(e) || strcmp(json_string_value(e), "null") != 0)
                return 0;
        }
        return 1;
    }
    return json_is_null(json_object_get(s, "const"));
}

/* Resolves a "#..." JSON pointer against root; NULL when it leads nowhere. */
static const json_t *resolve(const json_t *root, const char *ref)
{
    const json_t *cur = root;
    char tok[GB_SCHEMA_REF_TOKEN_MAX];

    if (ref[0] != '#')
        return NULL;
    for (ref++; *ref == '/';) {
        size_t n = 0;

        for (ref++; *ref != '\0' && *ref != '/'; ref++) {
            char ch = *ref;

            if (ch == '~') {
                if (ref[1] != '0' && ref[1] != '1')
                    return NULL;
                ch = *++ref == '0' ? '~' : '/';
            }
            if (n + 1 >= sizeof tok)
                return NULL;
            tok[n++] = ch;
        }
        tok[n] = '\0';
        if (json_is_object(cur)) {
            cur = json_object_get(cur, tok);
        } else if (json_is_array(cur) && n > 0 && strspn(tok, "0123456789") == n) {
            cur = json_array_get(cur, strtoul(tok, NULL, 10));
        } else {
            return NULL;
        }
        if (cur == NULL)
            return NULL;
    }
    return *ref == '\0' ? cur : NULL;
}

/* Copies the strings of names; NULL when names is not an array. */
static json_t *strings_copy(struct walk *w, const json_t *names)
{
    const json_t *n;
    json_t *out;
    size_t i;

    if (!json_is_array(names))
        return NULL;
    out = json_array();
    json_array_foreach(names, i, n)
    {
        if (json_is_string(n))
            append(w, out, json_copy((json_t *)n));
    }
    return out;
}

/* names filtered to keys of props, without repeats; NULL when none is left. */
static json_t *names_in(struct walk *w, const json_t *names, const json_t *props)
{
    json_t *out = json_array(), *seen = json_object();
    const json_t *n;
    size_t i;

    json_array_foreach(names, i, n)
    {
        const char *s = json_string_value(n);

        if (s == NULL || json_object_get(props, s) == NULL || json_object_get(seen, s) != NULL)
            continue;
        put(w, seen, s, json_true());
        append(w, out, json_string(s));
    }
    json_decref(seen);
    if (json_array_size(out) == 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* enum (or [const]) values as strings; a null value sets *nullable. */
static json_t *enum_strings(struct walk *w, const json_t *values, int *nullable)
{
    json_t *out = json_array();
    const json_t *v;
    size_t i;

    json_array_foreach(values, i, v)
    {
        if (json_is_string(v)) {
            append(w, out, json_copy((json_t *)v));
        } else if (json_is_number(v) || json_is_boolean(v)) {
            char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

            append(w, out, s ? json_string(s) : NULL);
            free(s);
        } else if (json_is_null(v)) {
            *nullable = 1;
        }
    }
    return out;
}

/* Copies src's keywords into dst where dst has none; properties and
 * required are united.  src is borrowed. */
static void merge(struct walk *w, json_t *dst, json_t *src)
{
    const char *k;
    json_t *v, *d;

    json_object_foreach(src, k, v)
    {
        d = json_object_get(dst, k);
        if (d == NULL)
            put(w, dst, k, json_incref(v));
        else if (strcmp(k, "properties") == 0 && json_object_update_missing(d, v) < 0)
            w->oom = 1;
        else if (strcmp(k, "required") == 0 && json_array_extend(d, v) < 0)
            w->oom = 1;
    }
}

/* ---- build -------------------------------------------------------------- */

/* A $ref: the target cleaned, with the title and description written next
 * to the ref. */
static json_t *ref_node(struct walk *w, const json_t *s, const char *ref, struct at at)
{
    const json_t *target = resolve(w->root, ref);
    json_t *node;

    if (target == NULL || at.refs >= GB_SCHEMA_REF_DEPTH || w->nodes >= w->limit) {
        node = fallback();
    } else {
        at.refs++;
        node = clean_node(w, target, at, NULL);
    }
    copy_described(w, s, node);
    if (json_is_true(json_object_get(s, "nullable")))
        put(w, node, "nullable", json_true());
    return node;
}

/* "type": ["string","integer",...] -> anyOf with one branch per type. */
static json_t *split_types(struct walk *w, const json_t *s, const json_t *types, struct at at,
                           int nullable)
{
    json_t *node = json_object(), *branches = json_array();
    const json_t *t;
    size_t i;

    json_array_foreach(types, i, t)
    {
        const char *ts = json_string_value(t);

        if (known_type(ts))
            append(w, branches, clean_node(w, s, at, ts));
    }
    put(w, node, "anyOf", branches);
    copy_described(w, s, node);
    if (nullable)
        put(w, node, "nullable", json_true());
    return node;
}

/* anyOf/oneOf: null branches -> nullable; one branch left is merged into
 * node, several become node's anyOf. */
static void add_any_of(struct walk *w, const json_t *list, json_t *node, struct at at,
                       int *nullable)
{
    json_t *branches = json_array();
    const json_t *b;
    size_t i;

    json_array_foreach(list, i, b)
    {
        if (!json_is_object(b))
            continue;
        if (is_null_schema(b))
            *nullable = 1;
        else
            append(w, branches, clean_node(w, b, at, NULL));
    }
    if (json_array_size(branches) == 1)
        merge(w, node, json_array_get(branches, 0));
    else if (json_array_size(branches) > 1)
        put(w, node, "anyOf", json_incref(branches));
    json_decref(branches);
}

static void add_properties(struct walk *w, const json_t *props, json_t *node, struct at at)
{
    json_t *out = json_object();
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)props, k, v)
    {
        put(w, out, k, clean_node(w, v, at, NULL));
    }
    put(w, node, "properties", out);
}

/* The type keyword: *type gets the single type (NULL when none), null in a
 * type list sets *nullable.  Returns the list when it names several types. */
static const json_t *read_type(const json_t *s, const char **type, int *nullable)
{
    const json_t *t = json_object_get(s, "type"), *e;
    const char *only = NULL;
    size_t i, count = 0;

    *type = NULL;
    if (json_is_string(t)) {
        if (strcmp(json_string_value(t), "null") == 0)
            *nullable = 1;
        else if (known_type(json_string_value(t)))
            *type = json_string_value(t);
        return NULL;
    }
    json_array_foreach(t, i, e)
    {
        const char *es = json_string_value(e);

        if (es != NULL && strcmp(es, "null") == 0) {
            *nullable = 1;
        } else if (known_type(es)) {
            only = es;
            count++;
        }
    }
    if (count > 1)
        return t;
    *type = only;
    return NULL;
}

/* One node without the whole-node rules of finish().  force_type, when not
 * NULL, replaces the type (one branch of a type list; title and
 * description stay with the outer node). */
static json_t *build(struct walk *w, const json_t *s, struct at at, const char *force_type)
{
    const json_t *ref = json_object_get(s, "$ref"), *v, *types = NULL;
    const char *type = force_type;
    int nullable = 0;
    json_t *node, *names;
    size_t i;

    w->nodes++;
    if (!json_is_object(s))
        return json_object();
    if (at.level >= GB_SCHEMA_MAX_NESTING)
        return fallback();
    at.level++;
    if (json_is_string(ref))
        return ref_node(w, s, json_string_value(ref), at);
    if (force_type == NULL)
        types = read_type(s, &type, &nullable);
    if (types != NULL)
        return split_types(w, s, types, at, nullable);
    node = json_object();
    if (type != NULL)
        put(w, node, "type", json_string(type));
    if (json_is_string(v = json_object_get(s, "format")))
        put(w, node, "format", json_copy((json_t *)v));
    for (i = 0; i < sizeof plain_keywords / sizeof plain_keywords[0]; i++) {
        v = json_object_get(s, plain_keywords[i].name);
        if (kw_ok(v, plain_keywords[i].kind) && !(force_type && plain_keywords[i].described))
            put(w, node, plain_keywords[i].name, json_copy((json_t *)v));
    }
    if ((v = json_object_get(s, "const")) != NULL) {
        json_t *one = json_pack("[O]", v);

        put(w, node, "enum", enum_strings(w, one, &nullable));
        json_decref(one);
    } else if (json_is_array(v = json_object_get(s, "enum"))) {
        put(w, node, "enum", enum_strings(w, v, &nullable));
    }
    if (json_is_object(v = json_object_get(s, "properties")))
        add_properties(w, v, node, at);
    if ((names = strings_copy(w, json_object_get(s, "required"))) != NULL)
        put(w, node, "required", names);
    if ((names = strings_copy(w, json_object_get(s, "propertyOrdering"))) != NULL)
        put(w, node, "propertyOrdering", names);
    v = json_object_get(s, "items");
    if (json_is_array(v))
        v = json_array_get(v, 0);
    if (json_is_object(v))
        put(w, node, "items", clean_node(w, v, at, NULL));
    if (json_is_array(v = json_object_get(s, "anyOf")) ||
        json_is_array(v = json_object_get(s, "oneOf")))
        add_any_of(w, v, node, at, &nullable);
    json_array_foreach(json_object_get(s, "allOf"), i, v)
    {
        json_t *b = build(w, v, at, NULL);

        merge(w, node, b);
        json_decref(b);
    }
    if (nullable || json_is_true(json_object_get(s, "nullable")))
        put(w, node, "nullable", json_true());
    return node;
}

/* ---- finish ------------------------------------------------------------- */

/* Keywords that only mean something for some types: left out of a node of
 * another type (a type list split into anyOf copies every keyword into
 * every branch). */
static const struct {
    const char *keyword;
    const char *type;  /* the type it belongs to */
    const char *type2; /* another one, or NULL */
} typed_keywords[] = {
    {"properties", "object", NULL},       {"required", "object", NULL},
    {"propertyOrdering", "object", NULL}, {"minProperties", "object", NULL},
    {"maxProperties", "object", NULL},    {"items", "array", NULL},
    {"minItems", "array", NULL},          {"maxItems", "array", NULL},
    {"pattern", "string", NULL},          {"minLength", "string", NULL},
    {"maxLength", "string", NULL},        {"minimum", "number", "integer"},
    {"maximum", "number", "integer"},
};

static void drop_foreign_keywords(json_t *node, const char *type)
{
    size_t i;

    if (!known_type(type))
        return;
    for (i = 0; i < sizeof typed_keywords / sizeof typed_keywords[0]; i++) {
        if (!type_is(type, typed_keywords[i].type) &&
            !(typed_keywords[i].type2 && type_is(type, typed_keywords[i].type2)))
            json_object_del(node, typed_keywords[i].keyword);
    }
}

/* Replaces node[key] with names_in(node[key], props), or removes it. */
static void filter_names(struct walk *w, json_t *node, const char *key, const json_t *props)
{
    json_t *names = json_object_get(node, key);

    if (names == NULL)
        return;
    names = names_in(w, names, props);
    if (names != NULL)
        put(w, node, key, names);
    else
        json_object_del(node, key);
}

static json_t *finish(struct walk *w, json_t *node)
{
    json_t *props = json_object_get(node, "properties");
    const json_t *e = json_object_get(node, "enum");
    const char *type = json_string_value(json_object_get(node, "type"));
    const char *format = json_string_value(json_object_get(node, "format"));

    if (node == NULL)
        return NULL;
    if (type == NULL && json_object_get(node, "anyOf") == NULL) {
        if (props != NULL)
            type = "object";
        else if (json_object_get(node, "items") != NULL)
            type = "array";
        else if (json_array_size(e) > 0)
            type = "string";
        if (type != NULL)
            put(w, node, "type", json_string(type));
        type = json_string_value(json_object_get(node, "type"));
    }
    drop_foreign_keywords(node, type);
    props = json_object_get(node, "properties");
    if (props != NULL && json_object_size(props) == 0) {
        json_object_del(node, "properties");
        props = NULL;
    }
    filter_names(w, node, "required", props);
    filter_names(w, node, "propertyOrdering", props);
    if (e != NULL && (json_array_size(e) == 0 || (type != NULL && !type_is(type, "string"))))
        json_object_del(node, "enum");
    if (format != NULL && (!format_ok(type, format) ||
                           (strcmp(format, "enum") == 0 && json_object_get(node, "enum") == NULL)))
        json_object_del(node, "format");
    if (type_is(type, "array") && json_object_get(node, "items") == NULL)
        put(w, node, "items", json_pack("{s:s}", "type", "string"));
    return node;
}

static json_t *clean_node(struct walk *w, const json_t *s, struct at at, const char *force_type)
{
    return finish(w, build(w, s, at, force_type));
}

/* ---- public ------------------------------------------------------------- */

json_t *gb_schema_clean_budget(const json_t *schema, size_t *budget)
{
    struct walk w = {schema, 0, *budget < GB_SCHEMA_MAX_NODES ? *budget : GB_SCHEMA_MAX_NODES, 0};
    struct at at = {0, 0};
    json_t *out = clean_node(&w, schema, at, NULL);

    *budget -= w.nodes < *budget ? w.nodes : *budget;
    if (w.oom || out == NULL) {
        json_decref(out);
        return NULL;
    }
    return out;
}

json_t *gb_schema_clean(const json_t *schema)
{
    size_t budget = GB_SCHEMA_MAX_NODES;

    return gb_schema_clean_budget(schema, &budget);
}

int gb_schema_is_empty_object(const json_t *cleaned)
{
    const char *type = json_string_value(json_object_get(cleaned, "type"));

    if (!json_is_object(cleaned) || (type != NULL && !type_is(type, "object")))
        return 0;
    return json_object_get(cleaned, "properties") == NULL &&
           json_object_get(cleaned, "anyOf") == NULL && json_object_get(cleaned, "items") == NULL &&
           json_object_get(cleaned, "enum") == NULL;
}

/* deeper than any schema a client writes; bounds the recursion */
#define ORDERING_MAX_DEPTH 256

static int add_ordering(json_t *s, int depth)
{
    json_t *props = json_object_get(s, "properties"), *v, *order;
    const char *k;
    size_t i;

    if (!json_is_object(s) || depth > ORDERING_MAX_DEPTH)
        return 0;
    if (json_is_object(props)) {
        if (json_object_size(props) > 1 && json_object_get(s, "propertyOrdering") == NULL) {
            if ((order = json_array()) == NULL ||
                json_object_set_new(s, "propertyOrdering", order) < 0)
                return GB_ENOMEM;
            json_object_foreach(props, k, v)
            {
                if (json_array_append_new(order, json_string(k)) < 0)
                    return GB_ENOMEM;
            }
        }
        json_object_foreach(props, k, v)
        {
            if (add_ordering(v, depth + 1) < 0)
                return GB_ENOMEM;
        }
    }
    if (add_ordering(json_object_get(s, "items"), depth + 1) < 0)
        return GB_ENOMEM;
    json_array_foreach(json_object_get(s, "anyOf"), i, v)
    {
        if (add_ordering(v, depth + 1) < 0)
            return GB_ENOMEM;
    }
    return 0;
}

int gb_schema_add_ordering(json_t *cleaned)
{
    return add_ordering(cleaned, 0);
}

static int free_below(const json_t *s, int depth)
{
    const json_t *v;
    const char *k;
    size_t i;

    if (!json_is_object(s) || depth > ORDERING_MAX_DEPTH)
        return 0;
    json_object_foreach((json_t *)json_object_get(s, "properties"), k, v)
    {
        if (gb_schema_is_empty_object(v) || free_below(v, depth + 1))
            return 1;
    }
    v = json_object_get(s, "items");
    if (v != NULL && (gb_schema_is_empty_object(v) || free_below(v, depth + 1)))
        return 1;
    json_array_foreach(json_object_get(s, "anyOf"), i, v)
    {
        if (gb_schema_is_empty_object(v) || free_below(v, depth + 1))
            return 1;
    }
    return 0;
}

int gb_schema_has_free_object(const json_t *cleaned)
{
    return free_below(cleaned, 0);
}

static int is_free_map(const json_t *s)
{
    const json_t *t = json_object_get(s, "type"), *ap = json_object_get(s, "additionalProperties");
    const json_t *props = json_object_get(s, "properties");
    int object = json_is_string(t) && strcasecmp(json_string_value(t), "object") == 0;
    size_t i;
    json_t *v;

    json_array_foreach(t, i, v)
    {
        if (json_is_string(v) && strcasecmp(json_string_value(v), "object") == 0)
            object = 1;
    }
    if (json_is_object(props) && json_object_size(props) > 0)
        return 0;
    return object || json_is_true(ap) || (json_is_object(ap) && json_object_size(ap) > 0);
}

/* free_map_walk: *budget nodes left to look at */
static int free_map_walk(const json_t *s, int depth, int root, size_t *budget)
{
    static const char *const lists[] = {"anyOf", "oneOf", "allOf", "prefixItems"};
    static const char *const maps[] = {"properties", "$defs", "definitions"};
    const json_t *v, *items;
    const char *k;
    size_t i, m;

    if (!json_is_object(s) || depth > 64 || *budget == 0)
        return 0;
    (*budget)--;
    if (!root && is_free_map(s))
        return 1;
    for (m = 0; m < sizeof maps / sizeof maps[0]; m++) {
        json_object_foreach((json_t *)json_object_get(s, maps[m]), k, v)
        {
            /* a $defs entry is a type of its own, never the root */
            if (free_map_walk(v, depth + 1, 0, budget))
                return 1;
        }
    }
    for (m = 0; m < sizeof lists / sizeof lists[0]; m++) {
        json_array_foreach(json_object_get(s, lists[m]), i, v)
        {
            /* a branch of the root is the root's own shape */
            if (free_map_walk(v, depth + 1, root && strcmp(lists[m], "prefixItems") != 0, budget))
                return 1;
        }
    }
    items = json_object_get(s, "items");
    if (json_is_object(items))
        return free_map_walk(items, depth + 1, 0, budget);
    json_array_foreach(items, i, v)
    {
        if (free_map_walk(v, depth + 1, 0, budget))
            return 1;
    }
    return 0;
}

int gb_schema_has_free_map(const json_t *schema)
{
    size_t budget = 4000;

    return free_map_walk(schema, 0, 1, &budget);
}
