/* otelprof_native: the Ruby adapter's glue. Fills the core's adapter struct (capture model b:
 * frames captured in the handler, named on a Ruby thread), defines Otelprof::Native, which
 * ruby/lib/otelprof.rb builds the public API on, and turns core errors into exceptions. */
#include <string.h>

#include "orb.h"

#include <ruby/thread.h>

uint64_t orb_counters[ORB_STAT__COUNT];
const char *const orb_counter_names[ORB_STAT__COUNT] = {
    [ORB_STAT_WALK_OK] = "walk_ok",
    [ORB_STAT_WALK_NO_THREAD] = "walk_no_ruby_thread",
    [ORB_STAT_WALK_NO_EC] = "walk_no_execution_context",
    [ORB_STAT_WALK_EMPTY] = "walk_no_frames",
    [ORB_STAT_GC_SAMPLES] = "gc_samples",
    [ORB_STAT_FRAMES_NOTED] = "frames_noted",
    [ORB_STAT_FRAMES_RELEASED] = "frames_released",
    [ORB_STAT_FRAMES_REJECTED] = "frames_rejected",
    [ORB_STAT_RESOLVER_WAKEUPS] = "resolver_wakeups",
    [ORB_STAT_RESOLVED] = "frames_resolved",
    [ORB_STAT_RESOLVE_ERRORS] = "resolve_errors",
    [ORB_STAT_THREADS_REGISTERED] = "ruby_threads_registered",
    [ORB_STAT_THREADS_FULL] = "ruby_threads_full",
    [ORB_STAT_CTX_PUBLISHED] = "ctx_published",
};
_Static_assert(ORB_STAT__COUNT <= OTELPROF_COUNTERS_MAX, "the core reports at most OTELPROF_COUNTERS_MAX counters");

const char *const orb_walk_errors[ORB_WALK_ERR__COUNT] = {
    [ORB_WALK_ERR_GC_COMPACTING] = "gc_compacting",
    [ORB_WALK_ERR_FRAME_TABLE_FULL] = "frame_table_full",
};

static VALUE mOtelprof, mNative, eError;
static int vm_exiting; /* at_exit ran: no Ruby API may be called from the core's own exit path */

/* ---- the adapter ---------------------------------------------------------------------------- */

static void on_profile_closed(void *user) {
    (void)user;
    orb_frames_release_old(otelprof_frames_released());
}

/* In the fork child, on the only thread left, inside fork(): AS-safe work only. */
static void on_fork_child(void *user) {
    (void)user;
    orb_walk_after_fork();
    orb_resolver_after_fork();
}

static int guarded_resolve(void *user, const otelprof_frame *f, otelprof_symbol *out) {
    if (__atomic_load_n(&vm_exiting, __ATOMIC_ACQUIRE)) return -1;
    return orb_resolve(user, f, out);
}

/* ---- helpers -------------------------------------------------------------------------------- */

static void raise_core(otelprof_error rc, const char *err) {
    if (rc == OTELPROF_EINVAL) rb_raise(rb_eArgError, "otelprof: %s", err && *err ? err : otelprof_strerror(rc));
    rb_raise(eError, "otelprof: %s", err && *err ? err : otelprof_strerror(rc));
}

/* ---- Otelprof::Native ----------------------------------------------------------------------- */

typedef struct apply_args {
    otelprof_config *cfg;
    otelprof_error rc;
    char err[512];
} apply_args;

static int apply_option(VALUE key, VALUE value, VALUE arg) {
    apply_args *a = (apply_args *)arg;
    if (!RB_TYPE_P(key, T_STRING) || !RB_TYPE_P(value, T_STRING)) {
        snprintf(a->err, sizeof a->err, "options must be given as strings (lib/otelprof.rb converts them)");
        a->rc = OTELPROF_EINVAL;
        return ST_STOP;
    }
    a->rc = otelprof_config_set(a->cfg, StringValueCStr(key), StringValueCStr(value), a->err, sizeof a->err);
    return a->rc == OTELPROF_OK ? ST_CONTINUE : ST_STOP;
}

