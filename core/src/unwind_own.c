/* otelprof's own x86-64 native unwinder (OTELPROF_UNWINDER=own): lock-free and free of system
 * calls in the handler. Each loaded module's .eh_frame is compiled off the signal path into
 * op_cfi rows (cfi.c); the handler walks from the signal's ucontext applying them, and follows
 * frame pointers where a pc has no rows.
 *
 * Memory safety without a fault handler: the handler reads only the interrupted thread's own
 * stack, between the interrupted sp and the stack's top, which are mapped for as long as the
 * thread runs. The bounds come from pthread_getattr_np, taken on the thread itself when it
 * registers; a thread without them, or interrupted on another stack (a sigaltstack handler, a
 * fiber or coroutine stack), is walked by libunwind instead (the caller's fallback). Rules come
 * from our own heap copy, never from the module's memory, so a racing dlclose can make a walk
 * wrong (stale rows for an unmapped range) but never fault.
 *
 * The module set is an immutable snapshot published through one pointer. The exporter thread
 * (op_unwind_own_maintain, every drain) rebuilds it when dl_iterate_phdr's load/unload counters
 * change, reusing the compiled rows of modules still loaded, and frees a replaced snapshot once
 * no handler can still hold it: after the swap it waits to see inflight == 0 (a handler counts
 * itself in before it reads the pointer). */
#include "op_unwind_own.h"

#include <link.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include "op_cfi.h"
#include "op_log.h"
#include "op_profiler.h"

#if defined(__x86_64__)

typedef struct umod {
    uintptr_t start, end;  /* executable address range (union of its executable PT_LOADs) */
    uintptr_t base;        /* load bias (dlpi_addr): rows are offsets from it */
    const void *hdr;       /* its .eh_frame_hdr, the identity for reuse */
    int refs;              /* snapshots holding it; builder thread only */
    op_cfi_table cfi;
} umod;

typedef struct snap {
    size_t n;
    unsigned long long adds, subs;
    umod *mods[]; /* sorted by start */
} snap;

static snap *current;          /* read by handlers (seq_cst) */
static snap *retired;          /* replaced, freed once no handler can hold it */
static pthread_mutex_t build_lock = PTHREAD_MUTEX_INITIALIZER;

static __thread uintptr_t tl_stack_lo, tl_stack_hi;
static op_unwind_own_counts counts;
#define COUNT(f) __atomic_fetch_add(&counts.f, 1, __ATOMIC_RELAXED)

void op_unwind_own_get_counts(op_unwind_own_counts *out) {
    out->walks = __atomic_load_n(&counts.walks, __ATOMIC_RELAXED);
    out->fallbacks = __atomic_load_n(&counts.fallbacks, __ATOMIC_RELAXED);
    out->ended_rule = __atomic_load_n(&counts.ended_rule, __ATOMIC_RELAXED);
    out->ended_bounds = __atomic_load_n(&counts.ended_bounds, __ATOMIC_RELAXED);
    out->fp_frames = __atomic_load_n(&counts.fp_frames, __ATOMIC_RELAXED);
}

void op_unwind_own_thread_init(void) {
    if (tl_stack_hi) return; /* once per thread (a fork child's thread keeps its addresses) */
    pthread_attr_t a;
    if (pthread_getattr_np(pthread_self(), &a) != 0) return;
    void *addr;
    size_t size;
    if (pthread_attr_getstack(&a, &addr, &size) == 0 && addr && size) {
        tl_stack_lo = (uintptr_t)addr;
        tl_stack_hi = (uintptr_t)addr + size;
    }
    pthread_attr_destroy(&a);
}

/* ---- building the module set (exporter or starting thread) ------------------------------- */

typedef struct build {
    snap *old;
    umod **mods;
    size_t n, cap;
    unsigned long long adds, subs;
    int failed;
    size_t rows;
} build;

static void unref(umod *m) {
    if (--m->refs > 0) return;
    op_cfi_free(&m->cfi);
    free(m);
}

static void free_snap(snap *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) unref(s->mods[i]);
    free(s);
}

static umod *reuse(const snap *old, const void *hdr, uintptr_t base) {
    for (size_t i = 0; old && i < old->n; i++)
        if (old->mods[i]->hdr == hdr && old->mods[i]->base == base) return old->mods[i];
    return NULL;
}

