/* SIGNAL CONTEXT: the Ruby adapter's walk(), capture model (b). The profiling signal lands on the
 * thread that burnt the CPU (its own timer) or that the wall engine picked, and rb_profile_frames
 * reads that thread's own execution context: the fiber it runs, whether it holds the GVL or burns
 * CPU in C with the GVL released (its frames stay as they were when it released it, so that time
 * goes to the Ruby method that called into C). The frames are iseq and method-entry VALUEs with
 * their lines, captured into the core's slot; names come later, at a safe point (resolver.c).
 *
 * Two things may not be walked:
 *  - the thread that runs the GC: its stack is whatever allocated, and objects may be moving;
 *    its samples get the one frame "(garbage collection)";
 *  - any thread while a compacting GC runs elsewhere: compaction moves iseqs and method entries
 *    out from under a thread that released the GVL, and rb_profile_frames would follow a moved
 *    object. A handshake keeps walks and compaction apart: a walker counts itself in `walkers`
 *    and then checks `gc_active`; the GC enter hook sets `gc_active` and, when a compaction is
 *    possible, waits for `walkers` to drain (all seq_cst, so one of the two sees the other). Such
 *    samples keep their time as "[gc_compacting]". A non-compacting GC moves nothing, and the
 *    objects on a stack it marks stay alive: walks go on. */
#include <sched.h>


#include "orb.h"

#include <ruby/debug.h>

#ifdef ORB_HAVE_CURRENT_EC
/* libruby's own per-native-thread pointer to the running fiber's execution context (exported;
 * static TLS of a library loaded with the program, so reading it never allocates). */
extern __thread void *ruby_current_ec;
#define CURRENT_EC() ruby_current_ec
#else
#define CURRENT_EC() ((void *)0) /* start() refuses (orb_walk_supported) */
#endif /* ORB_HAVE_CURRENT_EC */

int orb_walk_supported(void) {
#ifdef ORB_HAVE_CURRENT_EC
    return 1;
#else
    return 0;
#endif /* ORB_HAVE_CURRENT_EC */
}

static void *gc_ec;            /* execution context of the thread running the GC, or NULL */
static int gc_active;          /* between GC enter and exit */
static int walkers;            /* handlers inside rb_profile_frames */
static int compaction_possible;
static VALUE tp_enter = Qnil, tp_exit = Qnil;

/* rb_profile_frames also reports the main thread's outermost frame, which never started (no pc,
 * line 0; Ruby's own backtraces skip it), as a second "<main>". Line 0 is otherwise only a C
 * method's, whose id is a method entry: frames of line 0 that are not are left out. A method
 * entry is recognised by its imemo type, checked against a known C method's at load time
 * (orb_walk_self_test); without a match nothing is left out. */
#define IMEMO_MENT 6 /* enum imemo_type in Ruby 3.1's internal/imemo.h */
static int skip_unstarted;

static int is_method_entry(VALUE v) {
    return !RB_SPECIAL_CONST_P(v) && RB_BUILTIN_TYPE(v) == RUBY_T_IMEMO &&
           ((RBASIC(v)->flags >> RUBY_FL_USHIFT) & 0x0f) == IMEMO_MENT;
}

void orb_walk_self_test(void) {
    /* Called from Init_otelprof_native, i.e. inside Kernel#require, whose frame is among the
     * newest few (after the frame Ruby pushes to run the extension's Init). */
    VALUE ids[4];
    int lines[4];
    int n = rb_profile_frames(0, 4, ids, lines);
    for (int i = 0; i < n; i++)
        if (lines[i] == 0 && is_method_entry(ids[i])) skip_unstarted = 1;
}

int orb_walk_skips_unstarted(void) {
    return skip_unstarted;
}

/* Lines are collected on the interrupted thread's stack (a fiber's may be small): up to this many
 * frames (max_depth 255); deeper configurations get frames without lines. */
#define LINES_MAX 256

