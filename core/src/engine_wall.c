/* wall engine: a timer thread wakes every interval and signals up to wall_threads_per_tick
 * registered threads in turn, running or not, so sleeping and blocked time shows. The signal
 * carries the sample's weight: the wall time since that thread was last signalled. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "op_engine.h"
#include "op_log.h"
#include "op_profiler.h"

static pthread_t wall_thread;
static int wall_running;
static int64_t interval_ns;
static uint32_t per_tick;
static uint64_t tick;
static uint32_t cursor;

static void signal_one(op_thread *t, void *arg) {
    (void)arg;
    uint64_t ticks = t->last_tick ? tick - t->last_tick : 1;
    t->last_tick = tick;
    uint64_t weight = ticks * (uint64_t)interval_ns;
    if (weight > 0x00ffffffffffffffull) weight = 0x00ffffffffffffffull;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = OP_SIGNAL;
    si.si_code = SI_QUEUE;
    si.si_pid = getpid();
    si.si_uid = getuid();
    si.si_value.sival_ptr = (void *)(uintptr_t)(OP_WALL_SIGVAL_TAG | weight);
    /* rt_tgsigqueueinfo, not tgkill: only it can carry the weight to the handler. */
    syscall(SYS_rt_tgsigqueueinfo, getpid(), t->tid, OP_SIGNAL, &si);
}

static void *wall_main(void *arg) {
    (void)arg;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (__atomic_load_n(&wall_running, __ATOMIC_ACQUIRE)) {
        next.tv_nsec += interval_ns % 1000000000;
        next.tv_sec += interval_ns / 1000000000 + next.tv_nsec / 1000000000;
        next.tv_nsec %= 1000000000;
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {}
        tick++;
        op_threads_visit(&cursor, per_tick, signal_one, NULL);
    }
    return NULL;
}

static int wall_start(const otelprof_config *cfg) {
    interval_ns = cfg->interval_ns;
    per_tick = (uint32_t)cfg->wall_threads_per_tick;
    tick = 1;
    cursor = 0;
    __atomic_store_n(&wall_running, 1, __ATOMIC_RELEASE);
    /* The timer thread must never take the profiling signal itself. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&wall_thread, NULL, wall_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        __atomic_store_n(&wall_running, 0, __ATOMIC_RELEASE);
        errno = rc;
        return -1;
    }
#ifdef __GLIBC__
    pthread_setname_np(wall_thread, "otelprof-wall");
#endif
    return 0;
}

static void wall_stop(void) {
    if (!__atomic_exchange_n(&wall_running, 0, __ATOMIC_ACQ_REL)) return;
    pthread_join(wall_thread, NULL);
}

static int wall_thread_start(op_thread *t) {
    t->last_tick = 0;
    return 0;
}

const op_engine op_engine_wall = {
    .name = "wall",
    .start = wall_start,
    .stop = wall_stop,
    .thread_start = wall_thread_start,
    .thread_stop = NULL,
};

/* Fork child: the timer thread did not survive; forget it without joining. */
void op_engine_wall_after_fork(void) {
    __atomic_store_n(&wall_running, 0, __ATOMIC_RELEASE);
}
