/* Interning: byte-string keys -> dense indices 0..n-1 in insertion order, with a memory cap.
 * The building block of every dictionary table (strings, functions, locations, stacks, links,
 * attributes) and of the aggregator. Not thread-safe; not AS-safe. */
#ifndef OP_INTERN_H
#define OP_INTERN_H

#include <stddef.h>
#include <stdint.h>

typedef struct op_intern {
    uint32_t *slots;      /* open addressing: index+1, 0 = empty */
    uint32_t nslots;      /* power of two */
    uint32_t n;           /* entries */
    uint32_t cap_entries;
    size_t *offs;         /* key i = data[offs[i] .. offs[i]+lens[i]) */
    uint32_t *lens;
    uint64_t *hashes;
    uint8_t *data;
    size_t data_len, data_cap;
    size_t max_bytes;     /* 0 = no cap */
    size_t bytes;         /* bytes held now */
} op_intern;

/* max_bytes = 0 means unbounded (the caller bounds it another way). */
void op_intern_init(op_intern *t, size_t max_bytes);
void op_intern_free(op_intern *t);
/* Forgets all entries, keeps the allocations. */
void op_intern_clear(op_intern *t);
/* Index of key, inserting it if new (*inserted set when not NULL). -1 when inserting would pass
 * the cap or memory ran out: nothing is inserted. */
int32_t op_intern_put(op_intern *t, const void *key, size_t len, int *inserted);
/* Index of key, or -1. */
int32_t op_intern_find(const op_intern *t, const void *key, size_t len);
/* Key of entry i (not NUL-terminated unless the caller put the NUL in). */
static inline const void *op_intern_key(const op_intern *t, uint32_t i, size_t *len) {
    if (len) *len = t->lens[i];
    return t->data + t->offs[i];
}
static inline uint32_t op_intern_count(const op_intern *t) { return t->n; }

/* 64-bit hash of bytes (FNV-1a folded with a final mix). */
uint64_t op_hash_bytes(const void *p, size_t len);

#endif
