/* Native mode: dlclose is interposed so that code unloaded before the next profile close keeps
 * its names. Symbolisation happens at profile close, on the exporter thread; a library that a
 * program loads, calls and unloads in between (plugins, a dlopen/dlclose loop) is gone by then.
 * While the profiler runs, the wrapper notes the loaded objects before the real dlclose and hands
 * the ones it removed to the symbolizer as retired objects (op_symbolize_unload_end). Like
 * native_mode.c it is part of the LD_PRELOAD-able shared library only.
 *
 * The two notes walk the loaded objects with dl_iterate_phdr, which takes the loader's lock; they
 * run with the profiling signal blocked, so our own bookkeeping never adds a moment where the sampling
 * handler (whose unwinder takes that lock too) interrupts a thread in the middle of acquiring
 * it. The real dlclose runs with the caller's mask: its time, destructors included, is sampled
 * as usual. */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>

#include "op_profiler.h" /* OP_SIGNAL */
#include "op_symbolize.h"
#include "otelprof/otelprof.h"

typedef int (*dlclose_fn)(void *);

static void block_profiling_signal(sigset_t *old) {
    sigset_t prof;
    sigemptyset(&prof);
    sigaddset(&prof, OP_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &prof, old);
}

OTELPROF_API int dlclose(void *handle) {
    static dlclose_fn real;
    dlclose_fn fn = __atomic_load_n(&real, __ATOMIC_ACQUIRE);
    if (!fn) {
        fn = (dlclose_fn)dlsym(RTLD_NEXT, "dlclose");
        if (!fn) return -1; /* no dlclose further down: nothing can be unloaded */
        __atomic_store_n(&real, fn, __ATOMIC_RELEASE);
    }
    if (!otelprof_is_running()) return fn(handle);
    sigset_t old;
    block_profiling_signal(&old);
    op_unload_note *note = op_symbolize_unload_begin();
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    int rc = fn(handle);
    int saved = errno;
    block_profiling_signal(&old); /* the mask again: a destructor may have changed it */
    op_symbolize_unload_end(note);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return rc;
}
