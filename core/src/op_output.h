/* Local files: the embedded default when no OTLP endpoint is configured. Exporter thread only. */
#ifndef OP_OUTPUT_H
#define OP_OUTPUT_H

#include "op_config.h"
#include "op_profile.h"

typedef struct op_output op_output;

/* NULL on ENOMEM. File names carry the service name and pid (read at each write, so a fork child
 * writes its own files). */
op_output *op_output_new(const otelprof_config *cfg, const char *service_name);
/* Called at start, before the host's main work: creates the directory (each component we create
 * 0700), refuses a symlink, a non-directory, a group/other-writable one without the sticky bit or
 * one owned by another user when group/other-writable, and proves it writable with a probe file.
 * On refusal logs one line (path and reason) and disables local files: later profiles are only
 * counted as write_failed. Returns 0, or -1 if refused. */
int op_output_open(op_output *o);
void op_output_free(op_output *o);
/* Whether o writes where and what cfg and service_name ask for (so a restart may reuse it). */
int op_output_matches(const op_output *o, const otelprof_config *cfg, const char *service_name);
/* Writes the interval files (OTLP, pprof) of p and folds p into the whole-run files (folded,
 * HTML), rewriting them. Empty profiles write no interval files. Returns 0, or -1 if any write
 * failed (counted as write_failed; logged once per cause). */
int op_output_write(op_output *o, const op_profile *p, int final);

#endif
