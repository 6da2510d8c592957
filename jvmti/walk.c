/* SIGNAL CONTEXT. The adapter's walk(): AsyncGetCallTrace on the interrupted thread with the
 * signal's ucontext, under the crash guard. Frames come back as {bci, jmethodID} and are stored
 * as {id = jmethodID, aux = bci}; naming happens later (resolve.c). A failed walk keeps its time
 * under an error frame named after AsyncGetCallTrace's failure code ([gc_active], ...). */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdlib.h>
#include <ucontext.h>

#include "ojv.h"

/* AsyncGetCallTrace's interface (HotSpot's forte.cpp; in no header). */
typedef struct {
    jint lineno; /* the bci; -3 for a native method */
    jmethodID method_id;
} agct_frame;
typedef struct {
    JNIEnv *env_id;
    jint num_frames; /* frames written, or a failure code <= 0 */
    agct_frame *frames;
} agct_trace;
typedef void (*agct_fn)(agct_trace *trace, jint depth, void *ucontext);

const char *const ojv_walk_errors[OJV_ERR__COUNT] = {
    [OJV_ERR_NO_JAVA_FRAME] = "no_java_frame",
    [OJV_ERR_NO_CLASS_LOAD] = "no_class_load",
    [OJV_ERR_GC_ACTIVE] = "gc_active",
    [OJV_ERR_UNKNOWN_NOT_JAVA] = "unknown_not_java",
    [OJV_ERR_NOT_WALKABLE_NOT_JAVA] = "not_walkable_not_java",
    [OJV_ERR_UNKNOWN_JAVA] = "unknown_java",
    [OJV_ERR_NOT_WALKABLE_JAVA] = "not_walkable_java",
    [OJV_ERR_UNKNOWN_STATE] = "unknown_state",
    [OJV_ERR_THREAD_EXIT] = "thread_exit",
    [OJV_ERR_DEOPT] = "deopt",
    [OJV_ERR_SAFEPOINT] = "safepoint",
    [OJV_ERR_WALK_FAULT] = "walk_fault",
};
_Static_assert(OJV_ERR__COUNT <= OTELPROF_WALK_ERRORS_MAX, "the core keeps at most 16 causes");
_Static_assert(sizeof(agct_frame) == sizeof(otelprof_frame), "frames are converted in place");

static agct_fn agct;
static int merge_native;
/* Tests only (OTELPROF_JVM_TEST_WALK_FAULTS=n): the next n guarded walks read a bad address,
 * proving that a fault in the walk costs the sample and not the JVM (never while the guard is
 * off). */
static int inject_faults;
static volatile uintptr_t bad_address = 8; /* unmapped: the first page never is */

int ojv_walk_init(int native) {
    agct = (agct_fn)dlsym(RTLD_DEFAULT, "AsyncGetCallTrace");
    if (!agct) {
        void *h = dlopen("libjvm.so", RTLD_LAZY | RTLD_NOLOAD);
        if (h) agct = (agct_fn)dlsym(h, "AsyncGetCallTrace");
    }
    /* Native frames stop where the code cache starts, so its bounds are needed. */
    merge_native = native && ojv_in_code_cache(0) >= 0;
    const char *f = getenv("OTELPROF_JVM_TEST_WALK_FAULTS");
    inject_faults = f ? atoi(f) : 0;
    return agct ? 0 : -1;
}

static int error_of(jint code) {
    switch (code) {
    case 0: return OJV_ERR_NO_JAVA_FRAME;
    case -1: return OJV_ERR_NO_CLASS_LOAD;
    case -2: return OJV_ERR_GC_ACTIVE;
    case -3: return OJV_ERR_UNKNOWN_NOT_JAVA;
    case -4: return OJV_ERR_NOT_WALKABLE_NOT_JAVA;
    case -5: return OJV_ERR_UNKNOWN_JAVA;
    case -6: return OJV_ERR_NOT_WALKABLE_JAVA;
    case -8: return OJV_ERR_THREAD_EXIT;
    case -9: return OJV_ERR_DEOPT;
    case -10: return OJV_ERR_SAFEPOINT;
    default: return OJV_ERR_UNKNOWN_STATE; /* -7, and codes of later JDKs */
    }
}

static uintptr_t uc_sp(const ucontext_t *uc) {
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.sp;
#else
#error "the JVM agent supports x86-64 and arm64"
#endif /* architecture */
}

/* The native frames on the leaf side of the Java frames: from the interrupted pc up to the first
 * frame in the code cache (an interpreted, compiled or stub frame, which AsyncGetCallTrace
 * describes from there on). */
static int native_leaf(void *uc, otelprof_frame *out, int max) {
    int n = otelprof_unwind_native(uc, out, max);
    for (int i = 0; i < n; i++)
        if (ojv_in_code_cache((uintptr_t)out[i].id) == 1) return i;
    return n;
}

static int guarded_agct(agct_trace *trace, jint depth, void *uc) {
    sigjmp_buf jb;
    ojv_guard_enter(&jb);
    if (sigsetjmp(jb, 0) != 0) return -1; /* the guard already left */
    if (inject_faults > 0 && ojv_guard_active() && __atomic_fetch_sub(&inject_faults, 1, __ATOMIC_RELAXED) > 0)
        trace->num_frames = *(volatile jint *)bad_address;
    agct(trace, depth, uc);
    ojv_guard_leave();
    return 0;
}

int ojv_walk(void *user, void *uc, otelprof_frame *out, int max) {
    (void)user;
    otelprof_thread_data td;
    if (!agct || !uc || otelprof_thread_data_self(&td) != 0 || !td.ptr) {
        OJV_STAT_INC(OJV_STAT_NO_THREAD_DATA);
        return -1;
    }
    ojv_thread *t = td.ptr;
    /* A thread registered by another thread (at start) could have ended and its tid gone to a
     * new thread before that one registered itself: the interrupted stack tells. */
    uintptr_t sp = uc_sp(uc);
    if (sp < t->stack_lo || sp >= t->stack_hi) {
        OJV_STAT_INC(OJV_STAT_THREAD_MISMATCH);
        return -1;
    }
    if (!t->named) {
        /* Registered by another thread: from its next sample on it carries its Java name. */
        otelprof_thread_set_name(t->name);
        t->named = 1;
    }
    int n = merge_native ? native_leaf(uc, out, max) : 0;
    if (n > 0) OJV_STAT_INC(OJV_STAT_NATIVE_MERGED);
    if (n >= max) return n;
    agct_trace trace = {t->env, 0, (agct_frame *)(void *)(out + n)};
    if (guarded_agct(&trace, max - n, uc) != 0) return OTELPROF_WALK_ERROR(OJV_ERR_WALK_FAULT);
    if (trace.num_frames <= 0) return n > 0 && trace.num_frames == 0 ? n : OTELPROF_WALK_ERROR(error_of(trace.num_frames));
    int k = trace.num_frames < max - n ? trace.num_frames : max - n;
    for (int i = 0; i < k; i++) {
        agct_frame f = trace.frames[i];
        out[n + i].id = (uint64_t)(uintptr_t)f.method_id;
        out[n + i].aux = f.lineno;
        out[n + i].kind = OTELPROF_FRAME_ADAPTER;
    }
    OJV_STAT_INC(OJV_STAT_WALK_OK);
    return n + k;
}
