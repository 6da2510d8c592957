/* Benchmark workload with a fixed amount of work (so wall time measures overhead) and a known
 * CPU split: 70% in bench_hot, 30% in bench_cold, optionally below a recursion of given depth.
 *   native_bench <threads> <depth> <units>
 * Each thread does <units> work units; one unit is ~1 ms of CPU on a typical core. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static long units;
static int depth;

/* Integer mixing the compiler cannot fold away; iteration counts set the 7:3 split. */
__attribute__((noinline)) uint64_t bench_hot(uint64_t x) {
    for (int i = 0; i < 70000; i++) x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x;
}

__attribute__((noinline)) uint64_t bench_cold(uint64_t x) {
    for (int i = 0; i < 30000; i++) x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x;
}

__attribute__((noinline)) uint64_t bench_recurse(int d, uint64_t x) {
    if (d <= 0) return bench_cold(bench_hot(x));
    uint64_t r = bench_recurse(d - 1, x);
    __asm__ volatile("" : : "r"(r) : "memory"); /* no tail call: keep every level on the stack */
    return r;
}

static void *worker(void *arg) {
    uint64_t x = (uintptr_t)arg;
    for (long u = 0; u < units; u++) x = bench_recurse(depth, x);
    return (void *)(uintptr_t)x;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    depth = argc > 2 ? atoi(argv[2]) : 0;
    units = argc > 3 ? atol(argv[3]) : 2000;
    if (threads < 1) threads = 1;
    pthread_t *t = calloc((size_t)threads, sizeof(*t));
    uint64_t acc = 0;
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < threads; i++) {
        void *r;
        pthread_join(t[i], &r);
        acc ^= (uintptr_t)r;
    }
    printf("%llu\n", (unsigned long long)(acc & 1));
    free(t);
    return 0;
}
