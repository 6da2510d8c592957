/* Unit test: OTLP and pprof encoders produce valid, deduplicated, merged output; gzip round-trips.
 * With a directory argument it also writes the encoded profiles there (profile*.otlp.pb,
 * profile*.pprof) for the external checkers (otlpcheck.py, go tool pprof). */
#include "op_encode.h"
#include "op_intern.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "opentelemetry/proto/profiles/v1development/profiles.pb-c.h"
#include "pprof/profile.pb-c.h"

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s)\n", __FILE__, __LINE__, #c); failures++; } } while (0)

typedef Opentelemetry__Proto__Profiles__V1development__ProfilesData PData;
typedef Opentelemetry__Proto__Profiles__V1development__ProfilesDictionary PDict;
typedef Opentelemetry__Proto__Profiles__V1development__Profile PProfile;
typedef Opentelemetry__Proto__Profiles__V1development__Sample PSample;
typedef Opentelemetry__Proto__Profiles__V1development__Location PLocation;
typedef Opentelemetry__Proto__Profiles__V1development__KeyValueAndUnit PKvu;
typedef Perftools__Profiles__Profile QProfile;

#define PD(x) opentelemetry__proto__profiles__v1development__##x

/* ---- the hand-built profile ---------------------------------------------------------------- */

static const op_mapping mappings[] = {
    {0x400000, 0x500000, 0, "/usr/bin/app", "abcdef0123456789"},
    {0x7f0000000000, 0x7f0000100000, 0x1000, "/lib/libc.so.6", NULL},
    {0x10000, 0x20000, 0, "/unused.so", "ffff"}, /* no sample reaches it: must not be emitted */
};

static const op_symbol syms[] = {
    /* 0 */ {"main", NULL, "app.c", 0, 0, 0x401000, 0, "native"},
    /* 1 */ {"work", "_Z4workv", "app.c", 0, 0, 0x402000, 0, "native"},
    /* 2 */ {"work", "_Z4workv", "app.c", 0, 0, 0x402000, 0, "native"}, /* resolves like 1 */
    /* 3 */ {"py_func", NULL, "app.py", 10, 5, 0, -1, "cpython"},
    /* 4 */ {"py_func", NULL, "app.py", 10, 5, 0, -1, "cpython"},          /* resolves like 3 */
    /* 5 */ {"py_func", NULL, "app.py", 12, 5, 0, -1, "cpython"},          /* same function, new line */
    /* 6 */ {"memcpy", NULL, NULL, 0, 0, 0x7f0000001000, 1, "native"},
    /* 7 */ {"never_sampled", NULL, "gone.c", 1, 1, 0x10010, 2, "native"},
    /* 8 */ {"work", "_Z4workv", "app.c", 0, 0, 0x402010, 0, "native"},    /* same function, new pc */
    /* 9 */ {"[unknown]", NULL, NULL, 0, 0, 0, -1, "kernel"},
};

static const uint32_t st_work[] = {1, 0}, st_work2[] = {2, 0}, st_py[] = {3, 0}, st_py2[] = {4, 0},
                      st_py12[] = {5, 0}, st_memcpy[] = {6, 8, 0}, st_kernel[] = {9, 0};

#define TRACE1 {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
#define SPAN1 {0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8}
#define TRACE2 {0xff, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
#define SPAN2 {0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8}
#define NOID16 {0}
#define NOID8 {0}

/* Samples: {frames, nframes, has_link, trace, span, thread, count, value}. */
static const op_profile_sample samples[] = {
    {st_work, 2, 0, NOID16, NOID8, "main", 3, 3000},
    {st_work2, 2, 0, NOID16, NOID8, "main", 2, 2000},     /* merges with the one above */
    {st_py, 2, 1, TRACE1, SPAN1, "worker", 1, 100},
    {st_py2, 2, 1, TRACE1, SPAN1, "worker", 4, 400},      /* merges with the one above */
    {st_py12, 2, 1, TRACE2, SPAN2, NULL, 1, 10},
    {st_memcpy, 3, 0, NOID16, NOID8, NULL, 7, 70},
    {st_py, 2, 1, NOID16, SPAN1, "worker", 2, 20},        /* zero trace id: no link */
    {st_py, 2, 0, NOID16, NOID8, "", 1, 1},               /* empty thread name: no attribute */
    {NULL, 0, 0, NOID16, NOID8, "main", 1, 5},             /* empty stack */
    {st_kernel, 2, 0, NOID16, NOID8, "main", 6, 60},
};

