/* pprof Profile encoder: deduplicated functions, locations and mappings, merged samples. */
#include "op_encode.h"
#include "op_intern.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pprof/profile.pb-c.h"

typedef Perftools__Profiles__Profile QProfile;
typedef Perftools__Profiles__ValueType QValueType;
typedef Perftools__Profiles__Sample QSample;
typedef Perftools__Profiles__Label QLabel;
typedef Perftools__Profiles__Mapping QMapping;
typedef Perftools__Profiles__Location QLocation;
typedef Perftools__Profiles__Line QLine;
typedef Perftools__Profiles__Function QFunction;

/* Interning keys, memset to zero before filling so padding never splits equal keys. Entry i of
 * a table becomes pprof id i+1 (id 0 means "none" in pprof). */
typedef struct { int64_t name, system_name, filename, start_line; } fn_key;
typedef struct { uint64_t start, limit, offset; int64_t filename, build_id; } map_key;
typedef struct { uint64_t mapping_id, function_id, address; int64_t line; } loc_key;
typedef struct {
    int32_t stack;       /* index into the stack table */
    int32_t thread;      /* string index of the thread name, 0 = none */
    int32_t has_link;
    uint8_t trace_id[16];
    uint8_t span_id[8];
} sample_key;

typedef struct enc {
    const op_profile *p;
    op_intern strs, fns, maps, locs, stacks, samples;
    uint64_t *sym_loc;  /* per op_symbol: location id, 0 until first use */
    uint64_t *map_id;   /* per op_mapping: mapping id, 0 until first use */
    uint64_t *stackbuf; /* one stack's location ids */
    int64_t *counts, *values; /* per interned sample */
    size_t values_cap;
} enc;

static void enc_free(enc *e) {
    op_intern *tabs[] = {&e->strs, &e->fns, &e->maps, &e->locs, &e->stacks, &e->samples};
    for (size_t i = 0; i < sizeof tabs / sizeof tabs[0]; i++) op_intern_free(tabs[i]);
    free(e->sym_loc);
    free(e->map_id);
    free(e->stackbuf);
    free(e->counts);
    free(e->values);
}

/* Strings carry their NUL so the table hands out C strings; NULL maps to "" (index 0). */
static int32_t str_idx(enc *e, const char *s) {
    if (!s) s = "";
    return op_intern_put(&e->strs, s, strlen(s) + 1, NULL);
}

static uint64_t mapping_id(enc *e, int32_t mi) {
    if (e->map_id[mi]) return e->map_id[mi];
    const op_mapping *m = &e->p->mappings[mi];
    map_key k;
    memset(&k, 0, sizeof k);
    k.start = m->start;
    k.limit = m->limit;
    k.offset = m->offset;
    k.filename = str_idx(e, m->filename);
    k.build_id = str_idx(e, m->build_id);
    if (k.filename < 0 || k.build_id < 0) return 0;
    int32_t idx = op_intern_put(&e->maps, &k, sizeof k, NULL);
    if (idx < 0) return 0;
    return e->map_id[mi] = (uint64_t)idx + 1;
}

static uint64_t location_id(enc *e, uint32_t si) {
    if (e->sym_loc[si]) return e->sym_loc[si];
    const op_symbol *s = &e->p->syms[si];
    fn_key f;
    memset(&f, 0, sizeof f);
    f.name = str_idx(e, s->name);
    f.system_name = str_idx(e, s->system_name);
    f.filename = str_idx(e, s->filename);
    f.start_line = s->start_line;
    if (f.name < 0 || f.system_name < 0 || f.filename < 0) return 0;
    int32_t fi = op_intern_put(&e->fns, &f, sizeof f, NULL);
    if (fi < 0) return 0;
    loc_key k;
    memset(&k, 0, sizeof k);
    k.function_id = (uint64_t)fi + 1;
    if (s->mapping >= 0 && (size_t)s->mapping < e->p->nmappings) {
        k.mapping_id = mapping_id(e, s->mapping);
        if (!k.mapping_id) return 0;
    }
    k.address = s->address;
    k.line = s->line;
    int32_t idx = op_intern_put(&e->locs, &k, sizeof k, NULL);
    if (idx < 0) return 0;
    return e->sym_loc[si] = (uint64_t)idx + 1;
}

