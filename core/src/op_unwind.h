/* Native stack capture with libunwind, in signal context. */
#ifndef OP_UNWIND_H
#define OP_UNWIND_H

#include "otelprof/otelprof.h"

/* Walks the interrupted context uc (a ucontext_t* from SA_SIGINFO) and writes up to max native
 * frames, leaf first: frame 0 is the interrupted pc, the rest are return addresses. AS-safe;
 * allocation-free after op_unwind_init(). Returns the count (>=0).
 * Frames have kind OTELPROF_FRAME_NATIVE and aux = 1 for a return address (symbolise pc-1, so a
 * call that ends a function is not attributed to the next one) or aux = 0 for an exact pc:
 * frame 0, and a frame reached through a signal trampoline (a handler interrupted a handler). */
int op_unwind_native(void *uc, otelprof_frame *out, int max);
/* Prepares libunwind's caches outside signal context, and locates glibc's loader lock so that a
 * thread interrupted inside dlopen/dlclose/dl_iterate_phdr gets its leaf pc only (unwinding
 * there can deadlock). Call once at start, before any profiling signal can arrive (it changes
 * libunwind's caching policy). Not AS-safe; idempotent. */
void op_unwind_init(void);

#endif
