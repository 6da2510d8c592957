/* Lifecycle regressions, one per argv[1]:
 *   restart: two start/stop runs in one process; the second continues the first's files.
 *   race:    threads register/unregister while the main thread starts and stops 300 times;
 *            afterwards no POSIX timer may be left (prints "timers N").
 *   wallblock: wall mode; a thread blocks the profiling signal for 1 s inside blocked_phase, then spins; the
 *            blocked second must still be charged (prints nothing; the test reads the profile). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "burn.h"
#include "otelprof/otelprof.h"

__attribute__((noinline)) uint64_t first_run(void) { return spin_cpu(300000000); }
__attribute__((noinline)) uint64_t second_run(void) { return spin_cpu(300000000); }

static int restart(void) {
    for (int run = 0; run < 2; run++) {
        if (otelprof_start(NULL, NULL) != OTELPROF_OK) return 1;
        otelprof_thread_register(otelprof_gettid());
        if (run == 0) first_run(); else second_run();
        if (otelprof_stop() != OTELPROF_OK) return 1;
    }
    return 0;
}

static volatile int racing = 1;

static void *churn(void *arg) {
    (void)arg;
    pid_t me = otelprof_gettid();
    while (racing) {
        otelprof_thread_register(me);
        otelprof_thread_unregister(me);
    }
    return NULL;
}

static int count_timers(void) {
    FILE *f = fopen("/proc/self/timers", "r");
    if (!f) return -1;
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "ID:", 3) == 0) n++;
    fclose(f);
    return n;
}

static int race(void) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, churn, NULL);
    for (int i = 0; i < 300; i++) {
        if (otelprof_start(NULL, NULL) != OTELPROF_OK) return 1;
        otelprof_stop();
    }
    racing = 0;
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    printf("timers %d\n", count_timers());
    return 0;
}

__attribute__((noinline)) void blocked_phase(void) {
    sigset_t s, old;
    sigemptyset(&s);
    sigaddset(&s, otelprof_signal_number());
    pthread_sigmask(SIG_BLOCK, &s, &old);
    spin_cpu(1000000000); /* 1 s of CPU with the profiling signal blocked */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

__attribute__((noinline)) uint64_t after_phase(void) { return spin_cpu(500000000); }

static int wallblock(void) {
    if (otelprof_start(NULL, NULL) != OTELPROF_OK) return 1;
    otelprof_thread_register(otelprof_gettid());
    int64_t t0 = mono_ns();
    blocked_phase();
    after_phase();
    printf("elapsed_ms %lld\n", (long long)((mono_ns() - t0) / 1000000));
    return otelprof_stop() == OTELPROF_OK ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "restart";
    if (!strcmp(what, "restart")) return restart();
    if (!strcmp(what, "race")) return race();
    if (!strcmp(what, "wallblock")) return wallblock();
    return 2;
}
