/* The signal handler and the submit path: everything here runs in signal context or must be
 * AS-safe. */
#ifndef OP_CAPTURE_H
#define OP_CAPTURE_H

#include <signal.h>

#include "op_config.h"

/* The profiling signal (cfg->signo, or a free real-time one), set by op_capture_install. Read in
 * signal context; changes only at start. */
extern int op_signo;

/* Picks the profiling signal and installs the handler (remembering a foreign one to chain to).
 * Not AS-safe. */
int op_capture_install(const otelprof_config *cfg);
/* Gives back a foreign handler displaced at install; else leaves ours (see capture.c). Not
 * AS-safe. */
void op_capture_uninstall(void);
/* 0 while the signal's handler is ours, -1 once the application replaced it. Not AS-safe. */
int op_capture_check(void);
/* Starts a new naming period: each thread's next sample re-reads its OS name once (the handler
 * caches it to stay free of system calls). Called as each profile closes. Any thread, AS-safe. */
void op_capture_names_refresh(void);
/* "SIGPROF", "SIGRTMIN+N (n)" or "signal n", for messages. */
void op_signal_describe(int sig, char *buf, size_t len);

#endif