static int add_sample(enc *e, const op_profile_sample *s) {
    const op_profile *p = e->p;
    for (uint32_t j = 0; j < s->nframes; j++) {
        if (s->frames[j] >= p->nsyms) {
            errno = EINVAL;
            return -1;
        }
        if (!(e->stackbuf[j] = location_id(e, s->frames[j]))) return -1;
    }
    sample_key k;
    memset(&k, 0, sizeof k);
    k.stack = op_intern_put(&e->stacks, e->stackbuf, sizeof(uint64_t) * s->nframes, NULL);
    if (k.stack < 0) return -1;
    if (s->thread_name && *s->thread_name && (k.thread = str_idx(e, s->thread_name)) < 0) return -1;
    int zero_trace = 1;
    for (int i = 0; i < 16; i++)
        if (s->trace_id[i]) zero_trace = 0;
    if (s->has_link && !zero_trace) {
        k.has_link = 1;
        memcpy(k.trace_id, s->trace_id, 16);
        memcpy(k.span_id, s->span_id, 8);
    }
    int inserted;
    int32_t idx = op_intern_put(&e->samples, &k, sizeof k, &inserted);
    if (idx < 0) return -1;
    if (inserted) {
        if ((size_t)idx >= e->values_cap) {
            size_t ncap = e->values_cap ? e->values_cap * 2 : 64;
            int64_t *nc = realloc(e->counts, sizeof(int64_t) * ncap);
            if (!nc) return -1;
            e->counts = nc;
            int64_t *nv = realloc(e->values, sizeof(int64_t) * ncap);
            if (!nv) return -1;
            e->values = nv;
            e->values_cap = ncap;
        }
        e->counts[idx] = 0;
        e->values[idx] = 0;
    }
    e->counts[idx] += s->count;
    /* cpu time is derived from the count so both columns stay consistent after merging */
    e->values[idx] += p->mode == OP_MODE_WALL ? s->value : s->count * p->period_ns;
    return 0;
}

static void hex(char *dst, const uint8_t *src, size_t n) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        dst[2 * i] = digits[src[i] >> 4];
        dst[2 * i + 1] = digits[src[i] & 15];
    }
    dst[2 * n] = 0;
}

/* calloc that never asks for zero bytes, so an empty table is not mistaken for ENOMEM. */
static void *zalloc(size_t n, size_t size) { return calloc(n ? n : 1, size); }

typedef struct out {
    char **strings;
    QFunction *fns;
    QFunction **fnp;
    QMapping *maps;
    QMapping **mapp;
    QLocation *locs;
    QLocation **locp;
    QLine *lines;
    QLine **linep;
    QSample *samples;
    QSample **samplep;
    uint64_t *stackids;
    int64_t *vals;
    QLabel *labels;
    QLabel **labelp;
} out;

static void out_free(out *o) {
    void *ptrs[] = {o->strings, o->fns,     o->fnp,      o->maps, o->mapp,
                    o->locs,    o->locp,    o->lines,    o->linep, o->samples,
                    o->samplep, o->stackids, o->vals,    o->labels, o->labelp};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) free(ptrs[i]);
}

