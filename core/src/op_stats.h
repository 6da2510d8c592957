/* Process-wide self-metrics counters and the core's memory budget. Counters are updated with
 * relaxed atomics, so every function here is AS-safe. */
#ifndef OP_STATS_H
#define OP_STATS_H

#include <stddef.h>
#include <stdint.h>
#include "otelprof/otelprof.h"

extern otelprof_stats op_stats_g;

#define OP_STAT_ADD(field, n) __atomic_fetch_add(&op_stats_g.field, (uint64_t)(n), __ATOMIC_RELAXED)
#define OP_STAT_INC(field) OP_STAT_ADD(field, 1)

static inline void op_stat_drop(otelprof_drop_reason r) {
    __atomic_fetch_add(&op_stats_g.samples_dropped[r], 1, __ATOMIC_RELAXED);
}
static inline void op_stat_drop_n(otelprof_drop_reason r, uint64_t n) {
    __atomic_fetch_add(&op_stats_g.samples_dropped[r], n, __ATOMIC_RELAXED);
}

/* Upper bound (ns) of the histogram bucket holding the q-quantile (0..1) of handler times; 0 when
 * there were none. The buckets are powers of two, so this over-states by less than 2x. */
uint64_t op_stats_handler_quantile(const otelprof_stats *st, double q);

/* Memory budget shared by all core tables and the adapter's (cap from config max_memory).
 * op_mem_reserve returns 0 and accounts n bytes, or -1 (nothing accounted) if the reservations
 * plus the last measure would pass the cap. op_mem_set_measured records the exporter's measure
 * of the core's growing tables (those not reserved); op_mem_used is reservations + measure, the
 * otelprof_stats.memory_bytes value. */
void op_mem_set_cap(uint64_t cap);
int op_mem_reserve(size_t n);
void op_mem_release(size_t n);
void op_mem_set_measured(uint64_t bytes);
uint64_t op_mem_used(void);

/* Under the profiler's lock, at start: the adapter counters otelprof_stats_counter reports (the
 * adapter's own arrays, NULL/0 for none). */
void op_stats_publish_counters(const char *const *names, uint64_t *values, int n);

#endif
