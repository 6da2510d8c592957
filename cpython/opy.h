/* CPython adapter: the internal interface between the module glue, the thread table, the code
 * cache and the one file that knows CPython's private structures (cpython_internals.c).
 * Names: opy_* (adapter-internal, hidden by -fvisibility=hidden). */
#ifndef OTELPROF_OPY_H
#define OTELPROF_OPY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "otelprof/otelprof.h"

/* ---- internals (cpython_internals.c): the only code that reads private structures ---------- */

/* 1 when this build knows the running interpreter's frame layout. Thread-safe, AS-safe. */
int opy_internals_supported(void);
/* PY_VERSION_HEX of the CPython this build reads (the interpreter's own; see cpython_internals.c
 * for the tests' override). */
int opy_internals_target(void);
/* "3.11, 3.12, 3.13": the versions whose internals this source knows (a build reads its own). */
const char *opy_internals_versions(void);

/* One Python frame as captured in signal context: the code object's address (never
 * dereferenced there) and the byte offset of the last instruction, or -1 when unknown. */
typedef struct opy_raw_frame {
    uintptr_t code;  /* 0 only for an entry mark (see opy_walk) */
    int32_t offset;
    int32_t entry;   /* 1: the oldest frame of one _PyEval_EvalFrameDefault invocation's run
                      * (the last of the run, leaf first) */
} opy_raw_frame;

/* Why a walk stopped early; each reaches stats() through opy_walk_stats. */
enum {
    OPY_WALK_OK = 0,
    OPY_WALK_NO_FRAMES,     /* the thread runs no Python code */
    OPY_WALK_UNREADABLE,    /* a frame or C frame pointer was not readable memory */
    OPY_WALK_INCONSISTENT,  /* the chain did not match the C frames (caught mid-push) */
    OPY_WALK__COUNT
};

/* SIGNAL CONTEXT, on the thread that owns tstate. Walks the frame chain leaf first into out
 * (at most max) and returns the number of frames; *why gets an OPY_WALK_* code. stack_hi is the
 * top of the thread's C stack (0 = unknown). Never dereferences a code object. */
int opy_walk(void *tstate, uintptr_t stack_hi, opy_raw_frame *out, int max, int *why);
/* The same, keeping the boundaries between interpreter invocations exact for merging with
 * native frames: the entry frame of each invocation has entry = 1, and an invocation with no
 * frame to show (its only frame has not started yet, or, in 3.12, has returned and left the
 * invocation's shim frame on top) leaves an entry mark {code = 0, entry = 1}. */
int opy_walk_marked(void *tstate, uintptr_t stack_hi, opy_raw_frame *out, int max, int *why);

/* What identifies a code object well enough to tell it from a successor at the same address. */
typedef struct opy_code_fp {
    uintptr_t qualname, filename;
    int32_t firstlineno;
    int32_t ok; /* the object looked like a code object when read */
    /* 3.13+: _co_firsttraceable, the code units before the first RESUME (0 before 3.13), for the
     * walk's test of incomplete frames; immutable, so read once at first sight. */
    int32_t prologue;
    int32_t pad_;
    /* Copies of the ASCII names taken at first sight ("" when not ASCII), so a code object that
     * dies before it can be pinned still gets a name (the file keeps its tail). */
    char name[48];
    char file[80];
} opy_code_fp;

/* AS-safe: reads the fingerprint and names through opy_safe_read (never faults). */
void opy_code_fingerprint(uintptr_t code, opy_code_fp *out);
/* GIL held: 1 when `code` is, now, a live code object with fingerprint fp (checked through safe
 * reads, so a freed address never faults and a recycled one does not match). */
int opy_code_validate(uintptr_t code, const opy_code_fp *fp);
/* No GIL needed, `code` must be kept alive by the caller (pinned): line of the instruction at
 * byte offset, from the location table; co_firstlineno when offset < 0 or not found. */
int opy_code_line(void *code, int offset);
/* Pure: the same, from a copy of a location table (for code objects that are gone). */
int opy_linetable_line(const uint8_t *table, size_t size, int firstlineno, int offset);

