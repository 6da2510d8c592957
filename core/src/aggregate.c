/* Per-interval aggregation. The identity key is the raw bytes of {link, thread name, frames}, so
 * merging is one hash lookup and names are resolved once per distinct frame, not per sample. */
#include "op_aggregate.h"

#include <stdlib.h>
#include <string.h>

#include "op_config.h"
#include "op_stats.h"

typedef struct key_hdr {
    uint8_t has_link;
    uint8_t pad[3];
    int32_t name;          /* index in g->names, -1 = none */
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint32_t nframes;
} key_hdr;

int op_agg_init(op_agg *g, int mode, size_t max_bytes) {
    memset(g, 0, sizeof(*g));
    g->mode = mode;
    op_intern_init(&g->keys, max_bytes);
    op_intern_init(&g->names, 64 * 1024);
    return 0;
}

void op_agg_free(op_agg *g) {
    op_intern_free(&g->keys);
    op_intern_free(&g->names);
    free(g->counts);
    free(g->values);
    memset(g, 0, sizeof(*g));
}

size_t op_agg_bytes(const op_agg *g) {
    return g->keys.bytes + g->names.bytes + (size_t)g->cap * 2 * sizeof(int64_t);
}

void op_agg_add(op_agg *g, const op_slot *s) {
    uint8_t buf[sizeof(key_hdr) + 2048 * sizeof(otelprof_frame)];
    uint32_t nf = s->nframes;
    if (nf > 2048) nf = 2048;
    key_hdr h;
    memset(&h, 0, sizeof h);
    h.has_link = s->has_link;
    if (s->has_link) {
        memcpy(h.trace_id, s->trace_id, 16);
        memcpy(h.span_id, s->span_id, 8);
    }
    h.name = -1;
    size_t nl = strnlen(s->thread_name, sizeof s->thread_name);
    if (nl) h.name = op_intern_put(&g->names, s->thread_name, nl, NULL);
    h.nframes = nf;
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, s->frames, nf * sizeof(otelprof_frame));
    /* Room in the per-entry arrays first, so a key is never interned without its counters. */
    if (op_intern_count(&g->keys) >= g->cap) {
        uint32_t ncap = g->cap ? g->cap * 2 : 256;
        int64_t *c = realloc(g->counts, ncap * sizeof(int64_t));
        if (c) g->counts = c;
        int64_t *v = c ? realloc(g->values, ncap * sizeof(int64_t)) : NULL;
        if (v) g->values = v;
        if (!c || !v) {
            op_stat_drop(OTELPROF_DROP_AGG_FULL);
            return;
        }
        g->cap = ncap;
    }
    int inserted;
    int32_t i = op_intern_put(&g->keys, buf, sizeof h + nf * sizeof(otelprof_frame), &inserted);
    if (i < 0) {
        op_stat_drop(OTELPROF_DROP_AGG_FULL);
        return;
    }
    if (inserted) g->counts[i] = g->values[i] = 0;
    int64_t count = g->mode == OP_MODE_WALL ? 1 : s->weight;
    g->counts[i] += count;
    g->values[i] += s->weight;
    g->samples += (uint64_t)count;
}

void op_agg_reset(op_agg *g, uint64_t start_unix_ns) {
    op_intern_clear(&g->keys);
    op_intern_clear(&g->names);
    g->start_unix_ns = start_unix_ns;
    g->samples = 0;
}

int op_agg_build(op_agg *g, op_resolver *r, op_arena *a, uint64_t end_unix_ns, op_profile *out) {
    memset(out, 0, sizeof(*out));
    out->mode = g->mode;
    out->start_unix_ns = g->start_unix_ns;
    out->duration_ns = end_unix_ns > g->start_unix_ns ? end_unix_ns - g->start_unix_ns : 1;
    uint32_t n = op_intern_count(&g->keys);
    op_profile_sample *samples = op_arena_alloc(a, (n ? n : 1) * sizeof(*samples));
    if (!samples) return -1;

    /* Distinct frames across all samples, each resolved once. */
    op_intern frames;
    op_intern_init(&frames, 0);
    size_t ns = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!g->counts[i]) continue;
        size_t len;
        const uint8_t *k = op_intern_key(&g->keys, i, &len);
        key_hdr h;
        memcpy(&h, k, sizeof h);
        op_profile_sample *ps = &samples[ns++];
        uint32_t *idx = op_arena_alloc(a, (h.nframes ? h.nframes : 1) * sizeof(uint32_t));
        if (!idx) goto fail;
        for (uint32_t f = 0; f < h.nframes; f++) {
            int32_t fi = op_intern_put(&frames, k + sizeof h + f * sizeof(otelprof_frame),
                                       sizeof(otelprof_frame), NULL);
            if (fi < 0) goto fail;
            idx[f] = (uint32_t)fi;
        }
        ps->frames = idx;
        ps->nframes = h.nframes;
        ps->has_link = h.has_link;
        memcpy(ps->trace_id, h.trace_id, 16);
        memcpy(ps->span_id, h.span_id, 8);
        if (h.name >= 0) {
            size_t nl;
            const void *nm = op_intern_key(&g->names, (uint32_t)h.name, &nl);
            char *s = op_arena_alloc(a, nl + 1);
            if (!s) goto fail;
            memcpy(s, nm, nl);
            ps->thread_name = s;
        }
        ps->count = g->counts[i];
        ps->value = g->values[i];
    }
    size_t nframes = op_intern_count(&frames);
    otelprof_frame *fr = op_arena_alloc(a, (nframes ? nframes : 1) * sizeof(*fr));
    op_symbol *syms = op_arena_alloc(a, (nframes ? nframes : 1) * sizeof(*syms));
    if (!fr || !syms) goto fail;
    for (size_t i = 0; i < nframes; i++) memcpy(&fr[i], op_intern_key(&frames, (uint32_t)i, NULL), sizeof(*fr));
    op_intern_free(&frames);
    op_mapping *maps = NULL;
    size_t nmaps = 0;
    op_resolve_frames(r, fr, nframes, syms, a, &maps, &nmaps);
    out->samples = samples;
    out->nsamples = ns;
    out->syms = syms;
    out->nsyms = nframes;
    out->mappings = maps;
    out->nmappings = nmaps;
    return 0;
fail:
    op_intern_free(&frames);
    return -1;
}
