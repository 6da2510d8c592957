/* The profiler's own threads start with all signals blocked (the mask is inherited) and name
 * themselves before running their function, so no one ever sees them under the creator's name. */
#include "op_spawn.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "otelprof/otelprof.h"

typedef struct spawn_arg {
    void *(*fn)(void *);
    void *arg;
    char name[16]; /* the kernel keeps 15 bytes */
} spawn_arg;

static void *named_start(void *p) {
    spawn_arg a = *(spawn_arg *)p;
    free(p);
    if (a.name[0]) pthread_setname_np(pthread_self(), a.name);
    return a.fn(a.arg);
}

int op_spawn(pthread_t *thread, void *(*fn)(void *), void *arg, const char *name) {
    spawn_arg *a = calloc(1, sizeof *a);
    if (!a) return ENOMEM;
    a->fn = fn;
    a->arg = arg;
    if (name) strncpy(a->name, name, sizeof a->name - 1);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(thread, NULL, named_start, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) free(a);
    return rc;
}

int otelprof_thread_spawn(pthread_t *thread, void *(*fn)(void *), void *arg, const char *name) {
    return op_spawn(thread, fn, arg, name);
}
