/* Native mode: dlclose is interposed so that unloaded code keeps its names.
 *
 * Symbolisation happens at profile close, on the exporter thread; a library that a
 * program loads, calls and unloads in between (plugins, a dlopen/dlclose loop) is gone by then.
 * While the profiler runs, the wrapper notes the loaded objects before the real dlclose and hands
 * the ones it removed to the symbolizer as retired objects (op_symbolize_unload_end).
 *
 * dlopen is not interposed: glibc resolves a bare name against the RUNPATH of dlopen's caller,
 * which a wrapper would replace by this library; nothing is needed there, since only unloads
 * lose names. (A sample that lands inside the loader, holding its lock, keeps its leaf pc only:
 * see may_hold_loader_lock in unwind_native.c.)
 *
 * Like native_mode.c this is part of the LD_PRELOAD-able shared library only. */
#include <dlfcn.h>
#include <errno.h>

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
    op_unload_note *note = op_symbolize_unload_begin();
    int rc = fn(handle);
    int saved = errno;
    op_symbolize_unload_end(note);
    errno = saved;
    return rc;
}
