/*
 * rand.c - per-thread xorshift64* for response ids.  Not for secrets: the
 * tokens make run.sh writes come from /dev/urandom.
 */
#include "core/rand.h"

#include <sys/random.h>
#include <time.h>

static _Thread_local uint64_t state;

uint64_t gb_rand64(void)
{
    if (state == 0) {
        if (getrandom(&state, sizeof state, GRND_NONBLOCK) != (ssize_t)sizeof state || state == 0)
            state = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL | 1;
    }
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1DULL;
}

void gb_rand_alnum(char *out, size_t n)
{
    static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    uint64_t x = 0;

    for (size_t i = 0; i < n; i++) {
        if (i % 10 == 0)
            x = gb_rand64();
        out[i] = set[x % 62];
        x /= 62;
    }
    out[n] = '\0';
}
