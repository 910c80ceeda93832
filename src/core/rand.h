/* rand.h - fast non-cryptographic randomness for ids (per-thread state). */
#ifndef GB_CORE_RAND_H
#define GB_CORE_RAND_H

#include <stddef.h>
#include <stdint.h>

/* A 64-bit random number (xorshift64*, seeded per thread from getrandom). */
uint64_t gb_rand64(void);

/* Writes n random characters from [A-Za-z0-9] and a NUL to out (n + 1 bytes). */
void gb_rand_alnum(char *out, size_t n);

#endif
