/* The signal handler and the submit path: everything here runs in signal context or must be
 * AS-safe. */
#ifndef OP_CAPTURE_H
#define OP_CAPTURE_H

#include <signal.h>

/* Installs the handler for OP_SIGNAL (remembering a foreign one to chain to). Not AS-safe. */
int op_capture_install(void);
/* Restores the foreign handler, or SIG_IGN: a SIGPROF still pending from a deleted timer must not
 * take the default action (terminate). Not AS-safe. */
void op_capture_uninstall(void);

#endif
