/* Lifecycle of the process-wide profiler: start, stop, flush, thread registration and fork. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "op_clock.h"
#include "op_capture.h"
#include "op_ctx.h"
#include "op_engine.h"
#include "op_exporter.h"
#include "op_log.h"
#include "op_profiler.h"
#include "op_stats.h"
#include "op_unwind.h"

op_profiler op_g = {.lock = PTHREAD_MUTEX_INITIALIZER};
static int64_t exit_deadline_ns; /* CLOCK_MONOTONIC; 0 until exit() runs our handler */


/* The calling thread's tid, cached per thread: gettid is a system call (2-7 us cold on a nested
 * VM) and the signal handler needs the tid for every sample. A tid is fixed for a thread's life;
 * only fork changes it, for the child's one thread, and fork_child clears that copy. The cache is
 * filled only once that handler is registered (the first start), so a fork before it cannot leave
 * a stale tid behind. A vfork child shares the parent's memory and TLS: code that may run there
 * checks the pid first (otelprof_exec_prepare). */
static __thread pid_t tl_tid;
static int tid_cache_on;

pid_t otelprof_gettid(void) {
    pid_t t = tl_tid;
    if (t) return t;
    t = (pid_t)syscall(SYS_gettid);
    if (__atomic_load_n(&tid_cache_on, __ATOMIC_ACQUIRE)) tl_tid = t;
    return t;
}

uint64_t otelprof_frames_epoch(void) {
    return __atomic_load_n(&op_g.epoch, __ATOMIC_SEQ_CST);
}

uint64_t otelprof_frames_released(void) {
    return __atomic_load_n(&op_g.released, __ATOMIC_ACQUIRE);
}

int otelprof_is_running(void) {
    return __atomic_load_n(&op_g.running, __ATOMIC_ACQUIRE);
}

/* The ring takes at most a quarter of the memory budget and 16Ki slots. */
static uint32_t ring_slots(const otelprof_config *cfg, uint32_t max_depth) {
    size_t slot = sizeof(op_slot) + (size_t)(max_depth + 1) * sizeof(otelprof_frame);
    size_t n = (size_t)(op_config_core_memory(cfg) / 4) / slot;
    if (n > 16384) n = 16384;
    if (n < 16) n = 16;
    return (uint32_t)n;
}

/* At exit the host waits at most this long for the final profile, then exits without it (one
 * error line). A thread that calls exit() while another thread's exit is writing the profile
 * waits up to OP_EXIT_GRACE_NS longer, so the writer's own timeout and message come first. */
#define OP_EXIT_WAIT_NS 5000000000ll
#define OP_EXIT_GRACE_NS 1000000000ll

static otelprof_error stop_locked(int64_t deadline);

