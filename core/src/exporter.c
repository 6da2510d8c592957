/* Exporter thread: the only consumer of the capture ring and the only owner of aggregation,
 * symbolisation and outputs, so none of those need locks. It wakes every drain period, and
 * closes a profile every export interval, on flush and at stop. */
#include "op_clock.h"
#include "op_spawn.h"
#include "op_capture.h"
#include "op_exporter.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "op_aggregate.h"
#include "op_encode.h"
#include "op_export_http.h"
#include "op_log.h"
#include "op_output.h"
#include "op_profiler.h"
#include "op_resolve.h"
#include "op_resource.h"
#include "op_stats.h"

/* How often the ring is drained: short enough that a full ring needs a burst of
 * nslots samples within it. */
#define OP_DRAIN_NS 20000000ll

static struct {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;     /* wakes the thread (flush, stop) and flush waiters */
    int stop;
    uint64_t flush_req, flush_done;
    int started;
    int finished;            /* the thread has written its last profile */
    op_agg agg;
    op_resolver resolver;
    op_output *output;       /* NULL when only the network is wanted */
    int exporting;           /* an OTLP endpoint is configured and its sender runs */
    op_kv *resource;
    size_t nresource;
    const otelprof_config *cfg;
} ex = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static op_output *kept_output; /* the stopped run's outputs, reused by the next start */
/* Held by the exporter thread while it drains and closes, and by fork() around the copy, so a
 * fork child inherits consistent tables it can free (the wait is one drain or one close). */
static pthread_mutex_t work_lock = PTHREAD_MUTEX_INITIALIZER;
static int fork_locked;

static void drain_one(const op_slot *s, void *arg) {
    op_agg_add((op_agg *)arg, s);
}

/* The core's tables that grow during the run; the ring is not among them: it was reserved at
 * start, with the adapter's fixed bytes. */
static void update_memory_stat(void) {
    op_mem_set_measured(op_agg_bytes(&ex.agg) + op_symbolizer_bytes(ex.resolver.symbolizer) +
                        op_export_http_queued_bytes());
}

/* The debug line of the adapter's counters, every one of them (zeros too, so the line's keys are
 * the same at every close): "adapter counters: name=value,...". Nothing without counters. */
static void log_adapter_counters(void) {
    char line[900]; /* fits a log line after its prefix; more is cut and ends with "..." */
    size_t used = 0;
    const char *name;
    uint64_t value;
    line[0] = 0;
    for (int i = 0; used < sizeof line && otelprof_stats_counter(i, &name, &value) == 0; i++) {
        int w = snprintf(line + used, sizeof line - used, "%s%s=%llu", i ? "," : "", name,
                         (unsigned long long)value);
        if (w < 0) break;
        used += (size_t)w;
    }
    if (used >= sizeof line) memcpy(line + sizeof line - 4, "...", 4);
    if (line[0]) op_log_debug("adapter counters: %s", line);
}

static uint64_t export_sum(const uint64_t *v, int n) {
    uint64_t t = 0;
    for (int i = 0; i < n; i++) t += v[i];
    return t;
}

/* Closes the interval: build, write, reset. */
/* After a close named its frames: the oldest epoch still held is that of the oldest sample
 * still in the ring (claimed after the drain, or being written: a stale stamp read there is an
 * older one, so the answer errs on the safe side), else the current one. A handler that claims
 * a slot after this scan reads the epoch after our increment, so it cannot hold an older one. */
static void update_released(void) {
    uint64_t r = __atomic_load_n(&op_g.epoch, __ATOMIC_SEQ_CST);
    const op_ring *ring = &op_g.ring;
    for (uint32_t i = 0; ring->mem && i < ring->nslots; i++) {
        if (__atomic_load_n(&ring->states[i], __ATOMIC_SEQ_CST) == OP_SLOT_FREE) continue;
        uint64_t e = __atomic_load_n(&op_ring_slot(ring, i)->epoch, __ATOMIC_SEQ_CST);
        if (e < r) r = e;
    }
    if (r > __atomic_load_n(&op_g.released, __ATOMIC_RELAXED)) __atomic_store_n(&op_g.released, r, __ATOMIC_RELEASE);
}

