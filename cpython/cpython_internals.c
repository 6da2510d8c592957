/* Everything that depends on CPython's private structures, by version (newest first): the frame
 * walk run in the signal handler, code object fingerprints and the location-table decoder.
 * The rest of the adapter sees only the version-neutral functions declared in opy.h. */
#define PY_SSIZE_T_CLEAN
/* The internal headers need Py_BUILD_CORE; _MODULE (which implies it) makes their inline helpers
 * reach the current thread state through the exported _PyThreadState_GetCurrent() rather than the
 * thread-local _Py_tss_tstate, which libpython 3.12+ does not export (the import would fail). */
#define Py_BUILD_CORE_MODULE 1
#include <Python.h>

#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "opy.h"

/* The version whose layouts this build reads: the interpreter's own. Only the tests set
 * OTELPROF_TEST_VERSION_HEX (tests/python/test_cpython_versions.py compiles a build with it), to
 * get the refusal a CPython newer than this source knows would get, on an interpreter that is
 * there; it picks the branch of the ladder below, never a layout (those follow PY_VERSION_HEX). */
#ifdef OTELPROF_TEST_VERSION_HEX
#define OPY_VERSION_HEX (OTELPROF_TEST_VERSION_HEX)
#else
#define OPY_VERSION_HEX PY_VERSION_HEX
#endif /* OTELPROF_TEST_VERSION_HEX */

int opy_internals_target(void) {
    return (int)OPY_VERSION_HEX;
}

/* The versions whose layouts this source knows; a build reads the one it was compiled for. */
const char *opy_internals_versions(void) {
    return "3.11, 3.12, 3.13";
}

/* Not AS-safe, no GIL needed. The query was private until 3.13 made it public. */
int opy_is_finalizing(void) {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif /* PY_VERSION_HEX: the finalizing query */
}

/* ---- safe reads ----------------------------------------------------------------------------- */

/* process_vm_readv on our own pid: the kernel copies or reports EFAULT, so a stale pointer costs
 * one failed system call instead of a crash. AS-safe (a plain system call, errno restored). */
static int safe_read_ok = 1;

int opy_safe_read(void *dst, uintptr_t src, size_t n) {
    if (!safe_read_ok || src < 4096) return -1;
    int saved = errno;
    struct iovec l = {dst, n}, r = {(void *)src, n};
    ssize_t got = syscall(SYS_process_vm_readv, (long)getpid(), &l, 1L, &r, 1L, 0L);
    errno = saved;
    return got == (ssize_t)n ? 0 : -1;
}

void opy_safe_read_init(void) {
    static const long probe = 0x5eed;
    long out = 0;
    safe_read_ok = 1;
    if (opy_safe_read(&out, (uintptr_t)&probe, sizeof out) < 0 || out != probe) safe_read_ok = 0;
}

#if OPY_VERSION_HEX >= 0x030E0000 || defined(Py_GIL_DISABLED)
/* ==== 3.14 and later, and free-threaded builds: not yet. 3.14 tags f_executable (a stack
 * reference, not a plain pointer) and moves fields again; a free-threaded build has 32-byte
 * object headers, many threads running at once and no GIL to make the pinner's "validate, then
 * INCREF" atomic. The module still imports; start() refuses, so none of the stubs below runs. */
#define OPY_INTERNALS_STUB 1

#elif OPY_VERSION_HEX >= 0x030B0000
/* ==== 3.11, 3.12 and 3.13 ====================================================================
 * All three link _PyInterpreterFrame by `previous` in per-thread data-stack chunks (generators'
 * frames in the generator object), run a whole run of frames per _PyEval_EvalFrameDefault
 * invocation, and keep the same code object fields and location table. They differ in where
 * the current frame is found and how a run's end is marked (3.11/3.12: a _PyCFrame per
 * invocation; 3.13: an entry frame on the C stack), where the PyGILState key lives, which lock
 * guards the thread list, and how a frame names its code and instruction; each of those has an
 * inner ladder, newest first. */
#include "internal/pycore_frame.h"
#include "internal/pycore_runtime.h"

