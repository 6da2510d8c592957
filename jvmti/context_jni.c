/* The JNI natives of the jar's io.otelprof.jvm.ContextBridge: the current OpenTelemetry span of a
 * Java thread as its OTEP 4947 record, platform threads through the core's otelprof_ctx_attach /
 * otelprof_ctx_detach, virtual threads through records of their own that follow them from carrier
 * to carrier (JVMTI thread-local storage and the VirtualThreadMount/Unmount extension events).
 *
 * The natives are bound with RegisterNatives, in whatever class loader loaded the bridge (the
 * application's, the OpenTelemetry Java agent's extension loader): when the agent calls
 * ojv_context_init at load, in the bridge's ClassPrepare event, and for a late attach in the
 * bridge classes already loaded. One entry point is also exported by its JNI name,
 * Java_io_otelprof_jvm_ContextBridge_ready0, which HotSpot finds in agent libraries for any
 * class loader: the bridge's first call then sets this file up and binds the rest, so spans are
 * published even by an agent that does not call ojv_context_init. */
#include <jni.h>
#include <jvmti.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ojv.h"
#include "otelprof/otelprof.h"

#define BRIDGE_CLASS_SIG "Lio/otelprof/jvm/ContextBridge;"
#define BRIDGE_PROTOCOL 1
#define FLAG_VIRTUAL 0x100 /* ContextBridge.VIRTUAL */

/* JDK 21's JVMTI, declared here so the agent builds against JDK 17's headers too. */
#define CTX_JVMTI_VERSION_21 0x30150000
#define CTX_EVENT_VIRTUAL_THREAD_END 88
#define CTX_MOUNT_EVENT "com.sun.hotspot.events.VirtualThreadMount"
#define CTX_UNMOUNT_EVENT "com.sun.hotspot.events.VirtualThreadUnmount"

/* Counters, in the order of Otelprof.stats()'s keys. */
enum {
    CTX_ATTACHED,         /* records published (platform and virtual threads) */
    CTX_DETACHED,         /* records restored at scope close */
    CTX_ATTACH_FAILED,    /* out of memory: the span was not published */
    CTX_DETACH_IGNORED,   /* a virtual thread's token not in its own stack (closed elsewhere) */
    CTX_VIRTUAL_ATTACHED, /* of CTX_ATTACHED, on virtual threads */
    CTX_MOUNTS,           /* virtual thread mounts seen */
    CTX_UNMOUNTS,
    CTX_VIRTUAL_FREED,    /* records left by virtual threads that ended inside a scope */
    CTX__COUNT
};
static uint64_t ctx_stats[CTX__COUNT];
#define CTX_INC(i) __atomic_fetch_add(&ctx_stats[i], 1, __ATOMIC_RELAXED)

static jvmtiEnv *ctx_jvmti;
/* Set once at init, before any native is bound: virtual threads get records of their own. */
static int vt_ready;

/* ---- publishing ------------------------------------------------------------------------------ */

/* Makes rec the calling (OS) thread's record. The fences order the record's bytes before the
 * pointer store, as a signal handler on this thread sees them; the core's own publish does the
 * same. */
