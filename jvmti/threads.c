/* Java threads and the core's registry. A thread registers itself at ThreadStart (on itself:
 * its JNIEnv*, its stack from pthread, its Java name) and unregisters at ThreadEnd. Threads that
 * were running before the agent started (late attach, the VM's own threads at VMInit) are
 * registered from the starting thread: java.lang.Thread.eetop is the JavaThread*, whose OS tid and
 * stack come from HotSpot's exported layout (vmstructs.c), and whose JNIEnv* lies at the same
 * offset from it as the starting thread's own.
 *
 * Tid reuse: a running thread that ends between being listed and being registered leaves a tid
 * that a new thread may take. The new thread's own ThreadStart replaces the stale entry; a
 * non-Java thread that took it is told apart in walk() by its stack (not the registered one), and
 * its samples are dropped and counted (thread_mismatch). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ojv.h"

static void copy_name(ojv_thread *t, const char *name) {
    strncpy(t->name, name ? name : "", sizeof t->name - 1);
    t->name[sizeof t->name - 1] = 0;
}

/* The Java name of thread, with the local references GetThreadInfo made released. */
static void java_name(JNIEnv *env, jthread thread, ojv_thread *t) {
    jvmtiThreadInfo info;
    memset(&info, 0, sizeof info);
    if ((*ojv_jvmti)->GetThreadInfo(ojv_jvmti, thread, &info) != JVMTI_ERROR_NONE) return;
    copy_name(t, info.name);
    (*ojv_jvmti)->Deallocate(ojv_jvmti, (unsigned char *)info.name);
    if (info.thread_group) (*env)->DeleteLocalRef(env, info.thread_group);
    if (info.context_class_loader) (*env)->DeleteLocalRef(env, info.context_class_loader);
}

/* Hands t to the core for tid; frees it when refused, and frees the entry it replaces (only
 * ever on the thread itself or for a tid whose thread ended: no walk can be reading it). */
static void register_data(pid_t tid, ojv_thread *t, unsigned tag) {
    otelprof_thread_data old, d = {t, t->stack_hi, tag};
    int had = otelprof_thread_data_get(tid, &old) == 0 && old.ptr;
    unsigned flags = tag == OJV_TAG_SCANNED ? OTELPROF_THREAD_IF_NEW : 0;
    otelprof_error rc = otelprof_thread_register_data(tid, &d, flags);
    if (rc == OTELPROF_OK) {
        OJV_STAT_INC(tag == OJV_TAG_SCANNED ? OJV_STAT_THREADS_SCANNED : OJV_STAT_THREADS_STARTED);
        if (had && old.ptr != t) free(old.ptr);
        return;
    }
    if (rc != OTELPROF_EEXIST) OJV_STAT_INC(OJV_STAT_THREADS_REFUSED);
    free(t);
}

static void register_self(JNIEnv *env, jthread thread) {
    ojv_thread *t = calloc(1, sizeof *t);
    if (!t) return;
    t->env = env;
    pthread_attr_t a;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        void *addr;
        size_t size;
        if (pthread_attr_getstack(&a, &addr, &size) == 0) {
            t->stack_lo = (uintptr_t)addr;
            t->stack_hi = (uintptr_t)addr + size;
        }
        pthread_attr_destroy(&a);
    }
    java_name(env, thread, t);
    otelprof_thread_set_name(t->name);
    t->named = 1;
    register_data(otelprof_gettid(), t, OJV_TAG_STARTED);
}

void JNICALL ojv_on_thread_start(jvmtiEnv *jvmti, JNIEnv *env, jthread thread) {
    (void)jvmti;
    if (!otelprof_is_running()) return;
    /* The resolver is the agent's own; it is never sampled. */
    if (ojv_resolver_thread && (*env)->IsSameObject(env, thread, ojv_resolver_thread)) return;
    register_self(env, thread);
}

void JNICALL ojv_on_thread_end(jvmtiEnv *jvmti, JNIEnv *env, jthread thread) {
    (void)jvmti, (void)env, (void)thread;
    pid_t tid = otelprof_gettid();
    otelprof_thread_data d;
    int had = otelprof_thread_data_get(tid, &d) == 0;
    otelprof_thread_unregister(tid);
    otelprof_thread_set_name(NULL);
    /* Unregistered on this very thread: no walk of it can still hold the data. */
    if (had) free(d.ptr);
}

void ojv_threads_register_running(JNIEnv *env, jobject skip) {
    jclass cls = (*env)->FindClass(env, "java/lang/Thread");
    jfieldID eetop = cls ? (*env)->GetFieldID(env, cls, "eetop", "J") : NULL;
    if ((*env)->ExceptionCheck(env)) (*env)->ExceptionClear(env);
    jthread self = NULL;
    (*ojv_jvmti)->GetCurrentThread(ojv_jvmti, &self);
    if (self) register_self(env, self);
    /* The JNIEnv of a thread is embedded in its JavaThread, at the same offset for all. */
    intptr_t self_jt = eetop && self ? (intptr_t)(*env)->GetLongField(env, self, eetop) : 0;
    intptr_t env_off = self_jt ? (intptr_t)env - self_jt : 0;
    int layout = ojv_vmstructs_init() == 0 && env_off > 0 && env_off < 65536;
    if (!layout)
        op_log_info("threads already running are not sampled: this VM's thread layout is unknown");
    jint n = 0;
    jthread *threads = NULL;
    if (layout && (*ojv_jvmti)->GetAllThreads(ojv_jvmti, &n, &threads) == JVMTI_ERROR_NONE) {
        /* One local reference per thread (see methods.c for why they are declared). */
        (*env)->EnsureLocalCapacity(env, n + 16);
        pid_t me = otelprof_gettid();
        for (jint i = 0; i < n; i++) {
            jthread th = threads[i];
            int ours = (skip && (*env)->IsSameObject(env, th, skip)) || (*env)->IsSameObject(env, th, self);
            const void *jt = ours ? NULL : (const void *)(intptr_t)(*env)->GetLongField(env, th, eetop);
            pid_t tid = ojv_vm_thread_tid(jt);
            ojv_thread *t = tid > 0 && tid != me ? calloc(1, sizeof *t) : NULL;
            if (t && ojv_vm_thread_stack(jt, &t->stack_lo, &t->stack_hi) == 0) {
                t->env = (JNIEnv *)((intptr_t)jt + env_off);
                java_name(env, th, t);
                register_data(tid, t, OJV_TAG_SCANNED);
            } else {
                free(t);
            }
            (*env)->DeleteLocalRef(env, th);
        }
        (*ojv_jvmti)->Deallocate(ojv_jvmti, (unsigned char *)threads);
    }
    if (self) (*env)->DeleteLocalRef(env, self);
    if (cls) (*env)->DeleteLocalRef(env, cls);
}
