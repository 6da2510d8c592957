/* A sampling engine: the source of timer signals. Each engine only starts and stops; the signal
 * handler in capture.c is shared. Selection and fallback live in engine.c. */
#ifndef OP_ENGINE_H
#define OP_ENGINE_H

#include "op_config.h"
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include "op_threads.h"

typedef struct op_engine {
    const char *name;
    int (*start)(const otelprof_config *cfg);     /* 0 or -1 (errno set) */
    void (*stop)(void);
    int (*thread_start)(op_thread *t);            /* 0 or -1; called under the registry lock */
    void (*thread_stop)(op_thread *t);            /* called under the registry lock */
    /* SIGNAL CONTEXT, AS-safe: 1 when si is one of this engine's signals, with the sample's weight
     * in *weight (cpu: intervals; wall: ns; 0 = count the signal but keep no sample), else 0.
     * Asked of every engine, running or not, so a late signal of a stopped one is still known.
     * Optional. */
    int (*claim)(const siginfo_t *si, int64_t *weight);
    /* In a fork child, before the restart: forget what did not survive fork (timers, threads),
     * without joining or deleting anything. Optional. */
    void (*after_fork)(void);
} op_engine;

extern const op_engine op_engine_cpu;    /* per-thread CLOCK_THREAD_CPUTIME_ID timers */
extern const op_engine op_engine_wall;   /* one thread signalling registered threads in turn */
extern const op_engine op_engine_process; /* one CLOCK_PROCESS_CPUTIME_ID timer: the cpu fallback */

/* Timer ownership shared by the engines that sample with POSIX timers (cpu, process): whether
 * kernel timer id is one of ours, and marking timer t as ours (on) or not. AS-safe. */
int op_engine_cpu_owns_timer(int id);
void op_engine_cpu_own(timer_t t, int on);

/* SIGNAL CONTEXT, AS-safe: asks every engine whether si is its own (see op_engine.claim). A new
 * engine is added to the table in engine.c and nowhere else. */
int op_engine_claim(const siginfo_t *si, int64_t *weight);

/* Picks the engine for cfg->mode, falling back from per-thread timers to the process CPU timer
 * when the kernel refuses them. Never NULL. Call after op_capture_install (the probe timer needs
 * the signal). */
const op_engine *op_engine_select(const otelprof_config *cfg);

#endif