#if PY_VERSION_HEX >= 0x030D0000
/* 3.13+: the runtime describes its own layout (_Py_DebugOffsets, first in _PyRuntime, for
 * out-of-process tools). Internal structures may change even in a patch release, and a binary
 * built against one 3.13.x may be loaded by another: the offsets this build was compiled with
 * must be the ones the running libpython uses, for every field the walk, the thread list and the
 * code fingerprint read that the struct describes; otherwise start() refuses. (It does not cover
 * them all, e.g. the PyGILState key, HEAD_LOCK, the data-stack chunk bounds or
 * _co_firsttraceable, so it cannot replace compiling per minor version.) */
static int layout_matches(void) {
    const _Py_DebugOffsets *d = &_PyRuntime.debug_offsets;
    return memcmp(d->cookie, _Py_Debug_Cookie, sizeof d->cookie) == 0 &&
           (d->version >> 16) == ((uint64_t)PY_VERSION_HEX >> 16) && d->free_threaded == 0 &&
           d->runtime_state.size == sizeof(_PyRuntimeState) &&
           d->interpreter_state.threads_head == offsetof(PyInterpreterState, threads.head) &&
           d->thread_state.size == sizeof(PyThreadState) &&
           d->thread_state.next == offsetof(PyThreadState, next) &&
           d->thread_state.current_frame == offsetof(PyThreadState, current_frame) &&
           d->thread_state.native_thread_id == offsetof(PyThreadState, native_thread_id) &&
           d->thread_state.datastack_chunk == offsetof(PyThreadState, datastack_chunk) &&
           d->interpreter_frame.size == sizeof(_PyInterpreterFrame) &&
           d->interpreter_frame.previous == offsetof(_PyInterpreterFrame, previous) &&
           d->interpreter_frame.executable == offsetof(_PyInterpreterFrame, f_executable) &&
           d->interpreter_frame.instr_ptr == offsetof(_PyInterpreterFrame, instr_ptr) &&
           d->interpreter_frame.localsplus == offsetof(_PyInterpreterFrame, localsplus) &&
           d->interpreter_frame.owner == offsetof(_PyInterpreterFrame, owner) &&
           d->code_object.size == sizeof(PyCodeObject) &&
           d->code_object.filename == offsetof(PyCodeObject, co_filename) &&
           d->code_object.qualname == offsetof(PyCodeObject, co_qualname) &&
           d->code_object.linetable == offsetof(PyCodeObject, co_linetable) &&
           d->code_object.firstlineno == offsetof(PyCodeObject, co_firstlineno) &&
           d->code_object.co_code_adaptive == offsetof(PyCodeObject, co_code_adaptive);
}

int opy_internals_supported(void) {
    /* Every caller computes the same value: racing ones just store it twice. */
    static int known = -1;
    int k = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (k < 0) __atomic_store_n(&known, k = layout_matches(), __ATOMIC_RELAXED);
    return k;
}
#else
int opy_internals_supported(void) { return 1; }
#endif /* PY_VERSION_HEX >= 0x030D0000: the runtime's layout self-check */

/* ---- which thread state is this thread's ---------------------------------------------------- */

/* The PyGILState key holds, per OS thread, the state that thread runs Python with: set when a
 * thread state is created on it (threading, _thread, PyGILState_Ensure from a foreign C thread)
 * and cleared before that state and its frame chunks are freed (tstate_delete_common, in every
 * version here: unbind_gilstate_tstate comes before clear_datastack). So it names exactly the
 * live state of the interrupted thread. pthread_getspecific only reads the thread's own key
 * array: no lock, no allocation. 3.12+ also keeps a thread-local _Py_tss_tstate, but that is the
 * *attached* state: NULL whenever the thread released the GIL (blocking I/O, hashing, any C code
 * in Py_BEGIN_ALLOW_THREADS), exactly the time that must still be attributed to its frames, and
 * it is not exported. */
