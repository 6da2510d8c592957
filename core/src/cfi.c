/* Compiles x86-64 .eh_frame call frame information into op_cfi rows (see op_cfi.h). Runs off the
 * signal path, once per loaded module. Field layouts follow the DWARF 4 "Call Frame Information"
 * section and the LSB's .eh_frame / .eh_frame_hdr description. */
#include "op_cfi.h"

#include <stdlib.h>
#include <string.h>

/* DWARF register numbers on x86-64. */
#define REG_RBP 6
#define REG_RSP 7
#define REG_RA 16

/* Pointer encodings (DW_EH_PE_*). */
#define PE_OMIT 0xff
#define PE_FORMAT 0x0f
#define PE_APP 0x70
#define PE_INDIRECT 0x80
#define PE_ABSPTR 0x00
#define PE_ULEB 0x01
#define PE_UDATA2 0x02
#define PE_UDATA4 0x03
#define PE_UDATA8 0x04
#define PE_SLEB 0x09
#define PE_SDATA2 0x0a
#define PE_SDATA4 0x0b
#define PE_SDATA8 0x0c
#define PE_PCREL 0x10
#define PE_DATAREL 0x30

/* A bounded reader: every read checks the end, and an overrun sets bad (the caller gives up). */
typedef struct rd {
    const uint8_t *p, *end;
    int bad;
} rd;

static uint8_t u8(rd *r) {
    if (r->p >= r->end) {
        r->bad = 1;
        return 0;
    }
    return *r->p++;
}

static uint64_t fixed(rd *r, int n) {
    if (r->end - r->p < n) {
        r->bad = 1;
        r->p = r->end;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)r->p[i] << (8 * i);
    r->p += n;
    return v;
}

static uint64_t uleb(rd *r) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        uint8_t b = u8(r);
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    r->bad = 1;
    return 0;
}

static int64_t sleb(rd *r) {
    int64_t v = 0;
    int shift = 0;
    uint8_t b;
    do {
        b = u8(r);
        if (shift < 64) v |= (int64_t)(b & 0x7f) << shift;
        shift += 7;
    } while ((b & 0x80) && !r->bad && shift < 70);
    if (shift < 64 && (b & 0x40)) v |= -((int64_t)1 << shift);
    return v;
}

/* An encoded pointer. pcrel is relative to the field's own address; datarel to data_base
 * (.eh_frame_hdr's start, the only place it is used). Indirect pointers are not followed (they
 * appear for personality routines only, which are skipped). */
static uint64_t pointer(rd *r, uint8_t enc, uintptr_t data_base) {
    if (enc == PE_OMIT) return 0;
    uintptr_t at = (uintptr_t)r->p;
    uint64_t v;
    switch (enc & PE_FORMAT) {
    case PE_ABSPTR: v = fixed(r, 8); break;
    case PE_ULEB: v = uleb(r); break;
    case PE_UDATA2: v = fixed(r, 2); break;
    case PE_UDATA4: v = fixed(r, 4); break;
    case PE_UDATA8: v = fixed(r, 8); break;
    case PE_SLEB: v = (uint64_t)sleb(r); break;
    case PE_SDATA2: v = (uint64_t)(int64_t)(int16_t)fixed(r, 2); break;
    case PE_SDATA4: v = (uint64_t)(int64_t)(int32_t)fixed(r, 4); break;
    case PE_SDATA8: v = fixed(r, 8); break;
    default: r->bad = 1; return 0;
    }
    switch (enc & PE_APP) {
    case 0: break;
    case PE_PCREL: v += at; break;
    case PE_DATAREL: v += data_base; break;
    default: r->bad = 1; return 0;
    }
    return v;
}

/* The state a CFA program computes, for the registers kept. */
typedef struct state {
    int cfa_reg;          /* DWARF number, or -1 for an expression */
    int64_t cfa_off;
    int plt_threshold;    /* with cfa_reg == -2: the PLT expression's threshold */
    int rbp;              /* OP_CFI_RBP_* or a CFA-relative offset */
    int ra_undefined;
} state;

