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
/* Re-reads the loaded objects (dl_iterate_phdr); objects already read are kept. Call once per
 * profile close, before lookups. */
void op_symbolizer_refresh(op_symbolizer *s);
/* Looks up pc. Strings and the mapping stay valid until op_symbolizer_free. Returns 0 if a
 * mapping was found, -1 otherwise. */
int op_symbolizer_lookup(op_symbolizer *s, uint64_t pc, op_native_sym *out);

#endif