static const op_kv resource[] = {
    {"service.name", "encode-test"},
    {"process.pid", "1234"},
    {"host.name", "box"},
};

static op_profile make_profile(int mode) {
    op_profile p;
    memset(&p, 0, sizeof p);
    p.mode = mode;
    p.period_ns = 10000000;
    p.start_unix_ns = 1700000000000000000ull;
    p.duration_ns = 10000000000ull;
    for (int i = 0; i < 16; i++) p.profile_id[i] = (uint8_t)(0x10 + i);
    p.samples = samples;
    p.nsamples = sizeof samples / sizeof samples[0];
    p.syms = syms;
    p.nsyms = sizeof syms / sizeof syms[0];
    p.mappings = mappings;
    p.nmappings = sizeof mappings / sizeof mappings[0];
    p.resource = resource;
    p.nresource = sizeof resource / sizeof resource[0];
    p.scope_name = "otelprof";
    p.scope_version = "0.1.0";
    return p;
}

/* ---- OTLP checks ----------------------------------------------------------------------------- */

/* No two entries of a table pack to the same bytes; entry 0 packs to nothing (the zero value). */
static void check_table(const char *name, void **entries, size_t n) {
    op_intern seen;
    op_intern_init(&seen, 0);
    CHECK(n >= 1);
    for (size_t i = 0; i < n; i++) {
        const ProtobufCMessage *m = entries[i];
        size_t sz = protobuf_c_message_get_packed_size(m);
        uint8_t *b = malloc(sz + 1);
        protobuf_c_message_pack(m, b);
        if (i == 0 && sz != 0) {
            fprintf(stderr, "%s[0] is not the zero value\n", name);
            failures++;
        }
        int ins;
        op_intern_put(&seen, b, sz, &ins);
        if (!ins) {
            fprintf(stderr, "%s[%zu] duplicates an earlier entry\n", name, i);
            failures++;
        }
        free(b);
    }
    op_intern_free(&seen);
}

static const char *S(const PDict *d, int32_t i) {
    return i >= 0 && (size_t)i < d->n_string_table ? d->string_table[i] : "<bad>";
}

/* The string value of the attribute with key `key` among idx[], or NULL. */
static const char *attr_of(const PDict *d, const int32_t *idx, size_t n, const char *key) {
    for (size_t i = 0; i < n; i++) {
        const PKvu *a = d->attribute_table[idx[i]];
        if (strcmp(S(d, a->key_strindex), key) == 0 && a->value) return a->value->string_value;
    }
    return NULL;
}

static void hexs(char *dst, const uint8_t *b, size_t n) {
    for (size_t i = 0; i < n; i++) sprintf(dst + 2 * i, "%02x", b[i]);
    dst[2 * n] = 0;
}

