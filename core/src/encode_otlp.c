/* OTLP ProfilesData encoder: interns an op_profile into a duplicate-free, orphan-free dictionary. */
#include "op_encode.h"
#include "op_intern.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "opentelemetry/proto/profiles/v1development/profiles.pb-c.h"

typedef Opentelemetry__Proto__Profiles__V1development__ProfilesData PData;
typedef Opentelemetry__Proto__Profiles__V1development__ProfilesDictionary PDict;
typedef Opentelemetry__Proto__Profiles__V1development__ResourceProfiles PResourceProfiles;
typedef Opentelemetry__Proto__Profiles__V1development__ScopeProfiles PScopeProfiles;
typedef Opentelemetry__Proto__Profiles__V1development__Profile PProfile;
typedef Opentelemetry__Proto__Profiles__V1development__ValueType PValueType;
typedef Opentelemetry__Proto__Profiles__V1development__Sample PSample;
typedef Opentelemetry__Proto__Profiles__V1development__Mapping PMapping;
typedef Opentelemetry__Proto__Profiles__V1development__Location PLocation;
typedef Opentelemetry__Proto__Profiles__V1development__Line PLine;
typedef Opentelemetry__Proto__Profiles__V1development__Function PFunction;
typedef Opentelemetry__Proto__Profiles__V1development__Link PLink;
typedef Opentelemetry__Proto__Profiles__V1development__Stack PStack;
typedef Opentelemetry__Proto__Profiles__V1development__KeyValueAndUnit PKvu;
typedef Opentelemetry__Proto__Common__V1__AnyValue PAnyValue;
typedef Opentelemetry__Proto__Common__V1__KeyValue PKeyValue;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope PScope;
typedef Opentelemetry__Proto__Resource__V1__Resource PResource;

/* Interning keys. Each is memset to zero before filling so padding never splits equal keys;
 * the all-zero key of each table is the zero entry at index 0. */
typedef struct { int32_t name, system_name, filename, pad; int64_t start_line; } fn_key;
/* key: string index (0 only for the zero entry); value: index into enc.vals. */
typedef struct { int32_t key, value; } attr_key;
typedef struct { uint64_t start, limit, offset; int32_t filename, attr; } map_key;
/* is_real separates a real location from Location{}: a real one always has one line. */
typedef struct { int32_t is_real, mapping, function, attr; uint64_t address; int64_t line; } loc_key;
typedef struct { int32_t stack, link, attr; } sample_key;

typedef struct enc {
    const op_profile *p;
    op_intern strs, fns, attrs, maps, locs, stacks, links, samples;
    /* Attribute values travel inline (AnyValue.string_value), so they stay out of the string
     * table: a string there that nothing indexes is an orphan to the conformance checker. */
    op_intern vals;
    int32_t *sym_loc;  /* per op_symbol: location index, -1 until first use */
    int32_t *map_idx;  /* per op_mapping: mapping index, -1 until first use */
    int32_t *stackbuf; /* one stack's location indices */
    int64_t *values;   /* per interned sample: merged value */
    size_t values_cap;
} enc;

static void enc_free(enc *e) {
    op_intern *tabs[] = {&e->strs, &e->fns, &e->attrs, &e->maps, &e->locs,
                         &e->stacks, &e->links, &e->samples, &e->vals};
    for (size_t i = 0; i < sizeof tabs / sizeof tabs[0]; i++) op_intern_free(tabs[i]);
    free(e->sym_loc);
    free(e->map_idx);
    free(e->stackbuf);
    free(e->values);
}

/* Strings are interned with their NUL so the table can hand out C strings directly. NULL maps
 * to "" (index 0, interned first). */
static int32_t str_idx(enc *e, const char *s) {
    if (!s) s = "";
    return op_intern_put(&e->strs, s, strlen(s) + 1, NULL);
}

static int32_t attr_idx(enc *e, const char *key, const char *value) {
    attr_key k;
    memset(&k, 0, sizeof k);
    k.key = str_idx(e, key);
    k.value = op_intern_put(&e->vals, value, strlen(value) + 1, NULL);
    if (k.key < 0 || k.value < 0) return -1;
    return op_intern_put(&e->attrs, &k, sizeof k, NULL);
}

