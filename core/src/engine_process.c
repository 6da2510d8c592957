/* process engine: the cpu fallback when the kernel refuses per-thread CPU timers. One timer on
 * the process's CPU clock (CLOCK_PROCESS_CPUTIME_ID) signals whichever thread runs, so per-thread
 * attribution is approximate. A POSIX timer rather than ITIMER_PROF: it carries our signal (not
 * SIGPROF, which the application may use with its own ITIMER_PROF) and a timer id the handler can
 * tell from anyone else's. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "op_capture.h"
#include "op_engine.h"

static timer_t timer;
static int armed; /* atomic: stop may run on the exporter thread and in otelprof_stop */

static int process_start(const otelprof_config *cfg) {
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = op_signo;
    if (timer_create(CLOCK_PROCESS_CPUTIME_ID, &sev, &timer) < 0) return -1;
    op_engine_cpu_own(timer, 1);
    struct itimerspec its;
    its.it_interval.tv_sec = cfg->interval_ns / 1000000000;
    its.it_interval.tv_nsec = cfg->interval_ns % 1000000000;
    its.it_value = its.it_interval;
    if (timer_settime(timer, 0, &its, NULL) < 0) {
        int e = errno;
        op_engine_cpu_own(timer, 0);
        timer_delete(timer);
        errno = e;
        return -1;
    }
    __atomic_store_n(&armed, 1, __ATOMIC_RELEASE);
    return 0;
}

static void process_stop(void) {
    if (!__atomic_exchange_n(&armed, 0, __ATOMIC_ACQ_REL)) return;
    timer_delete(timer);
    op_engine_cpu_own(timer, 0);
}

/* Fork child: the timer was not inherited. */
static void process_after_fork(void) {
    __atomic_store_n(&armed, 0, __ATOMIC_RELEASE);
}

const op_engine op_engine_process = {
    .name = "process",
    .start = process_start,
    .stop = process_stop,
    .thread_start = NULL,
    .thread_stop = NULL,
    .claim = NULL, /* its timer is in the cpu engine's map of our timer ids: claimed there */
    .after_fork = process_after_fork,
};