static int cmpstr(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Checks structure and referential integrity; renders each sample as
 * "leaf;...;root|thread|trace:span|value" into out (sorted), returns the count. */
static size_t check_otlp(const PData *pd, char **out, size_t max) {
    const PDict *d = pd->dictionary;
    CHECK(d != NULL);
    if (!d) return 0;
    CHECK(d->n_string_table >= 1 && strcmp(d->string_table[0], "") == 0);
    check_table("mapping_table", (void **)d->mapping_table, d->n_mapping_table);
    check_table("location_table", (void **)d->location_table, d->n_location_table);
    check_table("function_table", (void **)d->function_table, d->n_function_table);
    check_table("link_table", (void **)d->link_table, d->n_link_table);
    check_table("attribute_table", (void **)d->attribute_table, d->n_attribute_table);
    check_table("stack_table", (void **)d->stack_table, d->n_stack_table);
    /* strings: unique */
    op_intern seen;
    op_intern_init(&seen, 0);
    for (size_t i = 0; i < d->n_string_table; i++) {
        int ins;
        op_intern_put(&seen, d->string_table[i], strlen(d->string_table[i]), &ins);
        if (!ins) fprintf(stderr, "string_table[%zu] \"%s\" duplicated\n", i, d->string_table[i]);
        CHECK(ins);
    }
    op_intern_free(&seen);

    char *ref_str = calloc(d->n_string_table, 1), *ref_map = calloc(d->n_mapping_table, 1);
    char *ref_loc = calloc(d->n_location_table, 1), *ref_fn = calloc(d->n_function_table, 1);
    char *ref_link = calloc(d->n_link_table, 1), *ref_attr = calloc(d->n_attribute_table, 1);
    char *ref_stack = calloc(d->n_stack_table, 1);
#define IDX(i, n) ((i) >= 0 && (size_t)(i) < (n))
#define ATTRS(idx, n)                                                                  \
    do {                                                                               \
        for (size_t a_ = 0; a_ < (n); a_++) {                                          \
            CHECK(IDX((idx)[a_], d->n_attribute_table));                               \
            if (IDX((idx)[a_], d->n_attribute_table)) ref_attr[(idx)[a_]] = 1;         \
            for (size_t b_ = 0; b_ < a_; b_++)                                         \
                CHECK(d->attribute_table[(idx)[a_]]->key_strindex !=                   \
                      d->attribute_table[(idx)[b_]]->key_strindex);                    \
        }                                                                              \
    } while (0)

    CHECK(pd->n_resource_profiles == 1);
    const PProfile *pr = pd->resource_profiles[0]->scope_profiles[0]->profiles[0];
    CHECK(IDX(pr->sample_type->type_strindex, d->n_string_table));
    CHECK(IDX(pr->sample_type->unit_strindex, d->n_string_table));
    CHECK(IDX(pr->period_type->type_strindex, d->n_string_table));
    CHECK(IDX(pr->period_type->unit_strindex, d->n_string_table));
    ref_str[pr->sample_type->type_strindex] = ref_str[pr->sample_type->unit_strindex] = 1;
    ref_str[pr->period_type->type_strindex] = ref_str[pr->period_type->unit_strindex] = 1;
    CHECK(pr->profile_id.len == 16);

    size_t nout = 0;
    for (size_t i = 0; i < pr->n_samples; i++) {
        const PSample *s = pr->samples[i];
        CHECK(s->n_values == 1 && s->n_timestamps_unix_nano == 0);
        CHECK(IDX(s->stack_index, d->n_stack_table) && IDX(s->link_index, d->n_link_table));
        if (!IDX(s->stack_index, d->n_stack_table) || !IDX(s->link_index, d->n_link_table)) continue;
        ref_stack[s->stack_index] = ref_link[s->link_index] = 1;
        ATTRS(s->attribute_indices, s->n_attribute_indices);
        char buf[1024];
        size_t at = 0;
        buf[0] = 0;
        const Opentelemetry__Proto__Profiles__V1development__Stack *st = d->stack_table[s->stack_index];
        for (size_t j = 0; j < st->n_location_indices; j++) {
            int32_t li = st->location_indices[j];
            CHECK(IDX(li, d->n_location_table) && li != 0);
            if (!IDX(li, d->n_location_table)) continue;
            const PLocation *l = d->location_table[li];
            CHECK(l->n_lines == 1);
            int32_t fi = l->n_lines ? l->lines[0]->function_index : 0;
            CHECK(IDX(fi, d->n_function_table));
            at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%s", j ? ";" : "",
                                   S(d, d->function_table[fi]->name_strindex));
        }
        const char *th = attr_of(d, s->attribute_indices, s->n_attribute_indices, "thread.name");
        char tr[33] = "", sp[17] = "";
        const Opentelemetry__Proto__Profiles__V1development__Link *lk = d->link_table[s->link_index];
        if (s->link_index) {
            CHECK(lk->trace_id.len == 16 && lk->span_id.len == 8);
            if (lk->trace_id.len == 16 && lk->span_id.len == 8) {
                hexs(tr, lk->trace_id.data, 16);
                hexs(sp, lk->span_id.data, 8);
            }
        }
        snprintf(buf + at, sizeof buf - at, "|%s|%s%s%s|%lld", th ? th : "", tr, *tr ? ":" : "", sp,
                 (long long)(s->n_values ? s->values[0] : -1));
        if (nout < max) out[nout++] = strdup(buf);
    }
    qsort(out, nout, sizeof *out, cmpstr);

    for (size_t i = 0; i < d->n_stack_table; i++) {
        const Opentelemetry__Proto__Profiles__V1development__Stack *st = d->stack_table[i];
        if (!ref_stack[i]) continue;
        for (size_t j = 0; j < st->n_location_indices; j++)
            if (IDX(st->location_indices[j], d->n_location_table)) ref_loc[st->location_indices[j]] = 1;
    }
    for (size_t i = 0; i < d->n_location_table; i++) {
        const PLocation *l = d->location_table[i];
        if (!ref_loc[i]) continue;
        CHECK(IDX(l->mapping_index, d->n_mapping_table));
        if (IDX(l->mapping_index, d->n_mapping_table)) ref_map[l->mapping_index] = 1;
        for (size_t j = 0; j < l->n_lines; j++) {
            CHECK(IDX(l->lines[j]->function_index, d->n_function_table));
            if (IDX(l->lines[j]->function_index, d->n_function_table)) ref_fn[l->lines[j]->function_index] = 1;
        }
        ATTRS(l->attribute_indices, l->n_attribute_indices);
        const char *ft = attr_of(d, l->attribute_indices, l->n_attribute_indices, "profile.frame.type");
        CHECK(ft != NULL);
        /* native frames keep pc and mapping, interpreted ones neither */
        if (ft && strcmp(ft, "cpython") == 0) CHECK(l->address == 0 && l->mapping_index == 0);
        if (ft && strcmp(ft, "native") == 0) CHECK(l->address != 0 && l->mapping_index != 0);
    }
    for (size_t i = 0; i < d->n_mapping_table; i++) {
        const Opentelemetry__Proto__Profiles__V1development__Mapping *m = d->mapping_table[i];
        if (!ref_map[i]) continue;
        CHECK(IDX(m->filename_strindex, d->n_string_table));
        if (IDX(m->filename_strindex, d->n_string_table)) ref_str[m->filename_strindex] = 1;
        ATTRS(m->attribute_indices, m->n_attribute_indices);
    }
    for (size_t i = 0; i < d->n_function_table; i++) {
        const Opentelemetry__Proto__Profiles__V1development__Function *f = d->function_table[i];
        if (!ref_fn[i]) continue;
        int32_t ss[] = {f->name_strindex, f->system_name_strindex, f->filename_strindex};
        for (int k = 0; k < 3; k++) {
            CHECK(IDX(ss[k], d->n_string_table));
            if (IDX(ss[k], d->n_string_table)) ref_str[ss[k]] = 1;
        }
    }
    for (size_t i = 0; i < d->n_attribute_table; i++) {
        const PKvu *a = d->attribute_table[i];
        if (!ref_attr[i]) continue;
        CHECK(IDX(a->key_strindex, d->n_string_table) && IDX(a->unit_strindex, d->n_string_table));
        if (IDX(a->key_strindex, d->n_string_table)) ref_str[a->key_strindex] = 1;
        if (a->value) {
            CHECK(a->value->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE);
        }
    }
    /* every entry but the zero one is referenced */
    struct { const char *name; char *ref; size_t n; } refs[] = {
        {"string", ref_str, d->n_string_table},    {"mapping", ref_map, d->n_mapping_table},
        {"location", ref_loc, d->n_location_table}, {"function", ref_fn, d->n_function_table},
        {"link", ref_link, d->n_link_table},       {"attribute", ref_attr, d->n_attribute_table},
        {"stack", ref_stack, d->n_stack_table},
    };
    for (size_t t = 0; t < sizeof refs / sizeof refs[0]; t++) {
        for (size_t i = 1; i < refs[t].n; i++)
            if (!refs[t].ref[i]) {
                fprintf(stderr, "%s[%zu] is unreferenced\n", refs[t].name, i);
                failures++;
            }
        free(refs[t].ref);
    }
    return nout;
}

