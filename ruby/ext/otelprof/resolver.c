/* Names for captured frames, at a Ruby safe point (capture model b). At each profile close the
 * core asks for names (orb_resolve_requested, on the exporter thread) and waits up to 2 s; the
 * answer comes from otelprof_resolve_pending() on a thread that holds the GVL, where
 * rb_profile_frame_full_label and friends may allocate and raise.
 *
 * On Ruby 3.1 rb_postponed_job_register_one may only be called from a Ruby thread, and would run
 * the job only when that very thread reaches a safe point, so the requests go to a Ruby thread
 * of our own, "otelprof-resolver": it waits without the GVL and, woken, takes the GVL like any
 * other thread and resolves (it is never sampled; Puma is told it is fork-safe). On 3.3+ the
 * request also triggers a postponed job (any thread may trigger one), so a thread that holds the
 * GVL for long answers at its next safe point (HAVE_RB_POSTPONED_JOB_PREREGISTER, not exercised
 * on 3.1). stop and flush answer requests on their own thread while they wait (the core does
 * that): there resolve() takes the GVL with rb_thread_call_with_gvl when the caller released it.
 * A Ruby exception while naming is caught (rb_protect): the frame is shown "[unknown]" and
 * counted, and nothing longjmps through the core. */
#include <pthread.h>
#include <string.h>

#include "orb.h"

#include <ruby/debug.h>
#include <ruby/thread.h>

/* Exported by libruby (declared in no public header in 3.1). */
int ruby_thread_has_gvl_p(void);
int ruby_native_thread_p(void);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int requested, stopping, interrupted;
static VALUE resolver_thread = Qnil;

#ifdef HAVE_RB_POSTPONED_JOB_PREREGISTER
static rb_postponed_job_handle_t job = POSTPONED_JOB_HANDLE_INVALID;

static void resolve_job(void *data) {
    (void)data;
    otelprof_resolve_pending();
}
#endif /* HAVE_RB_POSTPONED_JOB_PREREGISTER */

/* Exporter thread: must not block (the lock is held only for a flag). */
void orb_resolve_requested(void *user) {
    (void)user;
    pthread_mutex_lock(&lock);
    requested = 1;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
#ifdef HAVE_RB_POSTPONED_JOB_PREREGISTER
    if (job != POSTPONED_JOB_HANDLE_INVALID) rb_postponed_job_trigger(job);
#endif /* HAVE_RB_POSTPONED_JOB_PREREGISTER */
}

enum { WOKEN_REQUEST, WOKEN_STOP, WOKEN_INTERRUPT };

/* Without the GVL. */
static void *wait_for_request(void *arg) {
    (void)arg;
    pthread_mutex_lock(&lock);
    while (!requested && !stopping && !interrupted) pthread_cond_wait(&cond, &lock);
    intptr_t why = stopping ? WOKEN_STOP : requested ? WOKEN_REQUEST : WOKEN_INTERRUPT;
    requested = 0;
    interrupted = 0;
    pthread_mutex_unlock(&lock);
    return (void *)why;
}

/* Ruby's unblocking function: the thread is being interrupted (kill, raise, exit). */
static void wake(void *arg) {
    (void)arg;
    pthread_mutex_lock(&lock);
    interrupted = 1;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
}

static VALUE resolver_main(void *arg) {
    (void)arg;
    orb_thread_exclude_current();
    for (;;) {
        intptr_t why = (intptr_t)rb_thread_call_without_gvl(wait_for_request, NULL, wake, NULL);
        if (why == WOKEN_STOP) break;
        if (why == WOKEN_REQUEST) {
            ORB_COUNT(ORB_STAT_RESOLVER_WAKEUPS);
            otelprof_resolve_pending();
        }
    }
    return Qnil;
}

int orb_resolver_start(void) {
    if (!NIL_P(resolver_thread) && RTEST(rb_funcall(resolver_thread, rb_intern("alive?"), 0))) return 0;
    static int registered;
    if (!registered) {
        rb_gc_register_address(&resolver_thread);
        registered = 1;
    }
    pthread_mutex_lock(&lock);
    stopping = requested = interrupted = 0;
    pthread_mutex_unlock(&lock);
    resolver_thread = rb_thread_create(resolver_main, NULL);
    if (NIL_P(resolver_thread)) return -1;
    rb_funcall(resolver_thread, rb_intern("name="), 1, rb_str_new_cstr("otelprof-resolver"));
    /* Puma (and others) warn about threads started before a fork unless marked like this. */
    rb_funcall(resolver_thread, rb_intern("thread_variable_set"), 2, ID2SYM(rb_intern("fork_safe")), Qtrue);
#ifdef HAVE_RB_POSTPONED_JOB_PREREGISTER
    if (job == POSTPONED_JOB_HANDLE_INVALID) job = rb_postponed_job_preregister(0, resolve_job, NULL);
#endif /* HAVE_RB_POSTPONED_JOB_PREREGISTER */
    return 0;
}

