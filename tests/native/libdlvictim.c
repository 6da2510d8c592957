/* A small shared library that prog_dlopen_loop dlopens, calls and dlcloses over and over: its
 * functions carry distinctive names so the test can tell them from everything else. Pure
 * arithmetic, no calls out of the library, so every sample taken inside it has a dlvictim_ leaf. */
#include <stdint.h>

__attribute__((noinline)) uint64_t dlvictim_inner(uint64_t x, uint64_t rounds) {
    for (uint64_t i = 0; i < rounds; i++) x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x;
}

/* Burns about `iters` thousand multiply-adds. */
__attribute__((noinline)) uint64_t dlvictim_burn(uint64_t iters, uint64_t seed) {
    uint64_t x = seed | 1;
    for (uint64_t i = 0; i < iters; i++) x ^= dlvictim_inner(x, 1000);
    return x;
}
