/* Clock readings in nanoseconds. clock_gettime is AS-safe (vDSO), so these serve the signal
 * handler too. */
#ifndef OP_CLOCK_H
#define OP_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t op_clock_ns(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static inline int64_t op_mono_ns(void) { return op_clock_ns(CLOCK_MONOTONIC); }

#endif