static void close_profile(int final) {
    /* A new epoch before the drain: every sample stamped with an older one is either drained
     * now (and named by this close) or still in the ring for update_released to see. */
    __atomic_add_fetch(&op_g.epoch, 1, __ATOMIC_SEQ_CST);
    op_capture_names_refresh();
    op_ring_drain(&op_g.ring, drain_one, &ex.agg);
    uint64_t end = (uint64_t)op_clock_ns(CLOCK_REALTIME);
    op_arena arena;
    op_arena_init(&arena);
    op_profile p;
    if (op_agg_build(&ex.agg, &ex.resolver, &arena, end, &p) == 0) {
        p.period_ns = ex.cfg->interval_ns;
        p.resource = ex.resource;
        p.nresource = ex.nresource;
        p.scope_name = "otelprof";
        p.scope_version = OP_SDK_VERSION;
        if (getrandom(p.profile_id, sizeof p.profile_id, GRND_NONBLOCK) != sizeof p.profile_id) {
            uint64_t a = end ^ (uint64_t)getpid() << 32, b = (uint64_t)(uintptr_t)&p ^ end * 31;
            memcpy(p.profile_id, &a, 8);
            memcpy(p.profile_id + 8, &b, 8);
        }
        p.profile_id[0] |= 1; /* never all zero */
        if (ex.output) op_output_write(ex.output, &p, final);
        if (ex.exporting && p.nsamples) {
            /* Encoded here, compressed and sent on the sender thread: the network never
             * delays draining the ring. */
            uint8_t *body = NULL;
            size_t len = 0;
            if (op_encode_otlp(&p, &body, &len) == 0) op_export_http_submit(body, len);
            else OP_STAT_INC(export_dropped[OTELPROF_EXPORT_DROP_ENCODE]);
        }
        op_log_debug("profile closed: %zu samples, %zu frames, %zu mappings; arena %zu bytes",
                     p.nsamples, p.nsyms, p.nmappings, arena.bytes);
    } else {
        op_stat_drop_n(OTELPROF_DROP_AGG_FULL, ex.agg.samples);
        op_log_warn("profile dropped: out of memory while building it");
    }
    op_arena_free(&arena);
    update_released();
    if (op_g.has_adapter && op_g.adapter.profile_closed) op_g.adapter.profile_closed(op_g.adapter.user);
    op_agg_reset(&ex.agg, end);
    update_memory_stat();
    if (op_log_level >= OP_LOG_DEBUG) {
        otelprof_stats st;
        otelprof_stats_get(&st);
        uint64_t dropped = 0;
        for (int i = 0; i < OTELPROF_DROP__COUNT; i++)
            if (i != OTELPROF_DROP_TRUNCATED) dropped += st.samples_dropped[i];
        op_log_debug("stats: taken=%llu signals=%llu dropped=%llu ring_full=%llu handler_ns_total=%llu "
                     "handler_ns_p50=%llu handler_ns_p99=%llu handler_ns_max=%llu "
                     "profiles=%llu bytes=%llu memory=%llu export_attempts=%llu export_ok=%llu "
                     "export_failed=%llu export_retries=%llu export_sent=%llu export_raw=%llu "
                     "export_queue=%llu export_queue_bytes=%llu export_dropped=%llu",
                     (unsigned long long)st.samples_taken, (unsigned long long)st.signals,
                     (unsigned long long)dropped,
                     (unsigned long long)st.samples_dropped[OTELPROF_DROP_RING_FULL],
                     (unsigned long long)st.handler_ns_total,
                     (unsigned long long)op_stats_handler_quantile(&st, 0.5),
                     (unsigned long long)op_stats_handler_quantile(&st, 0.99),
                     (unsigned long long)st.handler_ns_max, (unsigned long long)st.profiles_written,
                     (unsigned long long)st.bytes_written, (unsigned long long)st.memory_bytes,
                     (unsigned long long)st.export_attempts, (unsigned long long)st.export_successes,
                     (unsigned long long)export_sum(st.export_failures, OTELPROF_EXPORT_FAIL__COUNT),
                     (unsigned long long)st.export_retries, (unsigned long long)st.export_bytes_sent,
                     (unsigned long long)st.export_bytes_raw, (unsigned long long)st.export_queue_depth,
                     (unsigned long long)st.export_queue_bytes,
                     (unsigned long long)export_sum(st.export_dropped, OTELPROF_EXPORT_DROP__COUNT));
        char causes[512];
        size_t used = 0;
        causes[0] = 0;
        for (int i = 0; i < OTELPROF_WALK_ERRORS_MAX && used < sizeof causes; i++) {
            const char *label = otelprof_walk_error_name(i);
            if (label && st.walk_errors[i]) {
                int w = snprintf(causes + used, sizeof causes - used, "%s%s:%llu", used ? "," : "", label,
                                 (unsigned long long)st.walk_errors[i]);
                if (w > 0) used += (size_t)w;
            }
        }
        if (used) op_log_debug("walk errors: %s", causes);
        log_adapter_counters();
    }
}

