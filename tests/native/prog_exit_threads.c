/* Workload: argv[1] threads in all (main included) burn CPU forever; after argv[3] s one of them
 * calls exit(0) while the rest keep running: argv[2] = "main" (main calls exit), "thread" (a
 * non-main thread calls exit, main keeps burning) "race" (a non-main thread calls exit, and
 * main returns from main 20 ms later, as a program whose main finishes its own work does) or
 * "race3" (as race, and a second thread calls exit 10 ms after the first). The final profile must
 * still be written. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "burn.h"

static int64_t exit_at;

__attribute__((noinline)) static void burn_forever(void) {
    for (;;) spin_cpu(1000000);
}

__attribute__((noinline)) static void *worker(void *arg) {
    (void)arg;
    burn_forever();
    return NULL;
}

__attribute__((noinline)) static void *exiter(void *arg) {
    (void)arg;
    while (mono_ns() < exit_at) spin_cpu(1000000);
    exit(0);
}

__attribute__((noinline)) static void *exiter2(void *arg) {
    (void)arg;
    while (mono_ns() < exit_at + 10000000) spin_cpu(1000000);
    exit(0);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 64;
    int from_main = argc > 2 && strcmp(argv[2], "main") == 0;
    int race3 = argc > 2 && strcmp(argv[2], "race3") == 0;
    int race = race3 || (argc > 2 && strcmp(argv[2], "race") == 0);
    double secs = argc > 3 ? atof(argv[3]) : 1.0;
    exit_at = mono_ns() + (int64_t)(secs * 1e9);
    pthread_t t;
    for (int i = 1; i < n; i++) {
        void *(*fn)(void *) = (!from_main && i == 1) ? exiter : (race3 && i == 2) ? exiter2 : worker;
        if (pthread_create(&t, NULL, fn, NULL) != 0) {
            perror("pthread_create");
            return 2;
        }
    }
    if (from_main) {
        while (mono_ns() < exit_at) spin_cpu(1000000);
        exit(0);
    }
    if (race) {
        while (mono_ns() < exit_at + 20000000) spin_cpu(1000000);
        return 0;
    }
    burn_forever();
}
