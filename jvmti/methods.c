/* Method ids allocated before any sample needs them: AsyncGetCallTrace cannot allocate a
 * jmethodID in a signal handler, so a frame of a method without one comes back with a null id.
 * GetClassMethods allocates the ids of a class's methods; it runs for every class at ClassPrepare
 * and, at start, for every class already loaded. ClassLoad is enabled too: AsyncGetCallTrace
 * refuses to walk (ticks_no_class_load) unless some agent listens to it. */
#include "ojv.h"

static void allocate_ids(jvmtiEnv *jvmti, jclass klass) {
    jint n = 0;
    jmethodID *methods = NULL;
    /* Not yet prepared classes answer JVMTI_ERROR_CLASS_NOT_PREPARED: their ClassPrepare comes. */
    if ((*jvmti)->GetClassMethods(jvmti, klass, &n, &methods) == JVMTI_ERROR_NONE) {
        OJV_STAT_INC(OJV_STAT_CLASSES_PREPARED);
        (*jvmti)->Deallocate(jvmti, (unsigned char *)methods);
    }
}

void JNICALL ojv_on_class_load(jvmtiEnv *jvmti, JNIEnv *env, jthread thread, jclass klass) {
    (void)jvmti, (void)env, (void)thread, (void)klass;
}

void JNICALL ojv_on_class_prepare(jvmtiEnv *jvmti, JNIEnv *env, jthread thread, jclass klass) {
    (void)env, (void)thread;
    allocate_ids(jvmti, klass);
}

void ojv_methods_preallocate(JNIEnv *env) {
    jint n = 0;
    jclass *classes = NULL;
    if ((*ojv_jvmti)->GetLoadedClasses(ojv_jvmti, &n, &classes) != JVMTI_ERROR_NONE) return;
    /* GetLoadedClasses made one local reference per class: declare them, or -Xcheck:jni warns
     * at our next JNI call that the local frame exceeds its capacity. */
    (*env)->EnsureLocalCapacity(env, n + 16);
    for (jint i = 0; i < n; i++) {
        allocate_ids(ojv_jvmti, classes[i]);
        (*env)->DeleteLocalRef(env, classes[i]);
    }
    (*ojv_jvmti)->Deallocate(ojv_jvmti, (unsigned char *)classes);
}