#define CFA_EXPR (-1)
#define CFA_PLT (-2)
#define STACK_MAX 16

typedef struct cie {
    uint64_t code_align;
    int64_t data_align;
    uint64_t ra_reg;
    uint8_t fde_enc;
    int has_aug_data;
    int signal;
    const uint8_t *insns, *insns_end;
} cie;

static int push_row(op_cfi_table *t, uint32_t loc, const state *s, int signal) {
    op_cfi_row row = {.loc = loc, .rbp_off = OP_CFI_RBP_SAME};
    if (signal) {
        row.rule = OP_CFI_SIGNAL;
    } else if (s->ra_undefined) {
        row.rule = OP_CFI_OUTERMOST;
    } else if (s->cfa_reg == REG_RSP || s->cfa_reg == REG_RBP) {
        row.rule = s->cfa_reg == REG_RSP ? OP_CFI_RSP : OP_CFI_RBP;
        row.cfa_off = (int32_t)s->cfa_off;
        if (s->cfa_off != (int64_t)row.cfa_off) row.rule = OP_CFI_UNSUPPORTED;
    } else if (s->cfa_reg == CFA_PLT) {
        row.rule = OP_CFI_PLT;
        row.cfa_off = s->plt_threshold;
    } else {
        row.rule = OP_CFI_UNSUPPORTED;
    }
    if (row.rule == OP_CFI_RSP || row.rule == OP_CFI_RBP || row.rule == OP_CFI_PLT) {
        row.rbp_off = (int16_t)(s->rbp >= INT16_MIN + 2 && s->rbp <= INT16_MAX ? s->rbp : OP_CFI_RBP_LOST);
        if (s->rbp == OP_CFI_RBP_SAME || s->rbp == OP_CFI_RBP_LOST) row.rbp_off = (int16_t)s->rbp;
    }
    /* A row at the same loc as the last one replaces it (several rules changed at one address,
     * or an FDE that starts where the previous one's end marker was). */
    if (t->n && t->rows[t->n - 1].loc == loc) {
        t->rows[t->n - 1] = row;
        return 0;
    }
    if (t->n && t->rows[t->n - 1].loc > loc) return 0; /* overlapping FDE: keep the first */
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        op_cfi_row *nr = realloc(t->rows, cap * sizeof *nr);
        if (!nr) return -1;
        t->rows = nr;
        t->cap = cap;
    }
    t->rows[t->n++] = row;
    return 0;
}

/* glibc's and binutils' lazy PLT rule, the one CFA expression compilers emit for x86-64:
 * DW_OP_breg7 8; DW_OP_breg16 0; DW_OP_lit15; DW_OP_and; DW_OP_lit<N>; DW_OP_ge; DW_OP_lit3;
 * DW_OP_shl; DW_OP_plus. Returns N, or -1 for any other expression. */
static int plt_expression(const uint8_t *e, uint64_t len) {
    static const uint8_t head[] = {0x77, 0x08, 0x80, 0x00, 0x3f, 0x1a};
    static const uint8_t tail[] = {0x2a, 0x33, 0x24, 0x22};
    if (len != sizeof head + 1 + sizeof tail || memcmp(e, head, sizeof head) != 0 ||
        memcmp(e + sizeof head + 1, tail, sizeof tail) != 0)
        return -1;
    uint8_t lit = e[sizeof head];
    return lit >= 0x30 && lit <= 0x4f ? lit - 0x30 : -1;
}

/* Runs a CFA program from *s, appending a row at each location advance (when rows is set; the
 * CIE's initial instructions run with rows NULL). init is the state after the CIE's initial
 * instructions, for DW_CFA_restore. */