void *opy_current_tstate(void) {
#if PY_VERSION_HEX >= 0x030C0000
    /* 3.12 moved the key out of the gilstate struct to the runtime itself. */
    Py_tss_t *key = &_PyRuntime.autoTSSkey;
#else
    Py_tss_t *key = &_PyRuntime.gilstate.autoTSSkey;
#endif /* PY_VERSION_HEX >= 0x030C0000: where the PyGILState key lives */
    if (!PyThread_tss_is_created(key)) return NULL;
    return PyThread_tss_get(key);
}

/* Without the GIL: the interpreter's lock over its thread list (HEAD_LOCK in pystate.c) keeps
 * every listed state from being unlinked, hence freed, while the list is read. os.fork() takes
 * it too, so the listing stays short and never waits for anything else while holding it. */
int opy_list_threads(pid_t *tids, void **states, int max) {
    if (opy_is_finalizing() || !_PyRuntime.interpreters.main) return -1;
#if PY_VERSION_HEX >= 0x030D0000
    /* 3.13: a one-byte PyMutex. The exported PyMutex_Lock would detach a thread state attached
     * on this thread while it waits; the pinner calls this with none attached, so it is a plain
     * wait, as CPython's own HEAD_LOCK (_Py_LOCK_DONT_DETACH) is. */
    PyMutex *lock = &_PyRuntime.interpreters.mutex;
    PyMutex_Lock(lock);
#else
    /* 3.11, 3.12: a PyThread_type_lock, allocated at runtime init. */
    PyThread_type_lock lock = _PyRuntime.interpreters.mutex;
    if (!lock) return -1;
    PyThread_acquire_lock(lock, WAIT_LOCK);
#endif /* PY_VERSION_HEX >= 0x030D0000: taking HEAD_LOCK */
    /* Every interpreter's threads: the same lock guards the list of interpreters. A thread of a
     * subinterpreter is registered so its time is counted (as [subinterpreter], see py_walk). */
    int n = 0;
    for (PyInterpreterState *in = _PyRuntime.interpreters.head; in && n < max; in = in->next) {
        for (PyThreadState *ts = in->threads.head; ts && n < max; ts = ts->next) {
            if (ts->native_thread_id <= 0) continue;
            tids[n] = (pid_t)ts->native_thread_id;
            states[n] = ts;
            n++;
        }
    }
#if PY_VERSION_HEX >= 0x030D0000
    PyMutex_Unlock(lock);
#else
    PyThread_release_lock(lock);
#endif /* PY_VERSION_HEX >= 0x030D0000: releasing HEAD_LOCK */
    return n;
}

/* ---- where frames live ---------------------------------------------------------------------- */

/* The part of _PyInterpreterFrame before the locals: what the walk reads. */
#define FRAME_HDR offsetof(_PyInterpreterFrame, localsplus)

typedef struct range {
    uintptr_t lo, hi;
} range;

#define MAX_CHUNKS 32

/* The live part of each data-stack chunk: frames pushed on the thread's own stack live there,
 * and that memory stays mapped while the chunk is linked from the thread state. Stores to
 * datastack_top and datastack_chunk are not atomic as a pair (push_chunk, _PyThreadState_PopFrame),
 * so a top that is not inside its chunk yields an empty range rather than a wild one. */
static int chunk_ranges(PyThreadState *ts, range *r) {
    int n = 0;
    _PyStackChunk *c = ts->datastack_chunk;
    if (!c) return 0;
    uintptr_t base = (uintptr_t)&c->data[0], end = (uintptr_t)c + c->size;
    uintptr_t top = (uintptr_t)ts->datastack_top;
    if (top >= base && top <= end) r[n++] = (range){base, top};
    for (c = c->previous; c && n < MAX_CHUNKS; c = c->previous) {
        base = (uintptr_t)&c->data[0];
        end = (uintptr_t)c + c->size;
        uintptr_t t = base + c->top * sizeof(PyObject *);
        if (t >= base && t <= end) r[n++] = (range){base, t};
    }
    return n;
}

static int in_ranges(const range *r, int n, uintptr_t p, size_t len) {
    for (int i = 0; i < n; i++)
        if (p >= r[i].lo && p + len <= r[i].hi) return 1;
    return 0;
}

/* Between this handler's frame (sp) and the top of the thread's stack: mapped, the live C frames
 * of the interrupted code. 0 when the top is unknown. */
