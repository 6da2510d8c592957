/* Workload: one thread spends 70% of its CPU in burn_hot and 30% in burn_cold, for argv[1] s. */
#include <stdio.h>
#include <stdlib.h>

#include "burn.h"

/* Chunk lengths vary pseudo-randomly so the workload never phase-locks with the sampling period,
 * and are long against it (14..140 ms hot, 6..60 ms cold at 10 ms per sample): the share error then
 * measures the profiler. With sub-period chunks each sample would land like a coin toss, and a
 * 70/30 split over 500 samples would carry about 2 pp of pure binomial noise. */
__attribute__((noinline)) uint64_t burn_hot(int64_t unit) { return spin_cpu(7 * unit); }
__attribute__((noinline)) uint64_t burn_cold(int64_t unit) { return spin_cpu(3 * unit); }

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    int64_t end = thread_cpu_ns() + (int64_t)(secs * 1e9);
    uint64_t acc = 0, seed = (uint64_t)(uintptr_t)&acc;
    while (thread_cpu_ns() < end) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int64_t unit = 2000000 + (int64_t)((seed >> 33) % 18000000); /* 2 .. 20 ms */
        acc += burn_hot(unit);
        acc += burn_cold(unit);
    }
    printf("done %llu\n", (unsigned long long)(acc & 1));
    return 0;
}