static int run_program(op_cfi_table *t, const cie *c, const uint8_t *p, const uint8_t *end, state *s,
                       const state *init, uint64_t *loc, uint64_t loc_end, uintptr_t base, int emit) {
    rd r = {p, end, 0};
    state stack[STACK_MAX];
    int depth = 0;
    while (r.p < r.end && !r.bad) {
        uint8_t op = u8(&r);
        uint8_t hi = op & 0xc0, lo = op & 0x3f;
        uint64_t reg;
        int64_t off;
        uint64_t adv = 0;
        if (hi == 0x40) {
            adv = lo * c->code_align;
        } else if (hi == 0x80) {
            off = (int64_t)uleb(&r) * c->data_align;
            if (lo == REG_RBP) s->rbp = (int)off;
        } else if (hi == 0xc0) {
            if (lo == REG_RBP) s->rbp = init ? init->rbp : OP_CFI_RBP_SAME;
        } else {
            switch (op) {
            case 0x00: break;                                           /* nop */
            case 0x01: {                                                /* set_loc */
                uint64_t to = pointer(&r, c->fde_enc, 0);
                if (to - base >= *loc) adv = to - base - *loc;
                break;
            }
            case 0x02: adv = fixed(&r, 1) * c->code_align; break;       /* advance_loc1 */
            case 0x03: adv = fixed(&r, 2) * c->code_align; break;       /* advance_loc2 */
            case 0x04: adv = fixed(&r, 4) * c->code_align; break;       /* advance_loc4 */
            case 0x05:                                                  /* offset_extended */
                reg = uleb(&r);
                off = (int64_t)uleb(&r) * c->data_align;
                if (reg == REG_RBP) s->rbp = (int)off;
                break;
            case 0x11:                                                  /* offset_extended_sf */
                reg = uleb(&r);
                off = sleb(&r) * c->data_align;
                if (reg == REG_RBP) s->rbp = (int)off;
                break;
            case 0x06:                                                  /* restore_extended */
                if (uleb(&r) == REG_RBP) s->rbp = init ? init->rbp : OP_CFI_RBP_SAME;
                break;
            case 0x07:                                                  /* undefined */
                reg = uleb(&r);
                if (reg == REG_RA) s->ra_undefined = 1;
                if (reg == REG_RBP) s->rbp = OP_CFI_RBP_LOST;
                break;
            case 0x08:                                                  /* same_value */
                if (uleb(&r) == REG_RBP) s->rbp = OP_CFI_RBP_SAME;
                break;
            case 0x09:                                                  /* register */
                reg = uleb(&r);
                (void)uleb(&r);
                if (reg == REG_RBP) s->rbp = OP_CFI_RBP_LOST;
                if (reg == REG_RA) s->cfa_reg = CFA_EXPR; /* return address in a register: not kept */
                break;
            case 0x0a:                                                  /* remember_state */
                if (depth == STACK_MAX) return -1;
                stack[depth++] = *s;
                break;
            case 0x0b:                                                  /* restore_state */
                if (!depth) return -1;
                *s = stack[--depth];
                break;
            case 0x0c:                                                  /* def_cfa */
                s->cfa_reg = (int)uleb(&r);
                s->cfa_off = (int64_t)uleb(&r);
                break;
            case 0x12:                                                  /* def_cfa_sf */
                s->cfa_reg = (int)uleb(&r);
                s->cfa_off = sleb(&r) * c->data_align;
                break;
            case 0x0d: s->cfa_reg = (int)uleb(&r); break;               /* def_cfa_register */
            case 0x0e: s->cfa_off = (int64_t)uleb(&r); break;           /* def_cfa_offset */
            case 0x13: s->cfa_off = sleb(&r) * c->data_align; break;    /* def_cfa_offset_sf */
            case 0x0f: {                                                /* def_cfa_expression */
                uint64_t len = uleb(&r);
                if ((uint64_t)(r.end - r.p) < len) return -1;
                int thr = plt_expression(r.p, len);
                s->cfa_reg = thr >= 0 ? CFA_PLT : CFA_EXPR;
                s->plt_threshold = thr;
                r.p += len;
                break;
            }
            case 0x10:                                                  /* expression */
            case 0x16: {                                                /* val_expression */
                reg = uleb(&r);
                uint64_t len = uleb(&r);
                if ((uint64_t)(r.end - r.p) < len) return -1;
                r.p += len;
                if (reg == REG_RBP) s->rbp = OP_CFI_RBP_LOST;
                if (reg == REG_RA) s->cfa_reg = CFA_EXPR;
                break;
            }
            case 0x14:                                                  /* val_offset */
                reg = uleb(&r);
                (void)uleb(&r);
                if (reg == REG_RBP) s->rbp = OP_CFI_RBP_LOST;
                if (reg == REG_RA) s->cfa_reg = CFA_EXPR;
                break;
            case 0x15:                                                  /* val_offset_sf */
                reg = uleb(&r);
                (void)sleb(&r);
                if (reg == REG_RBP) s->rbp = OP_CFI_RBP_LOST;
                if (reg == REG_RA) s->cfa_reg = CFA_EXPR;
                break;
            case 0x2e: (void)uleb(&r); break;                           /* GNU_args_size */
            case 0x2f:                                                  /* GNU_negative_offset_extended */
                reg = uleb(&r);
                off = -(int64_t)uleb(&r) * c->data_align;
                if (reg == REG_RBP) s->rbp = (int)off;
                break;
            default: return -1;
            }
        }
        if (adv && emit) {
            /* The rows so far hold from the current loc; the new state starts at loc + adv. */
            if (*loc + adv > loc_end) adv = loc_end - *loc;
            *loc += adv;
            if (*loc < loc_end && push_row(t, (uint32_t)*loc, s, c->signal) < 0) return -1;
        } else if (adv) {
            *loc += adv;
        } else if (emit && *loc < loc_end) {
            /* Same address: the newest rules replace the row pushed for it. */
            if (push_row(t, (uint32_t)*loc, s, c->signal) < 0) return -1;
        }
    }
    return r.bad ? -1 : 0;
}

