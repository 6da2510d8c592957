/* Starting the profiler's own threads. Not AS-safe. */
#ifndef OP_SPAWN_H
#define OP_SPAWN_H

#include <pthread.h>

/* Starts fn(arg) on a new thread named name, with every signal blocked in it: the profiler's
 * threads must never take the profiling signal (nor be sampled). Returns 0, or the
 * pthread_create error. */
int op_spawn(pthread_t *thread, void *(*fn)(void *), void *arg, const char *name);

#endif
