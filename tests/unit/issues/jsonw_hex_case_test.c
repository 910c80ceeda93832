/*
 * jsonw_hex_case_test.c - gb_jsonw_string escaped control characters with
 * lower-case hex ("\u001b") where jansson writes upper case ("\u001B")
 * (found by tests/fuzz/translate_response_fuzz.c on a recorded Gemini answer
 * holding U+000F).
 *
 * jsonw.h promises the bytes of jansson's JSON_COMPACT dump, and the stream
 * chunks built with it are meant to equal what json_dumps gives for the same
 * chunk.  Both spellings are valid JSON, so clients are not hurt; the promise
 * (and any test comparing stream bytes with a jansson dump) is.
 */
#include "test.h"

#include <jansson.h>

#include "core/buf.h"
#include "core/jsonw.h"

static void test_same_bytes_as_jansson(void **state)
{
    struct gb_buf b;
    char s[32];

    (void)state;
    for (int c = 0; c < 0x20; c++) {
        json_t *j;
        char *dumped;

        snprintf(s, sizeof s, "a%cb", c == 0 ? 1 : c);
        j = json_string(s);
        assert_non_null(j);
        dumped = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        gb_buf_init(&b, 1024);
        assert_int_equal(gb_jsonw_cstring(&b, s), 0);
        assert_string_equal(b.data, dumped);
        gb_buf_release(&b);
        free(dumped);
        json_decref(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes_as_jansson),
    };
    return cmocka_run_group_tests_name("issue jsonw_hex_case", tests, NULL, NULL);
}