static void add_ns(struct timespec *t, int64_t ns) {
    t->tv_nsec += ns % 1000000000ll;
    t->tv_sec += ns / 1000000000ll + t->tv_nsec / 1000000000ll;
    t->tv_nsec %= 1000000000ll;
}

static int before(const struct timespec *a, const struct timespec *b) {
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* The handler of the profiling signal, checked every fifth drain (100 ms): an application that
 * installs its own handler or disposition on it gets what it asked for, and sampling stops with
 * one warning instead of feeding it our signals. */
static void watch_signal(void) {
    static unsigned drains;
    if (++drains % 5 || __atomic_load_n(&op_g.halted, __ATOMIC_ACQUIRE) || op_capture_check() == 0) return;
    char name[32];
    op_signal_describe(op_signo, name, sizeof name);
    op_log_warn("the application replaced the handler of the profiling signal %s; sampling stopped "
                "(OTELPROF_SIGNAL can name a signal it leaves alone)", name);
    op_profiler_halt();
}

static void *exporter_main(void *arg) {
    (void)arg;
    struct timespec now, next_close;
    clock_gettime(CLOCK_MONOTONIC, &next_close);
    add_ns(&next_close, ex.cfg->export_interval_ns);
    pthread_mutex_lock(&ex.lock);
    for (;;) {
        /* The condition variable times out on CLOCK_REALTIME; the close schedule stays monotonic. */
        struct timespec wake;
        clock_gettime(CLOCK_REALTIME, &wake);
        add_ns(&wake, OP_DRAIN_NS);
        while (!ex.stop && ex.flush_req == ex.flush_done &&
               pthread_cond_timedwait(&ex.cond, &ex.lock, &wake) != ETIMEDOUT) {}
        int stop = ex.stop;
        uint64_t want = ex.flush_req;
        pthread_mutex_unlock(&ex.lock);

        if (!stop) watch_signal();
        pthread_mutex_lock(&work_lock);
        op_ring_drain(&op_g.ring, drain_one, &ex.agg);
        clock_gettime(CLOCK_MONOTONIC, &now);
        int due = !before(&now, &next_close);
        if (stop || due || want != ex.flush_done) {
            close_profile(stop);
            if (due) {
                while (!before(&now, &next_close)) add_ns(&next_close, ex.cfg->export_interval_ns);
            }
        } else {
            update_memory_stat();
        }
        pthread_mutex_unlock(&work_lock);
        pthread_mutex_lock(&ex.lock);
        ex.flush_done = want;
        pthread_cond_broadcast(&ex.cond);
        if (stop) break;
    }
    ex.finished = 1;
    pthread_cond_broadcast(&ex.cond);
    pthread_mutex_unlock(&ex.lock);
    return NULL;
}

static void free_state(void) {
    op_agg_free(&ex.agg);
    op_resolver_free(&ex.resolver);
    if (ex.output) {
        op_output_free(kept_output);
        kept_output = ex.output;
    }
    ex.output = NULL;
    op_resource_free(ex.resource, ex.nresource);
    ex.resource = NULL;
    ex.nresource = 0;
}

static char *ex_runtime; /* copied: the adapter's string need not outlive start() */

static int init_state(const otelprof_config *cfg, const char *runtime) {
    ex.cfg = cfg;
    if (runtime != ex_runtime) {
        free(ex_runtime);
        ex_runtime = runtime ? strdup(runtime) : NULL;
    }
    ex.stop = 0;
    ex.finished = 0;
    ex.flush_req = ex.flush_done = 0;
    if (op_resource_build(cfg, runtime, &ex.resource, &ex.nresource) < 0) return -1;
    const char *service = ex.nresource ? ex.resource[0].value : "otelprof";
    op_agg_init(&ex.agg, cfg->mode, (size_t)(op_config_core_memory(cfg) / 2));
    op_agg_reset(&ex.agg, (uint64_t)op_clock_ns(CLOCK_REALTIME));
    if (op_resolver_init(&ex.resolver, (size_t)(op_config_core_memory(cfg) / 8)) < 0) return -1;
    /* With an endpoint, local files are written only when a directory was asked for. */
    if (op_export_http_configured(cfg) && !cfg->output_dir_set) return 0;
    /* A restart in the same process continues the previous run's files (sequence numbers, folded
     * and HTML totals) instead of overwriting them. */
    if (kept_output && op_output_matches(kept_output, cfg, service)) {
        ex.output = kept_output;
    } else {
        op_output_free(kept_output);
        ex.output = op_output_new(cfg, service);
    }
    kept_output = NULL;
    if (ex.output) op_output_open(ex.output); /* directory problems are reported at start */
    return ex.output ? 0 : -1;
}

static int spawn(void) {
    if (op_spawn(&ex.thread, exporter_main, NULL, "otelprof-export")) return -1;
    ex.started = 1;
    return 0;
}

int op_exporter_start(const otelprof_config *cfg, const char *runtime) {
    if (ex.started) return -1; /* an exporter abandoned at exit is still running */
    if (init_state(cfg, runtime) < 0) {
        free_state();
        return -1;
    }
    int http = op_export_http_start(cfg);
    if (http < 0) {
        free_state();
        return -1;
    }
    ex.exporting = http > 0;
    if (spawn() < 0) {
        if (ex.exporting) op_export_http_stop();
        ex.exporting = 0;
        free_state();
        return -1;
    }
    return 0;
}

/* While the caller waits for the exporter, it answers resolution requests of an adapter that
 * resolves on its own thread: stop() and flush() are called from such a thread, and the exporter
 * would otherwise wait for it. */
static int caller_resolves(void) {
    return op_g.has_adapter && op_g.adapter.resolve_on == OTELPROF_RESOLVE_ON_ADAPTER;
}

static void wait_step(int resolve) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    add_ns(&dl, 2000000);
    pthread_cond_timedwait(&ex.cond, &ex.lock, &dl);
    if (resolve) {
        pthread_mutex_unlock(&ex.lock);
        otelprof_resolve_pending();
        pthread_mutex_lock(&ex.lock);
    }
}

