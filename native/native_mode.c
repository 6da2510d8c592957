/* Native mode: LD_PRELOAD=libotelprof.so profiles any program. A constructor starts the profiler
 * from the environment; pthread_create is interposed so every new thread registers itself and
 * unregisters as it ends. Active only when this library is in LD_PRELOAD or OTELPROF_AUTOSTART=1,
 * so programs that link it and call otelprof_start() themselves are left alone. */
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "op_log.h"
#include "otelprof/otelprof.h"

typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
typedef pid_t (*fork_fn)(void);

static int native_active;

static int wanted(void) {
    const char *a = getenv("OTELPROF_AUTOSTART");
    if (a && *a) return strcmp(a, "0") != 0 && strcmp(a, "false") != 0;
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "libotelprof") != NULL;
}

static void register_existing_threads(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) {
        otelprof_thread_register(otelprof_gettid());
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9') otelprof_thread_register((pid_t)atoi(e->d_name));
    closedir(d);
}

__attribute__((constructor)) static void native_mode_start(void) {
    if (!wanted()) return;
    otelprof_error rc = otelprof_start(NULL, NULL);
    if (rc == OTELPROF_EDISABLED) return;
    if (rc != OTELPROF_OK) {
        /* otelprof_start already said why in one line (invalid variable, no memory, ...). */
        return;
    }
    native_active = 1;
    register_existing_threads();
}

typedef struct trampoline_arg {
    void *(*fn)(void *);
    void *arg;
} trampoline_arg;

static void unregister_self(void *unused) {
    (void)unused;
    otelprof_thread_unregister(otelprof_gettid());
}

#if defined(__SANITIZE_ADDRESS__)
#include <stdint.h>
#include <sys/mman.h>
#include <sanitizer/asan_interface.h>
/* Under ASan its pthread_create interceptor calls through this wrapper, so the trampoline runs
 * before ASan's own thread start has cleared the new stack's shadow. In a fork child that stack
 * can be a reused one still carrying a dead parent thread's poison: clear it first.
 * __asan_unpoison_memory_region writes every shadow byte (1 MiB for an 8 MiB stack, resident
 * until the thread ends: 1 GB with 1,000 threads alive), so clear the whole shadow pages the way
 * ASan does for a new thread (given back to the kernel, they read as zero = addressable) and
 * write only the partial pages at the ends. */
__attribute__((no_sanitize_address)) static void clear_stale_stack_shadow(void) {
    pthread_attr_t a;
    void *addr;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &a) != 0) return;
    int ok = pthread_attr_getstack(&a, &addr, &size) == 0;
    pthread_attr_destroy(&a);
    if (!ok) return;
    size_t scale, off;
    __asan_get_shadow_mapping(&scale, &off);
    uintptr_t lo = (uintptr_t)addr, hi = lo + size, pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t sb = ((lo >> scale) + off + pg - 1) & ~(pg - 1), se = ((hi >> scale) + off) & ~(pg - 1);
    if (sb >= se) {
        __asan_unpoison_memory_region(addr, size);
        return;
    }
    uintptr_t mb = (sb - off) << scale, me = (se - off) << scale; /* memory that [sb, se) shadows */
    __asan_unpoison_memory_region(addr, mb - lo);
    __asan_unpoison_memory_region((void *)me, hi - me);
    if (madvise((void *)sb, se - sb, MADV_DONTNEED) != 0) __asan_unpoison_memory_region((void *)mb, me - mb);
}
#define SANITIZER_NO_ADDRESS __attribute__((no_sanitize_address))
#else
static void clear_stale_stack_shadow(void) {}
#define SANITIZER_NO_ADDRESS
#endif

SANITIZER_NO_ADDRESS static void *trampoline(void *p) {
    clear_stale_stack_shadow();
    trampoline_arg t = *(trampoline_arg *)p;
    free(p);
    /* A thread born with the profiling signal blocked (the profiler's own threads, or the host's choice) is
     * not sampled: queued signals would only pile up. */
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    if (!sigismember(&cur, otelprof_signal_number())) otelprof_thread_register(otelprof_gettid()); /* touches TLS too */
    void *ret;
    pthread_cleanup_push(unregister_self, NULL);
    ret = t.fn(t.arg);
    pthread_cleanup_pop(1);
    return ret;
}

OTELPROF_API int pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                                void *(*start_routine)(void *), void *arg) {
    static pthread_create_fn real;
    pthread_create_fn fn = __atomic_load_n(&real, __ATOMIC_ACQUIRE);
    if (!fn) {
        fn = (pthread_create_fn)dlsym(RTLD_NEXT, "pthread_create");
        __atomic_store_n(&real, fn, __ATOMIC_RELEASE);
    }
    if (!native_active || !otelprof_is_running()) return fn(thread, attr, start_routine, arg);
    trampoline_arg *t = malloc(sizeof(*t));
    if (!t) return fn(thread, attr, start_routine, arg);
    t->fn = start_routine;
    t->arg = arg;
    int rc = fn(thread, attr, trampoline, t);
    if (rc) free(t);
    return rc;
}

/* fork() is interposed so the child restarts profiling once fork() has returned: the core's
 * pthread_atfork handler only resets state, since threads must not be created inside fork().
 * Forks made inside libc itself (daemon(3)) are not seen; such children are not profiled. */
OTELPROF_API pid_t fork(void) {
    static fork_fn real;
    fork_fn fn = __atomic_load_n(&real, __ATOMIC_ACQUIRE);
    if (!fn) {
        fn = (fork_fn)dlsym(RTLD_NEXT, "fork");
        __atomic_store_n(&real, fn, __ATOMIC_RELEASE);
    }
    pid_t pid = fn();
    if (pid == 0) otelprof_after_fork();
    return pid;
}