VALUE orb_resolver_thread(void) {
    return resolver_thread;
}

void orb_resolver_stop(void) {
    if (NIL_P(resolver_thread)) return;
    pthread_mutex_lock(&lock);
    stopping = 1;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
    VALUE th = resolver_thread;
    /* It ends at once unless it is naming frames; a thread that does not end is killed. */
    if (NIL_P(rb_funcall(th, rb_intern("join"), 1, DBL2NUM(5.0)))) rb_funcall(th, rb_intern("kill"), 0);
    resolver_thread = Qnil;
}

void orb_resolver_after_fork(void) {
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t fresh_cond = PTHREAD_COND_INITIALIZER;
    memcpy(&lock, &fresh, sizeof fresh);
    memcpy(&cond, &fresh_cond, sizeof fresh_cond);
    requested = stopping = interrupted = 0;
    resolver_thread = Qnil; /* only the forking thread lives on in the child */
}

/* ---- resolve() -------------------------------------------------------------------------------- */

typedef struct naming {
    const otelprof_frame *frame;
    otelprof_symbol *out;
    int rc;
} naming;

/* Per thread: the core copies the strings after resolve() returns, and by then another thread
 * may be naming (with the GVL this one gave back). */
static __thread char name_buf[512];
static __thread char file_buf[1024];

static void copy_str(char *dst, size_t cap, VALUE s) {
    long n = RSTRING_LEN(s) < (long)cap - 1 ? RSTRING_LEN(s) : (long)cap - 1;
    memcpy(dst, RSTRING_PTR(s), (size_t)n);
    dst[n] = 0;
}

static VALUE name_frame(VALUE arg) {
    naming *a = (naming *)arg;
    VALUE id = (VALUE)a->frame->id;
    VALUE label = rb_profile_frame_full_label(id);
    if (!RB_TYPE_P(label, T_STRING)) return Qnil;
    VALUE path = rb_profile_frame_absolute_path(id);
    if (!RB_TYPE_P(path, T_STRING)) path = rb_profile_frame_path(id);
    VALUE first = rb_profile_frame_first_lineno(id);
    copy_str(name_buf, sizeof name_buf, label);
    a->out->name = name_buf;
    if (RB_TYPE_P(path, T_STRING)) {
        copy_str(file_buf, sizeof file_buf, path);
        a->out->filename = file_buf;
    }
    a->out->line = a->frame->aux > 0 ? a->frame->aux : 0;
    a->out->start_line = FIXNUM_P(first) ? FIX2LONG(first) : 0;
    /* The id on this stack keeps the object alive and in place (the GC scans the C stack
     * conservatively) even if its slot is released meanwhile: a close whose 2 s wait ends while
     * this frame is being named lets its ids go, and the allocations above may run a GC. */
    RB_GC_GUARD(id);
    RB_GC_GUARD(label);
    RB_GC_GUARD(path);
    a->rc = 0;
    return Qnil;
}

/* With the GVL. */
static void *name_with_gvl(void *arg) {
    naming *a = arg;
    /* Held ids are live objects the GC has not moved (frame_table.c); anything else is not
     * touched. */
    if (!orb_frames_held((VALUE)a->frame->id)) {
        ORB_COUNT(ORB_STAT_FRAMES_REJECTED);
        return NULL;
    }
    int state = 0;
    rb_protect(name_frame, (VALUE)a, &state);
    if (state) {
        rb_set_errinfo(Qnil);
        ORB_COUNT(ORB_STAT_RESOLVE_ERRORS);
        a->rc = -1;
    } else if (a->rc == 0) {
        ORB_COUNT(ORB_STAT_RESOLVED);
    }
    return NULL;
}

int orb_resolve(void *user, const otelprof_frame *frame, otelprof_symbol *out) {
    (void)user;
    if (frame->id == ORB_FRAME_GC) {
        out->name = "(garbage collection)";
        return 0;
    }
    naming a = {frame, out, -1};
    if (ruby_thread_has_gvl_p()) name_with_gvl(&a);
    else if (ruby_native_thread_p()) rb_thread_call_with_gvl(name_with_gvl, &a);
    return a.rc;
}
