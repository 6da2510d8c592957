/* Native frames interleaved with Python frames (OTELPROF_NATIVE_FRAMES=1).
 *
 * Since 3.11 one _PyEval_EvalFrameDefault invocation runs a whole run of Python frames (calls
 * from Python to Python do not recurse in C), and the oldest frame of each run is marked as its
 * entry frame. So the native stack holds one eval frame per run, in the same order as the runs
 * in the Python chain, and each eval frame is replaced by its run's Python frames. Native
 * frames between runs (a builtin calling back into Python: sorted(key=...), C extensions,
 * ctypes callbacks) and around them (the C code a Python frame is in right now, main() and the
 * loader at the root) stay where they are. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include "op_stats.h" /* the core's truncation counter, for stacks cut by our own buffers */
#include "opy.h"

/* _PyEval_EvalFrameDefault's code, from its symbol; 0 when it could not be found (stripped
 * interpreter): then the core puts native frames on the leaf side instead. */
static uintptr_t eval_lo, eval_hi;

int opy_merge_init(void) {
    if (eval_hi) return 1;
    void *f = dlsym(RTLD_DEFAULT, "_PyEval_EvalFrameDefault");
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    if (!f || !dladdr1(f, &info, (void **)&sym, RTLD_DL_SYMENT) || !sym || !sym->st_size || !info.dli_saddr)
        return 0;
    eval_lo = (uintptr_t)info.dli_saddr;
    eval_hi = eval_lo + sym->st_size;
    return 1;
}

/* SIGNAL CONTEXT. A return address is looked up one byte back: the call it returns from. */
static int is_eval(const otelprof_frame *f) {
    uintptr_t pc = (uintptr_t)f->id - (f->aux == 1);
    return f->kind == OTELPROF_FRAME_NATIVE && pc >= eval_lo && pc < eval_hi;
}

static int put_py(const opy_raw_frame *r, otelprof_frame *out, int n, int max) {
    if (!r->code || n >= max) return n; /* an entry mark holds no frame */
    out[n].id = opy_frame_id(r->code, opy_code_note(r->code));
    out[n].aux = r->offset;
    out[n].kind = OTELPROF_FRAME_ADAPTER;
    return n + 1;
}

/* SIGNAL CONTEXT. nat leaf first (from otelprof_unwind_native), py leaf first with entry marks
 * (opy_walk_marked); nat_cut / py_cut: that walk filled its buffer, so the stack goes on beyond
 * it. Only the leaf side of a cut stack is seen, so pairing is checked as far as it goes: a cut
 * Python walk has seen fewer whole runs than there are eval frames, a cut native walk no more
 * eval frames than there are runs. When the stacks disagree (an eval frame in a compiler-split
 * cold part, a native walk that stopped early), the native frames up to the newest eval frame
 * are followed by every Python frame: the leaf side stays exact, and it is counted. *cut is set
 * when the result ends where one of the walks was cut. */
static int merge(const otelprof_frame *nat, int nn, int nat_cut, const opy_raw_frame *py, int np, int py_cut,
                 otelprof_frame *out, int max, int *cut) {
    int evals = 0, runs = 0, n = 0;
    *cut = 0;
    if (np == 0) { /* no Python frames (walk failed, or none): the native stack as it is */
        for (int i = 0; i < nn && n < max; i++) out[n++] = nat[i];
        *cut = nat_cut;
        return n;
    }
    for (int i = 0; i < nn; i++) evals += is_eval(&nat[i]);
    for (int i = 0; i < np; i++) runs += py[i].entry != 0;
    int paired = nat_cut && py_cut ? 1
                 : py_cut          ? runs < evals
                 : nat_cut         ? evals <= runs
                                   : evals == runs && evals > 0;
    if (paired) {
        int p = 0, i = 0;
        for (; i < nn && n < max; i++) {
            if (!is_eval(&nat[i])) {
                out[n++] = nat[i];
                continue;
            }
            while (p < np) {
                const opy_raw_frame *r = &py[p++];
                n = put_py(r, out, n, max);
                if (r->entry) break;
            }
            if (py_cut && p == np) break; /* everything older lies beyond the cut */
        }
        *cut = (py_cut && p == np) || (nat_cut && i == nn);
        return n;
    }
    OPY_STAT_INC(native_merge_fallback);
    for (int i = 0; i < nn && n < max && !is_eval(&nat[i]); i++) out[n++] = nat[i];
    for (int i = 0; i < np; i++) n = put_py(&py[i], out, n, max);
    *cut = py_cut;
    return n;
}

/* ---- merge buffers ---------------------------------------------------------------------------
 * Both stacks are walked into buffers of their own before merging. They are as deep as the
 * slot the core hands walk() (max_depth + 1 frames), so a stack is cut where the core cuts it:
 * at 2048 frames they are 64 KiB, too much for a signal handler's stack. So a pool of them is
 * mapped at start, sized from max_depth, and each sample claims one with an atomic exchange
 * (never a lock). A handler that finds every one in use (more threads inside the handler at
 * once than the pool has buffers) takes the Python frames alone (native_merge_busy). No buffer
 * stays claimed in a fork child: the core forks only once no handler is inside, or else, with
 * native frames on, does not profile the child. */
