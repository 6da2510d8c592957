/* x86-64 call frame information (.eh_frame), compiled off the signal path into rows that a
 * signal handler can apply without parsing: for each code range, where the CFA is (rsp or rbp
 * plus an offset, or the PLT rule), and where the caller's rbp was saved. The return address is
 * always at CFA-8 on x86-64. */
#ifndef OP_CFI_H
#define OP_CFI_H

#include <stddef.h>
#include <stdint.h>

enum {
    OP_CFI_NONE = 0,      /* no unwind information here (a gap between FDEs) */
    OP_CFI_RSP,           /* CFA = rsp + cfa_off */
    OP_CFI_RBP,           /* CFA = rbp + cfa_off */
    OP_CFI_PLT,           /* lazy-binding PLT entry: CFA = rsp + 8 + (((pc & 15) >= cfa_off) ? 8 : 0) */
    OP_CFI_OUTERMOST,     /* return address undefined: the thread's first frame (_start, clone) */
    OP_CFI_SIGNAL,        /* a signal trampoline: the interrupted registers are in the ucontext at rsp */
    OP_CFI_UNSUPPORTED,   /* a rule the handler does not apply (an expression, another CFA register) */
};

/* rbp_off values besides a CFA-relative save slot. */
#define OP_CFI_RBP_SAME INT16_MIN         /* rbp unchanged in this frame */
#define OP_CFI_RBP_LOST (INT16_MIN + 1)   /* rbp recoverable only by a rule not kept: unknown above */

typedef struct op_cfi_row {
    uint32_t loc;      /* offset of the first byte this row covers, from the module's base */
    uint8_t rule;      /* OP_CFI_* */
    uint8_t pad;
    int16_t rbp_off;   /* caller's rbp saved at CFA + rbp_off, or OP_CFI_RBP_* */
    int32_t cfa_off;
} op_cfi_row;

typedef struct op_cfi_table {
    op_cfi_row *rows;  /* sorted by loc; a row covers up to the next row's loc */
    size_t n, cap;
    uint32_t fdes, unsupported_fdes; /* counts, for the debug line and tests */
} op_cfi_table;

/* Compiles the .eh_frame found through the .eh_frame_hdr at hdr (mapped memory of a loaded
 * module whose base address is base) into t (appended; t zeroed by the caller first). Reads only
 * inside [hdr, hdr + hdr_len) for the header and inside the module's mapped .eh_frame, which the
 * caller guarantees stays mapped (it runs under dl_iterate_phdr). 0, or -1 on a malformed table
 * or out of memory (t then holds what was compiled before the error, still sorted). Not AS-safe
 * (allocates). */
int op_cfi_compile(op_cfi_table *t, const uint8_t *hdr, size_t hdr_len, uintptr_t base);
void op_cfi_free(op_cfi_table *t);
/* The row covering module offset off, or NULL. AS-safe (a binary search). */
const op_cfi_row *op_cfi_find(const op_cfi_table *t, uint32_t off);

#endif
