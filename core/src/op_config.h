/* The parsed configuration behind the opaque otelprof_config. */
#ifndef OP_CONFIG_H
#define OP_CONFIG_H

#include <stdint.h>
#include <stddef.h>
#include "otelprof/otelprof.h"

enum { OP_MODE_CPU = 0, OP_MODE_WALL = 1 };

enum {
    OP_FMT_OTLP = 1u << 0,
    OP_FMT_PPROF = 1u << 1,
    OP_FMT_FOLDED = 1u << 2,
    OP_FMT_HTML = 1u << 3,
    OP_FMT_ALL = 0xfu,
};

typedef struct op_kv {
    char *key;
    char *value;
} op_kv;

struct otelprof_config {
    int mode;                     /* OP_MODE_*; default cpu */
    int64_t interval_ns;          /* default 10 ms; accepted 100 us .. 10 s */
    int64_t export_interval_ns;   /* default 10 s; accepted 100 ms .. 1 h */
    char *output_dir;             /* default "./otelprof-out" */
    int output_dir_set;           /* 1 when given explicitly (env or option) */
    unsigned formats;             /* OP_FMT_* mask, default all; must be non-empty */
    int max_depth;                /* default 128; accepted 1 .. 2048 */
    int native_frames;            /* 0|1; default 1 in native mode, 0 under an adapter */
    int native_frames_set;        /* 1 when given explicitly */
    int log_level;                /* OP_LOG_*; default warn; accepts off|error|warn|info|debug */
    int disabled;                 /* OTEL_SDK_DISABLED=true or OTELPROF_DISABLED */
    char *service_name;           /* OTEL_SERVICE_NAME or NULL */
    op_kv *resource_attrs;        /* OTEL_RESOURCE_ATTRIBUTES, percent-decoded, in order */
    size_t nresource_attrs;
    int max_threads;              /* default 4096; accepted 1 .. 65536 */
    int64_t max_memory;           /* bytes for all core tables; default 64 MiB; "16MB", "1GiB" */
    int wall_threads_per_tick;    /* wall mode: threads signalled per tick; default 64 */
};

/* Deep copy (NULL on ENOMEM). */
otelprof_config *op_config_clone(const otelprof_config *cfg);

/* Parses a duration: "10ms", "100us", "250ns", "2s", "1m"; a bare integer is milliseconds.
 * Returns 0 and sets *ns, or -1. Exposed for the unit tests. */
int op_parse_duration(const char *s, int64_t *ns);
/* Parses a size: "64MB", "64MiB", "512KB", "1GB", bare bytes. Returns 0 or -1. */
int op_parse_size(const char *s, int64_t *bytes);

#endif
