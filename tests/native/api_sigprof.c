/* An application that uses SIGPROF itself, profiled (argv[3] = 1) or not (0):
 *   argv[1] what it does with SIGPROF: handler (its own handler and its own ITIMER_PROF at
 *           20 ms), handler-notimer (its own handler, no timer: it should see no call at all),
 *           dfl (SIG_DFL), ign (SIG_IGN);
 *   argv[2] when: before or after otelprof_start.
 * It burns 1.5 s of CPU, then prints "calls N cpu_ms M samples S": M is the process's CPU time
 * over the burn (what ITIMER_PROF counts: the profiler's own threads included), S the samples the
 * profiler took.
 * Profiling follows the environment (OTELPROF_MODE, OTELPROF_INTERVAL, ...). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "burn.h"
#include "otelprof/otelprof.h"

static volatile sig_atomic_t calls;

static void on_sigprof(int sig) {
    (void)sig;
    calls++;
}

static void apply(const char *what) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (strncmp(what, "handler", 7) == 0) sa.sa_handler = on_sigprof;
    else if (strcmp(what, "dfl") == 0) sa.sa_handler = SIG_DFL;
    else sa.sa_handler = SIG_IGN;
    sigaction(SIGPROF, &sa, NULL);
    if (strcmp(what, "handler") == 0) {
        struct itimerval it = {{0, 20000}, {0, 20000}};
        setitimer(ITIMER_PROF, &it, NULL);
    }
}

__attribute__((noinline)) uint64_t app_work(void) { return spin_cpu(1500000000); }

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: api_sigprof handler|handler-notimer|dfl|ign before|after 0|1\n");
        return 2;
    }
    int before = strcmp(argv[2], "before") == 0, profiled = strcmp(argv[3], "1") == 0;
    if (before || !profiled) apply(argv[1]);
    if (profiled) {
        if (otelprof_start(NULL, NULL) != OTELPROF_OK) return 3;
        otelprof_thread_register(otelprof_gettid());
        if (!before) apply(argv[1]);
    }
    struct timespec a, b;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    app_work();
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    int64_t cpu = (b.tv_sec - a.tv_sec) * 1000000000ll + (b.tv_nsec - a.tv_nsec);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_PROF, &off, NULL);
    otelprof_stats st;
    memset(&st, 0, sizeof st);
    otelprof_stats_get(&st);
    printf("calls %d cpu_ms %lld samples %llu\n", (int)calls, (long long)(cpu / 1000000),
           (unsigned long long)st.samples_taken);
    if (profiled) otelprof_stop();
    return 0;
}
