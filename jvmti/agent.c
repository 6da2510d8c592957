/* The JVM agent: -agentpath:libotelprof_jvmti.so=<options> (Agent_OnLoad) or
 * jcmd <pid> JVMTI.agent_load libotelprof_jvmti.so "<options>" (Agent_OnAttach). Glue between
 * JVMTI and the core: options, events, the adapter struct, start at VMInit (or at once when
 * attached), stop at VMDeath. The agent never fails the JVM: whatever goes wrong is one line on
 * stderr and the JVM runs on unprofiled. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ojv.h"
#include "op_config.h" /* native_frames, to decide whether walk() merges native frames */

JavaVM *ojv_vm;
jvmtiEnv *ojv_jvmti;
uint64_t ojv_stats[OJV_STAT__COUNT];

static const char *const counter_names[OJV_STAT__COUNT] = {
    [OJV_STAT_WALK_OK] = "walk_ok",
    [OJV_STAT_NO_THREAD_DATA] = "no_thread_data",
    [OJV_STAT_THREAD_MISMATCH] = "thread_mismatch",
    [OJV_STAT_THREADS_STARTED] = "threads_started",
    [OJV_STAT_THREADS_SCANNED] = "threads_scanned",
    [OJV_STAT_THREADS_REFUSED] = "threads_refused",
    [OJV_STAT_CLASSES_PREPARED] = "classes_prepared",
    [OJV_STAT_RESOLVED] = "frames_resolved",
    [OJV_STAT_RESOLVE_INVALID] = "frames_invalid",
    [OJV_STAT_NATIVE_MERGED] = "native_merged",
};
_Static_assert(OJV_STAT__COUNT <= OTELPROF_COUNTERS_MAX, "the core reports at most 32 counters");

static otelprof_config *pending_cfg; /* parsed at load, used at VMInit */

/* A line of our own before the core runs (its log level is not set yet): always shown. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    op_log_error("%s; the JVM runs unprofiled", msg);
}

static void JNICALL on_compiled_method_load(jvmtiEnv *jvmti, jmethodID m, jint size, const void *addr,
                                            jint map_len, const jvmtiAddrLocationMap *map,
                                            const void *compile_info) {
    /* Nothing to do: listening makes HotSpot record debug info at non-safepoints too
     * (DebugNonSafepoints), so compiled frames show the line running, not the next safepoint's. */
    (void)jvmti, (void)m, (void)size, (void)addr, (void)map_len, (void)map, (void)compile_info;
}

static void start(JNIEnv *env) {
    otelprof_config *cfg = pending_cfg;
    pending_cfg = NULL;
    if (!cfg) return;
    otelprof_adapter ad;
    memset(&ad, 0, sizeof ad);
    ad.name = "jvm";
    ad.frame_type = "jvm";
    ad.walk = ojv_walk;
    ad.resolve = ojv_resolve;
    ad.resolve_on = OTELPROF_RESOLVE_ON_ADAPTER;
    ad.resolve_requested = ojv_resolve_requested;
    ad.walk_errors = ojv_walk_errors;
    ad.nwalk_errors = OJV_ERR__COUNT;
    ad.counter_names = counter_names;
    ad.counters = ojv_stats;
    ad.ncounters = OJV_STAT__COUNT;
    ojv_vmstructs_init();
    int native = cfg->native_frames_set && cfg->native_frames;
    if (ojv_walk_init(native) != 0) {
        say("this JVM does not export AsyncGetCallTrace");
        otelprof_config_free(cfg);
        return;
    }
    /* With native frames, walk() puts them leaf-side of the Java frames itself. */
    ad.merges_native = native;
    otelprof_error rc = otelprof_start(cfg, &ad);
    otelprof_config_free(cfg);
    if (rc != OTELPROF_OK) return; /* disabled, or the core said why in one line */
    ojv_guard_install();
    ojv_methods_preallocate(env);
    if (ojv_resolver_start(env) != 0)
        op_log_warn("cannot start the otelprof-resolve thread: frames are named only at exit");
    ojv_threads_register_running(env, ojv_resolver_thread);
}

static void JNICALL on_vm_init(jvmtiEnv *jvmti, JNIEnv *env, jthread thread) {
    (void)jvmti, (void)thread;
    start(env);
}

