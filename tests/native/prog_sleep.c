/* Workload: one thread alternates 50 ms asleep (in do_sleep) and 50 ms of CPU (in do_work). */
#include <stdio.h>
#include <stdlib.h>

#include "burn.h"

__attribute__((noinline)) void do_sleep(void) { sleep_ns(50000000); }
__attribute__((noinline)) uint64_t do_work(void) { return spin_cpu(50000000); }

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    int64_t end = mono_ns() + (int64_t)(secs * 1e9);
    uint64_t acc = 0;
    while (mono_ns() < end) {
        do_sleep();
        acc += do_work();
    }
    printf("done %llu\n", (unsigned long long)(acc & 1));
    return 0;
}
