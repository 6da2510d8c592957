/* Self-metrics: the process-wide counters, the shared memory budget, and their public names. */
#include "op_stats.h"

#include "op_profiler.h"

otelprof_stats op_stats_g;

/* The memory budget. Reservations (the ring and the adapter's fixed bytes, sized at start; an
 * adapter's growing tables, at any time) and the exporter's measure of the core's growing tables
 * (aggregation, symbols, export queue) are kept apart: the measure is rewritten at every drain,
 * so a single counter serving both would lose reservations made between two measures, and a
 * release would then take away bytes the measure never held. otelprof_stats.memory_bytes is
 * their sum (op_stats_g.memory_bytes itself is not used). */
static struct {
    uint64_t reserved; /* every reservation; the cap is enforced on this counter (CAS) */
    uint64_t adapter;  /* of which otelprof_memory_reserve()'s: what an adapter may release */
    uint64_t measured; /* the core's growing tables at the exporter's last measure */
} mem;

/* A cap of 0 means "not configured yet": tables built before start are not refused. */
void op_mem_set_cap(uint64_t cap) {
    __atomic_store_n(&op_stats_g.memory_cap_bytes, cap, __ATOMIC_RELAXED);
}

/* CAS rather than add-then-undo: a failed reservation must never make the total look, even for
 * a moment, as if it had passed the cap, or a concurrent reserver would fail spuriously. The
 * measure is not a reservation: it is read, not changed, here. */
int op_mem_reserve(size_t n) {
    uint64_t cur = __atomic_load_n(&mem.reserved, __ATOMIC_RELAXED);
    for (;;) {
        uint64_t cap = __atomic_load_n(&op_stats_g.memory_cap_bytes, __ATOMIC_RELAXED);
        uint64_t measured = __atomic_load_n(&mem.measured, __ATOMIC_RELAXED);
        uint64_t want = cur + (uint64_t)n;
        if (want < cur || want + measured < want) return -1; /* wrapped */
        if (cap && want + measured > cap) return -1;
        if (__atomic_compare_exchange_n(&mem.reserved, &cur, want, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return 0;
    }
}

/* Clamps at zero: releasing more than was reserved is a bug elsewhere, but an underflowed total
 * would block every later reservation and make the self-metric absurd. */
static uint64_t sub_clamped(uint64_t *counter, uint64_t n) {
    uint64_t cur = __atomic_load_n(counter, __ATOMIC_RELAXED);
    for (;;) {
        uint64_t want = cur > n ? cur - n : 0;
        if (__atomic_compare_exchange_n(counter, &cur, want, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return cur - want;
    }
}

void op_mem_release(size_t n) {
    sub_clamped(&mem.reserved, (uint64_t)n);
}

void op_mem_set_measured(uint64_t bytes) {
    __atomic_store_n(&mem.measured, bytes, __ATOMIC_RELAXED);
}

uint64_t op_mem_used(void) {
    return __atomic_load_n(&mem.reserved, __ATOMIC_RELAXED) + __atomic_load_n(&mem.measured, __ATOMIC_RELAXED);
}

int otelprof_memory_reserve(size_t n) {
    if (op_mem_reserve(n) < 0) return -1;
    __atomic_fetch_add(&mem.adapter, (uint64_t)n, __ATOMIC_RELAXED);
    return 0;
}

/* Only what the adapter reserved comes off the total: an adapter that releases too much must
 * not take away the ring's or its fixed bytes. */
void otelprof_memory_release(size_t n) {
    op_mem_release((size_t)sub_clamped(&mem.adapter, (uint64_t)n));
}

/* The adapter counters of the current or last run. start() publishes them under the profiler's
 * lock; readers may run in a signal handler, so they never wait: a seqlock whose reader retries a
 * few times and gives up (-1) only if a start keeps rewriting it (one interrupted by this very
 * handler, say). */
static struct {
    unsigned seq; /* odd while start rewrites the fields below */
    const char *const *names;
    uint64_t *values;
    int n;
} counters;

void op_stats_publish_counters(const char *const *names, uint64_t *values, int n) {
    unsigned s = __atomic_load_n(&counters.seq, __ATOMIC_RELAXED);
    __atomic_store_n(&counters.seq, s + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&counters.names, names, __ATOMIC_RELAXED);
    __atomic_store_n(&counters.values, values, __ATOMIC_RELAXED);
    __atomic_store_n(&counters.n, n, __ATOMIC_RELAXED);
    __atomic_store_n(&counters.seq, s + 2, __ATOMIC_RELEASE);
}

int otelprof_stats_counter(int i, const char **name, uint64_t *value) {
    for (int tries = 0; tries < 100; tries++) {
        unsigned s = __atomic_load_n(&counters.seq, __ATOMIC_ACQUIRE);
        if (s & 1) continue;
        const char *const *names = __atomic_load_n(&counters.names, __ATOMIC_RELAXED);
        uint64_t *values = __atomic_load_n(&counters.values, __ATOMIC_RELAXED);
        int n = __atomic_load_n(&counters.n, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&counters.seq, __ATOMIC_RELAXED) != s) continue;
        /* A consistent snapshot: the arrays are the adapter's static storage, valid for good. */
        if (i < 0 || i >= n || !names || !values) return -1;
        if (name) *name = names[i];
        if (value) *value = __atomic_load_n(&values[i], __ATOMIC_RELAXED);
        return 0;
    }
    return -1;
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
    out->memory_bytes = op_mem_used();
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
