/* Bump allocator: chunks of at least 64 KiB, released together. */
#include "op_arena.h"

#include <stdlib.h>
#include <string.h>

struct op_arena_chunk {
    op_arena_chunk *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
};

void op_arena_init(op_arena *a) {
    a->head = NULL;
    a->bytes = 0;
}

void op_arena_free(op_arena *a) {
    op_arena_chunk *c = a->head;
    while (c) {
        op_arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    op_arena_init(a);
}

void *op_arena_alloc(op_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    op_arena_chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t size = n > 65536 ? n : 65536;
        c = malloc(sizeof(*c) + size);
        if (!c) return NULL;
        c->next = a->head;
        c->used = 0;
        c->size = size;
        a->head = c;
        a->bytes += sizeof(*c) + size;
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *op_arena_strdup(op_arena *a, const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = op_arena_alloc(a, n);
    if (d) memcpy(d, s, n);
    return d;
}
