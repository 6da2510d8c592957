/* Native symbolisation: program counters -> function names and mappings, from the ELF symbol
 * tables (.symtab, else .dynsym) of every object mapped in this process. Exporter thread only. */
#ifndef OP_SYMBOLIZE_H
#define OP_SYMBOLIZE_H

#include <stdint.h>
#include "op_profile.h"

typedef struct op_symbolizer op_symbolizer;

typedef struct op_native_sym {
    const char *name;       /* symbol name, or NULL when no symbol covers pc */
    uint64_t sym_start;     /* runtime address of the symbol */
    const op_mapping *map;  /* executable mapping holding pc, or NULL */
    int capped;             /* no name because the memory cap left this object's table unread */
} op_native_sym;

/* max_bytes caps the symbol tables held (0 = no cap); objects read past it keep their mappings
 * but get no names. */
op_symbolizer *op_symbolizer_new(size_t max_bytes);
/* Bytes held by symbol tables now. */
size_t op_symbolizer_bytes(const op_symbolizer *s);
void op_symbolizer_free(op_symbolizer *s);
/* Re-reads the loaded objects (dl_iterate_phdr); objects already read are kept, unloaded ones
 * stay as stale (bounded), and objects retired by dlclose since the last refresh are added as
 * stale. Call once per profile close, before lookups. */
void op_symbolizer_refresh(op_symbolizer *s);
/* Looks up pc: loaded objects first, then stale ones, most recently loaded first. Strings stay
 * valid until op_symbolizer_free, the mapping until the next refresh. Returns 0 if a mapping was
 * found, -1 otherwise. */
int op_symbolizer_lookup(op_symbolizer *s, uint64_t pc, op_native_sym *out);

/* dlclose support (native mode, native/native_dl.c). op_symbolize_unload_begin() notes the loaded
 * objects just before the real dlclose; op_symbolize_unload_end() compares with what is loaded
 * after it and records each object that went away (dependencies too) in a process-wide list of
 * retired objects with its unload time: at most 64 distinct objects, an object retired again at
 * the same address reusing its entry. Every symbolizer merges the list at its next refresh, so
 * a library loaded and unloaded between two profile closes is still named. Frames are resolved
 * per address, without the sample's time, so when two retired objects covered the same
 * addresses the most recently unloaded wins. Any thread except in signal context; NULL (out of
 * memory) is accepted by _end. */
typedef struct op_unload_note op_unload_note;
op_unload_note *op_symbolize_unload_begin(void);
void op_symbolize_unload_end(op_unload_note *note);

#endif