static int build(enc *e, out *o, QProfile *q) {
    /* Label keys are interned on first use so no string goes unreferenced. */
    int32_t k_thread = 0, k_trace = 0, k_span = 0;
    uint32_t n = op_intern_count(&e->fns);
    if (!(o->fns = zalloc(n, sizeof(QFunction))) || !(o->fnp = zalloc(n, sizeof(QFunction *))))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        fn_key k;
        memcpy(&k, op_intern_key(&e->fns, i, NULL), sizeof k);
        QFunction f = PERFTOOLS__PROFILES__FUNCTION__INIT;
        f.id = i + 1;
        f.name = k.name;
        f.system_name = k.system_name;
        f.filename = k.filename;
        f.start_line = k.start_line;
        o->fns[i] = f;
        o->fnp[i] = &o->fns[i];
    }
    q->n_function = n;
    q->function = o->fnp;

    n = op_intern_count(&e->maps);
    if (!(o->maps = zalloc(n, sizeof(QMapping))) || !(o->mapp = zalloc(n, sizeof(QMapping *))))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        map_key k;
        memcpy(&k, op_intern_key(&e->maps, i, NULL), sizeof k);
        QMapping m = PERFTOOLS__PROFILES__MAPPING__INIT;
        m.id = i + 1;
        m.memory_start = k.start;
        m.memory_limit = k.limit;
        m.file_offset = k.offset;
        m.filename = k.filename;
        m.build_id = k.build_id;
        /* Frames are already symbolised: stops pprof from trying to symbolise again. */
        m.has_functions = 1;
        o->maps[i] = m;
        o->mapp[i] = &o->maps[i];
    }
    q->n_mapping = n;
    q->mapping = o->mapp;

    n = op_intern_count(&e->locs);
    if (!(o->locs = zalloc(n, sizeof(QLocation))) || !(o->locp = zalloc(n, sizeof(QLocation *))) ||
        !(o->lines = zalloc(n, sizeof(QLine))) || !(o->linep = zalloc(n, sizeof(QLine *))))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        loc_key k;
        memcpy(&k, op_intern_key(&e->locs, i, NULL), sizeof k);
        QLine ln = PERFTOOLS__PROFILES__LINE__INIT;
        ln.function_id = k.function_id;
        ln.line = k.line;
        o->lines[i] = ln;
        o->linep[i] = &o->lines[i];
        QLocation l = PERFTOOLS__PROFILES__LOCATION__INIT;
        l.id = i + 1;
        l.mapping_id = k.mapping_id;
        l.address = k.address;
        l.n_line = 1;
        l.line = &o->linep[i];
        o->locs[i] = l;
        o->locp[i] = &o->locs[i];
    }
    q->n_location = n;
    q->location = o->locp;

    /* samples: two values each; stack ids copied out of the unaligned intern buffer */
    n = op_intern_count(&e->samples);
    size_t total = e->stacks.data_len / sizeof(uint64_t);
    if (!(o->samples = zalloc(n, sizeof(QSample))) || !(o->samplep = zalloc(n, sizeof(QSample *))) ||
        !(o->stackids = zalloc(total, sizeof(uint64_t))) || !(o->vals = zalloc(2 * (size_t)n, sizeof(int64_t))) ||
        !(o->labels = zalloc(3 * (size_t)n, sizeof(QLabel))) ||
        !(o->labelp = zalloc(3 * (size_t)n, sizeof(QLabel *))))
        return -1;
    /* Stacks shared by several samples are copied once, in stack-table order. */
    uint32_t nst = op_intern_count(&e->stacks);
    size_t *stack_at = zalloc(nst, sizeof(size_t));
    if (!stack_at) return -1;
    size_t at = 0;
    for (uint32_t i = 0; i < nst; i++) {
        size_t len;
        const void *kp = op_intern_key(&e->stacks, i, &len);
        if (len) memcpy(&o->stackids[at], kp, len);
        stack_at[i] = at;
        at += len / sizeof(uint64_t);
    }
    for (uint32_t i = 0; i < n; i++) {
        sample_key k;
        memcpy(&k, op_intern_key(&e->samples, i, NULL), sizeof k);
        size_t slen;
        op_intern_key(&e->stacks, (uint32_t)k.stack, &slen);
        QSample s = PERFTOOLS__PROFILES__SAMPLE__INIT;
        s.n_location_id = slen / sizeof(uint64_t);
        s.location_id = s.n_location_id ? &o->stackids[stack_at[k.stack]] : NULL;
        o->vals[2 * i] = e->counts[i];
        o->vals[2 * i + 1] = e->values[i];
        s.n_value = 2;
        s.value = &o->vals[2 * i];
        QLabel *lb = &o->labels[3 * i];
        QLabel **lp = &o->labelp[3 * i];
        size_t nl = 0;
        if (k.thread) {
            if (!k_thread && (k_thread = str_idx(e, "thread_name")) < 0) goto fail;
            QLabel l = PERFTOOLS__PROFILES__LABEL__INIT;
            l.key = k_thread;
            l.str = k.thread;
            lb[nl] = l;
            lp[nl] = &lb[nl];
            nl++;
        }
        if (k.has_link) {
            char h[33];
            if (!k_trace && ((k_trace = str_idx(e, "trace_id")) < 0 || (k_span = str_idx(e, "span_id")) < 0))
                goto fail;
            QLabel l = PERFTOOLS__PROFILES__LABEL__INIT;
            hex(h, k.trace_id, 16);
            l.key = k_trace;
            l.str = str_idx(e, h);
            lb[nl] = l;
            lp[nl] = &lb[nl];
            nl++;
            hex(h, k.span_id, 8);
            l.key = k_span;
            l.str = str_idx(e, h);
            lb[nl] = l;
            lp[nl] = &lb[nl];
            nl++;
            if (lb[nl - 1].str < 0 || lb[nl - 2].str < 0) goto fail;
        }
        s.n_label = nl;
        s.label = nl ? lp : NULL;
        o->samples[i] = s;
        o->samplep[i] = &o->samples[i];
    }
    free(stack_at);
    q->n_sample = n;
    q->sample = o->samplep;

    /* last: label strings above may have grown the table */
    n = op_intern_count(&e->strs);
    if (!(o->strings = zalloc(n, sizeof(char *)))) return -1;
    for (uint32_t i = 0; i < n; i++) o->strings[i] = (char *)op_intern_key(&e->strs, i, NULL);
    q->n_string_table = n;
    q->string_table = o->strings;
    return 0;
