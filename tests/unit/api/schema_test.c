/*
 * schema_test.c - tests for src/api/schema.c.
 *
 * Table rows {JSON Schema as clients send it, Gemini Schema expected}, most
 * of them shapes real generators emit (zod-to-json-schema, pydantic v2,
 * MCP servers); JSON is written with ' for " as in openai_chat_test.c.
 * Recursion, nesting and fan-out limits are checked by walking the output.
 */
#include "test.h"
#include "test_json.h"
#include "test_schema.h"

#include <jansson.h>

#include "api/schema.h"

/* Parses JSON written with ' for " (the rows never need a literal '). */

struct row {
    const char *name;
    const char *in;
    const char *want;
};

static const struct row rows[] = {
    {"zod-to-json-schema object: $schema, additionalProperties, default dropped",
     "{'type':'object','properties':{'path':{'type':'string','description':'File path'},"
     "'recursive':{'type':'boolean','default':false},'mode':{'type':'string','enum':['r','w']}},"
     "'required':['path'],'additionalProperties':false,"
     "'$schema':'http://json-schema.org/draft-07/schema#'}",
     "{'type':'object','properties':{'path':{'type':'string','description':'File path'},"
     "'recursive':{'type':'boolean'},'mode':{'type':'string','enum':['r','w']}},"
     "'required':['path']}"},
    {"MCP filesystem edit_file: nested array of objects",
     "{'type':'object','properties':{'path':{'type':'string'},'edits':{'type':'array','items':"
     "{'type':'object','properties':{'oldText':{'type':'string','description':'Text to search "
     "for'},'newText':{'type':'string','description':'Text to replace with'}},'required':"
     "['oldText','newText'],'additionalProperties':false}},'dryRun':{'type':'boolean',"
     "'default':false,'description':'Preview changes'}},'required':['path','edits'],"
     "'additionalProperties':false,'$schema':'http://json-schema.org/draft-07/schema#'}",
     "{'type':'object','properties':{'path':{'type':'string'},'edits':{'type':'array','items':"
     "{'type':'object','properties':{'oldText':{'type':'string','description':'Text to search "
     "for'},'newText':{'type':'string','description':'Text to replace with'}},'required':"
     "['oldText','newText']}},'dryRun':{'type':'boolean','description':'Preview changes'}},"
     "'required':['path','edits']}"},
    {"pydantic v2: $defs, $ref with a description beside it, Optional via anyOf",
     "{'$defs':{'Address':{'properties':{'street':{'title':'Street','type':'string'},'zip':"
     "{'anyOf':[{'type':'string'},{'type':'null'}],'default':null,'title':'Zip'}},'required':"
     "['street','zip'],'title':'Address','type':'object'}},'properties':{'name':{'title':"
     "'Name','type':'string'},'address':{'$ref':'#/$defs/Address','description':'home'}},"
     "'required':['name','address'],'title':'Person','type':'object'}",
     "{'type':'object','title':'Person','properties':{'name':{'type':'string','title':'Name'},"
     "'address':{'type':'object','title':'Address','description':'home','properties':{'street':"
     "{'type':'string','title':'Street'},'zip':{'type':'string','title':'Zip','nullable':true}},"
     "'required':['street','zip']}},'required':['name','address']}"},
    {"pydantic v2: Optional[List[str]] and an enum class by $ref",
     "{'$defs':{'Color':{'enum':['red','green'],'title':'Color','type':'string'}},'type':"
     "'object','properties':{'tags':{'anyOf':[{'type':'array','items':{'type':'string'}},"
     "{'type':'null'}],'default':null,'title':'Tags'},'c':{'$ref':'#/$defs/Color'}},"
     "'required':['c']}",
     "{'type':'object','properties':{'tags':{'type':'array','items':{'type':'string'},"
     "'nullable':true,'title':'Tags'},'c':{'type':'string','enum':['red','green'],'title':"
     "'Color'}},'required':['c']}"},
    {"pydantic v2: allOf with one $ref is flattened",
     "{'allOf':[{'$ref':'#/$defs/Base'}],'description':'x','$defs':{'Base':{'type':'object',"
     "'properties':{'id':{'type':'string'}},'required':['id']}}}",
     "{'description':'x','type':'object','properties':{'id':{'type':'string'}},'required':"
     "['id']}"},
    {"allOf with several branches: properties and required united",
     "{'allOf':[{'type':'object','properties':{'a':{'type':'string'}}},{'properties':{'b':"
     "{'type':'number'}},'required':['a','b']}]}",
     "{'type':'object','properties':{'a':{'type':'string'},'b':{'type':'number'}},'required':"
     "['a','b']}"},
    {"zod-to-json-schema default refs: JSON pointer to an earlier property, definitions",
     "{'type':'object','properties':{'from':{'type':'object','properties':{'lat':{'type':"
     "'number'},'lng':{'type':'number'}},'required':['lat','lng'],'additionalProperties':false},"
     "'to':{'$ref':'#/properties/from'}},'required':['from','to'],'additionalProperties':false,"
     "'definitions':{},'$schema':'http://json-schema.org/draft-07/schema#'}",
     "{'type':'object','properties':{'from':{'type':'object','properties':{'lat':{'type':"
     "'number'},'lng':{'type':'number'}},'required':['lat','lng']},'to':{'type':'object',"
     "'properties':{'lat':{'type':'number'},'lng':{'type':'number'}},'required':['lat','lng']}},"
     "'required':['from','to']}"},
    {"#/definitions/X and escaped pointer tokens",
     "{'definitions':{'a/b':{'type':'string'},'m~n':{'type':'integer'}},'type':'object',"
     "'properties':{'x':{'$ref':'#/definitions/a~1b'},'y':{'$ref':'#/definitions/m~0n'}}}",
     "{'type':'object','properties':{'x':{'type':'string'},'y':{'type':'integer'}}}"},
    {"unresolvable and external refs become an object, keeping the description",
     "{'type':'object','properties':{'x':{'$ref':'#/$defs/Missing','description':'m'},'y':"
     "{'$ref':'http://example.com/s.json'},'z':{'$ref':'#/$defs/a~2'}}}",
     "{'type':'object','properties':{'x':{'type':'object','description':'m'},'y':{'type':"
     "'object'},'z':{'type':'object'}}}"},
    {"zod nullable, const, oneOf, formats",
     "{'type':'object','properties':{'kind':{'const':'file'},'size':{'type':['integer','null'],"
     "'format':'int64'},'tag':{'oneOf':[{'type':'string'},{'type':'number'}]},'when':{'type':"
     "'string','format':'date-time'},'email':{'type':'string','format':'email'},'id':{'type':"
     "'string','format':'uuid'},'ratio':{'type':'number','format':'float'},'n':{'type':"
     "'integer','format':'int32'},'bad':{'type':'string','format':'float'}}}",
     "{'type':'object','properties':{'kind':{'type':'string','enum':['file']},'size':{'type':"
     "'integer','format':'int64','nullable':true},'tag':{'anyOf':[{'type':'string'},{'type':"
     "'number'}]},'when':{'type':'string','format':'date-time'},'email':{'type':'string'},"
     "'id':{'type':'string'},'ratio':{'type':'number','format':'float'},'n':{'type':'integer',"
     "'format':'int32'},'bad':{'type':'string'}}}"},
    {"several non-null types split into anyOf",
     "{'type':['string','integer','null'],'description':'id','maxLength':5}",
     "{'anyOf':[{'type':'string','maxLength':5},{'type':'integer'}],'description':'id',"
     "'nullable':true}"},
    {"keywords of another type are left out",
     "{'type':'object','properties':{'s':{'type':'string','minimum':1,'items':{'type':'string'},"
     "'properties':{'a':{}},'required':['a'],'maxLength':3},'n':{'type':'integer','pattern':"
     "'x','minimum':1,'minItems':1},'a':{'type':'array','maxItems':2,'minProperties':1}}}",
     "{'type':'object','properties':{'s':{'type':'string','maxLength':3},'n':{'type':"
     "'integer','minimum':1},'a':{'type':'array','maxItems':2,'items':{'type':'string'}}}}"},
    {"non-schema anyOf branches are skipped", "{'oneOf':[1,'x',null,{'type':'boolean'}]}",
     "{'type':'boolean'}"},
    {"anyOf with several branches and a null one",
     "{'anyOf':[{'type':'string'},{'type':'integer'},{'type':'null'}],'description':'d'}",
     "{'anyOf':[{'type':'string'},{'type':'integer'}],'description':'d','nullable':true}"},
    {"enum values as strings; none on a non-string type; null makes it nullable",
     "{'type':'object','properties':{'level':{'type':'integer','enum':[1,2,3]},'unit':{'enum':"
     "['c','f',null]},'flag':{'enum':[true,1.5,'x',{'a':1}]},'one':{'const':7}}}",
     "{'type':'object','properties':{'level':{'type':'integer'},'unit':{'type':'string','enum':"
     "['c','f'],'nullable':true},'flag':{'type':'string','enum':['true','1.5','x']},'one':"
     "{'type':'string','enum':['7']}}}"},
    {"format enum needs enum values",
     "{'type':'object','properties':{'a':{'type':'string','format':'enum','enum':['x']},'b':"
     "{'type':'string','format':'enum'}}}",
     "{'type':'object','properties':{'a':{'type':'string','format':'enum','enum':['x']},'b':"
     "{'type':'string'}}}"},
    {"arrays: missing items, tuple items, uniqueItems dropped",
     "{'type':'object','properties':{'tags':{'type':'array'},'pair':{'type':'array','items':"
     "[{'type':'number'},{'type':'string'}],'minItems':2,'maxItems':2},'names':{'type':'array',"
     "'items':{'type':'string','minLength':1},'uniqueItems':true}}}",
     "{'type':'object','properties':{'tags':{'type':'array','items':{'type':'string'}},'pair':"
     "{'type':'array','items':{'type':'number'},'minItems':2,'maxItems':2},'names':{'type':"
     "'array','items':{'type':'string','minLength':1}}}}"},
    {"required and propertyOrdering filtered to known properties",
     "{'type':'object','properties':{'a':{'type':'string'}},'required':['a','b','a',3],"
     "'propertyOrdering':['b','a']}",
     "{'type':'object','properties':{'a':{'type':'string'}},'required':['a'],"
     "'propertyOrdering':['a']}"},
    {"required without properties is dropped, empty properties left out",
     "{'type':'object','properties':{},'required':['a']}", "{'type':'object'}"},
    {"free-form map: additionalProperties only",
     "{'type':'object','properties':{'env':{'type':'object','additionalProperties':{'type':"
     "'string'}}}}",
     "{'type':'object','properties':{'env':{'type':'object'}}}"},
    {"unsupported keywords dropped, bounds and title kept",
     "{'$id':'x','$comment':'c','title':'T','type':'object','examples':[{}],'properties':{'n':"
     "{'type':'number','exclusiveMinimum':0,'multipleOf':2,'minimum':0,'maximum':10.5,"
     "'default':5,'readOnly':true,'x-google':1},'s':{'type':'string','pattern':'^a+$',"
     "'minLength':-1,'maxLength':'9','contentMediaType':'text/plain'}},'patternProperties':"
     "{'^x':{}},'not':{},'minProperties':1,'maxProperties':3}",
     "{'title':'T','type':'object','properties':{'n':{'type':'number','minimum':0,'maximum':"
     "10.5},'s':{'type':'string','pattern':'^a+$'}},'minProperties':1,'maxProperties':3}"},
    {"type inferred from properties, items and enum; unknown type dropped",
     "{'properties':{'q':{'type':'string'},'l':{'items':{'type':'integer'}},'e':{'enum':['a']},"
     "'w':{'type':'any','description':'anything'}}}",
     "{'type':'object','properties':{'q':{'type':'string'},'l':{'type':'array','items':{'type':"
     "'integer'}},'e':{'type':'string','enum':['a']},'w':{'description':'anything'}}}"},
    {"OpenAPI style input passes through", "{'type':'STRING','nullable':true,'format':'date-time'}",
     "{'type':'STRING','nullable':true,'format':'date-time'}"},
    {"a lone null type", "{'type':'null'}", "{'nullable':true}"},
    {"boolean schema", "true", "{}"},
    {"not a schema", "[1,2]", "{}"},
};

