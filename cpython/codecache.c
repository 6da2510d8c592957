/* Code cache: every code object a sample has seen gets a slot; a pinner holding the GIL soon
 * validates it and takes a strong reference, so names and lines can be read later on the
 * exporter thread even if the program dropped the code object meanwhile. Bounded: when full,
 * new code objects are counted and their frames resolve as [unknown]. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "opy.h"

#define SLOTS 32768u /* power of two */
#define PROBES 32u

/* A slot's state word holds its phase (low 4 bits) and the generation of the code object it
 * describes (the rest), so a handler reads both in one load: a handler that sees a live phase
 * knows the generation of the code object its own thread keeps alive at that address. */
enum { ST_EMPTY = 0, ST_CLAIMED, ST_NEW, ST_PINNED, ST_DEAD };
#define PHASE(v) ((v) & 15u)
#define GEN(v) ((v) >> 4)
#define STATE(phase, gen) ((uint32_t)(phase) | ((uint32_t)(gen) << 4))
#define GEN16(v) (GEN(v) & 0xffffu) /* the part of the generation frame ids carry */

typedef struct code_slot {
    uintptr_t code;     /* written once by a CAS from 0 */
    uint32_t state;     /* STATE(phase, generation) */
    opy_code_fp fp;     /* written by the claiming handler, read by the pinner */
    PyObject *pinned;   /* strong reference once PINNED */
    char *name, *file;  /* owned UTF-8 copies, immutable once PINNED */
    int firstline;
    uint64_t seen;      /* the core's frame epoch when a handler last met it (otelprof_frames_epoch) */
} code_slot;

static code_slot slots[SLOTS];
static uint32_t pending; /* slots in ST_NEW (approximate: a hint for the pinner) */
/* What one close may spend waiting for the pinner, in all (see opy_code_resolve). Exporter
 * thread only; refilled by opy_code_profile_closed. */
#define PIN_WAIT_NS 50000000L
static long pin_wait_left = PIN_WAIT_NS;
int opy_python_alive = 1;

static uint32_t hash_code(uintptr_t p) {
    uint64_t x = (uint64_t)p >> 4;
    x *= 0x9e3779b97f4a7c15ull;
    return (uint32_t)(x >> 40) & (SLOTS - 1);
}

/* SIGNAL CONTEXT, inside walk(): the epoch read here bounds how long the core may hold this
 * frame (see otelprof_frames_released). A plain store, and only when it changes. */
static void touch(code_slot *s) {
    uint64_t now = otelprof_frames_epoch();
    if (__atomic_load_n(&s->seen, __ATOMIC_RELAXED) != now) __atomic_store_n(&s->seen, now, __ATOMIC_RELAXED);
}

/* SIGNAL CONTEXT: CLAIMED -> NEW, unless the code object died meanwhile (see code_dealloc). */
static void publish_new(code_slot *s, uint32_t gen) {
    uint32_t claimed = STATE(ST_CLAIMED, gen);
    if (__atomic_compare_exchange_n(&s->state, &claimed, STATE(ST_NEW, gen), 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_RELAXED))
        __atomic_fetch_add(&pending, 1, __ATOMIC_RELAXED);
}

/* SIGNAL CONTEXT. The code object is alive (a frame of the interrupted thread holds it), and a
 * dead predecessor at its address was marked DEAD before its memory was freed (code_dealloc), so
 * a slot in any other phase describes this very object. */
