/* Program for the span-link test: two threads, each burning CPU first outside any span
 * (work_outside) and then inside its own span (work_inside_<n>); prints the span ids it used. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "burn.h"
#include "otelprof/otelprof.h"

__attribute__((noinline)) uint64_t work_outside(void) { return spin_cpu(300000000); }
__attribute__((noinline)) uint64_t work_inside_1(void) { return spin_cpu(300000000); }
__attribute__((noinline)) uint64_t work_inside_2(void) { return spin_cpu(300000000); }
__attribute__((noinline)) uint64_t work_nested(void) { return spin_cpu(200000000); }

static void hex(const uint8_t *b, int n, char *out) {
    for (int i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

static void *run(void *arg) {
    int n = (int)(intptr_t)arg;
    otelprof_thread_register(otelprof_gettid());
    uint8_t trace[16], span[8], child[8];
    for (int i = 0; i < 16; i++) trace[i] = (uint8_t)(0x10 * n + i + 1);
    for (int i = 0; i < 8; i++) span[i] = (uint8_t)(0xa0 + 0x10 * n + i);
    for (int i = 0; i < 8; i++) child[i] = (uint8_t)(0xc0 + 0x10 * n + i);
    work_outside();
    void *tok = otelprof_ctx_attach(trace, span, 1, NULL, 0);
    if (n == 1) work_inside_1(); else work_inside_2();
    /* A nested span, then back to the outer one: detach must restore it. */
    void *tok2 = otelprof_ctx_attach(trace, child, 1, NULL, 0);
    work_nested();
    otelprof_ctx_detach(tok2);
    if (n == 1) work_inside_1(); else work_inside_2();
    otelprof_ctx_detach(tok);
    work_outside();
    char t[33], s[17], c[17];
    hex(trace, 16, t);
    hex(span, 8, s);
    hex(child, 8, c);
    printf("thread %d trace %s span %s child %s\n", n, t, s, c);
    otelprof_thread_unregister(otelprof_gettid());
    return NULL;
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    otelprof_error rc = otelprof_start(NULL, NULL);
    if (rc != OTELPROF_OK) {
        fprintf(stderr, "start: %s\n", otelprof_strerror(rc));
        return 1;
    }
    pthread_t t1, t2;
    pthread_create(&t1, NULL, run, (void *)1);
    pthread_create(&t2, NULL, run, (void *)2);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    fflush(stdout);
    return otelprof_stop() == OTELPROF_OK ? 0 : 1;
}
