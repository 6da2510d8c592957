/* cpu engine: one CLOCK_THREAD_CPUTIME_ID timer per registered thread, delivered to that thread
 * (SIGEV_THREAD_ID), so a sample stands for exactly one interval of that thread's own CPU time. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "op_engine.h"
#include "op_profiler.h"

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

/* The kernel's encoding of "the scheduler CPU clock of thread tid" (what pthread_getcpuclockid
 * computes), which lets any thread arm a timer on another thread's CPU time by tid alone. */
static clockid_t thread_cpu_clock(pid_t tid) {
    return (clockid_t)((~(unsigned)tid) << 3) | 6;
}

static int64_t interval_ns;

static int cpu_start(const otelprof_config *cfg) {
    interval_ns = cfg->interval_ns;
    return 0;
}

static void cpu_stop(void) {}

static int cpu_thread_start(op_thread *t) {
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = OP_SIGNAL;
    sev.sigev_notify_thread_id = t->tid;
    if (timer_create(thread_cpu_clock(t->tid), &sev, &t->timer) < 0) return -1;
    struct itimerspec its;
    its.it_interval.tv_sec = interval_ns / 1000000000;
    its.it_interval.tv_nsec = interval_ns % 1000000000;
    its.it_value = its.it_interval;
    if (timer_settime(t->timer, 0, &its, NULL) < 0) {
        int e = errno;
        timer_delete(t->timer);
        errno = e;
        return -1;
    }
    t->has_timer = 1;
    return 0;
}

static void cpu_thread_stop(op_thread *t) {
    if (t->has_timer) timer_delete(t->timer);
    t->has_timer = 0;
}

const op_engine op_engine_cpu = {
    .name = "cpu",
    .start = cpu_start,
    .stop = cpu_stop,
    .thread_start = cpu_thread_start,
    .thread_stop = cpu_thread_stop,
};

/* Used by engine.c to decide whether this kernel allows per-thread CPU timers at all. */
int op_engine_cpu_probe(pid_t tid) {
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = OP_SIGNAL;
    sev.sigev_notify_thread_id = tid;
    timer_t t;
    if (timer_create(thread_cpu_clock(tid), &sev, &t) < 0) return -1;
    timer_delete(t);
    return 0;
}
