/* Workload: a server that drops privileges: as root it switches to uid/gid argv[1] (default
 * 65534) once main() begins, then burns CPU for argv[2] s (default 0.5) as that user. */
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "burn.h"

__attribute__((noinline)) uint64_t worker_work(int64_t ns) { return spin_cpu(ns); }

int main(int argc, char **argv) {
    int id = argc > 1 ? atoi(argv[1]) : 65534;
    double secs = argc > 2 ? atof(argv[2]) : 0.5;
    if (setgroups(0, NULL) != 0 || setgid((gid_t)id) != 0 || setuid((uid_t)id) != 0) {
        perror("dropping privileges");
        return 2;
    }
    uint64_t acc = worker_work((int64_t)(secs * 1e9));
    printf("done %llu\n", (unsigned long long)(acc & 1));
    return 0;
}
