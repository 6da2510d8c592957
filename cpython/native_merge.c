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
 * (opy_walk_marked). When the counts of eval frames and runs disagree (an eval frame in a
 * compiler-split cold part, a native walk cut short), the native frames up to the newest eval
 * frame are followed by every Python frame: the leaf side stays exact, and it is counted. */
int opy_merge(const otelprof_frame *nat, int nn, const opy_raw_frame *py, int np, otelprof_frame *out, int max) {
    int evals = 0, runs = 0, n = 0;
    for (int i = 0; i < nn; i++) evals += is_eval(&nat[i]);
    for (int i = 0; i < np; i++) runs += py[i].entry != 0;
    if (np == 0) { /* no Python frames (walk failed, or none): the native stack as it is */
        for (int i = 0; i < nn && n < max; i++) out[n++] = nat[i];
        return n;
    }
    if (evals == runs && evals > 0) {
        int p = 0;
        for (int i = 0; i < nn && n < max; i++) {
            if (!is_eval(&nat[i])) {
                out[n++] = nat[i];
                continue;
            }
            while (p < np) {
                const opy_raw_frame *r = &py[p++];
                n = put_py(r, out, n, max);
                if (r->entry) break;
            }
        }
        return n;
    }
    OPY_STAT_INC(native_merge_fallback);
    for (int i = 0; i < nn && n < max && !is_eval(&nat[i]); i++) out[n++] = nat[i];
    for (int i = 0; i < np; i++) n = put_py(&py[i], out, n, max);
    return n;
}