static void test_clean_rows(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        json_t *in = j(rows[i].in), *want = j(rows[i].want);
        json_t *got = gb_schema_clean(in);

        assert_json_eq(got, want, rows[i].name);
        json_decref(got);
        json_decref(in);
        json_decref(want);
    }
}

/* The input is never changed (it is borrowed). */
static void test_clean_leaves_input(void **state)
{
    const char *src = "{'$defs':{'A':{'type':'object','properties':{'x':{'type':'string'}}}},"
                      "'allOf':[{'$ref':'#/$defs/A'},{'required':['x']}],'additionalProperties':"
                      "false,'anyOf':[{'$ref':'#/$defs/A'},{'type':'null'}]}";
    json_t *in = j(src), *copy = j(src);
    json_t *got = gb_schema_clean(in);

    (void)state;
    assert_non_null(got);
    assert_json_eq(in, copy, "input unchanged");
    json_decref(got);
    json_decref(in);
    json_decref(copy);
}

/* A recursive type is inlined GB_SCHEMA_REF_DEPTH times, then cut off. */
static void test_clean_recursive_ref(void **state)
{
    json_t *in = j("{'$defs':{'Node':{'type':'object','properties':{'value':{'type':'string'},"
                   "'children':{'type':'array','items':{'$ref':'#/$defs/Node'}}},'required':"
                   "['value']}},'$ref':'#/$defs/Node'}");
    json_t *got = gb_schema_clean(in), *cut = j("{'type':'object'}");
    const json_t *node = got;
    int copies = 0;

    (void)state;
    assert_non_null(got);
    while (json_object_get(json_object_get(node, "properties"), "value") != NULL) {
        copies++;
        assert_string_equal(json_string_value(json_object_get(node, "type")), "object");
        assert_non_null(json_object_get(node, "required"));
        node = json_object_get(json_object_get(json_object_get(node, "properties"), "children"),
                               "items");
        assert_non_null(node);
    }
    assert_int_equal(copies, GB_SCHEMA_REF_DEPTH);
    assert_json_eq(node, cut, "cut-off node");
    json_decref(cut);
    json_decref(got);
    json_decref(in);
}

