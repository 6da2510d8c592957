/* The process-wide profiler state: one instance, because a signal handler can find no other. */
#ifndef OP_PROFILER_H
#define OP_PROFILER_H

#include <pthread.h>
#include <signal.h>
#include "op_config.h"
#include "op_ring.h"
#include "otelprof/otelprof.h"

struct op_engine;

typedef struct op_profiler {
    /* Read by the signal handler: set before `running` becomes 1, cleared after it becomes 0. */
    int running;                 /* atomic */
    int inflight;                /* handlers between entry and exit; stop waits for 0 */
    int paused;                  /* set around fork(): new handlers drop their sample */
    int has_adapter;
    otelprof_adapter adapter;
    int native_frames;
    uint32_t max_depth;
    op_ring ring;
    /* Frame lifetime (see otelprof_frames_epoch): profile closes begun, and the oldest epoch
     * whose frames the core may still hold. Monotonic for the life of the process. */
    uint64_t epoch;              /* atomic */
    uint64_t released;           /* atomic */
    /* Not touched in signal context below this line. */
    otelprof_config *cfg;
    const struct op_engine *engine;
    pthread_mutex_t lock;        /* start/stop/flush/fork */
    struct sigaction old_action; /* restored at stop */
    int have_old_action;
    pid_t pid;                   /* the profiled process: differs in a vfork() child */
    int exec_halted;             /* otelprof_exec_prepare stopped the process-wide timer */
    int halted;                  /* atomic: sampling stopped early (signal taken over) */
} op_profiler;

extern op_profiler op_g;
/* The tid of the sample the calling thread's signal handler is taking (0 outside it). */
extern __thread pid_t op_handler_tid;

/* Stops sampling for good without stopping the profiler (what was captured is still written):
 * the registry closes and the engine stops. Called by the exporter when the application took
 * the profiling signal over. Thread-safe; never takes op_g.lock. */
void op_profiler_halt(void);

#endif