static void write_file(const char *dir, const char *name, const uint8_t *b, size_t len) {
    if (!dir) return;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(b, 1, len, f) == len);
    if (f) fclose(f);
}

static PData *encode_decode_otlp(const op_profile *p, uint8_t **bytes, size_t *len) {
    CHECK(op_encode_otlp(p, bytes, len) == 0);
    PData *pd = PD(profiles_data__unpack)(NULL, *len, *bytes);
    CHECK(pd != NULL);
    return pd;
}

static void expect_lines(char **got, size_t ngot, const char *const *want_in, size_t nwant) {
    const char *want[64];
    CHECK(ngot == nwant && nwant <= 64);
    if (nwant > 64) nwant = 64;
    memcpy(want, want_in, nwant * sizeof *want);
    qsort(want, nwant, sizeof *want, cmpstr);
    for (size_t i = 0; i < ngot && i < nwant; i++) {
        if (strcmp(got[i], want[i]) != 0) {
            fprintf(stderr, "sample %zu: got  %s\n          want %s\n", i, got[i], want[i]);
            failures++;
        }
    }
    for (size_t i = 0; i < ngot; i++) free(got[i]);
}

#define L1 "0102030405060708090a0b0c0d0e0f10:a1a2a3a4a5a6a7a8"
#define L2 "ff02030405060708090a0b0c0d0e0f10:b1b2b3b4b5b6b7b8"