/* "#" (the root itself) recurses the same way. */
static void test_clean_root_ref(void **state)
{
    json_t *in = j("{'type':'object','properties':{'next':{'$ref':'#'}}}");
    json_t *got = gb_schema_clean(in);
    const json_t *node = got;
    int levels = 0;

    (void)state;
    while ((node = json_object_get(json_object_get(node, "properties"), "next")) != NULL)
        levels++;
    assert_int_equal(levels, GB_SCHEMA_REF_DEPTH + 1);
    json_decref(got);
    json_decref(in);
}

/* Refs that fan out (40 properties each pointing at the next level) stop
 * near GB_SCHEMA_MAX_NODES instead of growing as 40^depth. */
static void test_clean_fan_out_bounded(void **state)
{
    json_t *in = gb_test_fan_out_schema(), *got;

    (void)state;
    got = gb_schema_clean(in);
    assert_non_null(got);
    assert_true(gb_test_count_nodes(got) <= GB_SCHEMA_MAX_NODES + 40 * (GB_SCHEMA_REF_DEPTH + 2));
    assert_true(gb_test_count_nodes(got) > 40 * 40);
    json_decref(got);
    json_decref(in);
}

/* Very deep nesting is cut off instead of recursing without bound. */
static void test_clean_deep_nesting(void **state)
{
    json_t *in = json_pack("{s:s}", "type", "string"), *got;
    const json_t *node;
    int i, depth = 0;

    (void)state;
    for (i = 0; i < 500; i++)
        in = json_pack("{s:s,s:{s:o}}", "type", "object", "properties", "a", in);
    got = gb_schema_clean(in);
    assert_non_null(got);
    for (node = got; json_object_get(json_object_get(node, "properties"), "a") != NULL; depth++)
        node = json_object_get(json_object_get(node, "properties"), "a");
    assert_true(depth >= 50 && depth <= 100);
    json_decref(got);
    json_decref(in);
}

