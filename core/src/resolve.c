/* Frame resolution at profile close. Adapter frames resolved on the adapter's thread are handed
 * over through one pending request guarded by a mutex: the exporter waits at most a bounded time,
 * then names what is left "[unknown]" and counts it, so a runtime that never reaches a safe point
 * cannot stall exports.
 *
 * No lock is held while the adapter's resolve() runs on its thread, because resolve() may never
 * return (a runtime that raises with longjmp). otelprof_resolve_pending() claims one frame at a
 * time under the lock (its state turns CLAIMED and a copy of it goes to the caller's stack), drops
 * the lock, calls resolve(), and retakes the lock to copy the answer into the profile's arena —
 * only if the request it claimed from is still open (same generation, exporter still waiting), so
 * a resolve() that outlives the exporter's wait never touches freed memory. A claim whose
 * resolve() never returned is found by the next call on the same thread (thread-local record) and
 * turned LOST: that frame stays "[unknown]" and the sweep goes on; if no such call comes, the
 * exporter's bounded wait ends the close. */
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

/* Per frame of a request (the `state` array, in the profile's arena). */
enum { FR_WAITING = 0, FR_DONE = 1, FR_CLAIMED = 2, FR_LOST = 3 };

static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pending_cond = PTHREAD_COND_INITIALIZER;
static struct {
    const otelprof_frame *frames; /* adapter frames awaiting names */
    op_symbol *syms;
    uint8_t *state;               /* per frame: FR_* (FR_DONE also for frames not the adapter's) */
    size_t n;
    size_t next;                  /* frames before it have been claimed or were not waiting */
    size_t claimed;               /* claims not yet answered or found lost */
    op_arena *arena;
    uint64_t gen;                 /* request number; never reused, also across fork */
    int active;                   /* the exporter waits for this request */
    int finished;
} pending;

/* The calling thread's claim while its resolve() runs; still set on entry when it never returned. */
static __thread struct {
    uint64_t gen;
    size_t idx;
    int live;
} tl_claim;

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

/* Copies an adapter's answer into the arena. On the exporter, or with pending_lock held while the
 * exporter waits (the arena is then used by no one else). */
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

/* RESOLVE_ON_ADAPTER: publish the request, nudge the adapter, wait a bounded time. On return no
 * other thread touches frames, syms, state or the arena again. */
static void resolve_on_adapter(const otelprof_frame *frames, op_symbol *syms, uint8_t *state,
                               size_t n, op_arena *a) {
    pthread_mutex_lock(&pending_lock);
    pending.frames = frames;
    pending.syms = syms;
    pending.state = state;
    pending.n = n;
    pending.next = 0;
    pending.claimed = 0;
    pending.arena = a;
    pending.gen++;
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
    pending.active = 0; /* answers still on their way are dropped (their frames stay [unknown]) */
    pending.frames = NULL;
    pending.syms = NULL;
    pending.state = NULL;
    pending.arena = NULL;
    pthread_mutex_unlock(&pending_lock);
}

void op_resolve_after_fork(void) {
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t fresh_cond = PTHREAD_COND_INITIALIZER;
    memcpy(&pending_lock, &fresh, sizeof fresh);
    memcpy(&pending_cond, &fresh_cond, sizeof fresh_cond);
    uint64_t gen = pending.gen; /* a claim the forking thread holds must never match a new request */
    memset(&pending, 0, sizeof pending);
    pending.gen = gen + 1;
}

/* Under pending_lock: the request is complete once every frame was claimed and every claim
 * answered or lost. */
static void finish_if_done(void) {
    if (pending.next >= pending.n && pending.claimed == 0 && !pending.finished) {
        pending.finished = 1;
        pthread_cond_broadcast(&pending_cond);
    }
}

/* Under pending_lock: ends the calling thread's claim; 1 if its frame may still be answered. */
static int end_claim(void) {
    if (!tl_claim.live) return 0;
    tl_claim.live = 0;
    if (!pending.active || tl_claim.gen != pending.gen || pending.state[tl_claim.idx] != FR_CLAIMED)
        return 0;
    pending.claimed--;
    return 1;
}

int otelprof_resolve_pending(void) {
    int resolved = 0;
    const char *type = op_g.adapter.frame_type ? op_g.adapter.frame_type : "native";
    pthread_mutex_lock(&pending_lock);
    /* Still set: this thread's last resolve() never returned (it longjmp'd out). */
    if (end_claim()) {
        pending.state[tl_claim.idx] = FR_LOST;
        finish_if_done();
    }
    while (pending.active && !pending.finished) {
        while (pending.next < pending.n && pending.state[pending.next] != FR_WAITING) pending.next++;
        if (pending.next >= pending.n) {
            finish_if_done();
            break;
        }
        size_t i = pending.next++;
        otelprof_frame f = pending.frames[i];
        pending.state[i] = FR_CLAIMED;
        pending.claimed++;
        tl_claim.gen = pending.gen;
        tl_claim.idx = i;
        tl_claim.live = 1;
        pthread_mutex_unlock(&pending_lock);

        /* No lock held: resolve() may longjmp out of here. */
        otelprof_symbol out;
        memset(&out, 0, sizeof out);
        int rc = op_g.adapter.resolve ? op_g.adapter.resolve(op_g.adapter.user, &f, &out) : -1;

        pthread_mutex_lock(&pending_lock);
        if (end_claim()) {
            if (rc == 0) take_symbol(&pending.syms[i], &out, pending.arena, type);
            else set_unknown(&pending.syms[i], type);
            pending.state[i] = FR_DONE;
            resolved++;
            finish_if_done();
        }
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
    uint8_t *done = op_arena_alloc(a, n ? n : 1); /* FR_* per frame */
    size_t adapter_left = 0;
    for (size_t i = 0; i < n; i++) {
        const otelprof_frame *f = &frames[i];
        if (done) done[i] = FR_DONE;
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
                done[i] = FR_WAITING;
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
        for (size_t i = 0; i < n; i++) missing += done[i] != FR_DONE;
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
