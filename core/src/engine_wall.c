/* wall engine: a timer thread wakes every interval and signals up to wall_threads_per_tick
 * registered threads in turn, running or not, so sleeping and blocked time shows. The signal
 * carries the sample's weight: the wall time since that thread was last signalled. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "op_spawn.h"
#include "op_engine.h"
#include "op_log.h"
#include "op_capture.h"
#include "op_profiler.h"

static pthread_t wall_thread;
static int wall_running;
static int64_t interval_ns;
static uint32_t per_tick;
static uint64_t tick;    /* atomic: read by handlers */
static uint32_t cursor;

/* Per registered-thread slot, shared with the handler: the tick its last sample accounted up to,
 * and how many signals were sent vs handled. A signal sent while one is still pending would vanish
 * with its weight (SIGPROF) or pile up in the kernel's queue (a real-time signal); instead the
 * timer thread skips a thread whose previous signal is unhandled and the handler charges every
 * tick since its last sample. */
typedef struct wall_slot {
    uint64_t seen_tick;
    uint32_t sent, handled;
} wall_slot;
static wall_slot *slots;      /* mmap'ed once, never unmapped: a late handler may still read it */
static uint32_t nslots;

static int ensure_slots(uint32_t n) {
    if (slots && nslots >= n) return 0;
    void *m = mmap(NULL, (size_t)n * sizeof(wall_slot), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return -1;
    slots = m; /* a smaller old array, if any, is left mapped for handlers still reading it */
    nslots = n;
    return 0;
}

/* Marks the signals this engine queues, so the handler can tell them from anyone else's. */
#define WALL_SIGVAL_TAG 0x4f00000000000000ull

/* The weight (ns) of a sample for slot, charging every tick since the slot's previous sample.
 * 0, or -1 for an unknown slot. */
static int slot_weight(uint32_t slot, int64_t *weight) {
    if (!slots || slot >= nslots) return -1;
    wall_slot *w = &slots[slot];
    uint64_t now = __atomic_load_n(&tick, __ATOMIC_ACQUIRE);
    uint64_t seen = __atomic_load_n(&w->seen_tick, __ATOMIC_RELAXED);
    uint64_t ticks = now > seen ? now - seen : 1;
    __atomic_store_n(&w->seen_tick, now, __ATOMIC_RELAXED);
    __atomic_store_n(&w->handled, __atomic_load_n(&w->sent, __ATOMIC_ACQUIRE), __ATOMIC_RELEASE);
    *weight = (int64_t)(ticks * (uint64_t)interval_ns);
    return 0;
}

static void signal_one(op_thread *t, void *arg) {
    (void)arg;
    wall_slot *w = &slots[t->slot];
    if (__atomic_load_n(&w->sent, __ATOMIC_ACQUIRE) != __atomic_load_n(&w->handled, __ATOMIC_ACQUIRE))
        return; /* previous signal still pending: its handler will charge these ticks too */
    __atomic_fetch_add(&w->sent, 1, __ATOMIC_RELEASE);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = op_signo;
    si.si_code = SI_QUEUE;
    si.si_pid = getpid();
    si.si_uid = getuid();
    si.si_value.sival_ptr = (void *)(uintptr_t)(WALL_SIGVAL_TAG | t->slot);
    /* rt_tgsigqueueinfo, not tgkill: only it can carry the slot (and our tag) to the handler. */
    if (syscall(SYS_rt_tgsigqueueinfo, getpid(), t->tid, op_signo, &si) < 0)
        __atomic_fetch_sub(&w->sent, 1, __ATOMIC_RELEASE);
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
        __atomic_fetch_add(&tick, 1, __ATOMIC_RELEASE);
        op_threads_visit(&cursor, per_tick, signal_one, NULL);
    }
    return NULL;
}

static int wall_start(const otelprof_config *cfg) {
    interval_ns = cfg->interval_ns;
    per_tick = (uint32_t)cfg->wall_threads_per_tick;
    if (ensure_slots((uint32_t)cfg->max_threads) < 0) return -1;
    __atomic_store_n(&tick, 1, __ATOMIC_RELEASE);
    cursor = 0;
    __atomic_store_n(&wall_running, 1, __ATOMIC_RELEASE);
    int rc = op_spawn(&wall_thread, wall_main, NULL, "otelprof-wall");
    if (rc) {
        __atomic_store_n(&wall_running, 0, __ATOMIC_RELEASE);
        errno = rc;
        return -1;
    }
    return 0;
}

static void wall_stop(void) {
    if (!__atomic_exchange_n(&wall_running, 0, __ATOMIC_ACQ_REL)) return;
    pthread_join(wall_thread, NULL);
}

static int wall_thread_start(op_thread *t) {
    wall_slot *w = &slots[t->slot];
    __atomic_store_n(&w->seen_tick, __atomic_load_n(&tick, __ATOMIC_ACQUIRE), __ATOMIC_RELAXED);
    __atomic_store_n(&w->handled, __atomic_load_n(&w->sent, __ATOMIC_ACQUIRE), __ATOMIC_RELEASE);
    return 0;
}

static void wall_after_fork(void);
static int wall_claim(const siginfo_t *si, int64_t *weight);

const op_engine op_engine_wall = {
    .name = "wall",
    .start = wall_start,
    .stop = wall_stop,
    .thread_start = wall_thread_start,
    .thread_stop = NULL,
    .claim = wall_claim,
    .after_fork = wall_after_fork,
};

/* Fork child: the timer thread did not survive; forget it without joining. */
static void wall_after_fork(void) {
    __atomic_store_n(&wall_running, 0, __ATOMIC_RELEASE);
}

static int wall_claim(const siginfo_t *si, int64_t *weight) {
    if (si->si_code != SI_QUEUE) return 0;
    uint64_t v = (uint64_t)(uintptr_t)si->si_value.sival_ptr;
    if ((v & 0xff00000000000000ull) != WALL_SIGVAL_TAG) return 0;
    if (slot_weight((uint32_t)(v & 0xffffffffu), weight) < 0) *weight = 0;
    return 1;
}
