/* Code cache: every code object a sample has seen gets a slot; a pinner holding the GIL soon
 * validates it and takes a strong reference, so names and lines can be read later on the
 * exporter thread even if the program dropped the code object meanwhile. Bounded: when full,
 * new code objects are counted and their frames resolve as [unknown]. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "opy.h"

#define SLOTS 32768u /* power of two */
#define PROBES 32u

enum { ST_EMPTY = 0, ST_CLAIMED, ST_NEW, ST_PINNED, ST_DEAD };

typedef struct code_slot {
    uintptr_t code;     /* written once by a CAS from 0 */
    uint32_t state;
    opy_code_fp fp;     /* written by the claiming handler, read by the pinner */
    PyObject *pinned;   /* strong reference once PINNED */
    char *name, *file;  /* owned UTF-8 copies, immutable once PINNED */
    int firstline;
} code_slot;

static code_slot slots[SLOTS];
static uint32_t pending; /* slots in ST_NEW (approximate: a hint for the pinner) */
int opy_python_alive = 1;

static uint32_t hash_code(uintptr_t p) {
    uint64_t x = (uint64_t)p >> 4;
    x *= 0x9e3779b97f4a7c15ull;
    return (uint32_t)(x >> 40) & (SLOTS - 1);
}

static code_slot *find(uintptr_t code);

/* SIGNAL CONTEXT: CLAIMED -> NEW, unless the code object died meanwhile (see code_dealloc). */
static void publish_new(code_slot *s) {
    uint32_t claimed = ST_CLAIMED;
    if (__atomic_compare_exchange_n(&s->state, &claimed, ST_NEW, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        __atomic_fetch_add(&pending, 1, __ATOMIC_RELAXED);
}

/* SIGNAL CONTEXT. */
void opy_code_note(uintptr_t code) {
    uint32_t h = hash_code(code);
    for (uint32_t i = 0; i < PROBES; i++) {
        code_slot *s = &slots[(h + i) & (SLOTS - 1)];
        uintptr_t c = __atomic_load_n(&s->code, __ATOMIC_ACQUIRE);
        if (c == code) {
            /* A code object that died before pinning may have been replaced by a new one at the
             * same address: look again. */
            uint32_t dead = ST_DEAD;
            if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == ST_DEAD &&
                __atomic_compare_exchange_n(&s->state, &dead, ST_CLAIMED, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_RELAXED)) {
                opy_code_fingerprint(code, &s->fp);
                publish_new(s);
            }
            return;
        }
        if (c == 0) {
            uintptr_t zero = 0;
            if (__atomic_compare_exchange_n(&s->code, &zero, code, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                __atomic_store_n(&s->state, ST_CLAIMED, __ATOMIC_RELEASE);
                /* The code object is alive now (a frame of this thread holds it): remember what it
                 * looks like, so the pinner can tell it from a successor at the same address. */
                opy_code_fingerprint(code, &s->fp);
                publish_new(s);
                return;
            }
            if (zero == code) return; /* another handler claimed it for the same code */
        }
    }
    OPY_STAT_INC(code_cache_full);
}

int opy_code_pending(void) {
    return __atomic_load_n(&pending, __ATOMIC_RELAXED) != 0;
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
 * validation and the Py_INCREF nothing can free it. */
int opy_code_pin_pending(void) {
    if (!__atomic_exchange_n(&pending, 0, __ATOMIC_ACQ_REL)) return 0;
    int pinned = 0;
    for (uint32_t i = 0; i < SLOTS; i++) {
        code_slot *s = &slots[i];
        if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != ST_NEW) continue;
        uintptr_t code = __atomic_load_n(&s->code, __ATOMIC_RELAXED);
        if (!opy_code_validate(code, &s->fp)) {
            __atomic_store_n(&s->state, ST_DEAD, __ATOMIC_RELEASE);
            OPY_STAT_INC(codes_dead);
            continue;
        }
        PyCodeObject *co = (PyCodeObject *)code;
        Py_INCREF(co);
        free(s->name);
        free(s->file);
        if (s->pinned) Py_DECREF(s->pinned);
        s->pinned = (PyObject *)co;
        s->name = utf8_dup(co->co_qualname);
        s->file = utf8_dup(co->co_filename);
        s->firstline = co->co_firstlineno;
        __atomic_store_n(&s->state, ST_PINNED, __ATOMIC_RELEASE);
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

/* Code objects have no watchers before 3.12, so the cache learns of deaths from the type's
 * deallocator: a code object noted but not yet pinned is marked dead before its memory is freed,
 * and the pinner never touches it. (Pinned ones cannot die: we hold a reference.) Runs with the
 * GIL, so it never races the pinner; it races only handlers on GIL-free threads, through CAS. */
static destructor orig_code_dealloc;

static void code_dealloc(PyObject *co) {
    code_slot *s = find((uintptr_t)co);
    if (s) {
        uint32_t st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
        while ((st == ST_NEW || st == ST_CLAIMED) &&
               !__atomic_compare_exchange_n(&s->state, &st, ST_DEAD, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {}
        if (st == ST_NEW || st == ST_CLAIMED) OPY_STAT_INC(codes_dead);
    }
    orig_code_dealloc(co);
}

void opy_code_watch(void) {
    /* Installed once, never removed: the module is never unloaded (-z nodelete). */
    if (!orig_code_dealloc) {
        orig_code_dealloc = PyCode_Type.tp_dealloc;
        PyCode_Type.tp_dealloc = code_dealloc;
    }
}

/* Takes the GIL from a thread Python does not know, unless the interpreter is going away (a
 * foreign thread that tries then would block forever or be terminated). */
static int with_gil_pin(void) {
    if (!__atomic_load_n(&opy_python_alive, __ATOMIC_ACQUIRE) || _Py_IsFinalizing()) return -1;
    PyGILState_STATE g = PyGILState_Ensure();
    opy_code_pin_pending();
    PyGILState_Release(g);
    return 0;
}

int opy_code_resolve(const otelprof_frame *f, otelprof_symbol *out) {
    code_slot *s = find((uintptr_t)f->id);
    if (!s) return -1;
    uint32_t st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
    if (st == ST_NEW || st == ST_CLAIMED) {
        if (with_gil_pin() < 0) return -1;
        st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
    }
    if (st == ST_DEAD && s->fp.ok && s->fp.name[0]) {
        /* Died before pinning: the names copied at first sight, and its first line. */
        out->name = s->fp.name;
        out->filename = s->fp.file[0] ? s->fp.file : NULL;
        out->start_line = s->fp.firstlineno;
        out->line = s->fp.firstlineno;
        return 0;
    }
    if (st != ST_PINNED) return -1;
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

static void *pinner_main(void *arg) {
    (void)arg;
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
        if (!opy_code_pending()) continue;
        pthread_mutex_unlock(&pin_lock);
        with_gil_pin();
        pthread_mutex_lock(&pin_lock);
    }
    pthread_mutex_unlock(&pin_lock);
    return NULL;
}

int opy_pinner_start(void) {
    if (pinner_running) return 0;
    pin_stop = 0;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* never sampled, never interrupted */
    int rc = pthread_create(&pinner, NULL, pinner_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) return -1;
    pthread_setname_np(pinner, "otelprof-pin");
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
void opy_pinner_after_fork(void);
void opy_pinner_after_fork(void) {
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t fresh_cond = PTHREAD_COND_INITIALIZER;
    memcpy(&pin_lock, &fresh, sizeof fresh);
    memcpy(&pin_cond, &fresh_cond, sizeof fresh_cond);
    pinner_running = 0;
}
