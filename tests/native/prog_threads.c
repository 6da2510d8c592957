/* Workload: threads created and destroyed continuously for argv[1] s, waves of argv[2] threads,
 * each burning a little CPU in thread_work; prints how many threads ran. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "burn.h"

__attribute__((noinline)) static void *thread_work(void *arg) {
    (void)arg;
    spin_cpu(2000000);
    return NULL;
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 10.0;
    int wave = argc > 2 ? atoi(argv[2]) : 100;
    pthread_t *t = calloc((size_t)wave, sizeof(*t));
    int64_t end = mono_ns() + (int64_t)(secs * 1e9);
    long total = 0;
    while (mono_ns() < end) {
        int n = 0;
        for (; n < wave; n++)
            if (pthread_create(&t[n], NULL, thread_work, NULL) != 0) break;
        for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
        total += n;
    }
    free(t);
    printf("threads %ld\n", total);
    return 0;
}
