/* Frame names, off the signal path. The core's resolve-on-adapter model: at each profile close
 * the exporter asks (ojv_resolve_requested) and the "otelprof-resolve" agent thread, a Java
 * thread attached to the VM, names the pending frames through JVMTI (otelprof_resolve_pending).
 * VMDeath's otelprof_stop() names the last profile's frames on its own (Java) thread.
 *
 * A frame {jmethodID, bci} becomes {"com.example.Orders.price", "Orders.java", line}. A method
 * id whose class was unloaded answers JVMTI_ERROR_INVALID_METHODID (HotSpot keeps the id's memory
 * and clears it), and the frame is shown as [unknown]. */
#include <semaphore.h>
#include <stdio.h>
#include <string.h>

#include "ojv.h"

jobject ojv_resolver_thread;
static sem_t wake;
static int stopping;

void ojv_class_name(const char *sig, char *out, size_t outlen) {
    if (!outlen) return;
    size_t n = strlen(sig);
    if (n >= 2 && sig[0] == 'L' && sig[n - 1] == ';') sig++, n -= 2;
    /* A hidden class: "Lp/C.0x...;" (JVMTI's form) or "p/C/0x..." (its name). */
    for (size_t i = n; i-- > 1;) {
        if ((sig[i - 1] == '.' || sig[i - 1] == '/') && sig[i] == '0' && i + 1 < n && sig[i + 1] == 'x') {
            n = i - 1;
            break;
        }
        if (sig[i] == '/' || sig[i] == '.') break;
    }
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < outlen; i++) {
        char c = sig[i] == '/' ? '.' : sig[i];
        out[o++] = c;
        /* "$$Lambda$12" -> "$$Lambda": the number changes from run to run (JDK 21+ has none). */
        if (o >= 8 && memcmp(out + o - 8, "$$Lambda", 8) == 0 && i + 1 < n && sig[i + 1] == '$') {
            size_t j = i + 2;
            while (j < n && sig[j] >= '0' && sig[j] <= '9') j++;
            if (j > i + 2) i = j - 1;
        }
    }
    out[o] = 0;
}

static jint line_of(jvmtiEnv *jvmti, jmethodID m, jint bci, jint *first) {
    jint n = 0, line = 0;
    jvmtiLineNumberEntry *t = NULL;
    *first = 0;
    if ((*jvmti)->GetLineNumberTable(jvmti, m, &n, &t) != JVMTI_ERROR_NONE) return 0;
    jlocation best = -1;
    for (jint i = 0; i < n; i++) {
        if (!*first || t[i].line_number < *first) *first = t[i].line_number;
        if (bci >= 0 && t[i].start_location <= bci && t[i].start_location > best) {
            best = t[i].start_location;
            line = t[i].line_number;
        }
    }
    (*jvmti)->Deallocate(jvmti, (unsigned char *)t);
    return line;
}

/* The strings of the last answer of each resolving thread (the core copies them after return). */
static __thread char tl_name[512], tl_file[256];

int ojv_resolve(void *user, const otelprof_frame *f, otelprof_symbol *out) {
    (void)user;
    jvmtiEnv *jvmti = ojv_jvmti;
    jmethodID m = (jmethodID)(uintptr_t)f->id;
    JNIEnv *env = NULL;
    if (!m || !ojv_vm || (*ojv_vm)->GetEnv(ojv_vm, (void **)&env, JNI_VERSION_1_6) != JNI_OK) return -1;
    char *mname = NULL;
    jclass cls = NULL;
    if ((*jvmti)->GetMethodName(jvmti, m, &mname, NULL, NULL) != JVMTI_ERROR_NONE ||
        (*jvmti)->GetMethodDeclaringClass(jvmti, m, &cls) != JVMTI_ERROR_NONE) {
        if (mname) (*jvmti)->Deallocate(jvmti, (unsigned char *)mname);
        OJV_STAT_INC(OJV_STAT_RESOLVE_INVALID);
        return -1;
    }
    char *csig = NULL, *src = NULL;
    char cname[400] = "";
    if ((*jvmti)->GetClassSignature(jvmti, cls, &csig, NULL) == JVMTI_ERROR_NONE && csig) {
        ojv_class_name(csig, cname, sizeof cname);
        (*jvmti)->Deallocate(jvmti, (unsigned char *)csig);
    }
    tl_file[0] = 0;
    if ((*jvmti)->GetSourceFileName(jvmti, cls, &src) == JVMTI_ERROR_NONE && src) {
        snprintf(tl_file, sizeof tl_file, "%s", src);
        (*jvmti)->Deallocate(jvmti, (unsigned char *)src);
    }
    (*env)->DeleteLocalRef(env, cls);
    snprintf(tl_name, sizeof tl_name, "%s%s%s", cname, *cname ? "." : "", mname);
    (*jvmti)->Deallocate(jvmti, (unsigned char *)mname);
    jint first = 0;
    memset(out, 0, sizeof *out);
    out->name = tl_name;
    out->filename = tl_file[0] ? tl_file : NULL;
    out->line = line_of(jvmti, m, f->aux, &first);
    out->start_line = first;
    OJV_STAT_INC(OJV_STAT_RESOLVED);
    return 0;
}

void ojv_resolve_requested(void *user) {
    (void)user;
    sem_post(&wake); /* never blocks */
}

static void JNICALL resolver_main(jvmtiEnv *jvmti, JNIEnv *env, void *arg) {
    (void)jvmti, (void)env, (void)arg;
    while (!__atomic_load_n(&stopping, __ATOMIC_ACQUIRE)) {
        if (sem_wait(&wake) != 0) continue;
        if (__atomic_load_n(&stopping, __ATOMIC_ACQUIRE)) break;
        otelprof_resolve_pending();
    }
}

int ojv_resolver_start(JNIEnv *env) {
    sem_init(&wake, 0, 0);
    __atomic_store_n(&stopping, 0, __ATOMIC_RELEASE);
    jclass cls = (*env)->FindClass(env, "java/lang/Thread");
    jmethodID init = cls ? (*env)->GetMethodID(env, cls, "<init>", "(Ljava/lang/String;)V") : NULL;
    jstring name = init ? (*env)->NewStringUTF(env, "otelprof-resolve") : NULL;
    jobject th = name ? (*env)->NewObject(env, cls, init, name) : NULL;
    if ((*env)->ExceptionCheck(env)) (*env)->ExceptionClear(env);
    if (th) ojv_resolver_thread = (*env)->NewGlobalRef(env, th);
    int rc = -1;
    if (ojv_resolver_thread &&
        (*ojv_jvmti)->RunAgentThread(ojv_jvmti, ojv_resolver_thread, resolver_main, NULL,
                                     JVMTI_THREAD_NORM_PRIORITY) == JVMTI_ERROR_NONE)
        rc = 0;
    if (th) (*env)->DeleteLocalRef(env, th);
    if (name) (*env)->DeleteLocalRef(env, name);
    if (cls) (*env)->DeleteLocalRef(env, cls);
    return rc;
}

/* The resolver ends by itself: it is a daemon thread, and the VM does not wait for it. */
void ojv_resolver_stop(void) {
    __atomic_store_n(&stopping, 1, __ATOMIC_RELEASE);
    sem_post(&wake);
}
