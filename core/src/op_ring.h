/* The capture queue: a fixed array of fixed-size sample slots, written lock-free from signal
 * handlers (and otelprof_submit) and drained by the exporter thread. */
#ifndef OP_RING_H
#define OP_RING_H

#include <stdint.h>
#include <sys/types.h>
#include "otelprof/otelprof.h"

enum { OP_SLOT_FREE = 0, OP_SLOT_WRITING = 1, OP_SLOT_READY = 2 };

typedef struct op_slot {
    uint32_t nframes;
    pid_t tid;
    uint8_t has_link;
    uint8_t truncated;
    uint8_t pad[2];
    uint64_t timestamp_ns;
    int64_t weight;     /* cpu: timer expirations (>= 1); wall: nanoseconds */
    uint64_t epoch;     /* op_g.epoch when claimed, before the frames were taken (frame lifetime) */
    uint8_t trace_id[16];
    uint8_t span_id[8];
    char thread_name[32]; /* otelprof_thread_set_name's, else PR_GET_NAME; NUL-terminated */
    otelprof_frame frames[]; /* max_depth entries */
} op_slot;

typedef struct op_ring {
    uint8_t *mem;       /* nslots * slot_size bytes, from mmap (never malloc in the handler) */
    size_t mem_len;
    uint32_t *states;   /* OP_SLOT_* per slot, written with atomics. Kept apart from the slots so
                           the consumer's scan reads one small array, not a line of every slot */
    uint32_t nslots;    /* power of two */
    uint32_t mask;
    size_t slot_size;
    uint32_t max_frames;
    uint64_t head;      /* next slot to try; atomic fetch-add */
} op_ring;

/* Allocates nslots (rounded down to a power of two, >= 16) slots of max_frames frames.
 * Returns 0 or -1. Not AS-safe. */
int op_ring_init(op_ring *r, uint32_t nslots, uint32_t max_frames);
void op_ring_destroy(op_ring *r);
/* Signal context: claims a free slot (state WRITING) or returns NULL when the slot the head points
 * at is still busy (the caller drops the sample and counts it). AS-safe, lock-free. */
op_slot *op_ring_claim(op_ring *r);
static inline op_slot *op_ring_slot(const op_ring *r, uint32_t i) {
    return (op_slot *)(r->mem + (size_t)i * r->slot_size);
}
static inline uint32_t *op_ring_state(const op_ring *r, const op_slot *s) {
    return &r->states[(size_t)((const uint8_t *)s - r->mem) / r->slot_size];
}
/* Signal context: publishes a claimed slot. AS-safe. */
static inline void op_ring_publish(op_ring *r, op_slot *s) {
    __atomic_store_n(op_ring_state(r, s), OP_SLOT_READY, __ATOMIC_RELEASE);
}
/* Signal context: gives a claimed slot back unpublished. AS-safe. */
static inline void op_ring_release(op_ring *r, op_slot *s) {
    __atomic_store_n(op_ring_state(r, s), OP_SLOT_FREE, __ATOMIC_RELEASE);
}
/* Exporter thread: calls fn for every READY slot, then frees it. Returns how many. */
uint32_t op_ring_drain(op_ring *r, void (*fn)(const op_slot *s, void *arg), void *arg);
/* After fork, in the child: every slot free (a parent thread may have been mid-write). */
void op_ring_reset(op_ring *r);

#endif