static void test_otlp_cpu(const char *dir) {
    op_profile p = make_profile(OP_MODE_CPU);
    uint8_t *bytes;
    size_t len;
    PData *pd = encode_decode_otlp(&p, &bytes, &len);
    if (!pd) return;
    char *got[32];
    size_t n = check_otlp(pd, got, 32);
    static const char *const want[] = {
        "[unknown];main|main||6",
        "memcpy;work;main|||7",
        "py_func;main|||1",
        "py_func;main||" L2 "|1",
        "py_func;main|worker||2",
        "py_func;main|worker|" L1 "|5",
        "work;main|main||5",
        "|main||1",
    };
    expect_lines(got, n, want, sizeof want / sizeof want[0]);

    const PDict *d = pd->dictionary;
    /* functions: "", main, work, py_func, memcpy, [unknown] */
    CHECK(d->n_function_table == 6);
    /* locations: zero, work@402000, main, py_func:10, py_func:12, memcpy, work@402010, kernel */
    CHECK(d->n_location_table == 8);
    CHECK(d->n_mapping_table == 3); /* zero, app, libc; never the unused one */
    CHECK(d->n_link_table == 3);
    CHECK(d->link_table[0]->trace_id.len == 0 && d->link_table[0]->span_id.len == 0);
    CHECK(d->n_stack_table == 6); /* zero (also the empty stack) + 5 distinct */
    for (size_t i = 0; i < d->n_string_table; i++) {
        CHECK(strcmp(d->string_table[i], "never_sampled") != 0);
        CHECK(strcmp(d->string_table[i], "/unused.so") != 0);
    }
    int build_ids = 0;
    for (size_t i = 1; i < d->n_mapping_table; i++) {
        const Opentelemetry__Proto__Profiles__V1development__Mapping *m = d->mapping_table[i];
        const char *b = attr_of(d, m->attribute_indices, m->n_attribute_indices,
                                "process.executable.build_id.gnu");
        if (strcmp(S(d, m->filename_strindex), "/usr/bin/app") == 0) {
            CHECK(b && strcmp(b, "abcdef0123456789") == 0);
            CHECK(m->memory_start == 0x400000 && m->memory_limit == 0x500000);
            build_ids++;
        } else {
            CHECK(strcmp(S(d, m->filename_strindex), "/lib/libc.so.6") == 0);
            CHECK(b == NULL && m->file_offset == 0x1000);
        }
    }
    CHECK(build_ids == 1);
    for (size_t i = 1; i < d->n_location_table; i++) {
        const PLocation *l = d->location_table[i];
        const char *fn = S(d, d->function_table[l->lines[0]->function_index]->name_strindex);
        if (strcmp(fn, "main") == 0) CHECK(l->address == 0x401000);
        if (strcmp(fn, "py_func") == 0) CHECK(l->lines[0]->line == 10 || l->lines[0]->line == 12);
    }
    for (size_t i = 1; i < d->n_function_table; i++) {
        const Opentelemetry__Proto__Profiles__V1development__Function *f = d->function_table[i];
        if (strcmp(S(d, f->name_strindex), "work") == 0)
            CHECK(strcmp(S(d, f->system_name_strindex), "_Z4workv") == 0 &&
                  strcmp(S(d, f->filename_strindex), "app.c") == 0);
        if (strcmp(S(d, f->name_strindex), "py_func") == 0) CHECK(f->start_line == 5);
    }

    const Opentelemetry__Proto__Profiles__V1development__ResourceProfiles *rp = pd->resource_profiles[0];
    CHECK(rp->resource && rp->resource->n_attributes == 3);
    for (size_t i = 0; rp->resource && i < rp->resource->n_attributes; i++) {
        CHECK(strcmp(rp->resource->attributes[i]->key, resource[i].key) == 0);
        CHECK(rp->resource->attributes[i]->value->value_case ==
              OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE);
        CHECK(strcmp(rp->resource->attributes[i]->value->string_value, resource[i].value) == 0);
    }
    CHECK(rp->n_scope_profiles == 1);
    CHECK(strcmp(rp->scope_profiles[0]->scope->name, "otelprof") == 0);
    CHECK(strcmp(rp->scope_profiles[0]->scope->version, "0.1.0") == 0);
    const PProfile *pr = rp->scope_profiles[0]->profiles[0];
    CHECK(strcmp(S(d, pr->sample_type->type_strindex), "samples") == 0);
    CHECK(strcmp(S(d, pr->sample_type->unit_strindex), "count") == 0);
    CHECK(strcmp(S(d, pr->period_type->type_strindex), "cpu") == 0);
    CHECK(strcmp(S(d, pr->period_type->unit_strindex), "nanoseconds") == 0);
    CHECK(pr->period == 10000000);
    CHECK(pr->time_unix_nano == 1700000000000000000ull && pr->duration_nano == 10000000000ull);
    CHECK(pr->profile_id.len == 16 && memcmp(pr->profile_id.data, p.profile_id, 16) == 0);
    CHECK(pr->original_payload_format[0] == 0 && pr->original_payload.len == 0);

    write_file(dir, "profile.otlp.pb", bytes, len);
    PD(profiles_data__free_unpacked)(pd, NULL);
    free(bytes);
}

