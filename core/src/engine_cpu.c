/* cpu engine: one CLOCK_THREAD_CPUTIME_ID timer per registered thread, delivered to that thread
 * (SIGEV_THREAD_ID), so a sample stands for exactly one interval of that thread's own CPU time. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "op_engine.h"
#include "op_capture.h"
#include "op_profiler.h"
#include "op_stats.h"

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

/* The kernel's encoding of "the scheduler CPU clock of thread tid" (what pthread_getcpuclockid
 * computes), which lets any thread arm a timer on another thread's CPU time by tid alone. */
static clockid_t thread_cpu_clock(pid_t tid) {
    return (clockid_t)((~(unsigned)tid) << 3) | 6;
}

static int64_t interval_ns;
static uint64_t rng_state;

/* Bitmap of the kernel timer ids we created: Linux hands out small per-process ids, and the
 * handler must tell our SI_TIMER signals from a host's own SIGPROF timers. */
#define OWNED_IDS 65536
static uint64_t owned[OWNED_IDS / 64];

void op_engine_cpu_own(timer_t t, int on) {
    intptr_t id = (intptr_t)t;
    if (id < 0 || id >= OWNED_IDS) return;
    uint64_t bit = 1ull << (id % 64);
    if (on) __atomic_fetch_or(&owned[id / 64], bit, __ATOMIC_RELEASE);
    else __atomic_fetch_and(&owned[id / 64], ~bit, __ATOMIC_RELEASE);
}

int op_engine_cpu_owns_timer(int id) {
    if (id < 0 || id >= OWNED_IDS) return 1; /* beyond the map: assume ours rather than drop */
    return (__atomic_load_n(&owned[id / 64], __ATOMIC_ACQUIRE) >> (id % 64)) & 1;
}

/* xorshift64*: called under the registry lock, so a plain static state is enough. */
static uint64_t next_random(void) {
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dull;
}

static int cpu_start(const otelprof_config *cfg) {
    interval_ns = cfg->interval_ns;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    rng_state = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40) ^ 0x9e3779b97f4a7c15ull;
    return 0;
}

static void cpu_stop(void) {}

/* Our timers' expirations (this engine's and the process engine's: one ownership map), weighted
 * one interval each plus the overruns the kernel folded into this signal. */
static int cpu_claim(const siginfo_t *si, int64_t *weight) {
    if (si->si_code != SI_TIMER || !op_engine_cpu_owns_timer(si->si_timerid)) return 0;
    int over = si->si_overrun;
    if (over > 0) OP_STAT_ADD(timer_overruns, over);
    *weight = 1 + (over > 0 ? over : 0);
    return 1;
}

static int cpu_thread_start(op_thread *t) {
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = op_signo;
    sev.sigev_notify_thread_id = t->tid;
    if (timer_create(thread_cpu_clock(t->tid), &sev, &t->timer) < 0) return -1;
    op_engine_cpu_own(t->timer, 1);
    struct itimerspec its;
    its.it_interval.tv_sec = interval_ns / 1000000000;
    its.it_interval.tv_nsec = interval_ns % 1000000000;
    /* First expiry uniform in (0, interval]: a thread that uses less than one interval of CPU
     * (short-lived threads, pool workers) is sampled with probability cpu/interval instead of
     * never, so samples x interval stays an unbiased estimate of CPU time. */
    int64_t first = 1 + (int64_t)(next_random() % (uint64_t)interval_ns);
    its.it_value.tv_sec = first / 1000000000;
    its.it_value.tv_nsec = first % 1000000000;
    if (timer_settime(t->timer, 0, &its, NULL) < 0) {
        int e = errno;
        op_engine_cpu_own(t->timer, 0);
        timer_delete(t->timer);
        errno = e;
        return -1;
    }
    t->has_timer = 1;
    return 0;
}

static void cpu_thread_stop(op_thread *t) {
    if (t->has_timer) {
        timer_delete(t->timer);
        op_engine_cpu_own(t->timer, 0);
    }
    t->has_timer = 0;
}

const op_engine op_engine_cpu = {
    .name = "cpu",
    .start = cpu_start,
    .stop = cpu_stop,
    .thread_start = cpu_thread_start,
    .thread_stop = cpu_thread_stop,
    .claim = cpu_claim,
};

/* Used by engine.c to decide whether this kernel allows per-thread CPU timers at all. */
int op_engine_cpu_probe(pid_t tid) {
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = op_signo;
    sev.sigev_notify_thread_id = tid;
    timer_t t;
    if (timer_create(thread_cpu_clock(tid), &sev, &t) < 0) return -1;
    timer_delete(t);
    return 0;
}
