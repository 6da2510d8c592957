/* The registry of sampled threads (kernel tids), bounded by max_threads. */
#ifndef OP_THREADS_H
#define OP_THREADS_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

typedef struct op_thread {
    pid_t tid;
    int has_timer;
    timer_t timer;       /* cpu engine: this thread's CPU-time timer */
    uint64_t last_tick;  /* wall engine: tick at which it was last signalled */
} op_thread;

/* Allocates the table. Returns 0 or -1. Not AS-safe. */
int op_threads_init(int max_threads);
void op_threads_destroy(void);
/* Adds tid and starts the engine's per-thread source. Thread-safe. */
int op_threads_add(pid_t tid);
/* Stops tid's source and removes it. Thread-safe. */
void op_threads_remove(pid_t tid);
/* Removes all (engine stop). Thread-safe. */
void op_threads_remove_all(void);
/* Calls fn on each registered thread under the registry lock, resuming at *cursor and visiting at
 * most max threads (round-robin for the wall engine). fn must not call back into the registry. */
void op_threads_visit(uint32_t *cursor, uint32_t max, void (*fn)(op_thread *t, void *arg), void *arg);
uint32_t op_threads_count(void);
/* In a fork child: forget every thread (timers were not inherited) without touching timers. */
void op_threads_forget_all(void);

#endif