static int32_t mapping_idx(enc *e, int32_t mi) {
    if (e->map_idx[mi] >= 0) return e->map_idx[mi];
    const op_mapping *m = &e->p->mappings[mi];
    map_key k;
    memset(&k, 0, sizeof k);
    k.start = m->start;
    k.limit = m->limit;
    k.offset = m->offset;
    k.filename = str_idx(e, m->filename);
    if (k.filename < 0) return -1;
    if (m->build_id && *m->build_id) {
        k.attr = attr_idx(e, "process.executable.build_id.gnu", m->build_id);
        if (k.attr < 0) return -1;
    }
    int32_t idx = op_intern_put(&e->maps, &k, sizeof k, NULL);
    if (idx >= 0) e->map_idx[mi] = idx;
    return idx;
}

/* Location of one symbol. Symbols that resolve alike share the function; they share the
 * location too when mapping, address, line and frame type also agree. */
static int32_t location_idx(enc *e, uint32_t si) {
    if (e->sym_loc[si] >= 0) return e->sym_loc[si];
    const op_symbol *s = &e->p->syms[si];
    fn_key f;
    memset(&f, 0, sizeof f);
    f.name = str_idx(e, s->name);
    f.system_name = str_idx(e, s->system_name);
    f.filename = str_idx(e, s->filename);
    f.start_line = s->start_line;
    if (f.name < 0 || f.system_name < 0 || f.filename < 0) return -1;
    loc_key k;
    memset(&k, 0, sizeof k);
    k.is_real = 1;
    k.function = op_intern_put(&e->fns, &f, sizeof f, NULL);
    if (k.function < 0) return -1;
    if (s->mapping >= 0 && (size_t)s->mapping < e->p->nmappings) {
        k.mapping = mapping_idx(e, s->mapping);
        if (k.mapping < 0) return -1;
    }
    if (s->frame_type && *s->frame_type) {
        k.attr = attr_idx(e, "profile.frame.type", s->frame_type);
        if (k.attr < 0) return -1;
    }
    k.address = s->address;
    k.line = s->line;
    int32_t idx = op_intern_put(&e->locs, &k, sizeof k, NULL);
    if (idx >= 0) e->sym_loc[si] = idx;
    return idx;
}

static int link_is_set(const op_profile_sample *s) {
    /* An all-zero trace id is the invalid id: such a sample has no usable link. */
    if (!s->has_link) return 0;
    for (int i = 0; i < 16; i++)
        if (s->trace_id[i]) return 1;
    return 0;
}

static int add_sample(enc *e, const op_profile_sample *s) {
    const op_profile *p = e->p;
    for (uint32_t j = 0; j < s->nframes; j++) {
        if (s->frames[j] >= p->nsyms) {
            errno = EINVAL;
            return -1;
        }
        e->stackbuf[j] = location_idx(e, s->frames[j]);
        if (e->stackbuf[j] < 0) return -1;
    }
    sample_key k;
    memset(&k, 0, sizeof k);
    k.stack = op_intern_put(&e->stacks, e->stackbuf, sizeof(int32_t) * s->nframes, NULL);
    if (k.stack < 0) return -1;
    if (link_is_set(s)) {
        uint8_t lk[24];
        memcpy(lk, s->trace_id, 16);
        memcpy(lk + 16, s->span_id, 8);
        k.link = op_intern_put(&e->links, lk, sizeof lk, NULL);
        if (k.link < 0) return -1;
    }
    if (s->thread_name && *s->thread_name) {
        k.attr = attr_idx(e, "thread.name", s->thread_name);
        if (k.attr < 0) return -1;
    }
    int inserted;
    int32_t idx = op_intern_put(&e->samples, &k, sizeof k, &inserted);
    if (idx < 0) return -1;
    int64_t v = p->mode == OP_MODE_WALL ? s->value : s->count;
    if (inserted) {
        if ((size_t)idx >= e->values_cap) {
            size_t ncap = e->values_cap ? e->values_cap * 2 : 64;
            int64_t *nv = realloc(e->values, sizeof(int64_t) * ncap);
            if (!nv) return -1;
            e->values = nv;
            e->values_cap = ncap;
        }
        e->values[idx] = v;
    } else {
        e->values[idx] += v; /* same stack, attributes and link after resolution: one sample */
    }
    return 0;
}