/* Parses the CIE at p (its length field). */
static int parse_cie(const uint8_t *p, cie *c) {
    uint32_t len;
    memcpy(&len, p, 4);
    if (len == 0xffffffffu || len == 0) return -1; /* 64-bit DWARF: not emitted for x86-64 .eh_frame */
    rd r = {p + 4, p + 4 + len, 0};
    if (fixed(&r, 4) != 0) return -1; /* a CIE's id is 0 in .eh_frame */
    uint8_t version = u8(&r);
    const char *aug = (const char *)r.p;
    while (r.p < r.end && *r.p) r.p++;
    if (r.p >= r.end) return -1;
    r.p++;
    memset(c, 0, sizeof *c);
    c->fde_enc = PE_ABSPTR;
    if (aug[0] == 'e' && aug[1] == 'h') return -1; /* pre-3.0 GCC: not on any current system */
    c->code_align = uleb(&r);
    c->data_align = sleb(&r);
    c->ra_reg = version == 1 ? u8(&r) : uleb(&r);
    if (aug[0] == 'z') {
        uint64_t alen = uleb(&r);
        const uint8_t *aend = r.p + alen;
        if (aend > r.end) return -1;
        c->has_aug_data = 1;
        for (const char *a = aug + 1; *a && !r.bad; a++) {
            if (*a == 'R') c->fde_enc = u8(&r);
            else if (*a == 'L') (void)u8(&r);
            else if (*a == 'P') {
                uint8_t enc = u8(&r);
                (void)pointer(&r, (uint8_t)(enc & ~PE_INDIRECT), 0);
            } else if (*a == 'S') c->signal = 1;
            else if (*a == 'B' || *a == 'G') continue;
            else break; /* unknown: the rest of the data is skipped by its length */
        }
        r.p = aend;
    }
    if (r.bad || c->ra_reg != REG_RA) return -1;
    c->insns = r.p;
    c->insns_end = r.end;
    return 0;
}

/* The last CIE parsed: FDEs mostly share one. */
typedef struct cie_cache {
    const uint8_t *at;
    cie c;
} cie_cache;

