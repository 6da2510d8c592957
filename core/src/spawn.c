/* The profiler's own threads start with all signals blocked (the mask is inherited). */
#include "op_spawn.h"

#include <signal.h>

#include "otelprof/otelprof.h"

int op_spawn(pthread_t *thread, void *(*fn)(void *), void *arg, const char *name) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(thread, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0 && name) pthread_setname_np(*thread, name);
    return rc;
}

int otelprof_thread_spawn(pthread_t *thread, void *(*fn)(void *), void *arg, const char *name) {
    return op_spawn(thread, fn, arg, name);
}