/* Fills every table from the profile. Zero entries go in first so they take index 0. */
static int intern_all(enc *e) {
    const op_profile *p = e->p;
    op_intern *tabs[] = {&e->strs, &e->fns, &e->attrs, &e->maps, &e->locs,
                         &e->stacks, &e->links, &e->samples, &e->vals};
    for (size_t i = 0; i < sizeof tabs / sizeof tabs[0]; i++) op_intern_init(tabs[i], 0);
    fn_key fz;
    attr_key az;
    map_key mz;
    loc_key lz;
    memset(&fz, 0, sizeof fz);
    memset(&az, 0, sizeof az);
    memset(&mz, 0, sizeof mz);
    memset(&lz, 0, sizeof lz);
    if (op_intern_put(&e->strs, "", 1, NULL) != 0 ||
        op_intern_put(&e->fns, &fz, sizeof fz, NULL) != 0 ||
        op_intern_put(&e->attrs, &az, sizeof az, NULL) != 0 ||
        op_intern_put(&e->maps, &mz, sizeof mz, NULL) != 0 ||
        op_intern_put(&e->locs, &lz, sizeof lz, NULL) != 0 ||
        op_intern_put(&e->stacks, "", 0, NULL) != 0 ||
        op_intern_put(&e->links, "", 0, NULL) != 0)
        return -1;

    size_t maxframes = 1;
    for (size_t i = 0; i < p->nsamples; i++)
        if (p->samples[i].nframes > maxframes) maxframes = p->samples[i].nframes;
    e->sym_loc = malloc(sizeof(int32_t) * (p->nsyms ? p->nsyms : 1));
    e->map_idx = malloc(sizeof(int32_t) * (p->nmappings ? p->nmappings : 1));
    e->stackbuf = malloc(sizeof(int32_t) * maxframes);
    if (!e->sym_loc || !e->map_idx || !e->stackbuf) return -1;
    memset(e->sym_loc, 0xff, sizeof(int32_t) * p->nsyms);
    memset(e->map_idx, 0xff, sizeof(int32_t) * p->nmappings);

    for (size_t i = 0; i < p->nsamples; i++)
        if (add_sample(e, &p->samples[i]) < 0) return -1;
    return 0;
}

/* Everything the message tree points at, freed in one place. */
typedef struct out {
    char **strings;
    PFunction *fns;
    PFunction **fnp;
    PKvu *kvus;
    PKvu **kvup;
    PAnyValue *avs;
    PMapping *maps;
    PMapping **mapp;
    int32_t *mattr;
    PLocation *locs;
    PLocation **locp;
    PLine *lines;
    PLine **linep;
    int32_t *lattr;
    PStack *stacks;
    PStack **stackp;
    int32_t *stackidx;
    PLink *links;
    PLink **linkp;
    PSample *samples;
    PSample **samplep;
    int32_t *sattr;
    PKeyValue *rkv;
    PKeyValue **rkvp;
    PAnyValue *rav;
} out;

static void out_free(out *o) {
    void *ptrs[] = {o->strings, o->fns,   o->fnp,     o->kvus,    o->kvup,   o->avs,    o->maps,
                    o->mapp,    o->mattr, o->locs,    o->locp,    o->lines,  o->linep,  o->lattr,
                    o->stacks,  o->stackp, o->stackidx, o->links, o->linkp,  o->samples,
                    o->samplep, o->sattr, o->rkv,     o->rkvp,    o->rav};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) free(ptrs[i]);
}

/* calloc that never asks for zero bytes, so an empty table is not mistaken for ENOMEM. */
static void *zalloc(size_t n, size_t size) { return calloc(n ? n : 1, size); }