/* AS-safe: the calling OS thread's live PyThreadState (the PyGILState key), or NULL when the
 * thread has none (never ran Python, or its state was deleted). */
void *opy_current_tstate(void);
/* Not AS-safe, no GIL needed: native ids and states of the main interpreter's threads, at most
 * max; -1 when the interpreter is finalizing. The states may be gone once this returns. */
int opy_list_threads(pid_t *tids, void **states, int max);

/* 1 once the interpreter has begun finalizing (threads of ours must not take the GIL then).
 * Not AS-safe, no GIL needed. */
int opy_is_finalizing(void);

/* AS-safe: copies n bytes from src, returning -1 instead of faulting when src is not readable. */
int opy_safe_read(void *dst, uintptr_t src, size_t n);
/* Probes whether safe reads work here (a sandbox may forbid process_vm_readv). Not AS-safe. */
void opy_safe_read_init(void);

/* ---- threads (thread_scan.c): the core keeps each thread's state as its adapter data ------- */
/* The tag of threads the scan found (tag 0: the thread announced itself). */
#define OPY_TAG_SCANNED 1u
/* Finds threads that run Python but never announced themselves (_thread.start_new_thread, C
 * threads entering through PyGILState_Ensure) and registers them; unregisters the ones it found
 * once they are gone. Called every 100 ms by the pinner thread, without the GIL. */
void opy_threads_scan(void);

/* ---- code cache (codecache.c): pins every code object seen, resolves names ------------------ */
/* A frame id is the code object's address with the code's generation in the top 16 bits: how
 * many times the address's slot was started afresh (a code seen there died before it was
 * pinned, or was unpinned for being idle). So a frame keeps its own name when its code dies and
 * a new one takes the address. x86-64 and arm64 user addresses leave those bits zero. */
#define OPY_GEN_SHIFT 48
static inline uint64_t opy_frame_id(uintptr_t code, uint32_t gen) {
    if ((uint64_t)code >> OPY_GEN_SHIFT) return (uint64_t)code; /* no spare bits: generation 0 */
    return (uint64_t)code | ((uint64_t)(gen & 0xffffu) << OPY_GEN_SHIFT);
}
static inline uintptr_t opy_frame_code(uint64_t id) { return (uintptr_t)(id & ((1ull << OPY_GEN_SHIFT) - 1)); }
static inline uint32_t opy_frame_gen(uint64_t id) { return (uint32_t)(id >> OPY_GEN_SHIFT); }

/* SIGNAL CONTEXT: makes sure `code` has a slot (first sight: records its fingerprint) and
 * returns its generation (0 when the cache is full). */
uint32_t opy_code_note(uintptr_t code);
/* GIL held: pins every code object noted since the last call. Returns how many were pinned. */
int opy_code_pin_pending(void);
/* 1 when noted code objects wait to be pinned. AS-safe. */
int opy_code_pending(void);
/* SIGNAL CONTEXT, for the walk: the fingerprint's prologue when `code` is a code object the cache
 * already noted and that has not died since (so it is the object at that address now); -1 when
 * the cache does not know it. */
int opy_code_cached_prologue(uintptr_t code);
/* Exporter thread: names a frame. 0 on success, -1 when the code object is unknown or died
 * before it could be pinned. Takes the GIL only when the frame's code was not pinned yet. */
int opy_code_resolve(const otelprof_frame *f, otelprof_symbol *out);
/* Exporter thread: a profile closed; names of code objects that died, or were unpinned, are
 * freed once the core holds none of their frames (otelprof_frames_released). */
