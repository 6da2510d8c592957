/* The effective resource attributes of this process (service.name, process.pid, ...). */
#ifndef OP_RESOURCE_H
#define OP_RESOURCE_H

#include "op_config.h"

/* Builds the resource attributes in a fixed order: service.name first (OTEL_SERVICE_NAME, else
 * service.name from OTEL_RESOURCE_ATTRIBUTES, else "unknown_service:<executable name>"), then the
 * other OTEL_RESOURCE_ATTRIBUTES entries, then process.pid, process.executable.name,
 * process.runtime.name (runtime, if not NULL), host.name, telemetry.sdk.name = "otelprof",
 * telemetry.sdk.language = "c" (or runtime), telemetry.sdk.version. Keys are unique (the first
 * occurrence wins). Caller frees with op_resource_free. Returns 0, or -1 on ENOMEM. Not AS-safe. */
int op_resource_build(const otelprof_config *cfg, const char *runtime, op_kv **out, size_t *n);
void op_resource_free(op_kv *kv, size_t n);

#define OP_SDK_VERSION "0.1.0"

#endif
