/* netaddr_test.c - which addresses the image downloader may connect to. */
#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "upstream/netaddr.h"

static int public_text(const char *text)
{
    struct sockaddr_in s4;
    struct sockaddr_in6 s6;

    memset(&s4, 0, sizeof s4);
    memset(&s6, 0, sizeof s6);
    if (inet_pton(AF_INET, text, &s4.sin_addr) == 1) {
        s4.sin_family = AF_INET;
        return gb_addr_public((struct sockaddr *)&s4);
    }
    assert_int_equal(inet_pton(AF_INET6, text, &s6.sin6_addr), 1);
    s6.sin6_family = AF_INET6;
    return gb_addr_public((struct sockaddr *)&s6);
}

static void test_blocked(void **state)
{
    static const char *const no[] = {
        "127.0.0.1",   "127.255.255.254",  "0.0.0.0",         "10.1.2.3",
        "172.16.0.1",  "172.31.255.255",   "192.168.1.1",     "169.254.169.254",
        "100.64.0.1",  "100.127.255.255",  "224.0.0.1",       "255.255.255.255",
        "240.0.0.1",   "192.0.2.10",       "198.18.0.1",      "::1",
        "::",          "fe80::1",          "fd00::1",         "fc00::1",
        "ff02::1",     "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe",
        "2001:db8::1", "fec0::1",
    };

    (void)state;
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        if (public_text(no[i]))
            fail_msg("%s taken for public", no[i]);
    }
}

static void test_public(void **state)
{
    static const char *const yes[] = {
        "8.8.8.8",        "142.250.74.106",           "172.15.255.255",
        "172.32.0.1",     "100.63.255.255",           "100.128.0.1",
        "1.1.1.1",        "2a00:1450:4001:82b::200a", "2001:4860:4860::8888",
        "::ffff:8.8.8.8", "223.255.255.255",
    };

    (void)state;
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (!public_text(yes[i]))
            fail_msg("%s taken for not public", yes[i]);
    }
}

static void test_other_family(void **state)
{
    struct sockaddr sa;

    (void)state;
    memset(&sa, 0, sizeof sa);
    sa.sa_family = AF_UNIX;
    assert_int_equal(gb_addr_public(&sa), 0);
    assert_int_equal(gb_addr_public(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocked),
        cmocka_unit_test(test_public),
        cmocka_unit_test(test_other_family),
    };
    return cmocka_run_group_tests_name("netaddr", tests, NULL, NULL);
}
