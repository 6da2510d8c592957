/* Example: a small "service" whose worker threads parse, hash and sort requests and wait on a
 * fake downstream call, so the flame graph has something real-looking to show. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double seconds = 4;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

__attribute__((noinline)) static size_t parse_request(char *buf, size_t n, unsigned seed) {
    size_t fields = 0;
    for (size_t i = 0; i < n; i++) {
        buf[i] = (char)('a' + (seed = seed * 1103515245u + 12345u) % 26);
        if (buf[i] == 'q') fields++;
    }
    return fields;
}

__attribute__((noinline)) static uint64_t hash_payload(const char *buf, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (int round = 0; round < 8; round++)
        for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)buf[i]) * 1099511628211ull;
    return h;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

__attribute__((noinline)) static void sort_results(int *v, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) v[i] = (int)(seed = seed * 1664525u + 1013904223u);
    qsort(v, n, sizeof(int), cmp_int);
}

__attribute__((noinline)) static void call_downstream(void) {
    struct timespec ts = {0, 2000000}; /* 2 ms "network" wait */
    while (nanosleep(&ts, &ts) != 0) {}
}

__attribute__((noinline)) static void handle_request(unsigned id, char *buf, int *v) {
    parse_request(buf, 64 * 1024, id);
    hash_payload(buf, 64 * 1024);
    sort_results(v, 20000, id);
    call_downstream();
}

static void *worker(void *arg) {
    unsigned id = (unsigned)(uintptr_t)arg;
    char *buf = malloc(64 * 1024);
    int *v = malloc(20000 * sizeof(int));
    int64_t end = now_ns() + (int64_t)(seconds * 1e9);
    unsigned long handled = 0;
    while (now_ns() < end) handle_request(id * 7919u + (unsigned)handled++, buf, v);
    free(buf);
    free(v);
    return (void *)(uintptr_t)handled;
}

int main(int argc, char **argv) {
    if (argc > 1) seconds = atof(argv[1]);
    enum { N = 3 };
    pthread_t t[N];
    for (int i = 0; i < N; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i);
    unsigned long total = 0;
    for (int i = 0; i < N; i++) {
        void *r;
        pthread_join(t[i], &r);
        total += (uintptr_t)r;
    }
    printf("demo_service: handled %lu requests in %.1f s\n", total, seconds);
    return 0;
}