static void test_otlp_wall(const char *dir) {
    op_profile p = make_profile(OP_MODE_WALL);
    uint8_t *bytes;
    size_t len;
    PData *pd = encode_decode_otlp(&p, &bytes, &len);
    if (!pd) return;
    char *got[32];
    size_t n = check_otlp(pd, got, 32);
    static const char *const want[] = {
        "[unknown];main|main||60",
        "memcpy;work;main|||70",
        "py_func;main|||1",
        "py_func;main||" L2 "|10",
        "py_func;main|worker||20",
        "py_func;main|worker|" L1 "|500",
        "work;main|main||5000",
        "|main||5",
    };
    expect_lines(got, n, want, sizeof want / sizeof want[0]);
    const PDict *d = pd->dictionary;
    const PProfile *pr = pd->resource_profiles[0]->scope_profiles[0]->profiles[0];
    CHECK(strcmp(S(d, pr->sample_type->type_strindex), "wall") == 0);
    CHECK(strcmp(S(d, pr->sample_type->unit_strindex), "nanoseconds") == 0);
    CHECK(strcmp(S(d, pr->period_type->type_strindex), "wall") == 0);
    CHECK(strcmp(S(d, pr->period_type->unit_strindex), "nanoseconds") == 0);
    write_file(dir, "profile.wall.otlp.pb", bytes, len);
    PD(profiles_data__free_unpacked)(pd, NULL);
    free(bytes);
}

static void test_otlp_empty(const char *dir) {
    op_profile p = make_profile(OP_MODE_CPU);
    p.samples = NULL;
    p.nsamples = 0;
    p.resource = NULL;
    p.nresource = 0;
    p.scope_version = NULL;
    uint8_t *bytes;
    size_t len;
    PData *pd = encode_decode_otlp(&p, &bytes, &len);
    if (!pd) return;
    char *got[1];
    CHECK(check_otlp(pd, got, 1) == 0);
    const PDict *d = pd->dictionary;
    /* only the zero entries, plus the value-type strings */
    CHECK(d->n_mapping_table == 1 && d->n_location_table == 1 && d->n_function_table == 1);
    CHECK(d->n_link_table == 1 && d->n_attribute_table == 1 && d->n_stack_table == 1);
    CHECK(d->n_string_table == 5); /* "", samples, count, cpu, nanoseconds */
    const PProfile *pr = pd->resource_profiles[0]->scope_profiles[0]->profiles[0];
    CHECK(pr->n_samples == 0);
    write_file(dir, "profile.empty.otlp.pb", bytes, len);
    PD(profiles_data__free_unpacked)(pd, NULL);
    free(bytes);
}

