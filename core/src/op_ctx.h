/* Thread and process context internals shared with the signal handler and the fork handler. */
#ifndef OP_CTX_H
#define OP_CTX_H

#include "otelprof/otelprof.h"

/* Signal context: the interrupted thread's current record, or NULL. AS-safe. */
static inline const otel_thread_ctx_record_v1 *op_ctx_current(void) {
    const otel_thread_ctx_record_v1 *r = otel_thread_ctx_v1;
    __atomic_signal_fence(__ATOMIC_ACQUIRE);
    return (r && r->valid == 1) ? r : 0;
}

/* Ordinary context, on the calling thread: makes sure its otel_thread_ctx_v1 slot exists. In a
 * dlopen'd library whose TLS did not fit glibc's static surplus, the first access allocates, which
 * must not happen first inside the signal handler; registering threads call this. */
static inline void op_ctx_touch(void) {
    __asm__ volatile("" : : "r"(otel_thread_ctx_v1) : "memory");
}

/* The name set by otelprof_thread_set_name on this thread ("" = none). Same TLS block as
 * otel_thread_ctx_v1, so op_ctx_touch makes it safe to read in the handler too. */
extern __thread char op_thread_name[32];

/* In the child after fork(): drops the old mapping (not inherited thanks to MADV_DONTFORK) and
 * publishes again with the child's pid. */
void op_process_ctx_after_fork(void);
/* Unmaps the process context (at stop). */
void op_process_ctx_unpublish(void);

/* Sets the runtime name used for process.runtime.name and telemetry.sdk.language at the next
 * publish (NULL = native). The string is copied. Thread-safe, not AS-safe. */
void op_process_ctx_set_runtime(const char *runtime);
/* The thread-context key map changed: republishes the process context if it is published, so
 * threadlocal.attribute_key_map stays current. Thread-safe, not AS-safe. */
void op_process_ctx_keys_changed(void);

/* A copy of the thread-context key map set by otelprof_ctx_set_keys (index = key_index), freed
 * with op_ctx_keys_free. Returns 0, or -1 on ENOMEM. Thread-safe, not AS-safe. */
int op_ctx_keys_copy(char ***keys, size_t *n);
void op_ctx_keys_free(char **keys, size_t n);
/* In the child after fork(): resets the key-map lock (op_process_ctx_after_fork calls it). */
void op_ctx_keys_after_fork(void);

#endif