uint32_t opy_code_note(uintptr_t code) {
    uint32_t h = hash_code(code);
    for (uint32_t i = 0; i < PROBES; i++) {
        code_slot *s = &slots[(h + i) & (SLOTS - 1)];
        uintptr_t c = __atomic_load_n(&s->code, __ATOMIC_ACQUIRE);
        if (c == code) {
            uint32_t v = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
            while (PHASE(v) == ST_DEAD) {
                /* A new code object at a dead one's address: the next generation. The dead one's
                 * names were kept by code_dealloc for its frames still to be named. */
                uint32_t gen = GEN(v) + 1;
                if (__atomic_compare_exchange_n(&s->state, &v, STATE(ST_CLAIMED, gen), 0, __ATOMIC_ACQ_REL,
                                                __ATOMIC_ACQUIRE)) {
                    touch(s);
                    opy_code_fingerprint(code, &s->fp);
                    publish_new(s, gen);
                    return gen;
                }
            }
            touch(s);
            return GEN(v); /* EMPTY only while its claimer is between two stores: generation 0 */
        }
        if (c == 0) {
            uintptr_t zero = 0;
            if (__atomic_compare_exchange_n(&s->code, &zero, code, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                __atomic_store_n(&s->state, STATE(ST_CLAIMED, 0), __ATOMIC_RELEASE);
                touch(s);
                /* Remember what the object looks like, so the pinner can tell it from a
                 * successor at the same address. */
                opy_code_fingerprint(code, &s->fp);
                publish_new(s, 0);
                return 0;
            }
            if (zero == code) {
                touch(s);
                return GEN(__atomic_load_n(&s->state, __ATOMIC_ACQUIRE));
            }
        }
    }
    OPY_STAT_INC(code_cache_full);
    return 0;
}

int opy_code_pending(void) {
    return __atomic_load_n(&pending, __ATOMIC_RELAXED) != 0;
}

/* SIGNAL CONTEXT. A NEW or PINNED slot's fingerprint is complete (published by the CAS that
 * made it NEW) and describes the object at that address until it dies, which marks the slot DEAD
 * first; the walk asks about code its own interrupted thread keeps alive. Any other phase: not
 * known (yet). */
int opy_code_cached_prologue(uintptr_t code) {
    uint32_t h = hash_code(code);
    for (uint32_t i = 0; i < PROBES; i++) {
        code_slot *s = &slots[(h + i) & (SLOTS - 1)];
        uintptr_t c = __atomic_load_n(&s->code, __ATOMIC_ACQUIRE);
        if (c == 0) return -1;
        if (c != code) continue;
        uint32_t v = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
        if ((PHASE(v) != ST_NEW && PHASE(v) != ST_PINNED) || !s->fp.ok) return -1;
        return s->fp.prologue;
    }
    return -1;
}

static char *utf8_dup(PyObject *s) {
    if (!s || !PyUnicode_Check(s)) return NULL;
    const char *u = PyUnicode_AsUTF8(s);
    if (!u) {
        PyErr_Clear();
        return NULL;
    }
    return strdup(u);
}

/* GIL held: every refcount change of a code object happens under the GIL, so between the
 * validation and the Py_INCREF nothing can free it. Handlers move a slot only out of DEAD or
 * CLAIMED, so a NEW slot is the pinner's to change. */
int opy_code_pin_pending(void) {
    if (!__atomic_exchange_n(&pending, 0, __ATOMIC_ACQ_REL)) return 0;
    int pinned = 0;
    for (uint32_t i = 0; i < SLOTS; i++) {
        code_slot *s = &slots[i];
        uint32_t v = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
        if (PHASE(v) != ST_NEW) continue;
        uintptr_t code = __atomic_load_n(&s->code, __ATOMIC_RELAXED);
        if (!opy_code_validate(code, &s->fp)) {
            __atomic_store_n(&s->state, STATE(ST_DEAD, GEN(v)), __ATOMIC_RELEASE);
            OPY_STAT_INC(codes_dead);
            continue;
        }
        PyCodeObject *co = (PyCodeObject *)code;
        Py_INCREF(co);
        /* name, file and pinned are NULL here: every way out of PINNED clears them. */
        s->pinned = (PyObject *)co;
        s->name = utf8_dup(co->co_qualname);
        s->file = utf8_dup(co->co_filename);
        s->firstline = co->co_firstlineno;
        __atomic_store_n(&s->state, STATE(ST_PINNED, GEN(v)), __ATOMIC_RELEASE);
        OPY_STAT_INC(codes_pinned);
        pinned++;
    }
    return pinned;
}

static code_slot *find(uintptr_t code) {
    uint32_t h = hash_code(code);
    for (uint32_t i = 0; i < PROBES; i++) {
        code_slot *s = &slots[(h + i) & (SLOTS - 1)];
        uintptr_t c = __atomic_load_n(&s->code, __ATOMIC_ACQUIRE);
        if (c == code) return s;
        if (c == 0) return NULL;
    }
    return NULL;
}

/* ---- names of code objects that died unpinned, or were unpinned ----------------------------- */

/* Their frames may still wait to be named (samples are named when their profile closes), while a
 * new code object at the same address starts the slot's next generation. So the deallocator
 * copies names and location table, keyed by {address, generation}, and they are freed once the
 * core holds no frame of that generation any more (otelprof_frames_released passed the last
 * epoch a handler met it in). The same happens when a pinned code object has not been sampled
 * for IDLE_EPOCHS closes: its reference is dropped (the program may free it) and its slot starts
 * a new generation if it shows up again. So pinning holds only code that is in use, and the kept
 * names stay few; they are capped all the same. */
#define DEAD_BUCKETS 1024u
#define DEAD_MAX 8192u

typedef struct dead_code {
    struct dead_code *next;
    uintptr_t code;
    uint32_t gen;
    uint64_t held_until; /* the last epoch the core may hold a frame of it from */
    char *name, *file;
    int firstline;
    uint8_t *linetable;
    size_t linetable_len;
    size_t charged; /* bytes of this record reserved from max_memory (otelprof_memory_reserve) */
} dead_code;

static pthread_mutex_t dead_lock = PTHREAD_MUTEX_INITIALIZER;
static dead_code *dead[DEAD_BUCKETS];
static uint32_t dead_count;
/* Unpinned code objects whose reference the pinner drops with the GIL (under dead_lock). */
static PyObject **release;
static size_t release_n, release_cap;

#define IDLE_EPOCHS 3

/* Frame ids carry 16 bits of generation: records are keyed by the same 16 bits. */
static uint32_t dead_bucket(uintptr_t code, uint32_t gen) {
    return (hash_code(code) ^ ((gen & 0xffffu) * 0x9e37u)) & (DEAD_BUCKETS - 1);
}

/* dead_lock held. */
static void dead_insert(dead_code *d, uint64_t held_until) {
    d->held_until = held_until;
    uint32_t b = dead_bucket(d->code, d->gen);
    d->next = dead[b];
    dead[b] = d;
    dead_count++;
}

/* A copy of the code's location table (an immutable bytes object), for exact lines later. */
static void keep_linetable(dead_code *d, PyCodeObject *co) {
    PyObject *lt = co->co_linetable;
    if (lt && PyBytes_Check(lt) && PyBytes_GET_SIZE(lt) > 0 && (d->linetable = malloc((size_t)PyBytes_GET_SIZE(lt)))) {
        d->linetable_len = (size_t)PyBytes_GET_SIZE(lt);
        memcpy(d->linetable, PyBytes_AS_STRING(lt), d->linetable_len);
    }
}

/* dead_lock held: hands a pinned reference to the pinner, which drops it with the GIL. */
static int release_push(PyObject *o) {
    if (release_n == release_cap) {
        size_t cap = release_cap ? 2 * release_cap : 256;
        PyObject **grown = realloc(release, cap * sizeof *grown);
        if (!grown) return -1;
        release = grown;
        release_cap = cap;
    }
    release[release_n] = o;
    __atomic_store_n(&release_n, release_n + 1, __ATOMIC_RELAXED);
    return 0;
}

/* A record and its copies count against max_memory: 0, or -1 (the record is not kept) when
 * they would pass it. */
static int dead_charge(dead_code *d, const char *name, const char *file) {
    size_t n = sizeof *d + (name ? strlen(name) + 1 : 0) + (file ? strlen(file) + 1 : 0) + d->linetable_len;
    if (otelprof_memory_reserve(n) < 0) return -1;
    d->charged = n;
    return 0;
}

static void dead_free(dead_code *d) {
    if (d->charged) otelprof_memory_release(d->charged);
    free(d->name);
    free(d->file);
    free(d->linetable);
    free(d);
}

/* GIL held, inside the deallocator or the code watcher: the object is still whole. An exception
 * may be set (objects die while one propagates), so it is kept aside while strings are
 * converted. */
static int dead_keep(PyCodeObject *co, uint32_t gen, uint64_t seen) {
    if (__atomic_load_n(&dead_count, __ATOMIC_RELAXED) >= DEAD_MAX) return -1;
    dead_code *d = calloc(1, sizeof *d);
    if (!d) return -1;
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc = PyErr_GetRaisedException(); /* PyErr_Fetch is deprecated from 3.12 */
#else
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
#endif /* PY_VERSION_HEX: keeping an exception aside */
    d->code = (uintptr_t)co;
    d->gen = gen & 0xffffu; /* as frame ids carry it */
    d->name = utf8_dup(co->co_qualname);
    d->file = utf8_dup(co->co_filename);
    d->firstline = co->co_firstlineno;
    keep_linetable(d, co);
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(et, ev, tb);
#endif /* PY_VERSION_HEX: keeping an exception aside */
    if (!d->name || dead_charge(d, d->name, d->file) < 0) {
        dead_free(d);
        return -1;
    }
    pthread_mutex_lock(&dead_lock);
    /* Dying, it is in no frame: no handler meets it again, so the last epoch one met it in is
     * final. */
    dead_insert(d, seen);
    pthread_mutex_unlock(&dead_lock);
    return 0;
}

/* Exporter thread, dead_lock held, after this close named its frames (so no resolve() is
 * reading slot names now; resolve() runs on this thread only). A pinned slot's fields are the
 * exporter's to move: handlers never change a PINNED slot, and the pinner touches only NEW ones,
 * which this slot can become only after the DEAD store below. */
static void unpin_idle(uint64_t now, uint64_t released) {
    for (uint32_t i = 0; i < SLOTS && dead_count < DEAD_MAX / 2; i++) {
        code_slot *s = &slots[i];
        uint32_t v = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
        uint64_t seen = __atomic_load_n(&s->seen, __ATOMIC_RELAXED);
        if (PHASE(v) != ST_PINNED || now - seen < IDLE_EPOCHS || seen >= released) continue;
        dead_code *d = calloc(1, sizeof *d);
        if (!d) return;
        /* The pinned code holds its table until the pinner drops the reference: no GIL needed. */
        keep_linetable(d, (PyCodeObject *)s->pinned);
        /* Over max_memory the code simply stays pinned: no name is lost. */
        if (dead_charge(d, s->name, s->file) < 0 || release_push(s->pinned) < 0) {
            dead_free(d);
            return;
        }
        d->code = __atomic_load_n(&s->code, __ATOMIC_RELAXED);
        d->gen = GEN16(v);
        d->name = s->name;
        d->file = s->file;
        d->firstline = s->firstline;
        /* A handler may meet it between the checks above and the DEAD store below; it reads an
         * epoch no later than now (only this thread advances it, later), so the names outlive
         * that frame too. */
        dead_insert(d, now);
        s->name = s->file = NULL;
        s->pinned = NULL;
        __atomic_store_n(&s->state, STATE(ST_DEAD, GEN(v)), __ATOMIC_RELEASE);
        OPY_STAT_INC(codes_unpinned);
    }
}

/* Exporter thread, after a close named its frames: kept names the core can no longer need are
 * freed, idle pinned codes let go. */
void opy_code_profile_closed(void) {
    pin_wait_left = PIN_WAIT_NS;
    uint64_t now = otelprof_frames_epoch(), released = otelprof_frames_released();
    pthread_mutex_lock(&dead_lock);
    for (uint32_t b = 0; b < DEAD_BUCKETS; b++) {
        dead_code **pp = &dead[b];
        while (*pp) {
            dead_code *d = *pp;
            if (d->held_until < released) {
                *pp = d->next;
                dead_free(d);
                dead_count--;
            } else {
                pp = &d->next;
            }
        }
    }
    unpin_idle(now, released);
    pthread_mutex_unlock(&dead_lock);
}

int opy_code_release_pending(void) {
    return __atomic_load_n(&release_n, __ATOMIC_RELAXED) != 0;
}

/* GIL held: drops the references unpin_idle() took away from their slots. */
void opy_code_release_unpinned(void) {
    if (!opy_code_release_pending()) return;
    pthread_mutex_lock(&dead_lock);
    PyObject **list = release;
    size_t n = release_n;
    release = NULL;
    __atomic_store_n(&release_n, 0, __ATOMIC_RELAXED);
    release_cap = 0;
    pthread_mutex_unlock(&dead_lock);
    /* Outside the lock: a deallocation runs code_dealloc, which may take it. */
    for (size_t i = 0; i < n; i++) Py_DECREF(list[i]);
    free(list);
}

/* Exporter thread: names a frame of a dead code object from the kept copy. The strings stay
 * valid after the lock is dropped: only profile_closed frees them, on this same thread. */
static int dead_resolve(uintptr_t code, uint32_t gen, int offset, otelprof_symbol *out) {
    int found = 0;
    pthread_mutex_lock(&dead_lock);
    for (dead_code *d = dead[dead_bucket(code, gen)]; d; d = d->next) {
        if (d->code != code || d->gen != (gen & 0xffffu)) continue;
        out->name = d->name;
        out->filename = d->file;
        out->start_line = d->firstline;
        out->line = opy_linetable_line(d->linetable, d->linetable_len, d->firstline, offset);
        found = 1;
        break;
    }
    pthread_mutex_unlock(&dead_lock);
    return found ? 0 : -1;
}

void opy_code_after_fork(void) {
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    memcpy(&dead_lock, &fresh, sizeof fresh);
    /* A handler of a thread that does not exist here may have been mid-claim: its slot would
     * never become NEW. DEAD makes the next sample of that code start a new generation. */
    for (uint32_t i = 0; i < SLOTS; i++) {
        code_slot *s = &slots[i];
        uint32_t v = __atomic_load_n(&s->state, __ATOMIC_RELAXED);
        if (PHASE(v) == ST_CLAIMED || (PHASE(v) == ST_EMPTY && __atomic_load_n(&s->code, __ATOMIC_RELAXED)))
            __atomic_store_n(&s->state, STATE(ST_DEAD, GEN(v)), __ATOMIC_RELAXED);
    }
}

/* GIL held, profiling stopped (no handler, no exporter): nothing waits to be named any more, so
 * every pinned code is let go and every kept name freed; a later start() begins afresh. */
void opy_code_release_all(void) {
    pthread_mutex_lock(&dead_lock);
    for (uint32_t i = 0; i < SLOTS; i++) {
        code_slot *s = &slots[i];
        uint32_t v = __atomic_load_n(&s->state, __ATOMIC_RELAXED);
        if (PHASE(v) != ST_PINNED) continue;
        if (release_push(s->pinned) < 0) break; /* stays pinned; tried again at the next stop */
        free(s->name);
        free(s->file);
        s->name = s->file = NULL;
        s->pinned = NULL;
        __atomic_store_n(&s->state, STATE(ST_DEAD, GEN(v)), __ATOMIC_RELEASE);
    }
    for (uint32_t b = 0; b < DEAD_BUCKETS; b++) {
        while (dead[b]) {
            dead_code *d = dead[b];
            dead[b] = d->next;
            dead_free(d);
        }
    }
    dead_count = 0;
    pthread_mutex_unlock(&dead_lock);
    opy_code_release_unpinned();
}

/* The cache learns of code object deaths before their memory is freed: a code object noted but
 * not yet pinned is marked dead, and the pinner never touches it. (Pinned ones cannot die: we
 * hold a reference.) Both ways below run with the GIL, inside code_dealloc, so this never races
 * the pinner; it races only handlers on GIL-free threads, through CAS. */
static void code_dying(PyCodeObject *co) {
    code_slot *s = find((uintptr_t)co);
    if (!s) return;
    uint32_t v = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
    if (PHASE(v) == ST_NEW || PHASE(v) == ST_CLAIMED) {
        /* Names first: a frame of this generation may be named as soon as the slot is DEAD. */
        if (dead_keep(co, GEN(v), __atomic_load_n(&s->seen, __ATOMIC_RELAXED)) < 0)
            OPY_STAT_INC(dead_names_full);
        while ((PHASE(v) == ST_NEW || PHASE(v) == ST_CLAIMED) &&
               !__atomic_compare_exchange_n(&s->state, &v, STATE(ST_DEAD, GEN(v)), 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE)) {}
        OPY_STAT_INC(codes_dead);
    }
}

/* Before 3.12 (and on 3.12 when every code watcher slot is taken): PyCode_Type's deallocator,
 * wrapped. */
static destructor orig_code_dealloc;

static void code_dealloc(PyObject *co) {
    code_dying((PyCodeObject *)co);
    orig_code_dealloc(co);
}

#if PY_VERSION_HEX >= 0x030C0000
/* 3.12+: a code watcher, the interpreter's own way: PY_CODE_EVENT_DESTROY is sent by
 * code_dealloc before it frees anything, with the GIL. The object is being deallocated: nothing
 * here touches its refcount. */
static int code_watcher(PyCodeEvent event, PyCodeObject *co) {
    if (event == PY_CODE_EVENT_DESTROY) code_dying(co);
    return 0;
}
#endif /* PY_VERSION_HEX: code watchers */

void opy_code_watch(void) {
    /* Installed once, never removed: the module is never unloaded (-z nodelete). */
    static int watching;
    if (watching) return;
    watching = 1;
#if PY_VERSION_HEX >= 0x030C0000
    /* Watchers belong to the interpreter start() runs in (the main one, in practice). */
    if (PyCode_AddWatcher(code_watcher) >= 0) return;
    PyErr_Clear(); /* all watcher slots in use: fall back to the deallocator */
#endif /* PY_VERSION_HEX: code watchers */
    orig_code_dealloc = PyCode_Type.tp_dealloc;
    PyCode_Type.tp_dealloc = code_dealloc;
}

/* Takes the GIL from the pinner thread, unless the interpreter is going away (a foreign thread
 * that tries then would block forever or be terminated). */
static int with_gil_pin(void) {
    if (!__atomic_load_n(&opy_python_alive, __ATOMIC_ACQUIRE) || opy_is_finalizing()) return -1;
    PyGILState_STATE g = PyGILState_Ensure();
    opy_code_pin_pending();
    opy_code_release_unpinned();
    PyGILState_Release(g);
    return 0;
}

static void pinner_kick(void);

/* Exporter thread: the names a handler copied at first sight (ASCII, the file's tail) and the
 * first line, for a code that was never pinned (its current line stays unknown). A handler
 * rewrites fp only after moving the slot to a later generation, so the copy is good when the
 * generation is unchanged after it. The copy lives here until the next call (the core copies
 * the strings before that). */
static int first_sight_names(code_slot *s, uint32_t gen, otelprof_symbol *out) {
    static opy_code_fp copy;
    OPY_STAT_INC(codes_named_unpinned);
    memcpy(&copy, &s->fp, sizeof copy);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (GEN16(__atomic_load_n(&s->state, __ATOMIC_ACQUIRE)) != gen) return -1;
    copy.name[sizeof copy.name - 1] = 0;
    copy.file[sizeof copy.file - 1] = 0;
    if (!copy.ok || !copy.name[0]) return -1;
    out->name = copy.name;
    out->filename = copy.file[0] ? copy.file : NULL;
    out->start_line = copy.firstlineno;
    /* Without the location table the line is not known: 0 says so (OTLP and pprof read 0 as
     * unknown), where the first line would name the def statement falsely. */
    out->line = 0;
    return 0;
}


/* Exporter thread. Never takes the GIL: the exporter holds the core's work lock during a close,
 * and a thread that forks (or exits) holding the GIL waits for that lock. A code first seen in
 * the last few milliseconds is left to the pinner, waiting at most PIN_WAIT_NS per close in all
 * (a pinner that cannot get the GIL because its holder waits for this close costs 50 ms, not 50
 * ms per frame), then named from its first-sight copy. */
int opy_code_resolve(const otelprof_frame *f, otelprof_symbol *out) {
    uintptr_t code = opy_frame_code(f->id);
    uint32_t gen = opy_frame_gen(f->id);
    code_slot *s = find(code);
    if (!s) return -1;
    uint32_t v = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
    if (GEN16(v) != gen) /* an earlier generation: it died, its names were kept */
        return dead_resolve(code, gen, f->aux, out);
    if (PHASE(v) == ST_NEW || PHASE(v) == ST_CLAIMED) {
        pinner_kick();
        struct timespec step = {0, 1000000L};
        while (pin_wait_left > 0 && (PHASE(v) == ST_NEW || PHASE(v) == ST_CLAIMED) && GEN16(v) == gen) {
            nanosleep(&step, NULL);
            pin_wait_left -= step.tv_nsec;
            v = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
        }
        if (GEN16(v) != gen) return dead_resolve(code, gen, f->aux, out);
        if (PHASE(v) == ST_NEW || PHASE(v) == ST_CLAIMED) return first_sight_names(s, gen, out);
    }
    if (PHASE(v) == ST_DEAD) {
        if (dead_resolve(code, gen, f->aux, out) == 0) return 0;
        /* Past the cap of kept names, or dead before the pinner validated it. */
        return first_sight_names(s, gen, out);
    }
    if (PHASE(v) != ST_PINNED) return -1;
    out->name = s->name ? s->name : "[unknown]";
    out->filename = s->file;
    out->start_line = s->firstline;
    /* The pinned code object and its location table are immutable: no GIL needed to read them. */
    out->line = opy_code_line(s->pinned, f->aux);
    return 0;
}

/* ---- pinner thread -------------------------------------------------------------------------- */

static pthread_t pinner;
static int pinner_running;
static pthread_mutex_t pin_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pin_cond = PTHREAD_COND_INITIALIZER;
static int pin_stop;

#define PIN_PERIOD_NS 10000000L

static pid_t pinner_tid;

/* Wakes the pinner now (codes wait to be pinned). */
static void pinner_kick(void) {
    pthread_mutex_lock(&pin_lock);
    pthread_cond_broadcast(&pin_cond);
    pthread_mutex_unlock(&pin_lock);
}

pid_t opy_pinner_tid(void) {
    return __atomic_load_n(&pinner_tid, __ATOMIC_RELAXED);
}

#define SCAN_EVERY 10 /* periods: threads that never announce themselves are found within 100 ms */

static void *pinner_main(void *arg) {
    (void)arg;
    unsigned ticks = 0;
    __atomic_store_n(&pinner_tid, otelprof_gettid(), __ATOMIC_RELAXED);
    pthread_mutex_lock(&pin_lock);
    while (!pin_stop) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_nsec += PIN_PERIOD_NS;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&pin_cond, &pin_lock, &dl);
        if (pin_stop) break;
        int scan = ++ticks % SCAN_EVERY == 0, pin = opy_code_pending() || opy_code_release_pending();
        if (!scan && !pin) continue;
        pthread_mutex_unlock(&pin_lock);
        if (scan && __atomic_load_n(&opy_python_alive, __ATOMIC_ACQUIRE)) opy_threads_scan();
        if (pin) with_gil_pin();
        pthread_mutex_lock(&pin_lock);
    }
    pthread_mutex_unlock(&pin_lock);
    return NULL;
}

int opy_pinner_start(void) {
    if (pinner_running) return 0;
    pin_stop = 0;
    if (otelprof_thread_spawn(&pinner, pinner_main, NULL, "otelprof-pin") != 0) return -1;
    pinner_running = 1;
    return 0;
}

void opy_pinner_stop(void) {
    if (!pinner_running) return;
    pthread_mutex_lock(&pin_lock);
    pin_stop = 1;
    pthread_cond_broadcast(&pin_cond);
    pthread_mutex_unlock(&pin_lock);
    pthread_join(pinner, NULL);
    pinner_running = 0;
}

/* Fork child: the pinner thread does not exist there; its lock may be held. */
void opy_pinner_after_fork(void) {
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t fresh_cond = PTHREAD_COND_INITIALIZER;
    memcpy(&pin_lock, &fresh, sizeof fresh);
    memcpy(&pin_cond, &fresh_cond, sizeof fresh_cond);
    pinner_running = 0;
}