int orb_walk(void *user, void *ucontext, otelprof_frame *out, int max) {
    (void)user, (void)ucontext;
    otelprof_thread_data td;
    if (otelprof_thread_data_self(&td) != 0 || td.tag != ORB_TAG_RUBY_THREAD) {
        ORB_COUNT(ORB_STAT_WALK_NO_THREAD);
        return 0;
    }
    orb_thread_apply_name(td.ptr);
    void *ec = CURRENT_EC();
    if (!ec) {
        ORB_COUNT(ORB_STAT_WALK_NO_EC);
        return 0;
    }
    if (max < 1) return 0;
    if (ec == __atomic_load_n(&gc_ec, __ATOMIC_SEQ_CST)) {
        out[0].id = ORB_FRAME_GC;
        out[0].aux = 0;
        out[0].kind = OTELPROF_FRAME_ADAPTER;
        ORB_COUNT(ORB_STAT_GC_SAMPLES);
        return 1;
    }
    __atomic_fetch_add(&walkers, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&gc_active, __ATOMIC_SEQ_CST) && __atomic_load_n(&compaction_possible, __ATOMIC_SEQ_CST)) {
        __atomic_fetch_sub(&walkers, 1, __ATOMIC_SEQ_CST);
        return OTELPROF_WALK_ERROR(ORB_WALK_ERR_GC_COMPACTING);
    }
    /* VALUEs go into the front of out (8 of the 16 bytes a frame takes) and are widened in
     * place from the back; lines go into a bounded array on the stack. */
    _Static_assert(sizeof(VALUE) * 2 <= sizeof(otelprof_frame), "in-place widening");
    VALUE *ids = (VALUE *)(void *)out;
    int lines[LINES_MAX];
    int with_lines = max <= LINES_MAX;
    int n = rb_profile_frames(0, max, ids, with_lines ? lines : NULL);
    __atomic_fetch_sub(&walkers, 1, __ATOMIC_SEQ_CST);
    if (n <= 0) {
        ORB_COUNT(ORB_STAT_WALK_EMPTY);
        return 0;
    }
    if (skip_unstarted && with_lines) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (lines[i] != 0 || is_method_entry(ids[i])) {
                ids[k] = ids[i];
                lines[k++] = lines[i];
            }
        n = k;
        if (n == 0) {
            ORB_COUNT(ORB_STAT_WALK_EMPTY);
            return 0;
        }
    }
    /* Read inside walk(): the frame-lifetime rule keeps each id while this epoch is held. */
    uint64_t epoch = otelprof_frames_epoch();
    for (int i = 0; i < n; i++)
        if (orb_frames_note(ids[i], epoch) < 0) return OTELPROF_WALK_ERROR(ORB_WALK_ERR_FRAME_TABLE_FULL);
    for (int i = n - 1; i >= 0; i--) {
        VALUE id = ids[i];
        out[i].id = (uint64_t)id;
        out[i].aux = with_lines ? lines[i] : 0;
        out[i].kind = OTELPROF_FRAME_ADAPTER;
    }
    ORB_COUNT(ORB_STAT_WALK_OK);
    return n;
}

/* GC hooks: on the thread that runs the GC, with the GVL, allocating nothing. */
static void on_gc_enter(VALUE tp, void *data) {
    (void)tp, (void)data;
    __atomic_store_n(&gc_ec, CURRENT_EC(), __ATOMIC_SEQ_CST);
    __atomic_store_n(&gc_active, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&compaction_possible, __ATOMIC_SEQ_CST))
        while (__atomic_load_n(&walkers, __ATOMIC_SEQ_CST)) sched_yield();
}

static void on_gc_exit(VALUE tp, void *data) {
    (void)tp, (void)data;
    __atomic_store_n(&gc_active, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&gc_ec, NULL, __ATOMIC_SEQ_CST);
}

void orb_gc_hooks_install(void) {
    if (!NIL_P(tp_enter)) return;
    tp_enter = rb_tracepoint_new(0, RUBY_INTERNAL_EVENT_GC_ENTER, on_gc_enter, NULL);
    rb_gc_register_address(&tp_enter);
    tp_exit = rb_tracepoint_new(0, RUBY_INTERNAL_EVENT_GC_EXIT, on_gc_exit, NULL);
    rb_gc_register_address(&tp_exit);
}

void orb_gc_hooks_enable(int on) {
    if (NIL_P(tp_enter)) return;
    if (on) {
        rb_tracepoint_enable(tp_enter);
        rb_tracepoint_enable(tp_exit);
    } else {
        rb_tracepoint_disable(tp_enter);
        rb_tracepoint_disable(tp_exit);
        on_gc_exit(Qnil, NULL);
    }
}

void orb_compaction_possible(int delta) {
    __atomic_add_fetch(&compaction_possible, delta, __ATOMIC_SEQ_CST);
}

void orb_walk_after_fork(void) {
    __atomic_store_n(&walkers, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&gc_active, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&gc_ec, NULL, __ATOMIC_SEQ_CST);
}