/* start(options: Hash[String, String]) -> true, or false when disabled by configuration. */
static VALUE n_start(VALUE self, VALUE opts) {
    (void)self;
    Check_Type(opts, T_HASH);
    if (vm_exiting) rb_raise(eError, "otelprof: the interpreter is exiting; not starting");
    if (!orb_walk_supported())
        rb_raise(eError, "otelprof: this Ruby does not export ruby_current_ec, which the frame walk needs; "
                         "profiling is off");
    if (otelprof_is_running()) raise_core(OTELPROF_ERUNNING, "already started");
    apply_args a = {otelprof_config_new(), OTELPROF_OK, ""};
    if (!a.cfg) rb_raise(rb_eNoMemError, "otelprof: out of memory");
    a.rc = otelprof_config_from_env(a.cfg, a.err, sizeof a.err);
    if (a.rc == OTELPROF_OK) rb_hash_foreach(opts, apply_option, (VALUE)&a);
    if (a.rc != OTELPROF_OK) {
        otelprof_config_free(a.cfg);
        raise_core(a.rc, a.err);
    }
    if (orb_frames_init() < 0) {
        otelprof_config_free(a.cfg);
        rb_raise(rb_eNoMemError, "otelprof: cannot map the frame table (%zu bytes)", orb_frames_bytes());
    }
    orb_frames_register_marker();
    orb_gc_hooks_install();
    otelprof_adapter ad;
    memset(&ad, 0, sizeof ad);
    ad.name = "ruby";
    ad.frame_type = "ruby";
    ad.walk = orb_walk;
    ad.resolve = guarded_resolve;
    ad.resolve_on = OTELPROF_RESOLVE_ON_ADAPTER;
    ad.resolve_requested = orb_resolve_requested;
    ad.profile_closed = on_profile_closed;
    ad.fork_child = on_fork_child;
    ad.walk_errors = orb_walk_errors;
    ad.nwalk_errors = ORB_WALK_ERR__COUNT;
    ad.counter_names = orb_counter_names;
    ad.counters = orb_counters;
    ad.ncounters = ORB_STAT__COUNT;
    ad.memory_bytes = orb_frames_bytes();
    orb_gc_hooks_enable(1);
    otelprof_error rc = otelprof_start(a.cfg, &ad);
    otelprof_config_free(a.cfg);
    if (rc != OTELPROF_OK) {
        orb_gc_hooks_enable(0);
        if (rc == OTELPROF_EDISABLED) return Qfalse;
        raise_core(rc, NULL);
    }
    if (orb_resolver_start() < 0) {
        otelprof_stop();
        orb_gc_hooks_enable(0);
        rb_raise(eError, "otelprof: cannot start the otelprof-resolver thread");
    }
    orb_threads_start();
    return Qtrue;
}

/* stop -> true when it was running. With the GVL held throughout: the final close's frames are
 * named right here (the core answers them on this thread), and no other thread can fork meanwhile
 * and wait for a lock the stop holds. */
static VALUE n_stop(VALUE self) {
    (void)self;
    orb_threads_stop();
    otelprof_error rc = otelprof_stop();
    orb_resolver_stop();
    orb_gc_hooks_enable(0);
    if (rc == OTELPROF_OK) {
        orb_frames_clear();
        orb_threads_free_all();
    }
    return rc == OTELPROF_OK ? Qtrue : Qfalse;
}

static void *flush_without_gvl(void *arg) {
    *(otelprof_error *)arg = otelprof_flush();
    return NULL;
}

/* flush -> true when a profile was written. The other threads run on meanwhile; the frames are
 * named by the resolver, or here (resolve() takes the GVL back for each). */
static VALUE n_flush(VALUE self) {
    (void)self;
    otelprof_error rc = OTELPROF_ESTOPPED;
    rb_thread_call_without_gvl(flush_without_gvl, &rc, RUBY_UBF_IO, NULL);
    return rc == OTELPROF_OK ? Qtrue : Qfalse;
}

static VALUE n_running(VALUE self) {
    (void)self;
    return otelprof_is_running() ? Qtrue : Qfalse;
}

static void put(VALUE h, const char *k, uint64_t v) {
    rb_hash_aset(h, ID2SYM(rb_intern(k)), ULL2NUM(v));
}

static VALUE n_stats(VALUE self) {
    (void)self;
    otelprof_stats st;
    otelprof_stats_get(&st);
    VALUE h = rb_hash_new();
    put(h, "samples_taken", st.samples_taken);
    put(h, "signals", st.signals);
    put(h, "timer_overruns", st.timer_overruns);
    put(h, "handler_ns_total", st.handler_ns_total);
    put(h, "handler_ns_max", st.handler_ns_max);
    put(h, "threads_registered", st.threads_registered);
    put(h, "profiles_written", st.profiles_written);
    put(h, "bytes_written", st.bytes_written);
    put(h, "memory_bytes", st.memory_bytes);
    put(h, "memory_cap_bytes", st.memory_cap_bytes);
    put(h, "export_attempts", st.export_attempts);
    put(h, "export_successes", st.export_successes);
    for (int i = 0; i < OTELPROF_DROP__COUNT; i++) {
        char k[64];
        snprintf(k, sizeof k, "dropped_%s", otelprof_drop_reason_name((otelprof_drop_reason)i));
        put(h, k, st.samples_dropped[i]);
    }
    for (int i = 0; i < ORB_WALK_ERR__COUNT; i++) {
        char k[64];
        snprintf(k, sizeof k, "walk_%s", orb_walk_errors[i]);
        put(h, k, st.walk_errors[i]);
    }
    for (int i = 0; i < ORB_STAT__COUNT; i++)
        put(h, orb_counter_names[i], __atomic_load_n(&orb_counters[i], __ATOMIC_RELAXED));
    put(h, "ruby_thread_records", orb_threads_live());
    return h;
}

/* thread_renamed(native_thread_id, name): Thread#name= was called. */
static VALUE n_thread_renamed(VALUE self, VALUE tid, VALUE name) {
    (void)self;
    if (!otelprof_is_running()) return Qnil;
    orb_thread_renamed((pid_t)NUM2INT(tid), NIL_P(name) ? NULL : StringValueCStr(name));
    return Qnil;
}

