/* Ruby threads as the core's sampled threads. Every Ruby thread of 3.1 is a native thread of its
 * own: a THREAD_BEGIN tracepoint registers each new one on itself (so its CPU timer starts there)
 * and THREAD_END unregisters it before it leaves; threads already running at start are
 * registered from the starting thread by Thread#native_thread_id. Each carries a small record as
 * its adapter data, tagged ORB_TAG_RUBY_THREAD: walk() samples only threads that have one.
 *
 * thread.name is the Ruby thread's name (Thread.main's: "main"). Ruby itself names the OS thread
 * after it (cut to 15 bytes), so the core's default already shows short names; a full name set
 * on the thread itself is passed to otelprof_thread_set_name, and one set from another thread is
 * left in the record, which walk() applies on the thread at its next sample (the name is only
 * settable by the thread that owns it). Records are changed with the GVL held; walk() reads the
 * name under a sequence number. */
#include <stdlib.h>
#include <string.h>

#include "orb.h"

#include <ruby/debug.h>

typedef struct orb_thread {
    char name[32];
    uint32_t seq;     /* odd while name is written */
    uint32_t applied; /* the seq walk() last applied (the thread's own) */
    struct orb_thread *next;
} orb_thread;

static orb_thread *all; /* every record, for freeing; changed with the GVL */
static size_t live;     /* records in all */
static VALUE tp_begin = Qnil, tp_end = Qnil;

static void set_name(orb_thread *t, const char *name) {
    __atomic_store_n(&t->seq, t->seq + 1, __ATOMIC_SEQ_CST);
    snprintf(t->name, sizeof t->name, "%s", name ? name : "");
    __atomic_store_n(&t->seq, t->seq + 1, __ATOMIC_SEQ_CST);
}

void orb_thread_apply_name(void *ptr) {
    orb_thread *t = ptr;
    uint32_t s = __atomic_load_n(&t->seq, __ATOMIC_SEQ_CST);
    if ((s & 1) || s == t->applied) return;
    char copy[sizeof t->name];
    memcpy(copy, t->name, sizeof copy);
    copy[sizeof copy - 1] = 0;
    if (__atomic_load_n(&t->seq, __ATOMIC_SEQ_CST) != s) return; /* torn: next sample */
    otelprof_thread_set_name(copy);
    t->applied = s;
}

static orb_thread *record_of(pid_t tid) {
    otelprof_thread_data d;
    if (otelprof_thread_data_get(tid, &d) != 0 || d.tag != ORB_TAG_RUBY_THREAD) return NULL;
    return d.ptr;
}

static void unlink_free(orb_thread *t) {
    for (orb_thread **p = &all; *p; p = &(*p)->next)
        if (*p == t) {
            *p = t->next;
            free(t);
            live--;
            return;
        }
}

static VALUE name_of(VALUE thread) {
    VALUE name = rb_funcall(thread, rb_intern("name"), 0);
    if (NIL_P(name) && thread == rb_thread_main()) name = rb_str_new_cstr("main");
    return RB_TYPE_P(name, T_STRING) ? name : Qnil;
}

/* Registers tid (a live Ruby thread) with a record named after thread. GVL. */
static void register_tid(pid_t tid, VALUE thread) {
    VALUE name = name_of(thread);
    const char *cname = NIL_P(name) ? NULL : StringValueCStr(name);
    int self = tid == otelprof_gettid();
    orb_thread *t = record_of(tid);
    if (t) {
        set_name(t, cname);
        if (self) {
            otelprof_thread_set_name(cname);
            t->applied = t->seq;
        }
        return;
    }
    t = calloc(1, sizeof *t);
    if (!t) return;
    set_name(t, cname);
    /* On the thread itself the name applies from its first sample. */
    if (self) {
        otelprof_thread_set_name(cname);
        t->applied = t->seq;
    }
    otelprof_thread_data d = {t, 0, ORB_TAG_RUBY_THREAD};
    otelprof_error rc = otelprof_thread_register_data(tid, &d, 0);
    if (rc != OTELPROF_OK) {
        if (rc == OTELPROF_EFULL) ORB_COUNT(ORB_STAT_THREADS_FULL);
        free(t);
        return;
    }
    t->next = all;
    all = t;
    live++;
    ORB_COUNT(ORB_STAT_THREADS_REGISTERED);
}

void orb_thread_register_current(void) {
    register_tid(otelprof_gettid(), rb_thread_current());
}

static void on_begin(VALUE tp, void *data) {
    (void)tp, (void)data;
    if (otelprof_is_running()) orb_thread_register_current();
}

static void on_end(VALUE tp, void *data) {
    (void)tp, (void)data;
    pid_t tid = otelprof_gettid();
    orb_thread *t = record_of(tid);
    otelprof_thread_unregister(tid);
    /* After the unregister no signal of ours reaches walk() here, and a handler that ran just
     * before it has returned: this is the same thread. */
    if (t) unlink_free(t);
}

void orb_thread_exclude_current(void) {
    on_end(Qnil, NULL);
}

void orb_threads_start(void) {
    if (NIL_P(tp_begin)) {
        tp_begin = rb_tracepoint_new(0, RUBY_EVENT_THREAD_BEGIN, on_begin, NULL);
        rb_gc_register_address(&tp_begin);
        tp_end = rb_tracepoint_new(0, RUBY_EVENT_THREAD_END, on_end, NULL);
        rb_gc_register_address(&tp_end);
    }
    rb_tracepoint_enable(tp_begin);
    rb_tracepoint_enable(tp_end);
    /* Threads already running (one that starts meanwhile passes through on_begin too and keeps
     * one record); not the resolver, which excludes itself when it starts. */
    VALUE list = rb_funcall(rb_cThread, rb_intern("list"), 0);
    ID native_id = rb_intern("native_thread_id");
    for (long i = 0; i < RARRAY_LEN(list); i++) {
        VALUE th = RARRAY_AREF(list, i);
        if (th == orb_resolver_thread() || !RTEST(rb_funcall(th, rb_intern("alive?"), 0))) continue;
        VALUE tid = rb_funcall(th, native_id, 0);
        if (FIXNUM_P(tid)) register_tid((pid_t)FIX2LONG(tid), th);
    }
}

void orb_threads_stop(void) {
    if (NIL_P(tp_begin)) return;
    rb_tracepoint_disable(tp_begin);
    rb_tracepoint_disable(tp_end);
}

/* After otelprof_stop (it removed every thread's data, and no handler runs any more). */
void orb_threads_free_all(void) {
    while (all) {
        orb_thread *t = all;
        all = t->next;
        free(t);
    }
    live = 0;
}

size_t orb_threads_live(void) {
    return live;
}

void orb_threads_after_fork(void) {
    /* Only the forking thread's record is still in use (the core moved its data to the child's
     * tid); the others belong to threads that do not exist here. */
    otelprof_thread_data self;
    orb_thread *keep = otelprof_thread_data_self(&self) == 0 && self.tag == ORB_TAG_RUBY_THREAD ? self.ptr : NULL;
    while (all) {
        orb_thread *t = all;
        all = t->next;
        if (t != keep) free(t);
    }
    live = 0;
    if (keep) {
        keep->next = NULL;
        all = keep;
        live = 1;
    }
}

void orb_thread_renamed(pid_t tid, const char *name) {
    orb_thread *t = record_of(tid);
    if (!t) return;
    set_name(t, name);
    if (tid == otelprof_gettid()) {
        otelprof_thread_set_name(name);
        t->applied = t->seq;
    }
}