static const void *key_at(const op_intern *t, uint32_t i, size_t *len) { return op_intern_key(t, i, len); }

static int build(enc *e, out *o, PDict *d) {
    /* strings */
    uint32_t n = op_intern_count(&e->strs);
    if (!(o->strings = zalloc(n, sizeof(char *)))) return -1;
    for (uint32_t i = 0; i < n; i++) o->strings[i] = (char *)key_at(&e->strs, i, NULL);
    d->n_string_table = n;
    d->string_table = o->strings;

    /* functions */
    n = op_intern_count(&e->fns);
    if (!(o->fns = zalloc(n, sizeof(PFunction))) || !(o->fnp = zalloc(n, sizeof(PFunction *))))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        fn_key k;
        memcpy(&k, key_at(&e->fns, i, NULL), sizeof k);
        PFunction f = OPENTELEMETRY__PROTO__PROFILES__V1DEVELOPMENT__FUNCTION__INIT;
        f.name_strindex = k.name;
        f.system_name_strindex = k.system_name;
        f.filename_strindex = k.filename;
        f.start_line = k.start_line;
        o->fns[i] = f;
        o->fnp[i] = &o->fns[i];
    }
    d->n_function_table = n;
    d->function_table = o->fnp;

    /* attributes: all values are strings */
    n = op_intern_count(&e->attrs);
    if (!(o->kvus = zalloc(n, sizeof(PKvu))) || !(o->kvup = zalloc(n, sizeof(PKvu *))) ||
        !(o->avs = zalloc(n, sizeof(PAnyValue))))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        attr_key k;
        memcpy(&k, key_at(&e->attrs, i, NULL), sizeof k);
        PKvu kv = OPENTELEMETRY__PROTO__PROFILES__V1DEVELOPMENT__KEY_VALUE_AND_UNIT__INIT;
        if (i != 0) {
            PAnyValue av = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
            av.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
            av.string_value = (char *)key_at(&e->vals, (uint32_t)k.value, NULL);
            o->avs[i] = av;
            kv.key_strindex = k.key;
            kv.value = &o->avs[i];
        }
        o->kvus[i] = kv;
        o->kvup[i] = &o->kvus[i];
    }
    d->n_attribute_table = n;
    d->attribute_table = o->kvup;

    /* mappings */
    n = op_intern_count(&e->maps);
    if (!(o->maps = zalloc(n, sizeof(PMapping))) || !(o->mapp = zalloc(n, sizeof(PMapping *))) ||
        !(o->mattr = zalloc(n, sizeof(int32_t))))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        map_key k;
        memcpy(&k, key_at(&e->maps, i, NULL), sizeof k);
        PMapping m = OPENTELEMETRY__PROTO__PROFILES__V1DEVELOPMENT__MAPPING__INIT;
        m.memory_start = k.start;
        m.memory_limit = k.limit;
        m.file_offset = k.offset;
        m.filename_strindex = k.filename;
        if (k.attr) {
            o->mattr[i] = k.attr;
            m.n_attribute_indices = 1;
            m.attribute_indices = &o->mattr[i];
        }
        o->maps[i] = m;
        o->mapp[i] = &o->maps[i];
    }
    d->n_mapping_table = n;
    d->mapping_table = o->mapp;

    /* locations: one line each (no inlining information is captured) */
    n = op_intern_count(&e->locs);
    if (!(o->locs = zalloc(n, sizeof(PLocation))) || !(o->locp = zalloc(n, sizeof(PLocation *))) ||
        !(o->lines = zalloc(n, sizeof(PLine))) || !(o->linep = zalloc(n, sizeof(PLine *))) ||
        !(o->lattr = zalloc(n, sizeof(int32_t))))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        loc_key k;
        memcpy(&k, key_at(&e->locs, i, NULL), sizeof k);
        PLocation l = OPENTELEMETRY__PROTO__PROFILES__V1DEVELOPMENT__LOCATION__INIT;
        if (k.is_real) {
            PLine ln = OPENTELEMETRY__PROTO__PROFILES__V1DEVELOPMENT__LINE__INIT;
            ln.function_index = k.function;
            ln.line = k.line;
            o->lines[i] = ln;
            o->linep[i] = &o->lines[i];
            l.mapping_index = k.mapping;
            l.address = k.address;
            l.n_lines = 1;
            l.lines = &o->linep[i];
            if (k.attr) {
                o->lattr[i] = k.attr;
                l.n_attribute_indices = 1;
                l.attribute_indices = &o->lattr[i];
            }
        }
        o->locs[i] = l;
        o->locp[i] = &o->locs[i];
    }
    d->n_location_table = n;
    d->location_table = o->locp;

    /* stacks: keys are copied out because the intern buffer gives no int32 alignment */
    n = op_intern_count(&e->stacks);
    size_t total = e->stacks.data_len / sizeof(int32_t);
    if (!(o->stacks = zalloc(n, sizeof(PStack))) || !(o->stackp = zalloc(n, sizeof(PStack *))) ||
        !(o->stackidx = zalloc(total, sizeof(int32_t))))
        return -1;
    size_t at = 0;
    for (uint32_t i = 0; i < n; i++) {
        size_t len;
        const void *kp = key_at(&e->stacks, i, &len);
        PStack s = OPENTELEMETRY__PROTO__PROFILES__V1DEVELOPMENT__STACK__INIT;
        if (len) {
            memcpy(&o->stackidx[at], kp, len);
            s.n_location_indices = len / sizeof(int32_t);
            s.location_indices = &o->stackidx[at];
            at += s.n_location_indices;
        }
        o->stacks[i] = s;
        o->stackp[i] = &o->stacks[i];
    }
    d->n_stack_table = n;
    d->stack_table = o->stackp;

    /* links: index 0 carries empty ids */
    n = op_intern_count(&e->links);
    if (!(o->links = zalloc(n, sizeof(PLink))) || !(o->linkp = zalloc(n, sizeof(PLink *))))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        size_t len;
        uint8_t *kp = (uint8_t *)key_at(&e->links, i, &len);
        PLink l = OPENTELEMETRY__PROTO__PROFILES__V1DEVELOPMENT__LINK__INIT;
        if (len == 24) {
            l.trace_id.len = 16;
            l.trace_id.data = kp;
            l.span_id.len = 8;
            l.span_id.data = kp + 16;
        }
        o->links[i] = l;
        o->linkp[i] = &o->links[i];
    }
    d->n_link_table = n;
    d->link_table = o->linkp;
    return 0;
}

