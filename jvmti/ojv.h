/* The JVM agent's internal interface (prefix ojv_): the adapter on the kit (agent.c), options
 * (options.c), HotSpot's exported layout tables (vmstructs.c), Java threads (threads.c), method id
 * preallocation (methods.c), the signal-context walk (walk.c), its crash guard (crash_guard.c) and
 * frame names (resolve.c). */
#ifndef OJV_H
#define OJV_H

#include <jni.h>
#include <jvmti.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "otelprof/otelprof.h"
#include "op_log.h" /* one line on stderr per message; the agent writes nothing to stdout */

/* ---- agent.c: the VM and the one JVMTI environment of the agent ------------------------------ */
extern JavaVM *ojv_vm;
extern jvmtiEnv *ojv_jvmti;

/* ---- counters (the adapter's self-metrics, see otelprof_adapter.counters) -------------------- */
enum {
    OJV_STAT_WALK_OK,          /* AsyncGetCallTrace returned frames */
    OJV_STAT_NO_THREAD_DATA,   /* a signal on a thread without adapter data: dropped */
    OJV_STAT_THREAD_MISMATCH,  /* the data's stack is not the interrupted thread's: dropped */
    OJV_STAT_THREADS_STARTED,  /* threads registered at ThreadStart */
    OJV_STAT_THREADS_SCANNED,  /* already running threads registered at start */
    OJV_STAT_THREADS_REFUSED,  /* registrations the core refused (full, not running) */
    OJV_STAT_CLASSES_PREPARED, /* classes whose method ids were allocated */
    OJV_STAT_RESOLVED,         /* frames named */
    OJV_STAT_RESOLVE_INVALID,  /* method ids no longer valid (class unloaded): [unknown] */
    OJV_STAT_NATIVE_MERGED,    /* samples with native frames put leaf-side of the Java frames */
    OJV_STAT__COUNT
};
extern uint64_t ojv_stats[OJV_STAT__COUNT];
#define OJV_STAT_INC(i) __atomic_fetch_add(&ojv_stats[i], 1, __ATOMIC_RELAXED)

/* ---- options.c ------------------------------------------------------------------------------ */
/* Applies the -agentpath options string ("key=value,key=value"; a list value such as
 * formats=otlp,pprof or resource_attributes=a=b,c=d continues past its commas) on top of cfg.
 * On error writes one line naming the option and the accepted form into err and returns -1. */
int ojv_options_apply(otelprof_config *cfg, const char *options, char *err, size_t errlen);

/* ---- vmstructs.c: HotSpot's gHotSpotVMStructs / gHotSpotVMTypes ------------------------------ */
/* Reads the tables once; returns 0 when everything the thread scan needs was found. */
int ojv_vmstructs_init(void);
/* The OS tid of a live JavaThread* (java.lang.Thread.eetop); -1 when unknown. */
pid_t ojv_vm_thread_tid(const void *java_thread);
/* The [lo, hi) stack of a live JavaThread*; -1 when unknown. */
int ojv_vm_thread_stack(const void *java_thread, uintptr_t *lo, uintptr_t *hi);
/* A boolean VM flag (-XX:...): 0 or 1, -1 when not found. */
int ojv_vm_flag(const char *name);
/* SIGNAL CONTEXT (AS-safe): 1 when pc lies in the code cache (interpreter, stubs, compiled
 * code), 0 when not, -1 when the bounds are unknown. */
int ojv_in_code_cache(uintptr_t pc);

/* ---- threads.c ------------------------------------------------------------------------------ */
/* What walk() reads for a thread (the core's adapter data ptr): its JNIEnv* for
 * AsyncGetCallTrace, its stack (to tell a reused tid), its Java name. */
typedef struct ojv_thread {
    JNIEnv *env;
    uintptr_t stack_lo, stack_hi;
    int named;      /* the name was given to the core on this thread (otelprof_thread_set_name) */
    char name[32];
} ojv_thread;
#define OJV_TAG_STARTED 1u /* registered by the thread itself */
#define OJV_TAG_SCANNED 2u /* registered at start by another thread (late attach, VM threads) */