/* One deadline for the whole process exit, set by the first exit handler that runs. */
static int64_t exit_deadline(void) {
    int64_t zero = 0, d = op_mono_ns() + OP_EXIT_WAIT_NS;
    if (!__atomic_compare_exchange_n(&exit_deadline_ns, &zero, d, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        d = zero;
    return d;
}

/* Registered twice (see otelprof_start). glibc's exit() runs the handlers one at a time, but a
 * second thread calling exit() meanwhile (or main returning) runs whatever handlers are left and
 * then _exit()s the process, killing the first one mid-write: no files, no message. The copy
 * registered first is below the other in the list, so a racing exit() reaches it only once the
 * stop has begun, and waits here (bounded) on the lock the stopping thread holds. A waiter first
 * registers one more copy, so a third exit() finds one too; once the stop is over no copy
 * registers another, so the list ends. */
static void exit_stop(void) {
    int64_t deadline = exit_deadline(), until = deadline + OP_EXIT_GRACE_NS;
    struct timespec ts = {(time_t)(until / 1000000000ll), (long)(until % 1000000000ll)};
    if (pthread_mutex_trylock(&op_g.lock) == 0) goto locked;
    atexit(exit_stop); /* fails harmlessly once exit() has run the whole list */
    if (pthread_mutex_clocklock(&op_g.lock, CLOCK_MONOTONIC, &ts) != 0) {
        op_log_error("exit: the profiler is still being stopped on another thread after %lld s; "
                     "exiting without the final profile (its files may be missing)",
                     (long long)((OP_EXIT_WAIT_NS + OP_EXIT_GRACE_NS) / 1000000000ll));
        return;
    }
locked:
    if (otelprof_is_running()) stop_locked(deadline);
    pthread_mutex_unlock(&op_g.lock);
}

/* Whether no handler was mid-walk when fork() copied the process: libunwind (Debian 1.6) holds a
 * process-wide lock during a walk, and a child that inherits it locked would hang on its first
 * sample. */
static int fork_quiet;
/* Set in the fork child until otelprof_after_fork() has restarted the engine and exporter. */
static int restart_pending;

/* The adapter whose fork callbacks run: the current run's, or the last one's after stop. Written
 * under op_g.lock by start; fork reads it with op_g.lock held (prepare) or single-threaded. */
/* A run (a start, or its continuation in a fork child) begins in this process, not halted. */
static void new_run_flags(void) {
    op_g.pid = getpid();
    op_g.exec_halted = 0;
    __atomic_store_n(&op_g.halted, 0, __ATOMIC_RELAXED);
}

static otelprof_adapter fork_adapter;

/* The forking thread's tid in the parent: in the child its adapter data moves to its new tid. */
static pid_t fork_tid;

static void fork_prepare(void) {
    if (fork_adapter.fork_prepare) fork_adapter.fork_prepare(fork_adapter.user);
    fork_tid = otelprof_gettid();
    pthread_mutex_lock(&op_g.lock);
    op_exporter_fork_prepare();
    __atomic_store_n(&op_g.paused, 1, __ATOMIC_SEQ_CST);
    fork_quiet = 0;
    for (int i = 0; i < 500; i++) {
        if (!__atomic_load_n(&op_g.inflight, __ATOMIC_SEQ_CST)) {
            fork_quiet = 1;
            break;
        }
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
}

static void fork_parent(void) {
    op_exporter_fork_parent();
    __atomic_store_n(&op_g.paused, 0, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&op_g.lock);
    if (fork_adapter.fork_parent) fork_adapter.fork_parent(fork_adapter.user);
}

static void fork_child_core(void);

static void fork_child(void) {
    tl_tid = 0; /* the parent's: this thread has a new tid in the child */
    fork_child_core();
    if (fork_adapter.fork_child) fork_adapter.fork_child(fork_adapter.user);
}

/* In the child only the forking thread exists, timers and the exporter are gone, and any lock
 * may be held: reset, then profile the child under its own pid. */
static void fork_child_core(void) {
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    memcpy(&op_g.lock, &fresh, sizeof fresh);
    /* Every lock another thread may have held is re-initialised, profiling or not, so that a later
     * otelprof_start in the child cannot deadlock. */
    restart_pending = 0;
    new_run_flags();
    op_threads_forget_all(fork_tid, otelprof_gettid());
    op_exporter_reset_after_fork();
    /* Published contexts belong to the parent: republish with the child's pid, profiling or not. */
    op_process_ctx_after_fork();
    __atomic_store_n(&op_g.paused, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&op_g.inflight, 0, __ATOMIC_SEQ_CST);
    if (!otelprof_is_running()) return;
    if (!fork_quiet && op_g.native_frames) {
        /* A walk was in flight on another thread: its locks may be held forever here. */
        __atomic_store_n(&op_g.running, 0, __ATOMIC_SEQ_CST);
        op_log_warn("fork child %d: not profiled (a stack walk was in progress during fork)", (int)getpid());
        return;
    }
    op_ring_reset(&op_g.ring);
    if (op_g.engine->after_fork) op_g.engine->after_fork();
    /* Threads are not started from inside fork(): the restart completes in otelprof_after_fork(),
     * once fork() has returned (native mode's fork wrapper, an adapter's after-fork hook). */
    restart_pending = 1;
}

otelprof_error otelprof_after_fork(void) {
    pthread_mutex_lock(&op_g.lock);
    otelprof_error rc = OTELPROF_OK;
    if (!restart_pending || !otelprof_is_running()) goto out;
    restart_pending = 0;
    if (op_g.engine->start(op_g.cfg) < 0) {
        op_log_error("fork child %d: cannot restart the %s engine: %s; profiling is off", (int)getpid(),
                     op_g.engine->name, strerror(errno));
        __atomic_store_n(&op_g.running, 0, __ATOMIC_SEQ_CST);
        rc = OTELPROF_ESYS;
        goto out;
    }
    op_threads_add(otelprof_gettid(), NULL, 0);
    op_exporter_after_fork();
out:
    pthread_mutex_unlock(&op_g.lock);
    return rc;
}

/* What a run reserves from the memory budget at start and gives back at stop: the ring, and the
 * bytes the adapter declared it holds for the run. */
static size_t run_reservation(void) {
    return op_g.ring.mem_len + (size_t)op_g.cfg->adapter_memory;
}

/* The adapter's counters and fixed memory, checked before anything changes. Returns OTELPROF_OK
 * or the error to return, after one line saying why. */
static otelprof_error check_adapter(const otelprof_adapter *ad, const otelprof_config *cfg) {
    const char *who = ad->name ? ad->name : "runtime";
    int bad = ad->ncounters < 0 || ad->ncounters > OTELPROF_COUNTERS_MAX ||
              (ad->ncounters > 0 && (!ad->counter_names || !ad->counters));
    for (int i = 0; !bad && i < ad->ncounters; i++) bad = !ad->counter_names[i];
    if (bad) {
        op_log_error("%s adapter declares %d counters: at most %d, each with a name and a value; "
                     "profiling is off", who, ad->ncounters, OTELPROF_COUNTERS_MAX);
        return OTELPROF_EINVAL;
    }
    uint64_t max = (uint64_t)cfg->max_memory;
    if (ad->memory_bytes > max || max - ad->memory_bytes < (uint64_t)OP_MAX_MEMORY_MIN) {
        op_log_error("max_memory (OTELPROF_MAX_MEMORY) is %llu bytes: too small for the %s adapter's "
                     "%zu bytes plus the %lld the profiler's own tables need at least; profiling is off",
                     (unsigned long long)max, who, ad->memory_bytes, (long long)OP_MAX_MEMORY_MIN);
        return OTELPROF_ENOMEM;
    }
    return OTELPROF_OK;
}

static void cleanup_failed_start(otelprof_config *cfg) {
    op_ring_destroy(&op_g.ring);
    op_threads_destroy();
    otelprof_config_free(cfg);
    op_g.cfg = NULL;
    op_g.engine = NULL;
}

otelprof_error otelprof_start(const otelprof_config *cfg_in, const otelprof_adapter *adapter) {
    static int hooks_installed;
    otelprof_error rc = OTELPROF_OK;
    char err[512];
    pthread_mutex_lock(&op_g.lock);
    if (otelprof_is_running()) {
        rc = OTELPROF_ERUNNING;
        goto out;
    }
    otelprof_config *cfg;
    if (cfg_in) {
        cfg = op_config_clone(cfg_in);
    } else {
        cfg = otelprof_config_new();
        if (cfg && otelprof_config_from_env(cfg, err, sizeof err) != OTELPROF_OK) {
            op_log_error("%s; profiling is off", err);
            otelprof_config_free(cfg);
            rc = OTELPROF_EINVAL;
            goto out;
        }
    }
    if (!cfg) {
        rc = OTELPROF_ENOMEM;
        goto out;
    }
    if (cfg->disabled) {
        otelprof_config_free(cfg);
        rc = OTELPROF_EDISABLED;
        goto out;
    }
    op_log_level = cfg->log_level;
    op_config_resolve_output_dir(cfg);
    if (adapter && (rc = check_adapter(adapter, cfg)) != OTELPROF_OK) {
        otelprof_config_free(cfg);
        goto out;
    }
    op_mem_set_cap((uint64_t)cfg->max_memory);
    cfg->adapter_memory = adapter ? (int64_t)adapter->memory_bytes : 0;

    op_g.has_adapter = adapter != NULL;
    if (adapter) op_g.adapter = *adapter;
    else memset(&op_g.adapter, 0, sizeof op_g.adapter);
    fork_adapter = op_g.adapter;
    op_stats_publish_counters(op_g.adapter.counter_names, op_g.adapter.counters, op_g.adapter.ncounters);
    op_g.native_frames = adapter ? (cfg->native_frames_set && cfg->native_frames) : 1;
    if (!adapter && cfg->native_frames_set && !cfg->native_frames)
        op_log_warn("OTELPROF_NATIVE_FRAMES=0 ignored in native mode: native frames are the only frames");
    op_g.max_depth = (uint32_t)cfg->max_depth;
    op_g.cfg = cfg;

    if (op_ring_init(&op_g.ring, ring_slots(cfg, op_g.max_depth), op_g.max_depth + 1) < 0 ||
        op_threads_init(cfg->max_threads) < 0) {
        op_log_error("cannot allocate the capture buffers; profiling is off");
        cleanup_failed_start(cfg);
        rc = OTELPROF_ENOMEM;
        goto out;
    }
    if (op_mem_reserve(run_reservation()) < 0) {
        op_log_error("OTELPROF_MAX_MEMORY is too small for the capture ring (%zu bytes); profiling is off",
                     op_g.ring.mem_len);
        cleanup_failed_start(cfg);
        rc = OTELPROF_ENOMEM;
        goto out;
    }
    if (op_g.native_frames) op_unwind_init();
    if (op_capture_install(cfg) < 0) {
        op_log_error("cannot install the profiling signal's handler: %s; profiling is off", strerror(errno));
        op_mem_release(run_reservation());
        cleanup_failed_start(cfg);
        rc = OTELPROF_ESYS;
        goto out;
    }
    op_g.engine = op_engine_select(cfg);
    new_run_flags();
    if (op_exporter_start(cfg, adapter ? adapter->name : NULL) < 0) {
        op_log_error("cannot start the exporter thread; profiling is off");
        op_capture_uninstall();
        op_mem_release(run_reservation());
        cleanup_failed_start(cfg);
        rc = OTELPROF_ESYS;
        goto out;
    }
    __atomic_store_n(&op_g.running, 1, __ATOMIC_SEQ_CST);
    if (op_g.engine->start(cfg) < 0) {
        op_log_error("cannot start the %s engine: %s; profiling is off", op_g.engine->name, strerror(errno));
        __atomic_store_n(&op_g.running, 0, __ATOMIC_SEQ_CST);
        op_exporter_stop(0);
        op_capture_uninstall();
        op_mem_release(run_reservation());
        cleanup_failed_start(cfg);
        rc = OTELPROF_ESYS;
        goto out;
    }
    op_process_ctx_set_runtime(adapter ? adapter->name : NULL);
    if (otelprof_process_ctx_publish(cfg) != OTELPROF_OK)
        op_log_warn("process context (OTEL_CTX) not published");
    if (!hooks_installed) {
        pthread_atfork(fork_prepare, fork_parent, fork_child);
        /* Twice on purpose: the second registration runs first and stops; the first makes a
         * concurrent exit() wait for that stop instead of ending the process under it. */
        atexit(exit_stop);
        atexit(exit_stop);
        hooks_installed = 1;
        __atomic_store_n(&tid_cache_on, 1, __ATOMIC_RELEASE);
    }
    char signame[32];
    op_signal_describe(op_signo, signame, sizeof signame);
    op_log_info("started: engine %s, signal %s, interval %lld ns, output %s", op_g.engine->name, signame,
                (long long)cfg->interval_ns, cfg->output_dir ? cfg->output_dir : "./otelprof-out");
out:
    pthread_mutex_unlock(&op_g.lock);
    return rc;
}

otelprof_error otelprof_stop(void) {
    pthread_mutex_lock(&op_g.lock);
    otelprof_error rc = otelprof_is_running() ? stop_locked(0) : OTELPROF_ESTOPPED;
    pthread_mutex_unlock(&op_g.lock);
    return rc;
}

/* Under op_g.lock, while running. deadline (CLOCK_MONOTONIC ns, 0 for none) bounds the waits at
 * exit; past it the final profile is given up with one error line, and everything the exporter
 * may still be using is left allocated: the process is ending. */
static otelprof_error stop_locked(int64_t deadline) {
    int64_t t0 = op_mono_ns();
    __atomic_store_n(&op_g.running, 0, __ATOMIC_SEQ_CST);
    op_threads_close();
    op_g.engine->stop();
    /* Handlers already past the running check finish their slot before the final drain. A
     * handler can be slow (descheduled, throttled, a long walk), so wait generously; if one is
     * still inside after that, its ring and config are left allocated rather than freed under it. */
    int quiet = 0;
    for (int i = 0; i < 20000 && (!deadline || op_mono_ns() < deadline); i++) {
        if (!__atomic_load_n(&op_g.inflight, __ATOMIC_SEQ_CST)) {
            quiet = 1;
            break;
        }
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    if (op_exporter_stop(deadline) < 0) {
        op_log_error("exit: the final profile was not written within %lld ms; exiting without it "
                     "(its files may be missing)", (long long)((op_mono_ns() - t0) / 1000000));
        op_capture_uninstall();
        op_process_ctx_unpublish();
        return OTELPROF_ESYS;
    }
    op_capture_uninstall();
    op_process_ctx_unpublish();
    op_mem_release(run_reservation());
    if (quiet) {
        op_ring_destroy(&op_g.ring);
        otelprof_config_free(op_g.cfg);
    } else {
        op_log_warn("a signal handler was still running after 2 s; its buffers are left allocated");
        memset(&op_g.ring, 0, sizeof op_g.ring);
    }
    op_threads_destroy();
    /* The exporter is gone with its tables; an adapter's reservations stay until it frees them. */
    op_mem_set_measured(0);
    op_g.cfg = NULL;
    op_g.engine = NULL;
    op_g.has_adapter = 0;
    return OTELPROF_OK;
}

/* Whether the calling thread was taken out of the registry by otelprof_exec_prepare. */
static __thread int tl_exec_removed;

void otelprof_exec_prepare(void) {
    if (!otelprof_is_running()) return;
    /* A vfork() child shares our memory: touching the registry would change the parent's. */
    if ((pid_t)syscall(SYS_getpid) != op_g.pid) return;
    pthread_mutex_lock(&op_g.lock);
    if (!otelprof_is_running()) goto out;
    /* No new signal for this thread: its CPU timer is deleted and the wall engine, which signals
     * under the registry lock, no longer sees it; the process-wide timer stops. */
    pid_t tid = otelprof_gettid();
    tl_exec_removed = op_threads_contains(tid);
    op_threads_remove(tid, 1); /* its adapter data stays for exec_failed */
    if (op_g.engine == &op_engine_process && !op_g.exec_halted) {
        op_g.engine->stop();
        op_g.exec_halted = 1;
    }
    /* A signal sent before that (a deleted timer's stays queued) is consumed here, so none is
     * pending when exec installs the default disposition. The mask goes back as it was. */
    sigset_t one, old;
    sigemptyset(&one);
    sigaddset(&one, op_signo);
    pthread_sigmask(SIG_BLOCK, &one, &old);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&one, NULL, &zero) > 0) op_stat_drop(OTELPROF_DROP_NOT_RUNNING);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
out:
    pthread_mutex_unlock(&op_g.lock);
}

void otelprof_exec_failed(void) {
    if (!otelprof_is_running() || (pid_t)syscall(SYS_getpid) != op_g.pid) return;
    pthread_mutex_lock(&op_g.lock);
    if (otelprof_is_running() && !__atomic_load_n(&op_g.halted, __ATOMIC_ACQUIRE)) {
        if (op_g.exec_halted && op_g.engine->start(op_g.cfg) == 0) op_g.exec_halted = 0;
        if (tl_exec_removed) op_threads_add(otelprof_gettid(), NULL, 0);
    }
    tl_exec_removed = 0;
    pthread_mutex_unlock(&op_g.lock);
}

void op_profiler_halt(void) {
    if (__atomic_exchange_n(&op_g.halted, 1, __ATOMIC_ACQ_REL)) return;
    op_threads_close();
    op_g.engine->stop();
}

otelprof_error otelprof_flush(void) {
    if (!otelprof_is_running()) return OTELPROF_ESTOPPED;
    return op_exporter_flush(10000) == 0 ? OTELPROF_OK : OTELPROF_ESYS;
}

static otelprof_error add_result(int rc) {
    switch (rc) {
    case OP_THREADS_OK: return OTELPROF_OK;
    case OP_THREADS_FULL: return OTELPROF_EFULL;
    case OP_THREADS_CLOSED: return OTELPROF_ESTOPPED;
    case OP_THREADS_EXISTS: return OTELPROF_EEXIST;
    default: return OTELPROF_ESYS;
    }
}

otelprof_error otelprof_thread_register(pid_t tid) {
    if (tid <= 0) return OTELPROF_EINVAL;
    if (!otelprof_is_running()) return OTELPROF_ESTOPPED;
    if (tid == otelprof_gettid()) op_ctx_touch();
    return add_result(op_threads_add(tid, NULL, 0));
}

otelprof_error otelprof_thread_register_data(pid_t tid, const otelprof_thread_data *data, unsigned flags) {
    if (tid <= 0 || !data) return OTELPROF_EINVAL;
    if (!otelprof_is_running()) return OTELPROF_ESTOPPED;
    if (tid == otelprof_gettid()) op_ctx_touch();
    return add_result(op_threads_add(tid, data, (flags & OTELPROF_THREAD_IF_NEW) != 0));
}

void otelprof_thread_unregister(pid_t tid) {
    if (otelprof_is_running()) op_threads_remove(tid, 0);
}

int otelprof_thread_unregister_if(pid_t tid, const otelprof_thread_data *expected) {
    if (!expected || !otelprof_is_running()) return 0;
    return op_threads_remove_if(tid, expected);
}

int otelprof_thread_data_get(pid_t tid, otelprof_thread_data *out) {
    return op_threads_data_get(tid, out);
}

int otelprof_thread_data_self(otelprof_thread_data *out) {
    pid_t tid = op_handler_tid ? op_handler_tid : otelprof_gettid();
    return op_threads_data_get(tid, out);
}

int otelprof_thread_list(pid_t *tids, otelprof_thread_data *data, int max) {
    return op_threads_data_list(tids, data, max);
}