fail:
    free(stack_at);
    return -1;
}

int op_encode_pprof(const op_profile *p, uint8_t **outp, size_t *len) {
    enc e;
    out o;
    memset(&e, 0, sizeof e);
    memset(&o, 0, sizeof o);
    e.p = p;
    *outp = NULL;
    *len = 0;
    int rc = -1, saved_errno = ENOMEM;
    op_intern *tabs[] = {&e.strs, &e.fns, &e.maps, &e.locs, &e.stacks, &e.samples};
    for (size_t i = 0; i < sizeof tabs / sizeof tabs[0]; i++) op_intern_init(tabs[i], 0);

    int wall = p->mode == OP_MODE_WALL;
    /* string_table[0] must be "" */
    if (str_idx(&e, "") != 0) goto done;
    int32_t s_samples = str_idx(&e, "samples"), s_count = str_idx(&e, "count");
    int32_t s_kind = str_idx(&e, wall ? "wall" : "cpu"), s_ns = str_idx(&e, "nanoseconds");
    if (s_samples < 0 || s_count < 0 || s_kind < 0 || s_ns < 0) goto done;

    size_t maxframes = 1;
    for (size_t i = 0; i < p->nsamples; i++)
        if (p->samples[i].nframes > maxframes) maxframes = p->samples[i].nframes;
    e.sym_loc = zalloc(p->nsyms, sizeof(uint64_t));
    e.map_id = zalloc(p->nmappings, sizeof(uint64_t));
    e.stackbuf = zalloc(maxframes, sizeof(uint64_t));
    if (!e.sym_loc || !e.map_id || !e.stackbuf) goto done;
    errno = 0;
    for (size_t i = 0; i < p->nsamples; i++) {
        if (add_sample(&e, &p->samples[i]) < 0) {
            if (errno == EINVAL) saved_errno = EINVAL;
            goto done;
        }
    }
    QProfile q = PERFTOOLS__PROFILES__PROFILE__INIT;
    QValueType st[2] = {PERFTOOLS__PROFILES__VALUE_TYPE__INIT, PERFTOOLS__PROFILES__VALUE_TYPE__INIT};
    QValueType *stp[2] = {&st[0], &st[1]};
    st[0].type = s_samples;
    st[0].unit = s_count;
    st[1].type = s_kind;
    st[1].unit = s_ns;
    QValueType pt = PERFTOOLS__PROFILES__VALUE_TYPE__INIT;
    pt.type = s_kind;
    pt.unit = s_ns;
    q.n_sample_type = 2;
    q.sample_type = stp;
    q.period_type = &pt;
    q.period = p->period_ns;
    q.time_nanos = (int64_t)p->start_unix_ns;
    q.duration_nanos = (int64_t)p->duration_ns;
    if (build(&e, &o, &q) < 0) goto done;

    size_t size = protobuf_c_message_get_packed_size(&q.base);
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) goto done;
    if (protobuf_c_message_pack(&q.base, buf) != size) {
        free(buf);
        saved_errno = EINVAL;
        goto done;
    }
    *outp = buf;
    *len = size;
    rc = 0;
done:
    out_free(&o);
    enc_free(&e);
    if (rc < 0) errno = saved_errno;
    return rc;
}
