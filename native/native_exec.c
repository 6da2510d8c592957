/* Native mode: the exec family is interposed so that no profiling signal is pending when the new
 * image starts (its default action for the signal is to terminate): otelprof_exec_prepare()
 * before the real call, otelprof_exec_failed() if it returns. glibc's own variants reach the
 * kernel through internal calls a wrapper cannot see, so each entry point is wrapped; the l-forms
 * gather their arguments and go through the v-forms. posix_spawn, system and popen need nothing:
 * their child is a new vfork-style process no profiling signal is ever sent to.
 *
 * Like native_mode.c this is part of the LD_PRELOAD-able shared library only. */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>

#include "otelprof/otelprof.h"

typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*execv_fn)(const char *, char *const[]);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);

static void *next(const char *name, void **cache) {
    void *fn = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
    if (!fn) {
        fn = dlsym(RTLD_NEXT, name);
        __atomic_store_n(cache, fn, __ATOMIC_RELEASE);
    }
    return fn;
}

/* exec returned: it failed; profiling resumes on this thread, errno kept for the caller. */
static int failed(int rc) {
    int e = errno;
    otelprof_exec_failed();
    errno = e;
    return rc;
}

static void *cache_execve, *cache_execv, *cache_execvp, *cache_execvpe, *cache_fexecve;

/* Resolved up front: a vfork() child calling exec must not run the loader in the parent's memory. */
__attribute__((constructor)) static void resolve_all(void) {
    next("execve", &cache_execve);
    next("execv", &cache_execv);
    next("execvp", &cache_execvp);
    next("execvpe", &cache_execvpe);
    next("fexecve", &cache_fexecve);
}

#define NEXT(type, name) type fn = (type)next(#name, &cache_##name); \
    if (!fn) { errno = ENOSYS; return -1; }

OTELPROF_API int execve(const char *path, char *const argv[], char *const envp[]) {
    NEXT(execve_fn, execve);
    otelprof_exec_prepare();
    return failed(fn(path, argv, envp));
}

OTELPROF_API int execv(const char *path, char *const argv[]) {
    NEXT(execv_fn, execv);
    otelprof_exec_prepare();
    return failed(fn(path, argv));
}

OTELPROF_API int execvp(const char *file, char *const argv[]) {
    NEXT(execv_fn, execvp);
    otelprof_exec_prepare();
    return failed(fn(file, argv));
}

OTELPROF_API int execvpe(const char *file, char *const argv[], char *const envp[]) {
    NEXT(execve_fn, execvpe);
    otelprof_exec_prepare();
    return failed(fn(file, argv, envp));
}

OTELPROF_API int fexecve(int fd, char *const argv[], char *const envp[]) {
    NEXT(fexecve_fn, fexecve);
    otelprof_exec_prepare();
    return failed(fn(fd, argv, envp));
}

/* The l-forms: arguments (and for execle the environment after the NULL) into an array on the
 * stack, as glibc does (which also takes the first argument as present), then the v-form wrapper. */
#define GATHER(arg0, last)                                       \
    va_list ap;                                                  \
    va_start(ap, last);                                          \
    size_t n = 1;                                                \
    while (va_arg(ap, const char *)) n++;                        \
    va_end(ap);                                                  \
    char *argv[n + 1];                                           \
    argv[0] = (char *)(arg0);                                    \
    va_start(ap, last);                                          \
    for (size_t i = 1; i <= n; i++) argv[i] = va_arg(ap, char *)

OTELPROF_API int execl(const char *path, const char *arg, ...) {
    GATHER(arg, arg);
    va_end(ap);
    return execv(path, argv);
}

OTELPROF_API int execlp(const char *file, const char *arg, ...) {
    GATHER(arg, arg);
    va_end(ap);
    return execvp(file, argv);
}

OTELPROF_API int execle(const char *path, const char *arg, ...) {
    GATHER(arg, arg);
    char **envp = va_arg(ap, char **);
    va_end(ap);
    return execve(path, argv, envp);
}