/* Runs under the loader lock: every module listed stays mapped until it returns. */
static int add_module(struct dl_phdr_info *info, size_t size, void *arg) {
    build *b = arg;
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs) {
        b->adds = info->dlpi_adds;
        b->subs = info->dlpi_subs;
    }
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    const ElfW(Phdr) *eh = NULL;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *p = &info->dlpi_phdr[i];
        if (p->p_type == PT_LOAD && (p->p_flags & PF_X)) {
            uintptr_t s = info->dlpi_addr + p->p_vaddr, e = s + p->p_memsz;
            if (s < lo) lo = s;
            if (e > hi) hi = e;
        } else if (p->p_type == PT_GNU_EH_FRAME) {
            eh = p;
        }
    }
    if (!eh || lo >= hi) return 0; /* no code, or no unwind table: frame pointers only */
    const void *hdr = (const void *)(info->dlpi_addr + eh->p_vaddr);
    umod *m = reuse(b->old, hdr, info->dlpi_addr);
    if (m && (m->start != lo || m->end != hi)) m = NULL;
    if (!m) {
        m = calloc(1, sizeof *m);
        if (!m) {
            b->failed = 1;
            return 1;
        }
        m->start = lo;
        m->end = hi;
        m->base = info->dlpi_addr;
        m->hdr = hdr;
        /* A malformed table keeps what compiled before the error. */
        (void)op_cfi_compile(&m->cfi, hdr, eh->p_memsz, info->dlpi_addr);
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        umod **nm = realloc(b->mods, cap * sizeof *nm);
        if (!nm) {
            if (!m->refs) unref((m->refs = 1, m));
            b->failed = 1;
            return 1;
        }
        b->mods = nm;
        b->cap = cap;
    }
    m->refs++;
    b->mods[b->n++] = m;
    b->rows += m->cfi.n;
    return 0;
}

static int by_start(const void *a, const void *b) {
    const umod *x = *(umod *const *)a, *y = *(umod *const *)b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static int counters_cb(struct dl_phdr_info *info, size_t size, void *arg) {
    unsigned long long *c = arg;
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs) {
        c[0] = info->dlpi_adds;
        c[1] = info->dlpi_subs;
    }
    return 1;
}

/* Frees the retired snapshot once no handler can still be reading it. */
static void reap(void) {
    if (retired && __atomic_load_n(&op_g.inflight, __ATOMIC_SEQ_CST) == 0) {
        free_snap(retired);
        retired = NULL;
    }
}

/* Builds and publishes a new snapshot; build_lock held. */
static int rebuild(void) {
    if (retired) return 0; /* one swap at a time: try again when the last one is reaped */
    snap *old = __atomic_load_n(&current, __ATOMIC_SEQ_CST);
    build b = {.old = old};
    dl_iterate_phdr(add_module, &b);
    if (b.failed) {
        for (size_t i = 0; i < b.n; i++) unref(b.mods[i]);
        free(b.mods);
        return -1;
    }
    snap *s = malloc(sizeof *s + b.n * sizeof(umod *));
    if (!s) {
        for (size_t i = 0; i < b.n; i++) unref(b.mods[i]);
        free(b.mods);
        return -1;
    }
    s->n = b.n;
    s->adds = b.adds;
    s->subs = b.subs;
    if (b.n) memcpy(s->mods, b.mods, b.n * sizeof(umod *));
    free(b.mods);
    qsort(s->mods, s->n, sizeof s->mods[0], by_start);
    __atomic_store_n(&current, s, __ATOMIC_SEQ_CST);
    retired = old;
    reap();
    op_log_debug("unwind tables: %zu modules, %zu rows", s->n, b.rows);
    return 0;
}

int op_unwind_own_init(void) {
    pthread_mutex_lock(&build_lock);
    int rc = __atomic_load_n(&current, __ATOMIC_SEQ_CST) ? 0 : rebuild();
    pthread_mutex_unlock(&build_lock);
    return rc;
}

void op_unwind_own_maintain(void) {
    pthread_mutex_lock(&build_lock);
    reap();
    snap *s = __atomic_load_n(&current, __ATOMIC_SEQ_CST);
    if (s) {
        unsigned long long c[2] = {s->adds, s->subs};
        dl_iterate_phdr(counters_cb, c);
        if (c[0] != s->adds || c[1] != s->subs) (void)rebuild();
    }
    pthread_mutex_unlock(&build_lock);
}

/* ---- the walk (signal context) ------------------------------------------------------------ */

static const umod *find_module(const snap *s, uintptr_t pc) {
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const umod *m = s->mods[mid];
        if (pc < m->start) hi = mid;
        else if (pc >= m->end) lo = mid + 1;
        else return m;
    }
    return NULL;
}

