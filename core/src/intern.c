/* Interning table: open addressing over indices, keys packed into one growing byte buffer. */
#include "op_intern.h"

#include <stdlib.h>
#include <string.h>

uint64_t op_hash_bytes(const void *p, size_t len) {
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    /* FNV's low bits mix poorly; the slot index uses them, so finish with a murmur-style mix. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

void op_intern_init(op_intern *t, size_t max_bytes) {
    memset(t, 0, sizeof(*t));
    t->max_bytes = max_bytes;
}

void op_intern_free(op_intern *t) {
    free(t->slots);
    free(t->offs);
    free(t->lens);
    free(t->hashes);
    free(t->data);
    op_intern_init(t, t->max_bytes);
}

void op_intern_clear(op_intern *t) {
    if (t->slots) memset(t->slots, 0, sizeof(uint32_t) * t->nslots);
    t->n = 0;
    t->data_len = 0;
}

static size_t footprint(uint32_t nslots, uint32_t cap_entries, size_t data_cap) {
    return (size_t)nslots * sizeof(uint32_t) +
           (size_t)cap_entries * (sizeof(size_t) + sizeof(uint32_t) + sizeof(uint64_t)) + data_cap;
}

static int over_cap(const op_intern *t, uint32_t nslots, uint32_t cap_entries, size_t data_cap) {
    return t->max_bytes && footprint(nslots, cap_entries, data_cap) > t->max_bytes;
}

static void rehash(op_intern *t, uint32_t *slots, uint32_t nslots) {
    for (uint32_t i = 0; i < t->n; i++) {
        uint32_t s = (uint32_t)t->hashes[i] & (nslots - 1);
        while (slots[s]) s = (s + 1) & (nslots - 1);
        slots[s] = i + 1;
    }
}

int32_t op_intern_find(const op_intern *t, const void *key, size_t len) {
    if (!t->nslots) return -1;
    uint64_t h = op_hash_bytes(key, len);
    uint32_t s = (uint32_t)h & (t->nslots - 1);
    while (t->slots[s]) {
        uint32_t i = t->slots[s] - 1;
        if (t->hashes[i] == h && t->lens[i] == len && memcmp(t->data + t->offs[i], key, len) == 0)
            return (int32_t)i;
        s = (s + 1) & (t->nslots - 1);
    }
    return -1;
}

/* Grows the entry arrays to hold one more entry and the slot array to stay under 3/4 full. */
static int grow_entries(op_intern *t) {
    if (t->n < t->cap_entries && (t->n + 1) * 4 <= t->nslots * 3) return 0;
    uint32_t ncap = t->cap_entries ? t->cap_entries : 64;
    while (ncap < t->n + 1) ncap *= 2;
    uint32_t nslots = t->nslots ? t->nslots : 128;
    while ((t->n + 1) * 4 > nslots * 3) nslots *= 2;
    if (ncap > INT32_MAX / 2) return -1;
    if (over_cap(t, nslots, ncap, t->data_cap)) return -1;
    if (ncap != t->cap_entries) {
        size_t *offs = realloc(t->offs, sizeof(size_t) * ncap);
        if (!offs) return -1;
        t->offs = offs;
        uint32_t *lens = realloc(t->lens, sizeof(uint32_t) * ncap);
        if (!lens) return -1;
        t->lens = lens;
        uint64_t *hashes = realloc(t->hashes, sizeof(uint64_t) * ncap);
        if (!hashes) return -1;
        t->hashes = hashes;
        t->cap_entries = ncap;
    }
    if (nslots != t->nslots) {
        uint32_t *slots = calloc(nslots, sizeof(uint32_t));
        if (!slots) return -1;
        rehash(t, slots, nslots);
        free(t->slots);
        t->slots = slots;
        t->nslots = nslots;
    }
    t->bytes = footprint(t->nslots, t->cap_entries, t->data_cap);
    return 0;
}

static int grow_data(op_intern *t, size_t need) {
    if (t->data_len + need <= t->data_cap) return 0;
    size_t ncap = t->data_cap ? t->data_cap : 1024;
    while (ncap < t->data_len + need) ncap *= 2;
    if (over_cap(t, t->nslots, t->cap_entries, ncap)) {
        /* Doubling would pass the cap: take exactly what fits, if that is enough. */
        ncap = t->data_len + need;
        if (over_cap(t, t->nslots, t->cap_entries, ncap)) return -1;
    }
    uint8_t *d = realloc(t->data, ncap);
    if (!d) return -1;
    t->data = d;
    t->data_cap = ncap;
    t->bytes = footprint(t->nslots, t->cap_entries, t->data_cap);
    return 0;
}

int32_t op_intern_put(op_intern *t, const void *key, size_t len, int *inserted) {
    if (inserted) *inserted = 0;
    int32_t found = op_intern_find(t, key, len);
    if (found >= 0) return found;
    if (len > UINT32_MAX) return -1;
    if (grow_entries(t) < 0 || grow_data(t, len) < 0) return -1;
    uint64_t h = op_hash_bytes(key, len);
    uint32_t i = t->n++;
    t->offs[i] = t->data_len;
    t->lens[i] = (uint32_t)len;
    t->hashes[i] = h;
    if (len) memcpy(t->data + t->data_len, key, len);
    t->data_len += len;
    uint32_t s = (uint32_t)h & (t->nslots - 1);
    while (t->slots[s]) s = (s + 1) & (t->nslots - 1);
    t->slots[s] = i + 1;
    if (inserted) *inserted = 1;
    return (int32_t)i;
}
