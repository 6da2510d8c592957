/* Capture queue: slots claimed by fetch-add + CAS, so producers never wait and never lock. */
#include "op_ring.h"

#include <string.h>
#include <sys/mman.h>

int op_ring_init(op_ring *r, uint32_t nslots, uint32_t max_frames) {
    memset(r, 0, sizeof(*r));
    uint32_t n = 16;
    while (n * 2 <= nslots && n < (1u << 24)) n *= 2;
    r->slot_size = (sizeof(op_slot) + (size_t)max_frames * sizeof(otelprof_frame) + 63) & ~(size_t)63;
    r->nslots = n;
    r->mask = n - 1;
    r->max_frames = max_frames;
    size_t states_len = ((size_t)n * sizeof(uint32_t) + 4095) & ~(size_t)4095;
    r->mem_len = (size_t)n * r->slot_size + states_len;
    /* mmap, not malloc: zeroed (all FREE), page-aligned, invisible to malloc hooks of the host;
     * slots' pages are touched only when used. */
    void *m = mmap(NULL, r->mem_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return -1;
    r->mem = m;
    r->states = (uint32_t *)(r->mem + (size_t)n * r->slot_size);
    return 0;
}

void op_ring_destroy(op_ring *r) {
    if (r->mem) munmap(r->mem, r->mem_len);
    memset(r, 0, sizeof(*r));
}

op_slot *op_ring_claim(op_ring *r) {
    uint64_t i = __atomic_fetch_add(&r->head, 1, __ATOMIC_RELAXED);
    uint32_t k = (uint32_t)i & r->mask, expect = OP_SLOT_FREE;
    /* A busy slot means the exporter is behind by a whole ring: drop rather than wait. */
    if (!__atomic_compare_exchange_n(&r->states[k], &expect, OP_SLOT_WRITING, 0, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED))
        return NULL;
    return op_ring_slot(r, k);
}

uint32_t op_ring_drain(op_ring *r, void (*fn)(const op_slot *s, void *arg), void *arg) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->nslots; i++) {
        if (__atomic_load_n(&r->states[i], __ATOMIC_ACQUIRE) != OP_SLOT_READY) continue;
        fn(op_ring_slot(r, i), arg);
        __atomic_store_n(&r->states[i], OP_SLOT_FREE, __ATOMIC_RELEASE);
        n++;
    }
    return n;
}

void op_ring_reset(op_ring *r) {
    for (uint32_t i = 0; i < r->nslots; i++) r->states[i] = OP_SLOT_FREE;
    r->head = 0;
}
