/* The exporter thread: drains the capture ring, aggregates, closes a profile every export
 * interval (and on flush/stop) and hands it to the outputs. */
#ifndef OP_EXPORTER_H
#define OP_EXPORTER_H

#include <stdint.h>

#include "op_config.h"

/* Starts the thread (all signals blocked in it). runtime names the adapter or NULL. 0 or -1. */
int op_exporter_start(const otelprof_config *cfg, const char *runtime);
/* Closes the current profile, writes it, and joins the thread. With a deadline (CLOCK_MONOTONIC
 * ns, 0 for none) it returns -1 if the thread has not finished by then, leaving it running and its
 * state allocated (used at exit only); 0 otherwise. */
int op_exporter_stop(int64_t deadline);
/* Asks for a close now and waits until it is written (at most timeout_ms). 0, or -1 on timeout. */
int op_exporter_flush(int timeout_ms);
/* Around fork(), under the profiler lock: wait for the exporter's current drain or close. */
void op_exporter_fork_prepare(void);
void op_exporter_fork_parent(void);
/* Fork child, always first: re-initialises the locks and forgets the parent's kept outputs. */
void op_exporter_reset_after_fork(void);
/* Fork child: the thread is gone and its lock may be held; forget all state without freeing
 * what another thread might have been using, then start afresh. */
void op_exporter_after_fork(void);

#endif