static int on_stack(uintptr_t p, size_t len, uintptr_t sp, uintptr_t stack_hi) {
    return stack_hi && p >= sp && p + len <= stack_hi && !(p & 7);
}

/* A frame header from a live data-stack range or the live C stack is copied; anything else (a
 * generator's frame on the heap, or a pointer caught mid-update) is read safely. */
static int read_frame(uintptr_t f, const range *r, int nr, uintptr_t sp, uintptr_t stack_hi, void *out) {
    if (in_ranges(r, nr, f, FRAME_HDR) || on_stack(f, FRAME_HDR, sp, stack_hi)) {
        memcpy(out, (const void *)f, FRAME_HDR);
        return 0;
    }
    return opy_safe_read(out, f, FRAME_HDR);
}

/* Walking leaf first, a run's oldest frame shown is its entry frame; a run with none (its frame
 * not started yet, or returned: the invocation's entry frame or shim on top) leaves a mark, so
 * there is one run per _PyEval_EvalFrameDefault native frame (native_merge.c). Returns the new
 * count, or -1 when out is full. */
static int end_run(opy_raw_frame *out, int n, int run, int max, int marks) {
    if (n > run) {
        out[n - 1].entry = 1;
    } else if (marks) {
        if (n == max) return -1;
        out[n].code = 0;
        out[n].offset = -1;
        out[n].entry = 1;
        n++;
    }
    return n;
}

#if PY_VERSION_HEX >= 0x030D0000
/* ---- 3.13: the walk -------------------------------------------------------------------------
 * The current frame is tstate->current_frame (no _PyCFrame any more). Each
 * _PyEval_EvalFrameDefault invocation fills a local `entry_frame` in its own C stack frame
 * (owner FRAME_OWNED_BY_CSTACK, f_executable Py_None, instr_ptr into a static trampoline) and
 * links the first frame it runs above it; the entry frame's previous is the older invocation's
 * current frame, NULL for the outermost. So entry frames mark where each run ends, replace 3.11's
 * _PyCFrame check, and the chain always ends right after one. */

/* A code object's prologue (_co_firsttraceable, in code units: MAKE_CELL, COPY_FREE_VARS,
 * RETURN_GENERATOR and POP_TOP before the first RESUME), or -1 when exe is not a code object,
 * -2 when it cannot be read. Known code objects answer from the code cache's fingerprint (the
 * value is immutable), so a sample costs one system call per code object at first sight only;
 * a slot there describes the live object at that address (deaths are marked before the memory
 * is freed). */
static int code_prologue(uintptr_t exe) {
    int p = opy_code_cached_prologue(exe);
    if (p >= 0) return p;
    union {
        PyCodeObject co;
        char bytes[offsetof(PyCodeObject, _co_firsttraceable) + sizeof(int)];
    } c;
    if (opy_safe_read(&c, exe, sizeof c.bytes) < 0) return -2;
    if (Py_TYPE(&c.co) != &PyCode_Type) return -1;
    return c.co._co_firsttraceable >= 0 ? c.co._co_firsttraceable : 0;
}

/* Nothing in the chain is trusted unchecked: a frame's `previous` is set when it is linked and
 * the compiler may order the entry frame's stores differently from 3.13.0's build. So every
 * frame is copied from a live range or read safely, each entry frame must look like one (on this
 * thread's C stack, 8-aligned, above the newer entry frames, f_executable Py_None), and the
 * chain must end right after an entry frame. A sample caught mid-push fails and is dropped. */
