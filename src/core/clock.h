/* clock.h - monotonic and wall-clock time in milliseconds. */
#ifndef GB_CORE_CLOCK_H
#define GB_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds on the monotonic clock (for deadlines and cooldowns). */
static inline int64_t gb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Microseconds on the monotonic clock (for latencies). */
static inline int64_t gb_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#endif
