/* SIGNAL CONTEXT. The profiling signal handler: count, check, copy the interrupted thread's span
 * record and frames into a preallocated ring slot, publish. No locks, no allocation, errno kept. */
#include "op_clock.h"
#include "op_capture.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "op_ctx.h"
#include "op_engine.h"
#include "op_log.h"
#include "op_profiler.h"
#include "op_stats.h"
#include "op_unwind.h"

static void note_handler_time(uint64_t ns) {
    OP_STAT_ADD(handler_ns_total, ns);
    int b = ns ? 63 - __builtin_clzll(ns) : 0;
    OP_STAT_INC(handler_ns_hist[b > 31 ? 31 : b]);
    uint64_t max = __atomic_load_n(&op_stats_g.handler_ns_max, __ATOMIC_RELAXED);
    while (ns > max && !__atomic_compare_exchange_n(&op_stats_g.handler_ns_max, &max, ns, 1,
                                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
}

int otelprof_unwind_native(void *uc, otelprof_frame *out, int max) {
    if (!op_g.native_frames || !uc || max <= 0) return 0;
    int k = op_unwind_native(uc, out, max);
    return k > 0 ? (k < max ? k : max) : 0;
}

/* Fills the slot's frames: native first (leaf side) when enabled, then the adapter's. Slots hold
 * max_depth + 1 frames so that a stack of exactly max_depth is not mistaken for a cut one.
 * Returns -1 when the adapter asked to drop the sample. */
static int capture_frames(op_slot *s, void *uc) {
    uint32_t max = op_g.max_depth, room = max + 1, n = 0;
    if (op_g.native_frames && !(op_g.has_adapter && op_g.adapter.merges_native)) {
        int k = op_unwind_native(uc, s->frames, (int)room);
        if (k > 0) n = (uint32_t)(k < (int)room ? k : (int)room);
    }
    if (op_g.has_adapter && op_g.adapter.walk && n < room) {
        int k = op_g.adapter.walk(op_g.adapter.user, uc, s->frames + n, (int)(room - n));
        if (k <= OTELPROF_WALK_ERROR(0)) {
            /* A declared cause keeps the sample and its weight under an error frame. */
            int cause = OTELPROF_WALK_ERROR(0) - k;
            if (cause >= op_g.adapter.nwalk_errors || cause >= OTELPROF_WALK_ERRORS_MAX) return -1;
            s->frames[n].kind = OTELPROF_FRAME_ERROR;
            s->frames[n].id = (uint64_t)cause;
            s->frames[n].aux = 0;
            OP_STAT_INC(walk_errors[cause]);
            k = 1;
        }
        if (k < 0) return -1;
        n += (uint32_t)k < room - n ? (uint32_t)k : room - n; /* a buggy adapter cannot overrun */
    }
    s->truncated = n > max;
    if (s->truncated) {
        /* The last kept frame becomes a marker, so users see the cut. */
        n = max;
        s->frames[max - 1].kind = OTELPROF_FRAME_TRUNCATED;
        s->frames[max - 1].id = 0;
        s->frames[max - 1].aux = 0;
        op_stat_drop(OTELPROF_DROP_TRUNCATED);
    }
    s->nframes = n;
    return 0;
}

static void copy_context(op_slot *s) {
    const otel_thread_ctx_record_v1 *r = op_ctx_current();
    if (r) {
        memcpy(s->trace_id, r->trace_id, 16);
        memcpy(s->span_id, r->span_id, 8);
        static const uint8_t zero[16];
        s->has_link = memcmp(s->trace_id, zero, 16) != 0;
    } else {
        s->has_link = 0;
    }
}

__thread pid_t op_handler_tid;

/* The OS thread name (prctl PR_GET_NAME: a system call) is read at most once per thread per
 * naming period: a thread's first sample after op_capture_names_refresh() reads it, later ones
 * copy it. A rename shows from the next period on (profile close). */
static uint32_t names_gen = 1;
static __thread struct {
    uint32_t gen;
    char name[16];
} tl_os_name;

void op_capture_names_refresh(void) {
    __atomic_add_fetch(&names_gen, 1, __ATOMIC_RELAXED);
}

static void os_thread_name(char *out) {
    uint32_t gen = __atomic_load_n(&names_gen, __ATOMIC_RELAXED);
    if (tl_os_name.gen != gen) {
        prctl(PR_GET_NAME, tl_os_name.name, 0, 0, 0);
        tl_os_name.name[15] = 0;
        tl_os_name.gen = gen;
    }
    memcpy(out, tl_os_name.name, sizeof tl_os_name.name);
}

static void op_signal_handler(int sig, siginfo_t *si, void *uc) {
    int saved_errno = errno;
    int64_t weight;
    /* Our engines' signals; anything else belongs to whoever had the handler before. */
    if (!op_engine_claim(si, &weight)) {
        const struct sigaction *old = &op_g.old_action;
        if (op_g.have_old_action) {
            if (old->sa_flags & SA_SIGINFO) {
                if (old->sa_sigaction) old->sa_sigaction(sig, si, uc);
            } else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
                old->sa_handler(sig);
            }
        }
        errno = saved_errno;
        return;
    }
    uint64_t t0 = (uint64_t)op_mono_ns();
    OP_STAT_INC(signals);
    /* inflight before running (both seq_cst): stop clears running, then waits for inflight == 0,
     * so no handler can touch the ring once stop frees it. */
    __atomic_fetch_add(&op_g.inflight, 1, __ATOMIC_SEQ_CST);
    if (!__atomic_load_n(&op_g.running, __ATOMIC_SEQ_CST) ||
        __atomic_load_n(&op_g.paused, __ATOMIC_SEQ_CST)) {
        op_stat_drop(OTELPROF_DROP_NOT_RUNNING);
        goto out;
    }
    op_slot *s = op_ring_claim(&op_g.ring);
    if (!s) {
        op_stat_drop(OTELPROF_DROP_RING_FULL);
        goto out;
    }
    /* Stamped before the walk, so any epoch walk() reads is at least this (frame lifetime). */
    __atomic_store_n(&s->epoch, __atomic_load_n(&op_g.epoch, __ATOMIC_SEQ_CST), __ATOMIC_SEQ_CST);
    s->tid = otelprof_gettid(); /* cached: no system call after the thread's first sample */
    s->timestamp_ns = (uint64_t)op_clock_ns(CLOCK_REALTIME);
    s->weight = weight;
    /* The adapter's name if it set one, else the OS name, read here rather than at the drain so
     * that it is right for threads gone by then. */
    if (op_thread_name[0]) {
        memcpy(s->thread_name, op_thread_name, sizeof s->thread_name);
        s->thread_name[sizeof s->thread_name - 1] = 0;
    } else {
        os_thread_name(s->thread_name);
    }
    copy_context(s);
    /* Saved and restored: this handler may have interrupted another run of itself (a second
     * engine's signal) on the same thread. */
    pid_t outer_tid = op_handler_tid;
    op_handler_tid = s->tid;
    int captured = capture_frames(s, uc);
    op_handler_tid = outer_tid;
    if (captured < 0 || s->nframes == 0 || weight <= 0) {
        /* Publish as free: a slot must never stay WRITING. */
        op_ring_release(&op_g.ring, s);
        op_stat_drop(OTELPROF_DROP_WALK_FAILED);
        goto out;
    }
    op_ring_publish(&op_g.ring, s);
    OP_STAT_INC(samples_taken);
out:
    __atomic_fetch_sub(&op_g.inflight, 1, __ATOMIC_SEQ_CST);
    note_handler_time((uint64_t)op_mono_ns() - t0);
    errno = saved_errno;
}

int op_signo;

int otelprof_signal_number(void) {
    return __atomic_load_n(&op_signo, __ATOMIC_RELAXED);
}

void otelprof_signal_block(sigset_t *old) {
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, __atomic_load_n(&op_signo, __ATOMIC_RELAXED));
    pthread_sigmask(SIG_BLOCK, &one, old);
}