static int walk(void *tstate, uintptr_t stack_hi, opy_raw_frame *out, int max, int *why, int marks) {
    PyThreadState *ts = tstate;
    uintptr_t sp = (uintptr_t)&ts; /* this handler frame: every live C frame of the thread is above */
    range r[MAX_CHUNKS];
    int nr = chunk_ranges(ts, r);
    uintptr_t f = (uintptr_t)ts->current_frame;
    if (!f) {
        *why = OPY_WALK_NO_FRAMES;
        return 0;
    }
    int n = 0, run = 0;       /* out[run..n) are the current run's frames */
    uintptr_t last_entry = 0; /* the newest entry frame met so far */
    int after_entry = 0;      /* the frame just walked was an entry frame */
    /* Bound the work even when incomplete frames are skipped or memory is garbage. */
    for (int steps = 0; f && steps < 4 * max + 64; steps++) {
        union {
            _PyInterpreterFrame fr;
            char bytes[FRAME_HDR];
        } h;
        if (read_frame(f, r, nr, sp, stack_hi, &h) < 0) {
            *why = OPY_WALK_UNREADABLE;
            return 0;
        }
        if (h.fr.owner == FRAME_OWNED_BY_CSTACK) {
            /* The C stack grows down: older invocations' entry frames lie at higher addresses,
             * all above this handler's frame and below the stack's top (when known). */
            if ((f & 7) || f < sp || (stack_hi && f + FRAME_HDR > stack_hi) || f <= last_entry ||
                h.fr.f_executable != Py_None) {
                *why = OPY_WALK_INCONSISTENT;
                return 0;
            }
            int m = end_run(out, n, run, max, marks);
            if (m < 0) break; /* the core marks the cut */
            n = run = m;
            last_entry = f;
            after_entry = 1;
        } else {
            after_entry = 0;
            uintptr_t exe = (uintptr_t)h.fr.f_executable;
            int prologue = exe ? code_prologue(exe) : -1;
            if (prologue == -2) {
                *why = OPY_WALK_UNREADABLE;
                return 0;
            }
            if (prologue == -1) {
                /* Not a code object: 3.13.0 pushes none such, but the runtime lists other
                 * executable kinds (PyUnstable_ExecutableKinds). No Python frame to show. */
                OPY_STAT_INC(frames_not_code);
            } else {
                /* instr_ptr is the instruction running now (a caller's CALL), so its offset
                 * indexes the location table as is. A frame not started yet is at offset 0 and
                 * one still in its prologue below _co_firsttraceable: both incomplete, as in
                 * _PyFrame_IsIncomplete, and skipped (this also skips the `__init__`
                 * trampoline frame CALL_ALLOC_AND_ENTER_INIT pushes). Generator frames are
                 * always complete. */
                intptr_t off =
                    (intptr_t)h.fr.instr_ptr - (intptr_t)(exe + offsetof(PyCodeObject, co_code_adaptive));
                int incomplete = h.fr.owner != FRAME_OWNED_BY_GENERATOR &&
                                 off < (intptr_t)prologue * (intptr_t)sizeof(_Py_CODEUNIT);
                if (!incomplete) {
                    if (n == max) break; /* the core marks the cut */
                    out[n].code = exe;
                    out[n].offset = (off >= 0 && off < (1 << 28)) ? (int32_t)off : -1;
                    out[n].entry = 0;
                    n++;
                }
            }
        }
        f = (uintptr_t)h.fr.previous;
    }
    if (!f && !after_entry) {
        *why = OPY_WALK_INCONSISTENT;
        return 0;
    }
    *why = n ? OPY_WALK_OK : OPY_WALK_NO_FRAMES;
    return n;
}

#else
/* ---- 3.11 and 3.12: the walk ----------------------------------------------------------------
 * The current frame is tstate->cframe->current_frame; one _PyCFrame per
 * _PyEval_EvalFrameDefault invocation on the C stack, the thread state's root_cframe at the
 * bottom. */
#if PY_VERSION_HEX >= 0x030C0000
/* 3.12: each invocation first pushes a shim frame of its own, `entry_frame`, a local of
 * _PyEval_EvalFrameDefault (owner FRAME_OWNED_BY_CSTACK, f_code the interpreter's trampoline
 * code, whose INTERPRETER_EXIT returns to C), links the frame it was called to run above it and
 * sets the shim's previous to the older invocation's current frame. The shim is no Python frame
 * and is never shown; only that entry code creates frames owned by the C stack in 3.12. Frames
 * no longer carry an is_entry flag. */
