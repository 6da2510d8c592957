/* A bump allocator for the strings and arrays of one profile close, freed in one call.
 * Not thread-safe; not AS-safe. */
#ifndef OP_ARENA_H
#define OP_ARENA_H

#include <stddef.h>

typedef struct op_arena_chunk op_arena_chunk;
typedef struct op_arena {
    op_arena_chunk *head;
    size_t bytes; /* total held */
} op_arena;

void op_arena_init(op_arena *a);
void op_arena_free(op_arena *a);
/* 16-byte aligned, zeroed; NULL on ENOMEM. */
void *op_arena_alloc(op_arena *a, size_t n);
/* Copy of s (NULL stays NULL). */
char *op_arena_strdup(op_arena *a, const char *s);

#endif
