/*
 * router_tiny_buffer_test.c - gb_router_normalize wrote past a 0- or 1-byte
 * buffer (found by tests/fuzz/router_fuzz.c).
 *
 * A path that normalises to "/" ("", "?q", "#f") skips the size check in the
 * loop and then writes '/' and the NUL: two bytes, whatever outlen is.  With
 * outlen 1 the NUL lands one byte past the buffer (ASan: heap-buffer-overflow
 * at router.c, out[n] = '\0'); with outlen 0 both bytes do.  The contract
 * (router.h) says GB_ETOOBIG when the result does not fit.
 */
#include "test.h"

#include "core/err.h"
#include "server/router.h"

static void test_tiny_buffers(void **state)
{
    static const char *const uris[] = {"", "?q=1", "#frag", "/", "//", "/?x"};
    char out[4];

    (void)state;
    for (size_t i = 0; i < sizeof uris / sizeof uris[0]; i++) {
        for (size_t outlen = 0; outlen < 2; outlen++) {
            memset(out, 'X', sizeof out);
            assert_int_equal(gb_router_normalize(uris[i], out, outlen), GB_ETOOBIG);
            for (size_t k = outlen; k < sizeof out; k++)
                assert_int_equal(out[k], 'X'); /* nothing written past outlen */
        }
        /* two bytes are enough for "/" */
        assert_int_equal(gb_router_normalize(uris[i], out, 2), 0);
        assert_string_equal(out, "/");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_buffers),
    };
    return cmocka_run_group_tests_name("issue router_tiny_buffer", tests, NULL, NULL);
}