static const struct {
    const char *cleaned;
    int want;
} empty_rows[] = {
    {"{}", 1},
    {"{'type':'object'}", 1},
    {"{'type':'OBJECT','description':'no arguments'}", 1},
    {"{'type':'object','properties':{'a':{'type':'string'}}}", 0},
    {"{'anyOf':[{'type':'string'},{'type':'integer'}]}", 0},
    {"{'type':'string'}", 0},
    {"[]", 0},
};

static void test_is_empty_object(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof empty_rows / sizeof empty_rows[0]; i++) {
        json_t *s = j(empty_rows[i].cleaned);

        if (gb_schema_is_empty_object(s) != empty_rows[i].want)
            fail_msg("%s: want %d", empty_rows[i].cleaned, empty_rows[i].want);
        json_decref(s);
    }
    assert_int_equal(gb_schema_is_empty_object(NULL), 0);
}

/* What a parameterless zod tool sends is empty once cleaned. */
static void test_empty_after_clean(void **state)
{
    json_t *in = j("{'type':'object','properties':{},'additionalProperties':false,'$schema':"
                   "'http://json-schema.org/draft-07/schema#'}");
    json_t *got = gb_schema_clean(in);

    (void)state;
    assert_int_equal(gb_schema_is_empty_object(got), 1);
    json_decref(got);
    json_decref(in);
}