static inline int is_shim(const _PyInterpreterFrame *f) {
    return f->owner == FRAME_OWNED_BY_CSTACK;
}
static inline int ends_run(const _PyInterpreterFrame *f) {
    return f->owner == FRAME_OWNED_BY_CSTACK;
}
#else
/* 3.11: the frame an invocation was called to run carries is_entry, and its previous is the
 * older invocation's current frame. */
static inline int is_shim(const _PyInterpreterFrame *f) {
    (void)f;
    return 0;
}
static inline int ends_run(const _PyInterpreterFrame *f) {
    return f->is_entry;
}
#endif /* PY_VERSION_HEX >= 0x030C0000: how a run ends */

/* A _PyCFrame lives in an active _PyEval_EvalFrameDefault's C stack frame (above our own
 * handler frame on the same stack) or is the thread state's root; anything else is read safely. */
static int read_cframe(PyThreadState *ts, _PyCFrame *c, uintptr_t sp, uintptr_t stack_hi, _PyCFrame *out) {
    uintptr_t p = (uintptr_t)c;
    if (c == &ts->root_cframe || on_stack(p, sizeof *out, sp, stack_hi)) {
        memcpy(out, c, sizeof *out);
        return 0;
    }
    return opy_safe_read(out, p, sizeof *out);
}

/* The walk trusts nothing it cannot check: _PyEval_EvalFrameDefault publishes its _PyCFrame
 * (tstate->cframe = &cframe) a few instructions before it fills in current_frame (and, in
 * 3.12, its shim frame), and a frame's `previous` is set when it is linked. So every frame is
 * copied from a live data-stack range, from the live C stack (3.12's shims) or through a safe
 * read, and the chain must meet each C frame's boundary: where a run ends, the next frame is
 * the older C frame's current frame, and the walk ends at the root. A sample caught mid-push
 * fails that test and is dropped (counted). */
static int walk(void *tstate, uintptr_t stack_hi, opy_raw_frame *out, int max, int *why, int marks) {
    PyThreadState *ts = tstate;
    uintptr_t sp = (uintptr_t)&ts; /* this handler frame: every live C frame of the thread is above */
    range r[MAX_CHUNKS];
    int nr = chunk_ranges(ts, r);
    _PyCFrame *cptr = ts->cframe, cf;
    if (!cptr || read_cframe(ts, cptr, sp, stack_hi, &cf) < 0) {
        *why = OPY_WALK_UNREADABLE;
        return 0;
    }
    uintptr_t f = (uintptr_t)cf.current_frame;
    if (!f) {
        *why = OPY_WALK_NO_FRAMES;
        return 0;
    }
    int n = 0, run = 0; /* out[run..n) are the current run's frames */
    /* Bound the work even when incomplete frames are skipped or memory is garbage. */
    for (int steps = 0; f && steps < 4 * max + 64; steps++) {
        union {
            _PyInterpreterFrame fr;
            char bytes[FRAME_HDR];
        } h;
        if (read_frame(f, r, nr, sp, stack_hi, &h) < 0) {
            *why = OPY_WALK_UNREADABLE;
            return 0;
        }
        if (!is_shim(&h.fr)) {
            uintptr_t code = (uintptr_t)h.fr.f_code;
            intptr_t off = (intptr_t)h.fr.prev_instr - (intptr_t)(code + offsetof(PyCodeObject, co_code_adaptive));
            /* prev_instr is one code unit before the code for a frame that has not started (an
             * incomplete frame): skip it. Generator frames are always complete. (CPython's own
             * test also counts frames still in their prologue, before _co_firsttraceable, as
             * incomplete; telling those apart would mean reading the code object.) */
            int incomplete = h.fr.owner != FRAME_OWNED_BY_GENERATOR && off < 0;
            if (!incomplete && code) {
                if (n == max) break; /* the core marks the cut */
                out[n].code = code;
                out[n].offset = (off >= 0 && off < (1 << 28)) ? (int32_t)off : -1;
                out[n].entry = 0;
                n++;
            }
        }
        if (ends_run(&h.fr)) {
            int m = end_run(out, n, run, max, marks);
            if (m < 0) break; /* the core marks the cut */
            n = run = m;
            _PyCFrame *older = cf.previous;
            if (!older || read_cframe(ts, older, sp, stack_hi, &cf) < 0 ||
                (uintptr_t)cf.current_frame != (uintptr_t)h.fr.previous) {
                *why = OPY_WALK_INCONSISTENT;
                return 0;
            }
            cptr = older;
        }
        f = (uintptr_t)h.fr.previous;
    }
    if (!f && cptr != &ts->root_cframe) {
        *why = OPY_WALK_INCONSISTENT;
        return 0;
    }
    *why = n ? OPY_WALK_OK : OPY_WALK_NO_FRAMES;
    return n;
}
#endif /* PY_VERSION_HEX >= 0x030D0000: the walk */

