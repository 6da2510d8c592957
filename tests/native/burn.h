/* Shared helpers for the native test workloads: burn a given amount of this thread's CPU time. */
#ifndef OTELPROF_TEST_BURN_H
#define OTELPROF_TEST_BURN_H

#include <errno.h>
#include <stdint.h>
#include <time.h>

static inline int64_t thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins until this thread has used ns more CPU time; the arithmetic keeps the samples inside the
 * caller's frame rather than in clock_gettime most of the time. */
static inline uint64_t spin_cpu(int64_t ns) {
    volatile uint64_t x = 1;
    int64_t end = thread_cpu_ns() + ns;
    while (thread_cpu_ns() < end)
        for (int i = 0; i < 20000; i++) x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x;
}

/* Sleeps ns of wall time, resuming after signal interruptions (wall mode interrupts sleeps). */
static inline void sleep_ns(int64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR) {}
}

#endif
