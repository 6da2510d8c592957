/* Workload: says "started" on stderr as its main() begins, then burns CPU for argv[1] s. Lets a
 * test tell whether a diagnostic came before the program's own work (same pipe, in order). */
#include <stdio.h>
#include <stdlib.h>

#include "burn.h"

__attribute__((noinline)) uint64_t started_work(int64_t ns) { return spin_cpu(ns); }

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    fputs("started\n", stderr);
    uint64_t acc = started_work((int64_t)(secs * 1e9));
    printf("done %llu\n", (unsigned long long)(acc & 1));
    return 0;
}