static void test_otlp_bad_frame(void) {
    static const uint32_t bad[] = {0, 999};
    op_profile_sample s = {bad, 2, 0, NOID16, NOID8, NULL, 1, 1};
    op_profile p = make_profile(OP_MODE_CPU);
    p.samples = &s;
    p.nsamples = 1;
    uint8_t *bytes = (uint8_t *)1;
    size_t len = 1;
    errno = 0;
    CHECK(op_encode_otlp(&p, &bytes, &len) == -1 && errno == EINVAL && bytes == NULL);
    errno = 0;
    CHECK(op_encode_pprof(&p, &bytes, &len) == -1 && errno == EINVAL && bytes == NULL);
}

/* ---- pprof ------------------------------------------------------------------------------------ */

static const char *QS(const QProfile *q, int64_t i) {
    return i >= 0 && (size_t)i < q->n_string_table ? q->string_table[i] : "<bad>";
}

static const char *label_of(const QProfile *q, const Perftools__Profiles__Sample *s, const char *key) {
    for (size_t i = 0; i < s->n_label; i++)
        if (strcmp(QS(q, s->label[i]->key), key) == 0) return QS(q, s->label[i]->str);
    return NULL;
}

static void test_pprof(int mode, const char *dir) {
    op_profile p = make_profile(mode);
    uint8_t *bytes;
    size_t len;
    CHECK(op_encode_pprof(&p, &bytes, &len) == 0);
    QProfile *q = perftools__profiles__profile__unpack(NULL, len, bytes);
    CHECK(q != NULL);
    if (!q) return;
    CHECK(q->n_string_table >= 1 && strcmp(q->string_table[0], "") == 0);
    CHECK(q->n_sample_type == 2);
    CHECK(strcmp(QS(q, q->sample_type[0]->type), "samples") == 0);
    CHECK(strcmp(QS(q, q->sample_type[0]->unit), "count") == 0);
    const char *kind = mode == OP_MODE_WALL ? "wall" : "cpu";
    CHECK(strcmp(QS(q, q->sample_type[1]->type), kind) == 0);
    CHECK(strcmp(QS(q, q->sample_type[1]->unit), "nanoseconds") == 0);
    CHECK(q->period_type && strcmp(QS(q, q->period_type->type), kind) == 0);
    CHECK(strcmp(QS(q, q->period_type->unit), "nanoseconds") == 0);
    CHECK(q->period == 10000000);
    CHECK(q->time_nanos == 1700000000000000000ll && q->duration_nanos == 10000000000ll);
    /* ids are 1..n in order, so id i sits at index i-1 */
    for (size_t i = 0; i < q->n_function; i++) CHECK(q->function[i]->id == i + 1);
    for (size_t i = 0; i < q->n_location; i++) CHECK(q->location[i]->id == i + 1);
    for (size_t i = 0; i < q->n_mapping; i++) CHECK(q->mapping[i]->id == i + 1);
    CHECK(q->n_function == 5); /* main, work, py_func, memcpy, [unknown] */
    CHECK(q->n_location == 7);
    CHECK(q->n_mapping == 2);
    for (size_t i = 0; i < q->n_function; i++)
        for (size_t j = 0; j < i; j++)
            CHECK(!(q->function[i]->name == q->function[j]->name &&
                    q->function[i]->system_name == q->function[j]->system_name &&
                    q->function[i]->filename == q->function[j]->filename &&
                    q->function[i]->start_line == q->function[j]->start_line));
    for (size_t i = 0; i < q->n_location; i++) {
        const Perftools__Profiles__Location *l = q->location[i];
        CHECK(l->mapping_id <= q->n_mapping && l->n_line == 1);
        CHECK(l->line[0]->function_id >= 1 && l->line[0]->function_id <= q->n_function);
        for (size_t j = 0; j < i; j++)
            CHECK(!(l->mapping_id == q->location[j]->mapping_id && l->address == q->location[j]->address &&
                    l->line[0]->function_id == q->location[j]->line[0]->function_id &&
                    l->line[0]->line == q->location[j]->line[0]->line));
    }
    for (size_t i = 0; i < q->n_mapping; i++) {
        const Perftools__Profiles__Mapping *m = q->mapping[i];
        if (strcmp(QS(q, m->filename), "/usr/bin/app") == 0)
            CHECK(strcmp(QS(q, m->build_id), "abcdef0123456789") == 0);
        else
            CHECK(strcmp(QS(q, m->filename), "/lib/libc.so.6") == 0 && m->build_id == 0);
    }
    int64_t total_count = 0, total_value = 0, work_main = 0, linked = 0;
    for (size_t i = 0; i < q->n_sample; i++) {
        const Perftools__Profiles__Sample *s = q->sample[i];
        CHECK(s->n_value == 2);
        for (size_t j = 0; j < s->n_location_id; j++)
            CHECK(s->location_id[j] >= 1 && s->location_id[j] <= q->n_location);
        if (mode == OP_MODE_CPU) CHECK(s->value[1] == s->value[0] * 10000000);
        total_count += s->value[0];
        total_value += s->value[1];
        const char *th = label_of(q, s, "thread_name");
        if (s->n_location_id == 2) {
            const Perftools__Profiles__Location *leaf = q->location[s->location_id[0] - 1];
            const char *fn = QS(q, q->function[leaf->line[0]->function_id - 1]->name);
            if (strcmp(fn, "work") == 0) {
                CHECK(th && strcmp(th, "main") == 0);
                work_main = s->value[0];
            }
        }
        const char *span = label_of(q, s, "span_id");
        if (span && strcmp(span, "a1a2a3a4a5a6a7a8") == 0) {
            const char *tr = label_of(q, s, "trace_id");
            CHECK(tr && strcmp(tr, "0102030405060708090a0b0c0d0e0f10") == 0);
            CHECK(th && strcmp(th, "worker") == 0);
            linked = s->value[0];
        }
    }
    CHECK(q->n_sample == 8);
    CHECK(total_count == 28);
    CHECK(total_value == (mode == OP_MODE_CPU ? 280000000 : 5666));
    CHECK(work_main == 5);
    CHECK(linked == 5);

    write_file(dir, mode == OP_MODE_WALL ? "profile.wall.pprof" : "profile.pprof", bytes, len);
    perftools__profiles__profile__free_unpacked(q, NULL);
    free(bytes);

    /* empty profile still decodes */
    p.samples = NULL;
    p.nsamples = 0;
    CHECK(op_encode_pprof(&p, &bytes, &len) == 0);
    q = perftools__profiles__profile__unpack(NULL, len, bytes);
    CHECK(q && q->n_sample == 0 && q->n_function == 0 && strcmp(q->string_table[0], "") == 0);
    if (q) perftools__profiles__profile__free_unpacked(q, NULL);
    free(bytes);
}

