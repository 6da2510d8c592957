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

enum { OP_COMPRESS_UNSET = 0, OP_COMPRESS_NONE = 1, OP_COMPRESS_GZIP = 2 };

/* Where an OTLP exporter option came from: the OTEL_EXPORTER_OTLP_* variable that applies to every
 * signal, or the OTEL_EXPORTER_OTLP_PROFILES_* one, which wins when both are set. */
enum { OP_OTLP_ALL = 0, OP_OTLP_PROFILES = 1 };

typedef struct op_otlp_opts {
    char *endpoint;             /* ALL: base URL (the signal path is appended); PROFILES: used as is */
    op_kv *headers;             /* percent-decoded; values are credentials: never logged */
    size_t nheaders;
    int headers_set;            /* 1 when given, even as an empty list */
    int compression;            /* OP_COMPRESS_* */
    int64_t timeout_ns;         /* 0 = unset */
    char *certificate;          /* CA bundle (PEM) that verifies the server, or NULL */
    char *client_key;           /* mTLS key (PEM), or NULL */
    char *client_certificate;   /* mTLS certificate (PEM), or NULL */
} op_otlp_opts;

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
    int signo;                    /* profiling signal; 0 = auto: a free real-time signal */
    op_otlp_opts otlp[2];         /* [OP_OTLP_ALL], [OP_OTLP_PROFILES]; see op_export_http.h */
    int64_t export_queue_max;     /* bytes of requests waiting for the network; 0 = max_memory/8 */
    int64_t retry_initial_ns;     /* first backoff; default 1 s */
    int64_t retry_max_interval_ns;/* longest backoff; default 30 s */
    int64_t retry_max_elapsed_ns; /* retry budget per request; default 60 s; 0 = never retry */
    /* Not an option: set by otelprof_start on its copy to the adapter's memory_bytes (0 when
     * none), which come out of max_memory before the core's tables are sized. */
    int64_t adapter_memory;
};

/* The least max_memory accepted, and the least the core's tables are sized from. */
#define OP_MAX_MEMORY_MIN (1ll << 20)

/* What the core sizes its tables from (fractions of it): max_memory less the adapter's part. */
static inline int64_t op_config_core_memory(const otelprof_config *cfg) {
    return cfg->max_memory - cfg->adapter_memory;
}

/* Makes a relative output_dir absolute against the working directory of the caller (the start):
 * a program that changes directory later (a daemon's chdir("/"), a test runner's temporary
 * directory, removed when it is done) would otherwise spread its profiles over every directory it
 * visits, or lose them with a removed one; fork children inherit the resolved path. Left as it is
 * when the working directory cannot be read (removed, or longer than PATH_MAX) or on ENOMEM. */
void op_config_resolve_output_dir(otelprof_config *cfg);

/* Deep copy (NULL on ENOMEM). */
otelprof_config *op_config_clone(const otelprof_config *cfg);

/* Parses a duration: "10ms", "100us", "250ns", "2s", "1m"; a bare integer is milliseconds.
 * Returns 0 and sets *ns, or -1. Exposed for the unit tests. */
int op_parse_duration(const char *s, int64_t *ns);
/* Parses a size: "64MB", "64MiB", "512KB", "1GB", bare bytes. Returns 0 or -1. */
int op_parse_size(const char *s, int64_t *bytes);

/* Parses OTEL_EXPORTER_OTLP_HEADERS: "k=v,k2=v2", whitespace trimmed, keys and values
 * percent-decoded; keys must be HTTP header names and values may not hold control characters.
 * Returns 0 (*out malloc'd, free with op_kv_free), -1 invalid (why names the entry by position,
 * never by value, since values are credentials), -2 ENOMEM. */
int op_parse_headers(const char *v, op_kv **out, size_t *n, char *why, size_t whylen);
/* Checks that s is an http:// or https:// URL with a host. Returns 0, or -1 with why set. */
int op_check_endpoint(const char *s, char *why, size_t whylen);
void op_kv_free(op_kv *kv, size_t n);

#endif