/* An 8-byte read inside [lo, hi): the live part of this thread's stack. */
static int load(uintptr_t a, uintptr_t lo, uintptr_t hi, uintptr_t *out) {
    if (a < lo || a > hi - 8 || (a & 7)) return -1;
    *out = *(const uintptr_t *)a;
    return 0;
}

int op_unwind_own(void *ucv, otelprof_frame *out, int max) {
    const ucontext_t *uc = ucv;
    uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    uintptr_t hi = tl_stack_hi;
    const snap *s = __atomic_load_n(&current, __ATOMIC_SEQ_CST);
    if (!s || !hi || sp < tl_stack_lo || sp >= hi) { /* no bounds for this stack: libunwind */
        COUNT(fallbacks);
        return -1;
    }
    COUNT(walks);
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    uintptr_t fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
    int fp_known = 1, exact = 1, n = 0;
    const uintptr_t lo = sp; /* reads never go below the interrupted sp */
    while (n < max && pc) {
        out[n].id = pc;
        out[n].aux = exact ? 0 : 1; /* see op_unwind.h: 1 = a return address */
        out[n].kind = OTELPROF_FRAME_NATIVE;
        if (++n >= max) break;
        /* A return address's call instruction is the byte before it (the caller's rule). */
        uintptr_t at = exact ? pc : pc - 1;
        const umod *m = find_module(s, at);
        const op_cfi_row *row = m ? op_cfi_find(&m->cfi, (uint32_t)(at - m->base)) : NULL;
        uintptr_t cfa, ra, nfp = fp;
        switch (row ? row->rule : OP_CFI_NONE) {
        case OP_CFI_RSP:
            cfa = sp + (intptr_t)row->cfa_off;
            break;
        case OP_CFI_RBP:
            if (!fp_known) goto ended_rule;
            cfa = fp + (intptr_t)row->cfa_off;
            break;
        case OP_CFI_PLT:
            cfa = sp + 8 + (((pc & 15) >= (uintptr_t)row->cfa_off) ? 8 : 0);
            break;
        case OP_CFI_SIGNAL: {
            /* __restore_rt: the ucontext of the signal this frame returns from is at sp. */
            const ucontext_t *inner = (const ucontext_t *)sp;
            uintptr_t a = (uintptr_t)&inner->uc_mcontext.gregs[0];
            uintptr_t npc, nsp, nbp;
            if (load(a + REG_RIP * 8, lo, hi, &npc) < 0 || load(a + REG_RSP * 8, lo, hi, &nsp) < 0 ||
                load(a + REG_RBP * 8, lo, hi, &nbp) < 0 || nsp <= sp || nsp >= hi)
                goto ended_bounds;
            pc = npc;
            sp = nsp;
            fp = nbp;
            fp_known = 1;
            exact = 1; /* where that signal struck */
            continue;
        }
        case OP_CFI_NONE:
            /* No rows: frame pointers (code built with them, or generated code). The chain must
             * climb the stack; a zero link is its end. */
            if (!fp_known || fp < sp || load(fp + 8, lo, hi, &ra) < 0 || load(fp, lo, hi, &nfp) < 0)
                goto ended_bounds;
            if (nfp && nfp <= fp) goto ended_bounds;
            COUNT(fp_frames);
            pc = ra;
            sp = fp + 16;
            fp = nfp;
            exact = 0;
            continue;
        case OP_CFI_OUTERMOST:
            return n; /* the thread's first frame: a complete walk */
        default:
            goto ended_rule;
        }
        if (cfa <= sp || load(cfa - 8, lo, hi, &ra) < 0) goto ended_bounds;
        if (row->rbp_off == OP_CFI_RBP_LOST) {
            fp_known = 0;
        } else if (row->rbp_off != OP_CFI_RBP_SAME) {
            if (load(cfa + row->rbp_off, lo, hi, &nfp) < 0) goto ended_bounds;
            fp = nfp;
            fp_known = 1;
        }
        pc = ra;
        sp = cfa;
        exact = 0;
    }
    return n;
ended_rule:
    COUNT(ended_rule);
    return n;
ended_bounds:
    COUNT(ended_bounds);
    return n;
}

#else /* other architectures: libunwind only */

void op_unwind_own_thread_init(void) {}
int op_unwind_own_init(void) { return -1; }
void op_unwind_own_maintain(void) {}
void op_unwind_own_get_counts(op_unwind_own_counts *out) { memset(out, 0, sizeof *out); }
int op_unwind_own(void *uc, otelprof_frame *out, int max) {
    (void)uc;
    (void)out;
    (void)max;
    return -1;
}

#endif