/* The last profile is closed and written here; the JVM exits right after. */
static void JNICALL on_vm_death(jvmtiEnv *jvmti, JNIEnv *env) {
    (void)jvmti, (void)env;
    if (otelprof_is_running()) otelprof_stop();
    ojv_guard_remove();
    ojv_resolver_stop();
}

/* Parses the options and the environment; sets up JVMTI. 0 when profiling should start. */
static int init(JavaVM *vm, const char *options, int live) {
    if (ojv_jvmti || otelprof_is_running()) {
        op_log_warn("the agent is already loaded in this JVM; this load changes nothing");
        return -1;
    }
    ojv_vm = vm;
    otelprof_config *cfg = otelprof_config_new();
    char err[768] = "";
    if (!cfg) {
        say("out of memory");
        return -1;
    }
    if (otelprof_config_from_env(cfg, err, sizeof err) != OTELPROF_OK ||
        ojv_options_apply(cfg, options, err, sizeof err) != 0) {
        say("%s", err);
        otelprof_config_free(cfg);
        return -1;
    }
    if (cfg->disabled) {
        otelprof_config_free(cfg);
        return -1;
    }
    jvmtiEnv *jvmti = NULL;
    if ((*vm)->GetEnv(vm, (void **)&jvmti, JVMTI_VERSION_1_2) != JNI_OK || !jvmti) {
        say("JVMTI 1.2 is not available");
        otelprof_config_free(cfg);
        return -1;
    }
    jvmtiCapabilities caps;
    memset(&caps, 0, sizeof caps);
    caps.can_get_line_numbers = 1;
    caps.can_get_source_file_name = 1;
    caps.can_generate_compiled_method_load_events = 1;
    if ((*jvmti)->AddCapabilities(jvmti, &caps) != JVMTI_ERROR_NONE) {
        /* Names still work without lines and files; only DebugNonSafepoints is lost. */
        memset(&caps, 0, sizeof caps);
        caps.can_get_line_numbers = 1;
        caps.can_get_source_file_name = 1;
        (*jvmti)->AddCapabilities(jvmti, &caps);
    }
    jvmtiEventCallbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.VMInit = on_vm_init;
    cb.VMDeath = on_vm_death;
    cb.ThreadStart = ojv_on_thread_start;
    cb.ThreadEnd = ojv_on_thread_end;
    cb.ClassLoad = ojv_on_class_load;
    cb.ClassPrepare = ojv_on_class_prepare;
    cb.CompiledMethodLoad = on_compiled_method_load;
    (*jvmti)->SetEventCallbacks(jvmti, &cb, sizeof cb);
    static const jvmtiEvent events[] = {
        JVMTI_EVENT_VM_INIT, JVMTI_EVENT_VM_DEATH, JVMTI_EVENT_THREAD_START, JVMTI_EVENT_THREAD_END,
        JVMTI_EVENT_CLASS_LOAD, JVMTI_EVENT_CLASS_PREPARE, JVMTI_EVENT_COMPILED_METHOD_LOAD,
    };
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
        if (live && events[i] == JVMTI_EVENT_VM_INIT) continue;
        (*jvmti)->SetEventNotificationMode(jvmti, JVMTI_ENABLE, events[i], NULL);
    }
    ojv_jvmti = jvmti;
    pending_cfg = cfg;
    ojv_context_init(vm, jvmti);
    return 0;
}

JNIEXPORT jint JNICALL Agent_OnLoad(JavaVM *vm, char *options, void *reserved) {
    (void)reserved;
    init(vm, options, 0);
    return JNI_OK; /* never fail the JVM's start */
}

JNIEXPORT jint JNICALL Agent_OnAttach(JavaVM *vm, char *options, void *reserved) {
    (void)reserved;
    if (init(vm, options, 1) != 0) return JNI_OK;
    JNIEnv *env = NULL;
    if ((*vm)->GetEnv(vm, (void **)&env, JNI_VERSION_1_6) != JNI_OK || !env) {
        say("no JNIEnv on the attaching thread");
        return JNI_OK;
    }
    start(env);
    return JNI_OK;
}
