/* Whole-run folded stacks ("root;...;leaf N") and the self-contained HTML flame graph built from
 * them. Owned by the exporter thread; not thread-safe; not AS-safe. */
#ifndef OP_FOLDED_H
#define OP_FOLDED_H

#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include "op_profile.h"

typedef struct op_folded op_folded;

/* max_bytes caps the memory the accumulated stacks may hold; past it new stacks are merged into
 * one "[other]" line and counted. 0 = no cap. NULL on ENOMEM. */
op_folded *op_folded_new(size_t max_bytes);
void op_folded_free(op_folded *f);
/* Adds every sample of p: key = frame names root..leaf joined by ';' (';' and newlines inside a
 * name are replaced by ':' and ' '), count += sample.count. */
void op_folded_add(op_folded *f, const op_profile *p);
/* Writes all lines, sorted by stack, to fp. Returns bytes or -1. Creating the file (safely, and
 * atomically) is the caller's business: output_files.c. */
long op_folded_print(const op_folded *f, FILE *fp);
/* Writes a self-contained HTML flame graph (no network assets; search, zoom, works offline) of the
 * accumulated stacks to fp, a file (bytes are counted with ftell). title is shown in the page.
 * Returns bytes or -1. */
long op_html_print(const op_folded *f, FILE *fp, const char *title);
/* Number of distinct stacks and total count, for tests and stats. */
size_t op_folded_nstacks(const op_folded *f);
uint64_t op_folded_total(const op_folded *f);

/* Samples (sum of counts) that met the memory cap and went to the "[other]" line; included in
 * op_folded_total, not in op_folded_nstacks. */
uint64_t op_folded_dropped(const op_folded *f);

/* One output line: stack (root..leaf joined by ';', not NUL-terminated) and its count. */
typedef struct op_folded_line {
    const char *stack;
    size_t len;
    uint64_t count;
} op_folded_line;

/* The lines op_folded_print writes, in the same order ("[other]" included when non-zero): sorted
 * frame by frame, so stacks sharing a prefix of frames are adjacent (what the HTML writer folds
 * into a tree). Strings stay valid until the next add or free. The array is the caller's to
 * free(). NULL with *n = 0 when empty; NULL with *n = SIZE_MAX on ENOMEM. */
op_folded_line *op_folded_lines(const op_folded *f, size_t *n);

#endif
