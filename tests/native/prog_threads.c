/* Workload: threads created and destroyed continuously for argv[1] s, waves of argv[2] threads,
 * each burning a little CPU in thread_work; with argv[3] = "hold" a wave's threads all wait for
 * one another before they end (the whole wave alive at once). Prints how many threads ran and
 * the peak RSS ("threads N vmhwm_kb K"). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "burn.h"

static pthread_barrier_t wave_done;

__attribute__((noinline)) static void *thread_work(void *arg) {
    spin_cpu(2000000);
    if (arg) pthread_barrier_wait(&wave_done);
    return NULL;
}

static long vmhwm_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = atol(line + 6);
    if (f) fclose(f);
    return kb;
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 10.0;
    int wave = argc > 2 ? atoi(argv[2]) : 100;
    int hold = argc > 3 && strcmp(argv[3], "hold") == 0;
    pthread_t *t = calloc((size_t)wave, sizeof(*t));
    if (hold) pthread_barrier_init(&wave_done, NULL, (unsigned)wave);
    int64_t end = mono_ns() + (int64_t)(secs * 1e9);
    long total = 0;
    while (mono_ns() < end) {
        int n = 0;
        for (; n < wave; n++)
            if (pthread_create(&t[n], NULL, thread_work, hold ? &wave_done : NULL) != 0) break;
        if (hold && n < wave) return 3; /* the barrier would wait forever */
        for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
        total += n;
    }
    free(t);
    printf("threads %ld vmhwm_kb %ld\n", total, vmhwm_kb());
    return 0;
}