void JNICALL ojv_on_thread_start(jvmtiEnv *jvmti, JNIEnv *env, jthread thread);
void JNICALL ojv_on_thread_end(jvmtiEnv *jvmti, JNIEnv *env, jthread thread);
/* Registers the calling thread and every Java thread already running (from the calling thread). */
void ojv_threads_register_running(JNIEnv *env, jobject skip);

/* ---- methods.c ------------------------------------------------------------------------------ */
void JNICALL ojv_on_class_load(jvmtiEnv *jvmti, JNIEnv *env, jthread thread, jclass klass);
void JNICALL ojv_on_class_prepare(jvmtiEnv *jvmti, JNIEnv *env, jthread thread, jclass klass);
/* Allocates the method ids of every class loaded so far. */
void ojv_methods_preallocate(JNIEnv *env);

/* ---- walk.c (SIGNAL CONTEXT) ---------------------------------------------------------------- */
/* Walk error causes, the adapter's walk_errors labels. */
enum {
    OJV_ERR_NO_JAVA_FRAME,
    OJV_ERR_NO_CLASS_LOAD,
    OJV_ERR_GC_ACTIVE,
    OJV_ERR_UNKNOWN_NOT_JAVA,
    OJV_ERR_NOT_WALKABLE_NOT_JAVA,
    OJV_ERR_UNKNOWN_JAVA,
    OJV_ERR_NOT_WALKABLE_JAVA,
    OJV_ERR_UNKNOWN_STATE,
    OJV_ERR_THREAD_EXIT,
    OJV_ERR_DEOPT,
    OJV_ERR_SAFEPOINT,
    OJV_ERR_WALK_FAULT,
    OJV_ERR__COUNT
};
extern const char *const ojv_walk_errors[OJV_ERR__COUNT];
/* Looks up AsyncGetCallTrace; -1 when libjvm does not export it. */
int ojv_walk_init(int merge_native);
int ojv_walk(void *user, void *ucontext, otelprof_frame *out, int max);

/* ---- crash_guard.c -------------------------------------------------------------------------- */
/* Puts the guard in front of the VM's SIGSEGV and SIGBUS handlers; returns 1 when installed,
 * 0 when left off (the reason is logged at info level). */
int ojv_guard_install(void);
void ojv_guard_remove(void);
/* AS-safe: 1 while the guard is installed. */
int ojv_guard_active(void);
/* SIGNAL CONTEXT: the calling thread's walk is guarded by jb until ojv_guard_leave(). A fault
 * meanwhile siglongjmps to jb (with 1) after restoring the interrupted signal mask. */
void ojv_guard_enter(sigjmp_buf *jb);
void ojv_guard_leave(void);

/* ---- resolve.c ------------------------------------------------------------------------------ */
int ojv_resolve(void *user, const otelprof_frame *frame, otelprof_symbol *out);
void ojv_resolve_requested(void *user);
/* Starts the "otelprof-resolve" agent thread; *thread_ref gets its java.lang.Thread (a global
 * reference) so ThreadStart can leave it unregistered. Returns 0 or -1. */
int ojv_resolver_start(JNIEnv *env);
void ojv_resolver_stop(void);
/* The resolver's java.lang.Thread (a global reference) or NULL. */
extern jobject ojv_resolver_thread;
/* Java names from JVMTI forms, for tests too: "Lcom/example/Orders;" -> "com.example.Orders";
 * a hidden class's "/0x..." or ".0x..." suffix is dropped and "$$Lambda$12" becomes "$$Lambda". */
void ojv_class_name(const char *signature, char *out, size_t outlen);

/* context_jni.c: the span bridge's natives. Called once the VM is known (Agent_OnLoad, or
 * Agent_OnAttach for a late attach); takes a JVMTI environment of its own (the virtual thread
 * capability and its own callbacks) and binds bridge classes already loaded. Never fails the
 * agent: without what it needs the bridge stays unbound and the jar says so. */
void ojv_context_init(JavaVM *vm, jvmtiEnv *agent_jvmti);

#endif /* OJV_H */
