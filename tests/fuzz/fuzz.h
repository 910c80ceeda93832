/*
 * fuzz.h - helpers shared by the libFuzzer targets in tests/fuzz/.
 *
 * A target checks the contract of the header it fuzzes and calls abort() (through
 * FUZZ_CHECK) when an invariant breaks, so libFuzzer records the input as a crash
 * next to the ASan and UBSan reports.  Targets keep no state between inputs beyond
 * constants built once in LLVMFuzzerInitialize.  Built and run by scripts/fuzz.sh.
 */
#ifndef GB_TESTS_FUZZ_FUZZ_H
#define GB_TESTS_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Breaks the run when cond is false, naming the invariant and where it sits. */
#define FUZZ_CHECK(cond, what)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s (%s)\n", __FILE__, __LINE__, what,        \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* FNV-1a over the input: options and split points are derived from it, so the
 * same input always takes the same path (reproducible crashes), while any
 * mutation moves them. */
static inline uint64_t fuzz_hash(const uint8_t *data, size_t size)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

#endif