int op_exporter_stop(int64_t deadline) {
    if (!ex.started) return 0;
    int resolve = caller_resolves();
    pthread_mutex_lock(&ex.lock);
    ex.stop = 1;
    pthread_cond_broadcast(&ex.cond);
    while (!ex.finished) {
        if (deadline && op_mono_ns() >= deadline) {
            /* Still closing: it keeps the state; no restart can follow (the process is exiting,
             * and op_exporter_start refuses while started). */
            pthread_mutex_unlock(&ex.lock);
            return -1;
        }
        wait_step(resolve);
    }
    pthread_mutex_unlock(&ex.lock);
    pthread_join(ex.thread, NULL);
    ex.started = 0;
    /* After the join, so the final profile is already queued; bounded by the export timeout. */
    if (ex.exporting) op_export_http_stop();
    ex.exporting = 0;
    free_state();
    return 0;
}

int op_exporter_flush(int timeout_ms) {
    if (!ex.started) return -1;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    add_ns(&dl, (int64_t)timeout_ms * 1000000ll);
    pthread_mutex_lock(&ex.lock);
    uint64_t want = ++ex.flush_req;
    pthread_cond_broadcast(&ex.cond);
    int rc = 0, resolve = caller_resolves();
    while (ex.flush_done < want && !ex.stop) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        if (!before(&now, &dl)) {
            rc = -1;
            break;
        }
        wait_step(resolve);
    }
    pthread_mutex_unlock(&ex.lock);
    return rc;
}

void op_exporter_fork_prepare(void) {
    fork_locked = ex.started;
    if (fork_locked) pthread_mutex_lock(&work_lock);
}

void op_exporter_fork_parent(void) {
    if (fork_locked) pthread_mutex_unlock(&work_lock);
    fork_locked = 0;
}

void op_exporter_reset_after_fork(void) {
    pthread_mutex_t fresh_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t fresh_cond = PTHREAD_COND_INITIALIZER;
    memcpy(&ex.lock, &fresh_lock, sizeof fresh_lock);
    memcpy(&ex.cond, &fresh_cond, sizeof fresh_cond);
    memcpy(&work_lock, &fresh_lock, sizeof fresh_lock);
    op_resolve_after_fork();
    /* fork() waited for the exporter to finish its drain or close, so the parent's tables are
     * consistent here: free them. The parent's outputs hold its sequence numbers and totals; the
     * child starts its own. */
    if (ex.started) {
        op_agg_free(&ex.agg);
        op_resolver_free(&ex.resolver);
        op_output_free(ex.output);
        ex.output = NULL;
        op_resource_free(ex.resource, ex.nresource);
        ex.resource = NULL;
        ex.nresource = 0;
    }
    op_output_free(kept_output);
    kept_output = NULL;
    ex.started = 0;
    fork_locked = 0;
}

void op_exporter_after_fork(void) {
    op_export_http_after_fork();
    if (init_state(ex.cfg, ex_runtime) < 0 || spawn() < 0)
        op_log_error("profiling stopped in fork child %d: cannot restart the exporter", (int)getpid());
}
