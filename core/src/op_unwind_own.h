/* otelprof's own native unwinder for x86-64 (see unwind_own.c). */
#ifndef OP_UNWIND_OWN_H
#define OP_UNWIND_OWN_H

#include "otelprof/otelprof.h"

/* Compiles the unwind tables of every loaded module and publishes them. 0, or -1 (out of memory,
 * or not x86-64). Not AS-safe; call before sampling starts. Idempotent. */
int op_unwind_own_init(void);
/* Picks up modules loaded or unloaded since (dl_iterate_phdr's counters) and frees replaced
 * tables no handler can still hold. Exporter thread; not AS-safe. */
void op_unwind_own_maintain(void);
/* Records the calling thread's stack bounds (pthread_getattr_np) for the walk. On the thread
 * itself, when it registers; not AS-safe. */
void op_unwind_own_thread_init(void);
/* Signal context: walks the interrupted context uc like op_unwind_native. Returns the frame count,
 * or -1 when this sample cannot be walked here (no tables, no stack bounds for this thread, or sp
 * outside them): the caller then uses libunwind. AS-safe, lock-free, no system calls. */
int op_unwind_own(void *uc, otelprof_frame *out, int max);

/* Counters since the process started (relaxed reads): walks done here; samples handed to
 * libunwind; walks that ended at a rule not kept (an expression, a lost rbp) or at a read
 * outside the stack's bounds, short of the outermost frame; frames found by frame pointers.
 * Any thread, AS-safe. */
typedef struct op_unwind_own_counts {
    uint64_t walks, fallbacks, ended_rule, ended_bounds, fp_frames;
} op_unwind_own_counts;
void op_unwind_own_get_counts(op_unwind_own_counts *out);

#endif