int opy_walk(void *tstate, uintptr_t stack_hi, opy_raw_frame *out, int max, int *why) {
    return walk(tstate, stack_hi, out, max, why, 0);
}

int opy_walk_marked(void *tstate, uintptr_t stack_hi, opy_raw_frame *out, int max, int *why) {
    return walk(tstate, stack_hi, out, max, why, 1);
}

/* The prefix of a code object up to its bytecode: header and all named fields. */
#define CODE_HDR offsetof(PyCodeObject, co_code_adaptive)

/* Copies a compact ASCII str's text (its tail when keep_tail and it is too long); "" otherwise. */
static void copy_ascii(uintptr_t str, char *dst, size_t cap, int keep_tail) {
    PyASCIIObject h;
    dst[0] = 0;
    if (!str || opy_safe_read(&h, str, sizeof h) < 0) return;
    if (Py_TYPE(&h) != &PyUnicode_Type || !h.state.compact || !h.state.ascii || h.length < 0) return;
    size_t len = (size_t)h.length, skip = 0, lead = 0;
    if (len > cap - 1) {
        if (keep_tail) {
            lead = 3;
            skip = len - (cap - 1 - lead);
            memcpy(dst, "...", 3);
        }
        len = cap - 1 - lead;
    }
    if (opy_safe_read(dst + lead, str + sizeof h + skip, len) < 0) len = lead = 0;
    dst[lead + len] = 0;
}

void opy_code_fingerprint(uintptr_t code, opy_code_fp *out) {
    union {
        PyCodeObject co;
        char bytes[CODE_HDR];
    } c;
    memset(out, 0, sizeof *out);
    if (opy_safe_read(&c, code, CODE_HDR) < 0) return;
    if (Py_TYPE(&c.co) != &PyCode_Type) return;
    out->qualname = (uintptr_t)c.co.co_qualname;
    out->filename = (uintptr_t)c.co.co_filename;
    out->firstlineno = c.co.co_firstlineno;
#if PY_VERSION_HEX >= 0x030D0000
    /* Kept for the 3.13 walk, which needs it to tell incomplete frames (see code_prologue). */
    out->prologue = c.co._co_firsttraceable >= 0 ? c.co._co_firsttraceable : 0;
#endif /* PY_VERSION_HEX >= 0x030D0000: the prologue's length */
    copy_ascii(out->qualname, out->name, sizeof out->name, 0);
    copy_ascii(out->filename, out->file, sizeof out->file, 1);
    out->ok = 1;
}

int opy_code_validate(uintptr_t code, const opy_code_fp *fp) {
    union {
        PyCodeObject co;
        char bytes[CODE_HDR];
    } c;
    if (!fp->ok || opy_safe_read(&c, code, CODE_HDR) < 0) return 0;
    /* A freed small object keeps its type but its first word becomes the allocator's free-list
     * link (a pointer, or 0): a live object has a small positive count. */
    Py_ssize_t rc = Py_REFCNT(&c.co);
    if (rc <= 0 || rc >= ((Py_ssize_t)1 << 32)) return 0;
    if (Py_TYPE(&c.co) != &PyCode_Type) return 0;
    return (uintptr_t)c.co.co_qualname == fp->qualname && (uintptr_t)c.co.co_filename == fp->filename &&
           c.co.co_firstlineno == fp->firstlineno;
}

