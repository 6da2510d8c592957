/* Native mode: dlclose is interposed, for two reasons.
 *
 * Names. Symbolisation happens at profile close, on the exporter thread; a library that a
 * program loads, calls and unloads in between (plugins, a dlopen/dlclose loop) is gone by then.
 * While the profiler runs, the wrapper notes the loaded objects before the real dlclose and hands
 * the ones it removed to the symbolizer as retired objects (op_symbolize_unload_end).
 *
 * No deadlock of our making. dlclose takes the loader's lock, and so does the sampling handler's
 * unwinder (libunwind looks unwind tables up with dl_iterate_phdr): a signal that lands while
 * its thread is in the middle of taking or releasing that lock makes the handler wait for itself
 * forever, and the owner-field guard in unwind_native.c cannot see those instructions. So the
 * notes and the real dlclose run with the profiling signal blocked; a signal arriving meanwhile
 * stays pending and is taken when dlclose returns, its weight intact, charged to dlclose's caller
 * (destructors are not broken down). dlopen is not interposed: glibc resolves a bare name against
 * the RUNPATH of dlopen's caller, which a wrapper would replace by this library. dlopen, and
 * loader calls made inside libc, stay exposed until the handler no longer uses the loader.
 *
 * Like native_mode.c this is part of the LD_PRELOAD-able shared library only. */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>

#include "op_profiler.h" /* OP_SIGNAL */
#include "op_symbolize.h"
#include "otelprof/otelprof.h"

typedef int (*dlclose_fn)(void *);

OTELPROF_API int dlclose(void *handle) {
    static dlclose_fn real;
    dlclose_fn fn = __atomic_load_n(&real, __ATOMIC_ACQUIRE);
    if (!fn) {
        fn = (dlclose_fn)dlsym(RTLD_NEXT, "dlclose");
        if (!fn) return -1; /* no dlclose further down: nothing can be unloaded */
        __atomic_store_n(&real, fn, __ATOMIC_RELEASE);
    }
    if (!otelprof_is_running()) return fn(handle);
    sigset_t prof, old;
    sigemptyset(&prof);
    sigaddset(&prof, OP_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &prof, &old);
    op_unload_note *note = op_symbolize_unload_begin();
    int rc = fn(handle);
    int saved = errno;
    op_symbolize_unload_end(note);
    /* Only our signal is unblocked again: a destructor may have changed the mask on purpose. */
    if (!sigismember(&old, OP_SIGNAL)) pthread_sigmask(SIG_UNBLOCK, &prof, NULL);
    errno = saved;
    return rc;
}