/* propertyOrdering: the client's key order, for objects of two keys or
 * more, through properties, items and anyOf; a given ordering is kept. */
static void test_add_ordering(void **state)
{
    json_t *s = j("{'type':'object','properties':{'reasoning':{'type':'string'},'answer':{'type':"
                  "'object','properties':{'z':{'type':'string'},'a':{'type':'integer'}}},'list':{"
                  "'type':'array','items':{'type':'object','properties':{'b':{'type':'string'},"
                  "'a':{'type':'string'}}}},'one':{'type':'object','properties':{'only':{'type':"
                  "'string'}}},'either':{'anyOf':[{'type':'object','properties':{'y':{'type':"
                  "'string'},'x':{'type':'string'}},'propertyOrdering':['x','y']}]}}}");
    json_t *want =
        j("{'type':'object','properties':{'reasoning':{'type':'string'},'answer':{"
          "'type':'object','properties':{'z':{'type':'string'},'a':{'type':'integer'}},"
          "'propertyOrdering':['z','a']},'list':{'type':'array','items':{'type':'object',"
          "'properties':{'b':{'type':'string'},'a':{'type':'string'}},"
          "'propertyOrdering':['b','a']}},'one':{'type':'object','properties':{'only':{"
          "'type':'string'}}},'either':{'anyOf':[{'type':'object','properties':{'y':{"
          "'type':'string'},'x':{'type':'string'}},'propertyOrdering':['x','y']}]}},"
          "'propertyOrdering':['reasoning','answer','list','one','either']}");

    (void)state;
    assert_int_equal(gb_schema_add_ordering(s), 0);
    if (!json_equal(s, want)) {
        char *got = json_dumps(s, JSON_PRESERVE_ORDER);
        fail_msg("got %s", got);
    }
    assert_int_equal(gb_schema_add_ordering(NULL), 0);
    json_decref(s);
    json_decref(want);
}

/* Free-form objects below the root (what Gemini's Schema refuses), after
 * cleaning: additionalProperties maps, at any depth, in items and anyOf. */
