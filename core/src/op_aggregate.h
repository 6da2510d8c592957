/* Aggregation of captured samples over one export interval: samples merge by identity
 * {frames, thread name, link}; at close the frames are resolved and an op_profile is built.
 * Exporter thread only; not thread-safe; not AS-safe. */
#ifndef OP_AGGREGATE_H
#define OP_AGGREGATE_H

#include <stdint.h>
#include "op_arena.h"
#include "op_intern.h"
#include "op_profile.h"
#include "op_resolve.h"
#include "op_ring.h"

typedef struct op_agg {
    op_intern keys;      /* identity bytes -> entry */
    int64_t *counts;     /* per entry: samples (timer expirations) */
    int64_t *values;     /* per entry: cpu = counts, wall = ns */
    uint32_t cap;
    op_intern names;     /* thread names seen this interval */
    uint64_t start_unix_ns;
    int mode;
    uint64_t samples;    /* added this interval */
} op_agg;

int op_agg_init(op_agg *g, int mode, size_t max_bytes);
void op_agg_free(op_agg *g);
/* Adds one drained slot. At the memory cap the sample is dropped and counted (agg_full). */
void op_agg_add(op_agg *g, const op_slot *s);
/* Builds the profile of everything added since the last reset (arrays and strings in arena).
 * Returns 0 or -1 (ENOMEM). */
int op_agg_build(op_agg *g, op_resolver *r, op_arena *arena, uint64_t end_unix_ns, op_profile *out);
/* Starts a new interval at start_unix_ns. */
void op_agg_reset(op_agg *g, uint64_t start_unix_ns);
/* Bytes held. */
size_t op_agg_bytes(const op_agg *g);

#endif