void otelprof_signal_restore(const sigset_t *old) {
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

static int handler_is_ours(int sig) {
    struct sigaction cur;
    return sigaction(sig, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
           cur.sa_sigaction == op_signal_handler;
}

/* A real-time signal nobody uses: default disposition and not blocked on the starting thread.
 * Searched from SIGRTMAX down, since programs and libraries that take real-time signals mostly
 * count up from SIGRTMIN. */
static int pick_free_signal(void) {
    sigset_t mask;
    pthread_sigmask(SIG_BLOCK, NULL, &mask);
    for (int sig = SIGRTMAX; sig >= SIGRTMIN + 2; sig--) {
        struct sigaction cur;
        if (sigaction(sig, NULL, &cur) < 0) continue;
        if (!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL && !sigismember(&mask, sig))
            return sig;
    }
    return 0;
}

void op_signal_describe(int sig, char *buf, size_t len) {
    if (sig == SIGPROF) snprintf(buf, len, "SIGPROF");
    else if (sig >= SIGRTMIN && sig <= SIGRTMAX) snprintf(buf, len, "SIGRTMIN+%d (%d)", sig - SIGRTMIN, sig);
    else snprintf(buf, len, "signal %d", sig);
}

int op_capture_install(const otelprof_config *cfg) {
    int sig = cfg->signo;
    if (!sig) {
        /* A restart in this process keeps the signal its handler is still installed on. */
        int prev = __atomic_load_n(&op_signo, __ATOMIC_RELAXED);
        sig = prev && handler_is_ours(prev) ? prev : pick_free_signal();
        if (!sig) {
            op_log_warn("no free real-time signal (all have handlers or are blocked); using SIGPROF");
            sig = SIGPROF;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = op_signal_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    struct sigaction old;
    /* Published before the handler can run: engines arm their timers with it. */
    __atomic_store_n(&op_signo, sig, __ATOMIC_RELEASE);
    if (sigaction(sig, &sa, &old) < 0) return -1;
    int foreign = (old.sa_flags & SA_SIGINFO) ? old.sa_sigaction != NULL && old.sa_sigaction != op_signal_handler
                                              : (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN);
    if (foreign) {
        char name[32];
        op_signal_describe(sig, name, sizeof name);
        op_log_warn("%s already had a handler; otelprof takes the signal and passes on the signals "
                    "that are not its own (OTELPROF_SIGNAL picks another)", name);
        op_g.old_action = old;
        op_g.have_old_action = 1;
    } else {
        op_g.have_old_action = 0;
    }
    return 0;
}

/* A foreign handler we displaced goes back. Otherwise ours stays installed: it drops what arrives
 * when not running, where SIG_DFL would let a signal still pending from a deleted timer kill the
 * process, and SIG_IGN would be inherited by every program exec'd later. */
void op_capture_uninstall(void) {
    if (op_g.have_old_action) sigaction(op_signo, &op_g.old_action, NULL);
    op_g.have_old_action = 0;
}

int op_capture_check(void) {
    return handler_is_ours(__atomic_load_n(&op_signo, __ATOMIC_RELAXED)) ? 0 : -1;
}

static otelprof_error submit_locked_out(const otelprof_sample *in);

otelprof_error otelprof_submit(const otelprof_sample *in) {
    if (!in || in->nframes < 0 || (in->nframes > 0 && !in->frames)) return OTELPROF_EINVAL;
    __atomic_fetch_add(&op_g.inflight, 1, __ATOMIC_SEQ_CST);
    otelprof_error rc = submit_locked_out(in);
    __atomic_fetch_sub(&op_g.inflight, 1, __ATOMIC_SEQ_CST);
    return rc;
}

/* otelprof_submit's body, run between the inflight increment and decrement. */
static otelprof_error submit_locked_out(const otelprof_sample *in) {
    if (!__atomic_load_n(&op_g.running, __ATOMIC_SEQ_CST)) {
        op_stat_drop(OTELPROF_DROP_NOT_RUNNING);
        return OTELPROF_ESTOPPED;
    }
    op_slot *s = op_ring_claim(&op_g.ring);
    if (!s) {
        op_stat_drop(OTELPROF_DROP_RING_FULL);
        return OTELPROF_EFULL;
    }
    __atomic_store_n(&s->epoch, __atomic_load_n(&op_g.epoch, __ATOMIC_SEQ_CST), __ATOMIC_SEQ_CST);
    s->tid = in->tid ? in->tid : otelprof_gettid();
    s->timestamp_ns = in->timestamp_ns ? in->timestamp_ns : (uint64_t)op_clock_ns(CLOCK_REALTIME);
    s->weight = in->weight > 0 ? in->weight
                               : (op_g.cfg->mode == OP_MODE_WALL ? op_g.cfg->interval_ns : 1);
    s->thread_name[0] = 0;
    s->has_link = in->trace_id && in->span_id;
    if (s->has_link) {
        memcpy(s->trace_id, in->trace_id, 16);
        memcpy(s->span_id, in->span_id, 8);
    }
    uint32_t n = (uint32_t)in->nframes, max = op_g.max_depth;
    s->truncated = n > max;
    if (n > max) {
        n = max;
        op_stat_drop(OTELPROF_DROP_TRUNCATED);
    }
    memcpy(s->frames, in->frames, n * sizeof(otelprof_frame));
    if (s->truncated) {
        s->frames[n - 1].kind = OTELPROF_FRAME_TRUNCATED;
        s->frames[n - 1].id = 0;
        s->frames[n - 1].aux = 0;
    }
    s->nframes = n;
    op_ring_publish(&op_g.ring, s);
    OP_STAT_INC(samples_taken);
    return OTELPROF_OK;
}
