/* Loops dlopen(libdlvictim.so) -> burn in dlvictim_burn -> dlclose, for argv[1] seconds (default
 * 5); prints "iterations N". argv[2] is the burn per iteration in ms (default 10; short burns put
 * most samples inside the loader), argv[3] names the library (default: ../lib/libdlvictim.so
 * beside this program). Each call goes through call_victim, a main-program function, so every
 * sample of the library's code passes through a frame that is always named. */
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "burn.h"

typedef uint64_t (*burn_fn)(uint64_t iters, uint64_t seed);

static volatile uint64_t sink;

__attribute__((noinline)) static uint64_t call_victim(burn_fn fn, uint64_t iters, uint64_t seed) {
    uint64_t r = fn(iters, seed);
    __asm__ volatile("" ::: "memory"); /* keep the call a call, not a tail jump */
    return r;
}

static void *open_victim(const char *path, burn_fn *fn) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        exit(2);
    }
    *fn = (burn_fn)dlsym(h, "dlvictim_burn");
    if (!*fn) {
        fprintf(stderr, "dlsym dlvictim_burn: %s\n", dlerror());
        exit(2);
    }
    return h;
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 5.0;
    double burn_ms = argc > 2 ? atof(argv[2]) : 10.0;
    char path[PATH_MAX];
    if (argc > 3) {
        snprintf(path, sizeof path, "%s", argv[3]);
    } else {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0) return 2;
        self[n] = '\0';
        snprintf(path, sizeof path, "%s/../lib/libdlvictim.so", dirname(self));
    }
    /* Calibrate: how many iterations make burn_ms. */
    burn_fn fn;
    void *h = open_victim(path, &fn);
    uint64_t probe = 200;
    int64_t t0 = mono_ns();
    sink += call_victim(fn, probe, 1);
    int64_t took = mono_ns() - t0;
    dlclose(h);
    uint64_t iters = took > 0 ? (uint64_t)((double)probe * burn_ms * 1e6 / (double)took) : probe;
    if (iters < 1) iters = 1;

    int64_t end = mono_ns() + (int64_t)(secs * 1e9);
    uint64_t it = 0;
    while (mono_ns() < end) {
        h = open_victim(path, &fn);
        sink += call_victim(fn, iters, it);
        if (dlclose(h) != 0) {
            fprintf(stderr, "dlclose: %s\n", dlerror());
            return 3;
        }
        it++;
    }
    printf("iterations %llu\n", (unsigned long long)it);
    return 0;
}