static void publish(otel_thread_ctx_record_v1 *rec) {
    __atomic_signal_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&otel_thread_ctx_v1, rec, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static void ids_to_bytes(jlong hi, jlong lo, jlong span, uint8_t trace_id[16], uint8_t span_id[8]) {
    for (int i = 0; i < 8; i++) {
        trace_id[i] = (uint8_t)((uint64_t)hi >> (56 - 8 * i));
        trace_id[8 + i] = (uint8_t)((uint64_t)lo >> (56 - 8 * i));
        span_id[i] = (uint8_t)((uint64_t)span >> (56 - 8 * i));
    }
}

/* ---- virtual threads ------------------------------------------------------------------------
 * A virtual thread's spans are a stack of vrec. While it is mounted, its stack lives in carrier
 * thread-locals (tl_vt_top) and its top record is the carrier's record, so attach and detach make
 * no JVMTI call; at unmount the stack goes to the virtual thread's JVMTI thread-local storage (if
 * it changed) and the carrier gets back the record it had before the mount; the next mount, on
 * any carrier, takes it from there. A virtual thread runs a native method pinned to its carrier,
 * so attach and detach never race its own mount or unmount. */
typedef struct vrec {
    struct vrec *below;
    void *pad; /* keeps rec 16-aligned, as malloc'd records are */
    otel_thread_ctx_record_v1 rec;
} vrec;

static __thread int tl_vt_mounted;   /* a virtual thread's stack is in tl_vt_top */
static __thread vrec *tl_vt_top;
static __thread int tl_vt_dirty;     /* tl_vt_top changed since the mount */
static __thread otel_thread_ctx_record_v1 *tl_carrier_saved; /* the carrier's own record */

static vrec *vt_stored(jthread vthread) {
    void *p = NULL;
    if ((*ctx_jvmti)->GetThreadLocalStorage(ctx_jvmti, vthread, &p) != JVMTI_ERROR_NONE) return NULL;
    return p;
}

/* The carrier starts running vthread (NULL: the current thread, for one mounted before the
 * events were enabled, i.e. before a late attach). */
static void vt_enter(jthread vthread) {
    if (!tl_vt_mounted) {
        tl_carrier_saved = otel_thread_ctx_v1;
        tl_vt_mounted = 1;
    }
    tl_vt_top = vt_stored(vthread);
    tl_vt_dirty = 0;
    publish(tl_vt_top ? &tl_vt_top->rec : NULL);
}

static void vt_set_top(vrec *top) {
    tl_vt_top = top;
    tl_vt_dirty = 1;
    publish(top ? &top->rec : NULL);
}

static jlong vt_attach(const uint8_t trace_id[16], const uint8_t span_id[8], uint8_t flags) {
    vrec *n = malloc(sizeof *n);
    if (!n) {
        CTX_INC(CTX_ATTACH_FAILED);
        return 0;
    }
    memcpy(n->rec.trace_id, trace_id, 16);
    memcpy(n->rec.span_id, span_id, 8);
    n->rec.trace_flags = flags;
    n->rec.attrs_data_size = 0;
    n->rec.valid = 1;
    if (!tl_vt_mounted) vt_enter(NULL);
    n->below = tl_vt_top;
    vt_set_top(n);
    CTX_INC(CTX_ATTACHED);
    CTX_INC(CTX_VIRTUAL_ATTACHED);
    return (jlong)(uintptr_t)n;
}

/* Restores the record below token; tokens above it (scopes that ended without closing) go with
 * it, as the core does for platform threads. */
static void vt_detach(vrec *token) {
    if (!tl_vt_mounted) vt_enter(NULL);
    vrec *top = tl_vt_top, *h = top;
    while (h && h != token) h = h->below;
    if (!h) {
        CTX_INC(CTX_DETACH_IGNORED);
        return;
    }
    vt_set_top(token->below);
    for (;;) {
        vrec *next = top->below;
        free(top);
        if (top == token) break;
        top = next;
    }
    CTX_INC(CTX_DETACHED);
}

static void JNICALL on_vt_mount(jvmtiEnv *jvmti, ...) {
    va_list ap;
    va_start(ap, jvmti);
    (void)va_arg(ap, JNIEnv *);
    jthread vthread = va_arg(ap, jthread);
    va_end(ap);
    vt_enter(vthread);
    CTX_INC(CTX_MOUNTS);
}

static void JNICALL on_vt_unmount(jvmtiEnv *jvmti, ...) {
    va_list ap;
    va_start(ap, jvmti);
    (void)va_arg(ap, JNIEnv *);
    jthread vthread = va_arg(ap, jthread);
    va_end(ap);
    if (tl_vt_mounted) {
        if (tl_vt_dirty) (*ctx_jvmti)->SetThreadLocalStorage(ctx_jvmti, vthread, tl_vt_top);
        publish(tl_carrier_saved);
        tl_vt_mounted = 0;
        tl_vt_top = NULL;
        tl_vt_dirty = 0;
    }
    CTX_INC(CTX_UNMOUNTS);
}

/* A virtual thread that ends inside a scope leaves its records: free them. It is still mounted
 * then, so the carrier stops showing them first. */
static void JNICALL on_vt_end(jvmtiEnv *jvmti, JNIEnv *env, jthread vthread) {
    (void)env;
    vrec *h = tl_vt_mounted ? tl_vt_top : vt_stored(vthread);
    if (tl_vt_mounted) {
        publish(NULL);
        tl_vt_top = NULL;
        tl_vt_dirty = 0;
    }
    if (!h) return;
    (*jvmti)->SetThreadLocalStorage(jvmti, vthread, NULL);
    while (h) {
        vrec *next = h->below;
        free(h);
        CTX_INC(CTX_VIRTUAL_FREED);
        h = next;
    }
}

/* ---- the natives ----------------------------------------------------------------------------- */

static jint JNICALL n_ready(JNIEnv *env, jclass cls) {
    (void)env;
    (void)cls;
    return BRIDGE_PROTOCOL;
}

static jlong JNICALL n_attach(JNIEnv *env, jclass cls, jlong hi, jlong lo, jlong span, jint flags) {
    (void)env;
    (void)cls;
    uint8_t trace_id[16], span_id[8];
    ids_to_bytes(hi, lo, span, trace_id, span_id);
    if ((flags & FLAG_VIRTUAL) && vt_ready) return vt_attach(trace_id, span_id, (uint8_t)flags);
    void *token = otelprof_ctx_attach(trace_id, span_id, (uint8_t)flags, NULL, 0);
    if (!token) {
        CTX_INC(CTX_ATTACH_FAILED);
        return 0;
    }
    CTX_INC(CTX_ATTACHED);
    return (jlong)(uintptr_t)token;
}

static void JNICALL n_detach(JNIEnv *env, jclass cls, jlong token, jint flags) {
    (void)env;
    (void)cls;
    if (!token) return;
    if ((flags & FLAG_VIRTUAL) && vt_ready) {
        vt_detach((vrec *)(uintptr_t)token);
        return;
    }
    /* The core ignores (and logs at debug level) a token that is not this thread's. */
    otelprof_ctx_detach((void *)(uintptr_t)token);
    CTX_INC(CTX_DETACHED);
}

/* The calling thread's record as a sampler sees it now, as a W3C traceparent, or null. */
static jstring JNICALL n_current(JNIEnv *env, jclass cls) {
    (void)cls;
    const otel_thread_ctx_record_v1 *r = otel_thread_ctx_v1;
    static const uint8_t zero[16];
    if (!r || r->valid != 1 || memcmp(r->trace_id, zero, 16) == 0) return NULL;
    char s[56], *o = s;
    static const char hex[] = "0123456789abcdef";
    memcpy(o, "00-", 3);
    o += 3;
    for (int i = 0; i < 16; i++) *o++ = hex[r->trace_id[i] >> 4], *o++ = hex[r->trace_id[i] & 15];
    *o++ = '-';
    for (int i = 0; i < 8; i++) *o++ = hex[r->span_id[i] >> 4], *o++ = hex[r->span_id[i] & 15];
    *o++ = '-';
    *o++ = hex[r->trace_flags >> 4];
    *o++ = hex[r->trace_flags & 15];
    *o = 0;
    return (*env)->NewStringUTF(env, s);
}

static jlongArray JNICALL n_stats(JNIEnv *env, jclass cls) {
    (void)cls;
    jlong v[CTX__COUNT];
    for (int i = 0; i < CTX__COUNT; i++) v[i] = (jlong)__atomic_load_n(&ctx_stats[i], __ATOMIC_RELAXED);
    jlongArray out = (*env)->NewLongArray(env, CTX__COUNT);
    if (out) (*env)->SetLongArrayRegion(env, out, 0, CTX__COUNT, v);
    return out;
}

static JNINativeMethod bridge_methods[] = {
    {"ready0", "()I", (void *)n_ready},
    {"attach0", "(JJJI)J", (void *)n_attach},
    {"detach0", "(JI)V", (void *)n_detach},
    {"stats0", "()[J", (void *)n_stats},
    {"current0", "()Ljava/lang/String;", (void *)n_current},
};

/* ---- binding --------------------------------------------------------------------------------- */

static int is_bridge(jvmtiEnv *jvmti, jclass klass) {
    char *sig = NULL;
    if ((*jvmti)->GetClassSignature(jvmti, klass, &sig, NULL) != JVMTI_ERROR_NONE || !sig) return 0;
    int yes = strcmp(sig, BRIDGE_CLASS_SIG) == 0;
    (*jvmti)->Deallocate(jvmti, (unsigned char *)sig);
    return yes;
}

static int bind(JNIEnv *env, jclass klass) {
    if ((*env)->RegisterNatives(env, klass, bridge_methods,
                                (jint)(sizeof bridge_methods / sizeof bridge_methods[0])) == 0)
        return 0;
    (*env)->ExceptionClear(env);
    fprintf(stderr, "otelprof: could not bind the natives of io.otelprof.jvm.ContextBridge: spans"
                    " are not published\n");
    return -1;
}

static void JNICALL on_class_prepare(jvmtiEnv *jvmti, JNIEnv *env, jthread thread, jclass klass) {
    (void)thread;
    if (is_bridge(jvmti, klass)) bind(env, klass);
}

/* Late attach: bridge classes loaded before the agent found their natives missing and went
 * inactive; bind them now and switch them on (reading the field initializes the class, whose
 * probe then succeeds by itself). */
static void bind_loaded(JavaVM *vm) {
    JNIEnv *env = NULL;
    if ((*vm)->GetEnv(vm, (void **)&env, JNI_VERSION_1_6) != JNI_OK || !env) return;
    jint n = 0;
    jclass *classes = NULL;
    if ((*ctx_jvmti)->GetLoadedClasses(ctx_jvmti, &n, &classes) != JVMTI_ERROR_NONE) return;
    for (jint i = 0; i < n; i++) {
        if (is_bridge(ctx_jvmti, classes[i]) && bind(env, classes[i]) == 0) {
            jfieldID f = (*env)->GetStaticFieldID(env, classes[i], "active", "Z");
            if (f) (*env)->SetStaticBooleanField(env, classes[i], f, JNI_TRUE);
            (*env)->ExceptionClear(env);
        }
        (*env)->DeleteLocalRef(env, classes[i]);
    }
    (*ctx_jvmti)->Deallocate(ctx_jvmti, (unsigned char *)classes);
}

/* The capability bit after can_generate_sampled_object_alloc_events, which JDK 21's jvmti.h names
 * can_support_virtual_threads: found by position, since JDK 17's header has no name for it. */
static void set_virtual_threads_cap(jvmtiCapabilities *caps) {
    jvmtiCapabilities probe;
    memset(&probe, 0, sizeof probe);
    probe.can_generate_sampled_object_alloc_events = 1;
    const unsigned char *p = (const unsigned char *)&probe;
    for (size_t byte = 0; byte < sizeof probe; byte++) {
        for (int bit = 0; bit < 8; bit++) {
            if (p[byte] & (1u << bit)) {
                size_t next = byte * 8 + (size_t)bit + 1; /* GCC fills bit-fields from bit 0 up */
                ((unsigned char *)caps)[next / 8] |= (unsigned char)(1u << (next % 8));
                return;
            }
        }
    }
}

static int has_virtual_threads_cap(const jvmtiCapabilities *caps) {
    jvmtiCapabilities want;
    memset(&want, 0, sizeof want);
    set_virtual_threads_cap(&want);
    const unsigned char *a = (const unsigned char *)caps, *b = (const unsigned char *)&want;
    for (size_t i = 0; i < sizeof want; i++)
        if (b[i]) return (a[i] & b[i]) != 0;
    return 0;
}

/* JDK 21+: the capability, the mount/unmount extension events and VirtualThreadEnd. Returns 1 when
 * virtual threads get records of their own. */
static int init_virtual_threads(jvmtiEnv *jvmti) {
    jvmtiCapabilities pot;
    memset(&pot, 0, sizeof pot);
    if ((*jvmti)->GetPotentialCapabilities(jvmti, &pot) != JVMTI_ERROR_NONE || !has_virtual_threads_cap(&pot))
        return 0;
    jvmtiCapabilities caps;
    memset(&caps, 0, sizeof caps);
    set_virtual_threads_cap(&caps);
    if ((*jvmti)->AddCapabilities(jvmti, &caps) != JVMTI_ERROR_NONE) return 0;

    jint n = 0;
    jvmtiExtensionEventInfo *ev = NULL;
    if ((*jvmti)->GetExtensionEvents(jvmti, &n, &ev) != JVMTI_ERROR_NONE) return 0;
    jint mount = -1, unmount = -1;
    for (jint i = 0; i < n; i++) {
        /* Both take (JNIEnv *, jthread); check it, the callbacks read exactly that. */
        int shape = ev[i].param_count == 2 && ev[i].params[0].base_type == JVMTI_TYPE_JNIENV &&
                    ev[i].params[1].base_type == JVMTI_TYPE_JTHREAD;
        if (shape && strcmp(ev[i].id, CTX_MOUNT_EVENT) == 0) mount = ev[i].extension_event_index;
        if (shape && strcmp(ev[i].id, CTX_UNMOUNT_EVENT) == 0) unmount = ev[i].extension_event_index;
    }
    /* The info's strings and parameter arrays are JVMTI allocations too; a one-time leak of a few
     * hundred bytes is simpler than freeing each. */
    (*jvmti)->Deallocate(jvmti, (unsigned char *)ev);
    if (mount < 0 || unmount < 0) return 0;
    if ((*jvmti)->SetExtensionEventCallback(jvmti, mount, (jvmtiExtensionEvent)on_vt_mount) != JVMTI_ERROR_NONE)
        return 0;
    if ((*jvmti)->SetExtensionEventCallback(jvmti, unmount, (jvmtiExtensionEvent)on_vt_unmount) !=
        JVMTI_ERROR_NONE) {
        (*jvmti)->SetExtensionEventCallback(jvmti, mount, NULL);
        return 0;
    }
    (*jvmti)->SetEventNotificationMode(jvmti, JVMTI_ENABLE, (jvmtiEvent)mount, NULL);
    (*jvmti)->SetEventNotificationMode(jvmti, JVMTI_ENABLE, (jvmtiEvent)unmount, NULL);
    (*jvmti)->SetEventNotificationMode(jvmti, JVMTI_ENABLE, (jvmtiEvent)CTX_EVENT_VIRTUAL_THREAD_END, NULL);
    return 1;
}

/* JDK 17's callback table ends at SampledObjectAlloc (86); JDK 21 adds VirtualThreadStart (87)
 * and VirtualThreadEnd (88) after it. */
typedef struct ctx_callbacks {
    jvmtiEventCallbacks base;
    void *virtual_thread_start;
    void (JNICALL *virtual_thread_end)(jvmtiEnv *, JNIEnv *, jthread);
} ctx_callbacks;

static pthread_mutex_t setup_mu = PTHREAD_MUTEX_INITIALIZER;

/* Takes this file's JVMTI environment, once: 1 when there is one. */
static int setup(JavaVM *vm) {
    pthread_mutex_lock(&setup_mu);
    if (ctx_jvmti) {
        pthread_mutex_unlock(&setup_mu);
        return 1;
    }
    jvmtiEnv *jvmti = NULL;
    int v21 = (*vm)->GetEnv(vm, (void **)&jvmti, CTX_JVMTI_VERSION_21) == JNI_OK;
    if (!v21 && (*vm)->GetEnv(vm, (void **)&jvmti, JVMTI_VERSION_1_2) != JNI_OK) {
        pthread_mutex_unlock(&setup_mu);
        fprintf(stderr, "otelprof: no JVMTI environment for the span bridge: spans are not published\n");
        return 0;
    }
    vt_ready = v21 && init_virtual_threads(jvmti);

    ctx_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.base.ClassPrepare = on_class_prepare;
    cb.virtual_thread_end = on_vt_end;
    (*jvmti)->SetEventCallbacks(jvmti, &cb.base, (jint)(vt_ready ? sizeof cb : sizeof cb.base));
    (*jvmti)->SetEventNotificationMode(jvmti, JVMTI_ENABLE, JVMTI_EVENT_CLASS_PREPARE, NULL);
    __atomic_store_n(&ctx_jvmti, jvmti, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&setup_mu);
    return 1;
}

void ojv_context_init(JavaVM *vm, jvmtiEnv *agent_jvmti) {
    (void)agent_jvmti;
    if (!setup(vm)) return;
    jvmtiPhase phase = JVMTI_PHASE_ONLOAD;
    (*ctx_jvmti)->GetPhase(ctx_jvmti, &phase);
    if (phase == JVMTI_PHASE_LIVE) bind_loaded(vm);
}

/* Found by name when nothing bound the bridge before its first call (see the top of the file):
 * sets up, binds every native of the calling class (this one included, so later calls go
 * straight to n_ready) and answers as n_ready does. */
JNIEXPORT jint JNICALL Java_io_otelprof_jvm_ContextBridge_ready0(JNIEnv *env, jclass cls) {
    JavaVM *vm = NULL;
    if ((*env)->GetJavaVM(env, &vm) != 0 || !setup(vm)) return 0;
    return bind(env, cls) == 0 ? BRIDGE_PROTOCOL : 0;
}