void opy_code_profile_closed(void);
/* Fork child: locks the parent's other threads may have held are made usable again. */
void opy_code_after_fork(void);
/* GIL held: drops the references of code objects unpinned for being idle (see codecache.c). */
void opy_code_release_unpinned(void);
/* GIL held, after otelprof_stop(): lets every pinned code go and frees every kept name. */
void opy_code_release_all(void);
/* The pinner thread's tid (0 before it started): never a thread to sample. */
pid_t opy_pinner_tid(void);
int opy_code_release_pending(void); /* AS-safe */
/* GIL held: learn of code object deaths (before 3.12 through PyCode_Type's deallocator). */
void opy_code_watch(void);
/* Background pinner thread (runs with the GIL every few ms while codes wait). */
int opy_pinner_start(void);
void opy_pinner_stop(void); /* call without holding the GIL */
/* Fork child: the pinner thread does not exist there; its lock may have been held. */
void opy_pinner_after_fork(void);
/* 1 while the interpreter may be entered from a foreign thread (cleared at exit). */
extern int opy_python_alive;

/* ---- native frames interleaved with Python frames (native_merge.c) ------------------------- */
/* Not AS-safe: finds _PyEval_EvalFrameDefault's code range; 0 when merging is not possible. */
int opy_merge_init(void);
/* Not AS-safe, before sampling starts: maps the merge buffers, each for stacks of cap frames
 * (max_depth + 1). 0 on success, -1 when out of memory (then do not merge). */
int opy_merge_reserve(int cap);
/* SIGNAL CONTEXT, for walk(): unwinds the native stack (otelprof_unwind_native) and walks the
 * Python chain (opy_walk_marked) into a merge buffer, then writes them into out (at most max) as
 * one stack, leaf first, each eval frame replaced by its run of Python frames. Returns the count,
 * or -1 when the plain walk should be used instead (native frames off, every buffer busy). */
int opy_merge_walk(void *tstate, uintptr_t stack_hi, void *ucontext, otelprof_frame *out, int max);

/* ---- self-metrics of the adapter (stats() merges them with the core's) ---------------------- */
/* Every field is a uint64_t, so the struct is also an array (v): the adapter hands that array to
 * the core as its counters (otelprof_adapter.counters), named in module.c, while the code keeps
 * counting by field name. */
#define OPY_STATS_N (OPY_WALK__COUNT + 13)
typedef union opy_stats {
    struct {
        uint64_t walk[OPY_WALK__COUNT];
        uint64_t no_thread;        /* signal on a thread without a Python thread state */
        uint64_t code_cache_full;  /* code object not cached: its frames resolve as [unknown] */
        uint64_t codes_pinned;
        uint64_t codes_dead;       /* freed before they could be pinned */
        uint64_t codes_unpinned;   /* released after IDLE_EPOCHS profile closes without a sample */
        uint64_t codes_named_unpinned; /* named from the first-sight copy: not pinned by close time */
        uint64_t dead_names_full;  /* died unpinned past the cap of kept names (their number, or
                                    * max_memory): frames of that code resolve from the first-sight
                                    * copy, or as [unknown] once the address was reused */
        uint64_t threads_full;
        uint64_t threads_scanned;  /* threads found by the scan rather than by the threading hook */
        uint64_t native_merge_fallback; /* native and Python stacks did not pair up (see opy_merge_walk) */
        uint64_t native_merge_busy; /* every merge buffer in use: the sample has Python frames only */
        uint64_t frames_not_code;  /* 3.13+: a frame whose f_executable is no code object (skipped) */
        uint64_t ctx_published;    /* span context changes written to the OTEP 4947 record */
    };
    uint64_t v[OPY_STATS_N];
} opy_stats;
_Static_assert(sizeof(opy_stats) == OPY_STATS_N * sizeof(uint64_t) &&
                   offsetof(opy_stats, ctx_published) == (OPY_STATS_N - 1) * sizeof(uint64_t),
               "OPY_STATS_N counts every field, ctx_published last");
/* The index of field f in opy_stats.v. */
#define OPY_STAT_INDEX(f) (offsetof(opy_stats, f) / sizeof(uint64_t))
extern opy_stats opy_stats_g;
#define OPY_STAT_INC(f) __atomic_fetch_add(&opy_stats_g.f, 1, __ATOMIC_RELAXED)

#endif