static void test_has_free_object(void **state)
{
    static const struct {
        const char *in; /* client JSON Schema, cleaned before the check */
        int want;
    } free_rows[] = {
        {"{'type':'object','properties':{'tags':{'type':'object','additionalProperties':{'type':"
         "'string'}}}}",
         1},
        {"{'type':'object','properties':{'a':{'type':'object','properties':{'b':{'type':'object'}}}"
         "}}",
         1},
        {"{'type':'object','properties':{'l':{'type':'array','items':{'type':'object'}}}}", 1},
        {"{'type':'object','properties':{'u':{'anyOf':[{'type':'string'},{'type':'object'}]}}}", 1},
        {"{'type':'object','properties':{'n':{}}}", 1},
        {"{'type':'object','properties':{'a':{'type':'string'},'o':{'type':'object','properties':{"
         "'x':{'type':'integer'}}}}}",
         0},
        {"{'type':'object','additionalProperties':{'type':'string'}}", 0}, /* root: no parameters */
        {"{'type':'object','properties':{}}", 0},
        {"{'type':'object','properties':{'l':{'type':'array','items':{'type':'string'}}}}", 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof free_rows / sizeof free_rows[0]; i++) {
        json_t *in = j(free_rows[i].in), *c = gb_schema_clean(in);

        if (gb_schema_has_free_object(c) != free_rows[i].want)
            fail_msg("%s: want %d", free_rows[i].in, free_rows[i].want);
        json_decref(c);
        json_decref(in);
    }
    assert_int_equal(gb_schema_has_free_object(NULL), 0);
}

/* Free-form maps the client wrote, told from the cleaner's fallbacks. */
static void test_has_free_map(void **state)
{
    static const struct {
        const char *in;
        int want;
    } map_rows[] = {
        {"{'type':'object','properties':{'tags':{'type':'object','additionalProperties':{'type':"
         "'string'}}}}",
         1},
        {"{'type':'object','properties':{'m':{'additionalProperties':true}}}", 1},
        {"{'type':'object','properties':{'o':{'type':['object','null']}}}", 1},
        {"{'type':'object','properties':{'l':{'type':'array','items':{'type':'object'}}}}", 1},
        {"{'type':'object','properties':{'l':{'type':'array','items':[{'type':'string'},{'type':"
         "'object'}]}}}",
         1},
        {"{'$ref':'#/$defs/A','$defs':{'A':{'type':'object','properties':{'x':{'$ref':'#/$defs/"
         "B'}}},'B':{'type':'object','additionalProperties':{'type':'integer'}}}}",
         1},
        {"{'type':'object','properties':{'u':{'anyOf':[{'type':'string'},{'type':'object'}]}}}", 1},
        /* not: the root (no parameters), objects with properties, a dangling or
         * recursive $ref (the cleaner's fallback), additionalProperties false */
        {"{'type':'object','additionalProperties':{'type':'string'}}", 0},
        {"{'anyOf':[{'type':'object','additionalProperties':true}]}", 0},
        {"{'type':'object','properties':{'a':{'type':'object','properties':{'b':{'type':"
         "'string'}},'additionalProperties':{'type':'string'}}}}",
         0},
        {"{'type':'object','properties':{'n':{'$ref':'#/$defs/Missing'},'r':{'$ref':'#'}}}", 0},
        {"{'type':'object','properties':{'s':{'type':'string'}},'additionalProperties':false}", 0},
        {"{'type':'object','properties':{'e':{'additionalProperties':false}}}", 0},
    };
    json_t *bomb = gb_test_fan_out_schema();

    (void)state;
    for (size_t i = 0; i < sizeof map_rows / sizeof map_rows[0]; i++) {
        json_t *in = j(map_rows[i].in);

        if (gb_schema_has_free_map(in) != map_rows[i].want)
            fail_msg("%s: want %d", map_rows[i].in, map_rows[i].want);
        json_decref(in);
    }
    assert_int_equal(gb_schema_has_free_map(bomb), 0);
    assert_int_equal(gb_schema_has_free_map(NULL), 0);
    json_decref(bomb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_ordering),       cmocka_unit_test(test_has_free_object),
        cmocka_unit_test(test_has_free_map),       cmocka_unit_test(test_clean_rows),
        cmocka_unit_test(test_clean_leaves_input), cmocka_unit_test(test_clean_recursive_ref),
        cmocka_unit_test(test_clean_root_ref),     cmocka_unit_test(test_clean_fan_out_bounded),
        cmocka_unit_test(test_clean_deep_nesting), cmocka_unit_test(test_is_empty_object),
        cmocka_unit_test(test_empty_after_clean),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