typedef struct merge_buf {
    int busy; /* atomic: 1 while a handler uses it */
    int cap;  /* frames in each of nat and py */
    otelprof_frame *nat;
    opy_raw_frame *py;
} merge_buf;

static merge_buf *bufs;  /* read by handlers; replaced only at start, while none runs */
static int nbufs;
static size_t bufs_bytes;

/* Not AS-safe; called by start() before sampling begins. A pool still in use by a handler left
 * behind by an earlier stop (the core gives up waiting after 2 s) is abandoned, not unmapped. */
int opy_merge_reserve(int cap) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int want = cpus > 0 ? (int)(2 * cpus) : 4;
    want = want < 4 ? 4 : want > 64 ? 64 : want;
    if (bufs && bufs[0].cap >= cap && nbufs == want) return 0;
    int in_use = 0;
    for (int i = 0; i < nbufs; i++) in_use |= __atomic_load_n(&bufs[i].busy, __ATOMIC_ACQUIRE);
    if (bufs && !in_use) munmap(bufs, bufs_bytes);
    __atomic_store_n(&nbufs, 0, __ATOMIC_RELEASE);
    bufs = NULL;
    size_t head = ((size_t)want * sizeof(merge_buf) + 63) & ~(size_t)63;
    size_t each = (size_t)cap * (sizeof(otelprof_frame) + sizeof(opy_raw_frame));
    size_t bytes = head + (size_t)want * each;
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return -1;
    merge_buf *b = m;
    for (int i = 0; i < want; i++) {
        char *p = (char *)m + head + (size_t)i * each;
        b[i].busy = 0;
        b[i].cap = cap;
        b[i].nat = (otelprof_frame *)(void *)p;
        b[i].py = (opy_raw_frame *)(void *)(p + (size_t)cap * sizeof(otelprof_frame));
    }
    bufs = b;
    bufs_bytes = bytes;
    __atomic_store_n(&nbufs, want, __ATOMIC_RELEASE);
    return 0;
}

/* SIGNAL CONTEXT. Threads start looking at different buffers (their stacks differ in address). */
static merge_buf *claim(void) {
    int n = __atomic_load_n(&nbufs, __ATOMIC_ACQUIRE);
    if (n <= 0) return NULL;
    unsigned start = (unsigned)((uintptr_t)&n >> 14);
    for (int k = 0; k < n; k++) {
        merge_buf *b = &bufs[(start + (unsigned)k) % (unsigned)n];
        if (!__atomic_load_n(&b->busy, __ATOMIC_RELAXED) && !__atomic_exchange_n(&b->busy, 1, __ATOMIC_ACQUIRE))
            return b;
    }
    return NULL;
}

/* SIGNAL CONTEXT. out holds max frames (the core's max_depth + 1): a result of max frames is
 * cut and counted by the core; a stack cut here with fewer frames (an eval frame whose run is
 * only an entry mark) is marked and counted here, as the core would, and never more than
 * max - 1 frames are returned for it, so the core does not count it again. */
int opy_merge_walk(void *ts, uintptr_t stack_hi, void *uc, otelprof_frame *out, int max) {
    merge_buf *b = claim();
    if (!b) {
        OPY_STAT_INC(native_merge_busy);
        return -1;
    }
    int lim = b->cap < max ? b->cap : max;
    int nn = otelprof_unwind_native(uc, b->nat, lim);
    if (nn <= 0) {
        __atomic_store_n(&b->busy, 0, __ATOMIC_RELEASE);
        return -1; /* native frames off: the plain walk */
    }
    int np = 0, why = OPY_WALK_NO_FRAMES, n = 0, cut = 0;
    if (ts) {
        np = opy_walk_marked(ts, stack_hi, b->py, lim, &why);
        OPY_STAT_INC(walk[why]);
        /* Caught mid-push or unreadable: dropped, as without native frames. */
        if (why == OPY_WALK_INCONSISTENT || why == OPY_WALK_UNREADABLE) goto out;
    } else {
        OPY_STAT_INC(no_thread);
    }
    n = merge(b->nat, nn, nn == lim, b->py, np, np == lim, out, max, &cut);
    if (cut && n < max && max > 1) {
        int at = n < max - 1 ? n++ : n - 1;
        out[at].id = 0;
        out[at].aux = 0;
        out[at].kind = OTELPROF_FRAME_TRUNCATED;
        op_stat_drop(OTELPROF_DROP_TRUNCATED);
    }
out:
    __atomic_store_n(&b->busy, 0, __ATOMIC_RELEASE);
    return n;
}
