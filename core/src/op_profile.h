/* A closed, fully resolved profile: what the aggregator hands to every encoder and output.
 * Nothing here is shared with the signal path. */
#ifndef OP_PROFILE_H
#define OP_PROFILE_H

#include <stdint.h>
#include <stddef.h>
#include "op_config.h"

typedef struct op_mapping {
    uint64_t start, limit, offset; /* memory_start, memory_limit, file_offset */
    const char *filename;          /* path of the mapped object */
    const char *build_id;          /* GNU build id as lower-case hex, or NULL */
} op_mapping;

typedef struct op_symbol {
    const char *name;        /* never NULL: "[unknown]" when unresolved */
    const char *system_name; /* or NULL */
    const char *filename;    /* or NULL */
    int64_t line;            /* 0 = unknown */
    int64_t start_line;      /* 0 = unknown */
    uint64_t address;        /* native pc (0 for interpreted frames) */
    int32_t mapping;         /* index into op_profile.mappings, -1 = none */
    const char *frame_type;  /* "native", "cpython", "jvm", "ruby", ... (never NULL) */
} op_symbol;

typedef struct op_profile_sample {
    const uint32_t *frames;   /* indices into op_profile.syms, leaf first */
    uint32_t nframes;
    int has_link;
    uint8_t trace_id[16];
    uint8_t span_id[8];
    const char *thread_name;  /* sample attribute thread.name, or NULL */
    int64_t count;            /* number of samples (timer expirations) merged here */
    int64_t value;            /* cpu: == count; wall: nanoseconds */
} op_profile_sample;

typedef struct op_profile {
    int mode;                 /* OP_MODE_CPU | OP_MODE_WALL */
    int64_t period_ns;        /* sampling interval */
    uint64_t start_unix_ns;
    uint64_t duration_ns;
    uint8_t profile_id[16];   /* random, non-zero */
    const op_profile_sample *samples; /* no two samples share {frames, link, thread_name} */
    size_t nsamples;
    const op_symbol *syms;    /* one per distinct captured frame (two may resolve alike) */
    size_t nsyms;
    const op_mapping *mappings;
    size_t nmappings;
    const op_kv *resource;    /* resource attributes, unique keys */
    size_t nresource;
    const char *scope_name;   /* "otelprof" */
    const char *scope_version;
} op_profile;

#endif
