/* The registry of sampled threads (kernel tids), bounded by max_threads. */
#ifndef OP_THREADS_H
#define OP_THREADS_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "otelprof/otelprof.h"

typedef struct op_thread {
    pid_t tid;
    uint32_t slot;       /* stable index in [0, max_threads) while registered (wall engine state) */
    int has_timer;
    timer_t timer;       /* cpu engine: this thread's CPU-time timer */
} op_thread;

enum { OP_THREADS_OK = 0, OP_THREADS_FAILED = -1, OP_THREADS_FULL = -2, OP_THREADS_CLOSED = -3,
       OP_THREADS_EXISTS = -4 };

/* Allocates the table and opens it for registrations. Returns 0 or -1. Not AS-safe. */
int op_threads_init(int max_threads);
void op_threads_destroy(void);
/* Adds tid and starts the engine's per-thread source; a tid already present (possibly reused
 * by a new thread) is re-armed. With d, the adapter's data is attached first (replacing any, or,
 * with if_new, leaving a tid that has data as it is: OP_THREADS_EXISTS). Returns OP_THREADS_*.
 * Thread-safe. */
int op_threads_add(pid_t tid, const otelprof_thread_data *d, int if_new);
/* AS-safe, any thread: copies tid's adapter data. 0, or -1 when it has none. */
int op_threads_data_get(pid_t tid, otelprof_thread_data *out);
/* Removes tid and its data only while its data is still *expected (ptr and tag). 1 when removed.
 * Thread-safe. */
int op_threads_remove_if(pid_t tid, const otelprof_thread_data *expected);
/* Copies at most max threads that have data; with max <= 0 returns how many have. Thread-safe. */
int op_threads_data_list(pid_t *tids, otelprof_thread_data *data, int max);
/* Whether tid is registered. Thread-safe. */
int op_threads_contains(pid_t tid);
/* Refuses further registrations and removes every thread (stop). Thread-safe. */
void op_threads_close(void);
/* Stops tid's source and removes it, with its data unless keep_data. Thread-safe. */
void op_threads_remove(pid_t tid, int keep_data);
/* Calls fn on each registered thread under the registry lock, resuming at *cursor and visiting at
 * most max threads (round-robin for the wall engine). fn must not call back into the registry. */
void op_threads_visit(uint32_t *cursor, uint32_t max, void (*fn)(op_thread *t, void *arg), void *arg);
uint32_t op_threads_count(void);
/* In a fork child: forget every thread (timers were not inherited) without touching timers; the
 * forking thread's data (old_tid) is kept under its new tid. */
void op_threads_forget_all(pid_t old_tid, pid_t new_tid);

#endif