/* span_key(key): OpenTelemetry's CURRENT_SPAN_KEY, once it is loaded. */
static VALUE n_span_key(VALUE self, VALUE key) {
    (void)self;
    orb_span_set_key(key);
    return Qnil;
}

static VALUE n_publish_span(VALUE self) {
    (void)self;
    orb_span_publish_current();
    return Qnil;
}

/* compaction(delta): around GC.compact, and for GC.auto_compact= (see frame_walk.c). */
static VALUE n_compaction(VALUE self, VALUE delta) {
    (void)self;
    orb_compaction_possible(NUM2INT(delta));
    return Qnil;
}

/* before_fork: names the frames of a close in progress now, with the GVL this thread holds, so
 * the fork does not wait for a close that waits for a resolver that waits for the GVL. */
static VALUE n_before_fork(VALUE self) {
    (void)self;
    if (otelprof_is_running()) otelprof_resolve_pending();
    return Qnil;
}

/* after_fork_child: in the child, once fork has returned (Process._fork, Process.daemon). */
static VALUE n_after_fork_child(VALUE self) {
    (void)self;
    otelprof_after_fork();
    if (!otelprof_is_running()) return Qfalse;
    orb_threads_after_fork();
    orb_thread_register_current();
    if (orb_resolver_start() < 0) rb_warn("otelprof: cannot restart the otelprof-resolver thread in the child");
    return Qtrue;
}

static VALUE n_exec_prepare(VALUE self) {
    (void)self;
    otelprof_exec_prepare();
    return Qnil;
}

static VALUE n_exec_failed(VALUE self) {
    (void)self;
    otelprof_exec_failed();
    return Qnil;
}

/* vm_exiting: from the last at_exit handler, after the final stop. */
static VALUE n_vm_exiting(VALUE self) {
    (void)self;
    __atomic_store_n(&vm_exiting, 1, __ATOMIC_RELEASE);
    return Qnil;
}

static VALUE n_capabilities(VALUE self) {
    (void)self;
    VALUE h = rb_hash_new();
#ifdef HAVE_RB_POSTPONED_JOB_PREREGISTER
    rb_hash_aset(h, ID2SYM(rb_intern("postponed_job_trigger")), Qtrue);
#else
    rb_hash_aset(h, ID2SYM(rb_intern("postponed_job_trigger")), Qfalse);
#endif /* HAVE_RB_POSTPONED_JOB_PREREGISTER */
#ifdef HAVE_RB_PROFILE_THREAD_FRAMES
    rb_hash_aset(h, ID2SYM(rb_intern("profile_thread_frames")), Qtrue);
#else
    rb_hash_aset(h, ID2SYM(rb_intern("profile_thread_frames")), Qfalse);
#endif /* HAVE_RB_PROFILE_THREAD_FRAMES */
#ifdef HAVE_RB_INTERNAL_THREAD_ADD_EVENT_HOOK
    rb_hash_aset(h, ID2SYM(rb_intern("thread_event_hooks")), Qtrue);
#else
    rb_hash_aset(h, ID2SYM(rb_intern("thread_event_hooks")), Qfalse);
#endif /* HAVE_RB_INTERNAL_THREAD_ADD_EVENT_HOOK */
    /* The load-time self test of frame_walk.c passed: unstarted frames are left out. */
    rb_hash_aset(h, ID2SYM(rb_intern("skips_unstarted_frames")), orb_walk_skips_unstarted() ? Qtrue : Qfalse);
    return h;
}

RUBY_FUNC_EXPORTED void Init_otelprof_native(void) {
    orb_walk_self_test();
    mOtelprof = rb_define_module("Otelprof");
    eError = rb_define_class_under(mOtelprof, "Error", rb_eStandardError);
    mNative = rb_define_module_under(mOtelprof, "Native");
    rb_define_module_function(mNative, "start", n_start, 1);
    rb_define_module_function(mNative, "stop", n_stop, 0);
    rb_define_module_function(mNative, "flush", n_flush, 0);
    rb_define_module_function(mNative, "running?", n_running, 0);
    rb_define_module_function(mNative, "stats", n_stats, 0);
    rb_define_module_function(mNative, "thread_renamed", n_thread_renamed, 2);
    rb_define_module_function(mNative, "span_key", n_span_key, 1);
    rb_define_module_function(mNative, "publish_span", n_publish_span, 0);
    rb_define_module_function(mNative, "compaction", n_compaction, 1);
    rb_define_module_function(mNative, "before_fork", n_before_fork, 0);
    rb_define_module_function(mNative, "after_fork_child", n_after_fork_child, 0);
    rb_define_module_function(mNative, "exec_prepare", n_exec_prepare, 0);
    rb_define_module_function(mNative, "exec_failed", n_exec_failed, 0);
    rb_define_module_function(mNative, "vm_exiting", n_vm_exiting, 0);
    rb_define_module_function(mNative, "capabilities", n_capabilities, 0);
}
