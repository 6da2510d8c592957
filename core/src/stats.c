/* Self-metrics: the process-wide counters, the shared memory budget, and their public names. */
#include "op_stats.h"

#include "op_profiler.h"

otelprof_stats op_stats_g;

/* A cap of 0 means "not configured yet": tables built before start are not refused. */
void op_mem_set_cap(uint64_t cap) {
    __atomic_store_n(&op_stats_g.memory_cap_bytes, cap, __ATOMIC_RELAXED);
}

/* CAS rather than add-then-undo: a failed reservation must never make the total look, even for
 * a moment, as if it had passed the cap, or a concurrent reserver would fail spuriously. */
int op_mem_reserve(size_t n) {
    uint64_t cur = __atomic_load_n(&op_stats_g.memory_bytes, __ATOMIC_RELAXED);
    for (;;) {
        uint64_t cap = __atomic_load_n(&op_stats_g.memory_cap_bytes, __ATOMIC_RELAXED);
        uint64_t want = cur + (uint64_t)n;
        if (want < cur) return -1; /* wrapped */
        if (cap && want > cap) return -1;
        if (__atomic_compare_exchange_n(&op_stats_g.memory_bytes, &cur, want, 1, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
            return 0;
    }
}

/* Clamps at zero: releasing more than was reserved is a bug elsewhere, but an underflowed total
 * would block every later reservation and make the self-metric absurd. */
void op_mem_release(size_t n) {
    uint64_t cur = __atomic_load_n(&op_stats_g.memory_bytes, __ATOMIC_RELAXED);
    for (;;) {
        uint64_t want = cur > (uint64_t)n ? cur - (uint64_t)n : 0;
        if (__atomic_compare_exchange_n(&op_stats_g.memory_bytes, &cur, want, 1, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
            return;
    }
}

#define LOAD(f) __atomic_load_n(&op_stats_g.f, __ATOMIC_RELAXED)

uint64_t op_stats_handler_quantile(const otelprof_stats *st, double q) {
    uint64_t total = 0, seen = 0;
    for (int i = 0; i < 32; i++) total += st->handler_ns_hist[i];
    if (!total) return 0;
    for (int i = 0; i < 32; i++) {
        seen += st->handler_ns_hist[i];
        if ((double)seen >= q * (double)total) return (uint64_t)2 << i; /* bucket's upper bound */
    }
    return st->handler_ns_max;
}

void otelprof_stats_get(otelprof_stats *out) {
    if (!out) return;
    out->samples_taken = LOAD(samples_taken);
    for (int i = 0; i < OTELPROF_DROP__COUNT; i++) out->samples_dropped[i] = LOAD(samples_dropped[i]);
    out->signals = LOAD(signals);
    out->timer_overruns = LOAD(timer_overruns);
    out->handler_ns_total = LOAD(handler_ns_total);
    out->handler_ns_max = LOAD(handler_ns_max);
    for (int i = 0; i < 32; i++) out->handler_ns_hist[i] = LOAD(handler_ns_hist[i]);
    out->threads_registered = LOAD(threads_registered);
    out->profiles_written = LOAD(profiles_written);
    out->bytes_written = LOAD(bytes_written);
    out->memory_bytes = LOAD(memory_bytes);
    out->memory_cap_bytes = LOAD(memory_cap_bytes);
    out->export_attempts = LOAD(export_attempts);
    out->export_successes = LOAD(export_successes);
    for (int i = 0; i < OTELPROF_EXPORT_FAIL__COUNT; i++) out->export_failures[i] = LOAD(export_failures[i]);
    out->export_retries = LOAD(export_retries);
    out->export_bytes_sent = LOAD(export_bytes_sent);
    out->export_bytes_raw = LOAD(export_bytes_raw);
    out->export_queue_depth = LOAD(export_queue_depth);
    out->export_queue_bytes = LOAD(export_queue_bytes);
    for (int i = 0; i < OTELPROF_EXPORT_DROP__COUNT; i++) out->export_dropped[i] = LOAD(export_dropped[i]);
    out->export_rejected_profiles = LOAD(export_rejected_profiles);
    for (int i = 0; i < OTELPROF_WALK_ERRORS_MAX; i++) out->walk_errors[i] = LOAD(walk_errors[i]);
}

/* Indexed by otelprof_drop_reason; the names are metric labels, so they never change. */
static const char *const drop_names[OTELPROF_DROP__COUNT] = {
    [OTELPROF_DROP_RING_FULL] = "ring_full",
    [OTELPROF_DROP_NOT_RUNNING] = "not_running",
    [OTELPROF_DROP_WALK_FAILED] = "walk_failed",
    [OTELPROF_DROP_TRUNCATED] = "truncated",
    [OTELPROF_DROP_AGG_FULL] = "agg_full",
    [OTELPROF_DROP_SYMBOL_FULL] = "symbol_full",
    [OTELPROF_DROP_THREADS_FULL] = "threads_full",
    [OTELPROF_DROP_TIMER_FAILED] = "timer_failed",
    [OTELPROF_DROP_UNRESOLVED] = "unresolved",
    [OTELPROF_DROP_WRITE_FAILED] = "write_failed",
};

const char *otelprof_walk_error_name(int i) {
    const otelprof_adapter *ad = &op_g.adapter;
    if (i < 0 || i >= OTELPROF_WALK_ERRORS_MAX || i >= ad->nwalk_errors || !ad->walk_errors) return NULL;
    return ad->walk_errors[i];
}

const char *otelprof_drop_reason_name(otelprof_drop_reason r) {
    if ((unsigned)r >= OTELPROF_DROP__COUNT || !drop_names[r]) return "unknown";
    return drop_names[r];
}

/* Metric labels too: never renamed. */
static const char *const export_failure_names[OTELPROF_EXPORT_FAIL__COUNT] = {
    [OTELPROF_EXPORT_FAIL_CONNECT] = "connect",
    [OTELPROF_EXPORT_FAIL_TIMEOUT] = "timeout",
    [OTELPROF_EXPORT_FAIL_TLS] = "tls",
    [OTELPROF_EXPORT_FAIL_RETRYABLE] = "retryable",
    [OTELPROF_EXPORT_FAIL_REJECTED] = "rejected",
};

static const char *const export_drop_names[OTELPROF_EXPORT_DROP__COUNT] = {
    [OTELPROF_EXPORT_DROP_QUEUE_FULL] = "queue_full",
    [OTELPROF_EXPORT_DROP_RETRIES] = "retries",
    [OTELPROF_EXPORT_DROP_REJECTED] = "rejected",
    [OTELPROF_EXPORT_DROP_SHUTDOWN] = "shutdown",
    [OTELPROF_EXPORT_DROP_ENCODE] = "encode",
};

const char *otelprof_export_failure_name(otelprof_export_failure f) {
    if ((unsigned)f >= OTELPROF_EXPORT_FAIL__COUNT) return "unknown";
    return export_failure_names[f];
}

const char *otelprof_export_drop_name(otelprof_export_drop d) {
    if ((unsigned)d >= OTELPROF_EXPORT_DROP__COUNT) return "unknown";
    return export_drop_names[d];
}

const char *otelprof_strerror(otelprof_error err) {
    switch (err) {
    case OTELPROF_OK: return "success";
    case OTELPROF_EINVAL: return "invalid option value";
    case OTELPROF_ENOMEM: return "out of memory or over the max_memory cap";
    case OTELPROF_ERUNNING: return "profiler already running";
    case OTELPROF_ESTOPPED: return "profiler not running";
    case OTELPROF_ESYS: return "system call failed";
    case OTELPROF_EUNSUPPORTED: return "not supported on this system or build";
    case OTELPROF_EDISABLED: return "profiling disabled by configuration";
    case OTELPROF_EFULL: return "table full; item dropped";
    case OTELPROF_EEXIST: return "already there; left as it was";
    }
    return "unknown error";
}
