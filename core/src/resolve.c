/* Frame resolution at profile close. Adapter frames resolved on the adapter's thread are handed
 * over through one pending request guarded by a mutex: the exporter waits at most a bounded time,
 * then names what is left "[unknown]" and counts it, so a runtime that never reaches a safe point
 * cannot stall exports. */
#include "op_resolve.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "op_log.h"
#include "op_profiler.h"
#include "op_stats.h"

#define OP_RESOLVE_WAIT_NS 2000000000ll

static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pending_cond = PTHREAD_COND_INITIALIZER;
static struct {
    const otelprof_frame *frames; /* adapter frames awaiting names */
    op_symbol *syms;
    uint8_t *done;                /* per frame: resolved */
    size_t n;
    op_arena *arena;
    int active;
    int finished;
} pending;

int op_resolver_init(op_resolver *r, size_t max_symbol_bytes) {
    memset(r, 0, sizeof(*r));
    r->symbolizer = op_symbolizer_new(max_symbol_bytes);
    op_intern_init(&r->mappings, 0);
    return r->symbolizer ? 0 : -1;
}

void op_resolver_free(op_resolver *r) {
    if (r->symbolizer) op_symbolizer_free(r->symbolizer);
    op_intern_free(&r->mappings);
    memset(r, 0, sizeof(*r));
}

static void set_unknown(op_symbol *s, const char *frame_type) {
    memset(s, 0, sizeof(*s));
    s->name = "[unknown]";
    s->mapping = -1;
    s->frame_type = frame_type;
}

/* Copies an adapter's answer into the arena. Called with pending_lock held or on the exporter. */
static void take_symbol(op_symbol *dst, const otelprof_symbol *src, op_arena *a, const char *type) {
    memset(dst, 0, sizeof(*dst));
    dst->name = op_arena_strdup(a, src->name && *src->name ? src->name : "[unknown]");
    dst->system_name = op_arena_strdup(a, src->system_name);
    dst->filename = op_arena_strdup(a, src->filename);
    dst->line = src->line > 0 ? src->line : 0;
    dst->start_line = src->start_line > 0 ? src->start_line : 0;
    dst->mapping = -1;
    dst->frame_type = type;
    if (!dst->name) dst->name = "[unknown]";
}

static int32_t mapping_index(op_resolver *r, const op_mapping *m, op_arena *a) {
    int inserted;
    int32_t i = op_intern_put(&r->mappings, &m, sizeof m, &inserted);
    if (i < 0) return -1;
    if (inserted) {
        if (r->nmaps == r->maps_cap) {
            size_t ncap = r->maps_cap ? r->maps_cap * 2 : 16;
            const op_mapping **nm = op_arena_alloc(a, ncap * sizeof(*nm));
            if (!nm) return -1;
            if (r->nmaps) memcpy(nm, r->maps, r->nmaps * sizeof(*nm));
            r->maps = nm;
            r->maps_cap = ncap;
        }
        r->maps[r->nmaps++] = m;
    }
    return i;
}

static void resolve_native(op_resolver *r, const otelprof_frame *f, op_symbol *s, op_arena *a) {
    /* Return addresses point after the call; look up the call itself. */
    uint64_t pc = f->id, lookup = f->aux ? pc - 1 : pc;
    op_native_sym ns;
    set_unknown(s, "native");
    s->address = pc;
    if (op_symbolizer_lookup(r->symbolizer, lookup, &ns) < 0) return;
    if (ns.capped) op_stat_drop(OTELPROF_DROP_SYMBOL_FULL);
    if (ns.map) s->mapping = mapping_index(r, ns.map, a);
    if (ns.name) {
        s->name = ns.name;
    } else if (ns.map && ns.map->filename) {
        const char *base = strrchr(ns.map->filename, '/');
        char buf[256];
        snprintf(buf, sizeof buf, "[%s]", base ? base + 1 : ns.map->filename);
        const char *d = op_arena_strdup(a, buf);
        if (d) s->name = d;
    }
}

static void resolve_adapter_here(const otelprof_frame *f, op_symbol *s, op_arena *a) {
    otelprof_symbol out;
    memset(&out, 0, sizeof out);
    const char *type = op_g.adapter.frame_type ? op_g.adapter.frame_type : "native";
    if (op_g.adapter.resolve && op_g.adapter.resolve(op_g.adapter.user, f, &out) == 0)
        take_symbol(s, &out, a, type);
    else
        set_unknown(s, type);
}