/* Location table (PEP 626/657, Objects/locations.md; 3.12 kept 3.11's format): entries start with a byte
 * 1cccclll (code c, length l+1 code units); the line delta depends on the code: 0-9 none (one
 * column byte follows), 10-12 delta c-10, 13 and 14 a signed varint (14 also carries end line
 * and columns), 15 no location. Varints are 6-bit groups, least significant first, 0x40 = more. */
static int read_varint(const uint8_t **p, const uint8_t *end, unsigned *out) {
    unsigned v = 0, shift = 0;
    while (*p < end) {
        uint8_t b = *(*p)++;
        v |= (unsigned)(b & 63) << shift;
        shift += 6;
        if (!(b & 64)) {
            *out = v;
            return 0;
        }
        if (shift > 30) return -1;
    }
    return -1;
}

int opy_linetable_line(const uint8_t *p, size_t size, int firstlineno, int offset) {
    int line = firstlineno;
    if (offset < 0 || !p) return line;
    const uint8_t *end = p + size;
    int addr = 0; /* byte offset of the current entry's first instruction */
    while (p < end) {
        uint8_t first = *p++;
        if (!(first & 0x80)) return line; /* malformed: keep what we have */
        int code = (first >> 3) & 15, len = ((first & 7) + 1) * (int)sizeof(_Py_CODEUNIT);
        int delta = 0;
        if (code >= 10 && code <= 12) {
            delta = code - 10;
        } else if (code == 13 || code == 14) {
            unsigned u;
            if (read_varint(&p, end, &u) < 0) return line;
            delta = (u & 1) ? -(int)(u >> 1) : (int)(u >> 1);
        }
        int here = code == 15 ? -1 : line + delta;
        if (code != 15) line += delta;
        if (offset >= addr && offset < addr + len) return here > 0 ? here : firstlineno;
        addr += len;
        while (p < end && !(*p & 0x80)) p++; /* skip the entry's remaining bytes */
    }
    return firstlineno;
}

int opy_code_line(void *codeobj, int offset) {
    PyCodeObject *co = codeobj;
    PyObject *lt = co->co_linetable;
    if (!lt || !PyBytes_Check(lt)) return co->co_firstlineno;
    return opy_linetable_line((const uint8_t *)PyBytes_AS_STRING(lt), (size_t)PyBytes_GET_SIZE(lt),
                              co->co_firstlineno, offset);
}

#else
/* ==== before 3.11: not supported (frames were PyFrameObjects, a different world). ========== */
#define OPY_INTERNALS_STUB 1

#endif /* OPY_VERSION_HEX: 3.14+ or free-threaded, 3.11-3.13, older */

#ifdef OPY_INTERNALS_STUB
/* A version this build cannot read: start() refuses (opy_internals_supported() is 0), so these
 * exist only to link. */

int opy_internals_supported(void) { return 0; }

int opy_walk(void *tstate, uintptr_t stack_hi, opy_raw_frame *out, int max, int *why) {
    (void)tstate, (void)stack_hi, (void)out, (void)max;
    *why = OPY_WALK_NO_FRAMES;
    return 0;
}
int opy_walk_marked(void *tstate, uintptr_t stack_hi, opy_raw_frame *out, int max, int *why) {
    (void)tstate, (void)stack_hi, (void)out, (void)max;
    *why = OPY_WALK_NO_FRAMES;
    return 0;
}

void opy_code_fingerprint(uintptr_t code, opy_code_fp *out) {
    (void)code;
    memset(out, 0, sizeof *out);
}

int opy_code_validate(uintptr_t code, const opy_code_fp *fp) {
    (void)code, (void)fp;
    return 0;
}

int opy_code_line(void *code, int offset) {
    (void)code, (void)offset;
    return 0;
}

int opy_linetable_line(const uint8_t *table, size_t size, int firstlineno, int offset) {
    (void)table, (void)size, (void)offset;
    return firstlineno;
}

void *opy_current_tstate(void) { return NULL; }

int opy_list_threads(pid_t *tids, void **states, int max) {
    (void)tids, (void)states, (void)max;
    return -1;
}

#endif /* OPY_INTERNALS_STUB */