static int build_samples(enc *e, out *o, PProfile *pr) {
    uint32_t n = op_intern_count(&e->samples);
    if (!(o->samples = zalloc(n, sizeof(PSample))) || !(o->samplep = zalloc(n, sizeof(PSample *))) ||
        !(o->sattr = zalloc(n, sizeof(int32_t))))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        sample_key k;
        memcpy(&k, key_at(&e->samples, i, NULL), sizeof k);
        PSample s = OPENTELEMETRY__PROTO__PROFILES__V1DEVELOPMENT__SAMPLE__INIT;
        s.stack_index = k.stack;
        s.link_index = k.link;
        if (k.attr) {
            o->sattr[i] = k.attr;
            s.n_attribute_indices = 1;
            s.attribute_indices = &o->sattr[i];
        }
        s.n_values = 1;
        s.values = &e->values[i];
        o->samples[i] = s;
        o->samplep[i] = &o->samples[i];
    }
    pr->n_samples = n;
    pr->samples = o->samplep;
    return 0;
}

int op_encode_otlp(const op_profile *p, uint8_t **outp, size_t *len) {
    enc e;
    out o;
    memset(&e, 0, sizeof e);
    memset(&o, 0, sizeof o);
    e.p = p;
    *outp = NULL;
    *len = 0;
    int rc = -1;
    int saved_errno = ENOMEM;

    errno = 0;
    if (intern_all(&e) < 0) {
        if (errno == EINVAL) saved_errno = EINVAL;
        goto done;
    }
    int wall = p->mode == OP_MODE_WALL;
    int32_t st_type = str_idx(&e, wall ? "wall" : "samples");
    int32_t st_unit = str_idx(&e, wall ? "nanoseconds" : "count");
    int32_t pt_type = str_idx(&e, wall ? "wall" : "cpu");
    int32_t pt_unit = str_idx(&e, "nanoseconds");
    if (st_type < 0 || st_unit < 0 || pt_type < 0 || pt_unit < 0) goto done;

    PDict dict = OPENTELEMETRY__PROTO__PROFILES__V1DEVELOPMENT__PROFILES_DICTIONARY__INIT;
    if (build(&e, &o, &dict) < 0) goto done;

    PValueType sample_type = OPENTELEMETRY__PROTO__PROFILES__V1DEVELOPMENT__VALUE_TYPE__INIT;
    sample_type.type_strindex = st_type;
    sample_type.unit_strindex = st_unit;
    PValueType period_type = OPENTELEMETRY__PROTO__PROFILES__V1DEVELOPMENT__VALUE_TYPE__INIT;
    period_type.type_strindex = pt_type;
    period_type.unit_strindex = pt_unit;

    PProfile prof = OPENTELEMETRY__PROTO__PROFILES__V1DEVELOPMENT__PROFILE__INIT;
    prof.sample_type = &sample_type;
    prof.period_type = &period_type;
    prof.period = p->period_ns;
    prof.time_unix_nano = p->start_unix_ns;
    prof.duration_nano = p->duration_ns;
    prof.profile_id.len = 16;
    prof.profile_id.data = (uint8_t *)p->profile_id;
    if (build_samples(&e, &o, &prof) < 0) goto done;
    PProfile *profp = &prof;

    PScope scope = OPENTELEMETRY__PROTO__COMMON__V1__INSTRUMENTATION_SCOPE__INIT;
    scope.name = (char *)(p->scope_name ? p->scope_name : "");
    scope.version = (char *)(p->scope_version ? p->scope_version : "");
    PScopeProfiles sp = OPENTELEMETRY__PROTO__PROFILES__V1DEVELOPMENT__SCOPE_PROFILES__INIT;
    sp.scope = &scope;
    sp.n_profiles = 1;
    sp.profiles = &profp;
    PScopeProfiles *spp = &sp;

    /* Resource attributes use inline key and string_value: receivers ignore the strindex forms. */
    size_t nr = p->nresource;
    if (!(o.rkv = zalloc(nr, sizeof(PKeyValue))) || !(o.rkvp = zalloc(nr, sizeof(PKeyValue *))) ||
        !(o.rav = zalloc(nr, sizeof(PAnyValue))))
        goto done;
    for (size_t i = 0; i < nr; i++) {
        PAnyValue av = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
        av.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
        av.string_value = p->resource[i].value ? p->resource[i].value : "";
        o.rav[i] = av;
        PKeyValue kv = OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE__INIT;
        kv.key = p->resource[i].key ? p->resource[i].key : "";
        kv.value = &o.rav[i];
        o.rkv[i] = kv;
        o.rkvp[i] = &o.rkv[i];
    }
    PResource res = OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
    res.n_attributes = nr;
    res.attributes = o.rkvp;
    PResourceProfiles rp = OPENTELEMETRY__PROTO__PROFILES__V1DEVELOPMENT__RESOURCE_PROFILES__INIT;
    rp.resource = &res;
    rp.n_scope_profiles = 1;
    rp.scope_profiles = &spp;
    PResourceProfiles *rpp = &rp;

    PData data = OPENTELEMETRY__PROTO__PROFILES__V1DEVELOPMENT__PROFILES_DATA__INIT;
    data.n_resource_profiles = 1;
    data.resource_profiles = &rpp;
    data.dictionary = &dict;

    size_t size = protobuf_c_message_get_packed_size(&data.base);
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) goto done;
    if (protobuf_c_message_pack(&data.base, buf) != size) {
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