/* ---- gzip ------------------------------------------------------------------------------------- */

static void gunzip_check(const uint8_t *in, size_t len) {
    uint8_t *gz;
    size_t gzlen;
    CHECK(op_gzip(in, len, &gz, &gzlen) == 0);
    CHECK(gzlen >= 18 && gz[0] == 0x1f && gz[1] == 0x8b);
    uint8_t *back = malloc(len + 1);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    CHECK(inflateInit2(&zs, 15 + 16) == Z_OK);
    zs.next_in = gz;
    zs.avail_in = (uInt)gzlen;
    zs.next_out = back;
    zs.avail_out = (uInt)len + 1;
    CHECK(inflate(&zs, Z_FINISH) == Z_STREAM_END);
    CHECK(zs.total_out == len && (len == 0 || memcmp(back, in, len) == 0));
    inflateEnd(&zs);
    free(back);
    free(gz);
}

static void test_gzip(void) {
    gunzip_check((const uint8_t *)"", 0);
    gunzip_check((const uint8_t *)"hello, hello, hello", 19);
    size_t n = 1 << 20;
    uint8_t *big = malloc(n);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u; /* half noise, half runs: exercises both deflate paths */
        big[i] = i & 0x1000 ? (uint8_t)(x >> 16) : (uint8_t)(i >> 12);
    }
    gunzip_check(big, n);
    free(big);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : NULL;
    test_otlp_cpu(dir);
    test_otlp_wall(dir);
    test_otlp_empty(dir);
    test_otlp_bad_frame();
    test_pprof(OP_MODE_CPU, dir);
    test_pprof(OP_MODE_WALL, dir);
    test_gzip();
    if (failures) {
        fprintf(stderr, "test_encode: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_encode: ok\n");
    return 0;
}
