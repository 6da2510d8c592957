/* Turning captured frames into op_symbols at profile close: native frames through the ELF
 * symbolizer, adapter frames through the adapter's resolve() on the thread it asked for. */
#ifndef OP_RESOLVE_H
#define OP_RESOLVE_H

#include <stddef.h>
#include "op_arena.h"
#include "op_intern.h"
#include "op_profile.h"
#include "op_symbolize.h"
#include "otelprof/otelprof.h"

typedef struct op_resolver {
    op_symbolizer *symbolizer;
    op_intern mappings;        /* op_mapping pointer -> index in the profile's mapping table */
    const op_mapping **maps;   /* arena: index -> mapping */
    size_t nmaps, maps_cap;
} op_resolver;

/* max_symbol_bytes caps the native symbol tables (see op_symbolizer_new). */
int op_resolver_init(op_resolver *r, size_t max_symbol_bytes);
void op_resolver_free(op_resolver *r);
/* Resolves frames[0..n) into syms[0..n) (strings in arena) and collects the mappings they use
 * into maps_out/nmaps_out (arena). Exporter thread; may wait (bounded) for an adapter's safe point. */
void op_resolve_frames(op_resolver *r, const otelprof_frame *frames, size_t n, op_symbol *syms,
                       op_arena *arena, op_mapping **maps, size_t *nmaps);
/* Fork child: forgets a request the parent's exporter may have had open. */
void op_resolve_after_fork(void);

#endif