/* RESOLVE_ON_ADAPTER: publish the request, nudge the adapter, wait a bounded time. */
static void resolve_on_adapter(const otelprof_frame *frames, op_symbol *syms, uint8_t *done,
                               size_t n, op_arena *a) {
    pthread_mutex_lock(&pending_lock);
    pending.frames = frames;
    pending.syms = syms;
    pending.done = done;
    pending.n = n;
    pending.arena = a;
    pending.active = 1;
    pending.finished = 0;
    pthread_mutex_unlock(&pending_lock);
    if (op_g.adapter.resolve_requested) op_g.adapter.resolve_requested(op_g.adapter.user);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += OP_RESOLVE_WAIT_NS / 1000000000ll;
    pthread_mutex_lock(&pending_lock);
    while (!pending.finished && pending.active) {
        if (pthread_cond_timedwait(&pending_cond, &pending_lock, &dl) == ETIMEDOUT) break;
    }
    pending.active = 0;
    pthread_mutex_unlock(&pending_lock);
}

void op_resolve_after_fork(void) {
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t fresh_cond = PTHREAD_COND_INITIALIZER;
    memcpy(&pending_lock, &fresh, sizeof fresh);
    memcpy(&pending_cond, &fresh_cond, sizeof fresh_cond);
    memset(&pending, 0, sizeof pending);
}

int otelprof_resolve_pending(void) {
    int resolved = 0;
    pthread_mutex_lock(&pending_lock);
    if (pending.active && !pending.finished) {
        for (size_t i = 0; i < pending.n; i++) {
            if (pending.done[i]) continue;
            resolve_adapter_here(&pending.frames[i], &pending.syms[i], pending.arena);
            pending.done[i] = 1;
            resolved++;
        }
        pending.finished = 1;
        pthread_cond_broadcast(&pending_cond);
    }
    pthread_mutex_unlock(&pending_lock);
    return resolved;
}

void op_resolve_frames(op_resolver *r, const otelprof_frame *frames, size_t n, op_symbol *syms,
                       op_arena *a, op_mapping **maps_out, size_t *nmaps_out) {
    op_intern_clear(&r->mappings);
    r->maps = NULL;
    r->nmaps = r->maps_cap = 0;
    op_symbolizer_refresh(r->symbolizer);
    uint8_t *done = op_arena_alloc(a, n ? n : 1);
    size_t adapter_left = 0;
    for (size_t i = 0; i < n; i++) {
        const otelprof_frame *f = &frames[i];
        if (done) done[i] = 1;
        switch (f->kind) {
        case OTELPROF_FRAME_NATIVE:
            resolve_native(r, f, &syms[i], a);
            break;
        case OTELPROF_FRAME_TRUNCATED:
            set_unknown(&syms[i], "abort");
            syms[i].name = "[truncated]";
            break;
        case OTELPROF_FRAME_ERROR: {
            set_unknown(&syms[i], "abort");
            const char *label = otelprof_walk_error_name((int)f->id);
            char buf[80];
            snprintf(buf, sizeof buf, "[%s]", label ? label : "walk_error");
            const char *name = op_arena_strdup(a, buf);
            if (name) syms[i].name = name;
            break;
        }
        case OTELPROF_FRAME_ADAPTER:
            if (op_g.has_adapter && op_g.adapter.resolve_on == OTELPROF_RESOLVE_ON_ADAPTER && done) {
                set_unknown(&syms[i], op_g.adapter.frame_type ? op_g.adapter.frame_type : "native");
                done[i] = 0;
                adapter_left++;
            } else if (op_g.has_adapter) {
                resolve_adapter_here(f, &syms[i], a);
            } else {
                set_unknown(&syms[i], "native");
            }
            break;
        default:
            set_unknown(&syms[i], "native");
        }
    }
    if (adapter_left) {
        resolve_on_adapter(frames, syms, done, n, a);
        size_t missing = 0;
        for (size_t i = 0; i < n; i++) missing += !done[i];
        if (missing) {
            op_stat_drop_n(OTELPROF_DROP_UNRESOLVED, missing);
            op_log_debug("%zu adapter frames were not resolved in time", missing);
        }
    }
    /* The profile owns a flat copy of the mappings that its symbols reference. */
    op_mapping *maps = r->nmaps ? op_arena_alloc(a, r->nmaps * sizeof(*maps)) : NULL;
    for (size_t i = 0; maps && i < r->nmaps; i++) maps[i] = *r->maps[i];
    *maps_out = maps;
    *nmaps_out = maps ? r->nmaps : 0;
    if (!maps)
        for (size_t i = 0; i < n; i++) syms[i].mapping = -1;
}
