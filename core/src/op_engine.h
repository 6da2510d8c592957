/* A sampling engine: the source of timer signals. Each engine only starts and stops; the signal
 * handler in capture.c is shared. Selection and fallback live in engine.c. */
#ifndef OP_ENGINE_H
#define OP_ENGINE_H

#include "op_config.h"
#include <time.h>
#include "op_threads.h"

typedef struct op_engine {
    const char *name;
    int (*start)(const otelprof_config *cfg);     /* 0 or -1 (errno set) */
    void (*stop)(void);
    int (*thread_start)(op_thread *t);            /* 0 or -1; called under the registry lock */
    void (*thread_stop)(op_thread *t);            /* called under the registry lock */
} op_engine;

extern const op_engine op_engine_cpu;    /* per-thread CLOCK_THREAD_CPUTIME_ID timers */
extern const op_engine op_engine_wall;   /* one thread signalling registered threads in turn */
extern const op_engine op_engine_process; /* one CLOCK_PROCESS_CPUTIME_ID timer: the cpu fallback */

/* Signal context. Whether kernel timer id is one of ours (cpu and process engines). AS-safe. */
int op_engine_cpu_owns_timer(int id);
/* Marks timer t as ours (on) or not. AS-safe. */
void op_engine_cpu_own(timer_t t, int on);
/* Signal context. wall engine: the weight (ns) of a sample for slot, charging every tick since
 * the slot's previous sample. 0, or -1 for an unknown slot. AS-safe. */
int op_engine_wall_weight(uint32_t slot, int64_t *weight);

/* Picks the engine for cfg->mode, falling back from per-thread timers to the process CPU timer
 * when the kernel refuses them. Never NULL. Call after op_capture_install (the probe timer needs
 * the signal). */
const op_engine *op_engine_select(const otelprof_config *cfg);

#endif