/* Compiles the FDE at p (its length field) whose CIE lies in the same .eh_frame. */
static int compile_fde(op_cfi_table *t, const uint8_t *p, uintptr_t base, cie_cache *cc) {
    rd r = {p, p + 8, 0};
    uint64_t len = fixed(&r, 4);
    if (len == 0xffffffffu || len < 8) return -1;
    r.end = p + 4 + len;
    const uint8_t *id_at = r.p;
    uint32_t cie_off = (uint32_t)fixed(&r, 4);
    if (cie_off == 0) return -1; /* a CIE, not an FDE */
    const uint8_t *cie_at = id_at - cie_off;
    if (cie_at != cc->at) {
        cc->at = NULL;
        if (parse_cie(cie_at, &cc->c) < 0) return -1;
        cc->at = cie_at;
    }
    cie c = cc->c;
    uint64_t start = pointer(&r, c.fde_enc, 0);
    uint64_t range = pointer(&r, (uint8_t)(c.fde_enc & PE_FORMAT), 0);
    if (c.has_aug_data) {
        uint64_t alen = uleb(&r);
        if ((uint64_t)(r.end - r.p) < alen) return -1;
        r.p += alen;
    }
    if (r.bad || start < base || start - base + range > UINT32_MAX || range == 0) return -1;
    uint64_t loc = start - base, loc_end = loc + range;
    state init = {.cfa_reg = -1, .rbp = OP_CFI_RBP_SAME};
    uint64_t cie_loc = loc;
    if (run_program(t, &c, c.insns, c.insns_end, &init, NULL, &cie_loc, loc_end, base, 0) < 0) return -1;
    state s = init;
    if (push_row(t, (uint32_t)loc, &s, c.signal) < 0) return -1;
    if (run_program(t, &c, r.p, r.end, &s, &init, &loc, loc_end, base, 1) < 0) return -1;
    /* The FDE's end: nothing is known after it until the next FDE's first row. */
    state none = {.cfa_reg = -1};
    op_cfi_row *last = t->n ? &t->rows[t->n - 1] : NULL;
    if (!last || last->loc < (uint32_t)loc_end) {
        if (push_row(t, (uint32_t)loc_end, &none, 0) < 0) return -1;
        t->rows[t->n - 1].rule = OP_CFI_NONE;
    }
    return 0;
}

int op_cfi_compile(op_cfi_table *t, const uint8_t *hdr, size_t hdr_len, uintptr_t base) {
    rd r = {hdr, hdr + hdr_len, 0};
    if (u8(&r) != 1) return -1; /* version */
    uint8_t ptr_enc = u8(&r), count_enc = u8(&r), table_enc = u8(&r);
    (void)pointer(&r, ptr_enc, (uintptr_t)hdr);
    if (count_enc == PE_OMIT || table_enc != (PE_DATAREL | PE_SDATA4)) return -1;
    uint64_t count = pointer(&r, count_enc, (uintptr_t)hdr);
    if (r.bad || count > (uint64_t)(r.end - r.p) / 8) return -1;
    /* The table: (initial location, FDE address) pairs, datarel sdata4, sorted by location. */
    cie_cache cc = {0};
    for (uint64_t i = 0; i < count; i++) {
        const uint8_t *e = r.p + i * 8;
        int32_t fde_rel;
        memcpy(&fde_rel, e + 4, 4);
        const uint8_t *fde = hdr + fde_rel;
        t->fdes++;
        /* A malformed or unsupported FDE leaves no rows: the count goes back, and the last row
         * before it, which its first row may have replaced (same loc), is put back. */
        size_t before = t->n;
        op_cfi_row last_row = before ? t->rows[before - 1] : (op_cfi_row){0};
        if (compile_fde(t, fde, base, &cc) < 0) {
            t->n = before;
            if (before) t->rows[before - 1] = last_row;
            t->unsupported_fdes++;
        }
    }
    return 0;
}

void op_cfi_free(op_cfi_table *t) {
    free(t->rows);
    memset(t, 0, sizeof *t);
}

const op_cfi_row *op_cfi_find(const op_cfi_table *t, uint32_t off) {
    size_t lo = 0, hi = t->n;
    if (!hi || off < t->rows[0].loc) return NULL;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->rows[mid].loc <= off) lo = mid;
        else hi = mid;
    }
    return &t->rows[lo];
}
