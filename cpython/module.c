/* otelprof._native: the CPython adapter's glue. Plugs the frame walk into the core (capture model
 * a), registers Python threads, publishes the active span, and turns core errors into Python
 * exceptions. The Python package (cpython/otelprof/) builds the public API on top of it. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "op_config.h" /* max_depth and native_frames, to size the merge buffers */
#include "opy.h"

opy_stats opy_stats_g;
/* The adapter's counters by name, as the core reports them (otelprof_stats_counter, the debug
 * "adapter counters:" line) and as stats() keys them. */
static const char *const counter_names[OPY_STATS_N] = {
    [OPY_STAT_INDEX(walk) + OPY_WALK_OK] = "walk_ok",
    [OPY_STAT_INDEX(walk) + OPY_WALK_NO_FRAMES] = "walk_no_frames",
    [OPY_STAT_INDEX(walk) + OPY_WALK_UNREADABLE] = "walk_unreadable",
    [OPY_STAT_INDEX(walk) + OPY_WALK_INCONSISTENT] = "walk_inconsistent",
    [OPY_STAT_INDEX(no_thread)] = "no_thread_state",
    [OPY_STAT_INDEX(code_cache_full)] = "code_cache_full",
    [OPY_STAT_INDEX(codes_pinned)] = "codes_pinned",
    [OPY_STAT_INDEX(codes_dead)] = "codes_dead",
    [OPY_STAT_INDEX(codes_unpinned)] = "codes_unpinned",
    [OPY_STAT_INDEX(codes_named_unpinned)] = "codes_named_unpinned",
    [OPY_STAT_INDEX(dead_names_full)] = "dead_names_full",
    [OPY_STAT_INDEX(threads_full)] = "python_threads_full",
    [OPY_STAT_INDEX(threads_scanned)] = "python_threads_scanned",
    [OPY_STAT_INDEX(native_merge_fallback)] = "native_merge_fallback",
    [OPY_STAT_INDEX(native_merge_busy)] = "native_merge_busy",
    [OPY_STAT_INDEX(frames_not_code)] = "frames_not_code",
    [OPY_STAT_INDEX(ctx_published)] = "ctx_published",
};
_Static_assert(OPY_STATS_N <= OTELPROF_COUNTERS_MAX, "the core reports at most OTELPROF_COUNTERS_MAX counters");
static int merge_native; /* set at start: native frames on, _PyEval_EvalFrameDefault found */
/* The interpreter start() ran in. A thread running in another one (a subinterpreter) is not
 * walked: from 3.12 each isolated subinterpreter has its own allocator and may have its own GIL,
 * so its code objects must not be pinned (a reference taken under this interpreter's GIL would be
 * dropped into the wrong allocator, or outlive the subinterpreter's memory). Its time is kept as
 * the frame [subinterpreter]. Written before the core starts, read by handlers. */
static PyInterpreterState *profiled_interp;
enum { WALK_ERR_SUBINTERPRETER };
static const char *const walk_errors[] = {[WALK_ERR_SUBINTERPRETER] = "subinterpreter"};
static int python_exiting; /* atexit ran: threads of ours could not take the GIL any more */

/* ---- the adapter ---------------------------------------------------------------------------- */

/* SIGNAL CONTEXT, on the interrupted thread: its own thread state comes from the PyGILState key
 * (the GIL holder's, _PyThreadState_GET(), belongs to whoever runs Python right now). */
static int py_walk(void *user, void *uc, otelprof_frame *out, int max) {
    (void)user;
    void *ts = opy_current_tstate();
    /* The state is this thread's own and alive while the thread runs in it. */
    if (ts && ((PyThreadState *)ts)->interp != profiled_interp) return OTELPROF_WALK_ERROR(WALK_ERR_SUBINTERPRETER);
    /* The thread's data only adds the C stack's top, when it describes this very state. */
    otelprof_thread_data t;
    uintptr_t stack_hi = ts && otelprof_thread_data_self(&t) == 0 && t.ptr == ts ? t.stack_hi : 0;
    if (merge_native) {
        int n = opy_merge_walk(ts, stack_hi, uc, out, max);
        if (n >= 0) return n;
    }
    if (!ts) {
        OPY_STAT_INC(no_thread);
        return 0;
    }
    int why = OPY_WALK_OK;
    /* opy_raw_frame and otelprof_frame differ: walk into the tail of out, then expand in place
     * from the front (each raw frame is no larger than a core frame). */
    _Static_assert(sizeof(opy_raw_frame) <= sizeof(otelprof_frame), "in-place expansion");
    opy_raw_frame *raw = (opy_raw_frame *)(void *)out;
    int n = opy_walk(ts, stack_hi, raw, max, &why);
    OPY_STAT_INC(walk[why]);
    for (int i = n - 1; i >= 0; i--) {
        opy_raw_frame r = raw[i];
        out[i].id = opy_frame_id(r.code, opy_code_note(r.code));
        out[i].aux = r.offset;
        out[i].kind = OTELPROF_FRAME_ADAPTER;
    }
    return n;
}

static int py_resolve(void *user, const otelprof_frame *f, otelprof_symbol *out) {
    (void)user;
    return opy_code_resolve(f, out);
}

static void py_profile_closed(void *user) {
    (void)user;
    opy_code_profile_closed();
}

/* ---- helpers -------------------------------------------------------------------------------- */

static uintptr_t stack_top_of(pthread_t th) {
    pthread_attr_t a;
    void *addr;
    size_t size;
    if (pthread_getattr_np(th, &a) != 0) return 0;
    uintptr_t hi = 0;
    if (pthread_attr_getstack(&a, &addr, &size) == 0) hi = (uintptr_t)addr + size;
    pthread_attr_destroy(&a);
    return hi;
}

static PyObject *raise_core(otelprof_error rc, const char *err) {
    if (rc == OTELPROF_EINVAL) PyErr_SetString(PyExc_ValueError, err && *err ? err : otelprof_strerror(rc));
    else PyErr_Format(PyExc_RuntimeError, "otelprof: %s", otelprof_strerror(rc));
    return NULL;
}

/* ---- module functions ----------------------------------------------------------------------- */

static PyObject *m_supported(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    return PyBool_FromLong(opy_internals_supported());
}

/* start(options: dict[str, str]) -> bool: False when disabled by configuration. */
/* ---- fork: the core's adapter callbacks (see otelprof_adapter) ------------------------------- */

/* Only the forking thread survives; the core keeps its data under its new tid. */
static void at_child(void *user) {
    (void)user;
    opy_pinner_after_fork();
    opy_code_after_fork();
}

static PyObject *m_start(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *opts;
    if (!PyArg_ParseTuple(args, "O!", &PyDict_Type, &opts)) return NULL;
    if (!opy_internals_supported()) {
        int v = opy_internals_target();
#ifdef Py_GIL_DISABLED
        const char *build = " (free-threaded)"; /* the same version number, a different ABI */
#else
        const char *build = "";
#endif /* Py_GIL_DISABLED */
        PyErr_Format(PyExc_RuntimeError,
                     "otelprof: CPython %d.%d%s is not supported by this build (supported: %s); "
                     "the program runs unprofiled",
                     (v >> 24) & 0xff, (v >> 16) & 0xff, build, opy_internals_versions());
        return NULL;
    }
    if (python_exiting) {
        PyErr_SetString(PyExc_RuntimeError, "otelprof: the interpreter is exiting; not starting");
        return NULL;
    }
    char err[512] = "";
    otelprof_config *cfg = otelprof_config_new();
    if (!cfg) return PyErr_NoMemory();
    otelprof_error rc = otelprof_config_from_env(cfg, err, sizeof err);
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (rc == OTELPROF_OK && PyDict_Next(opts, &pos, &key, &value)) {
        const char *k = PyUnicode_AsUTF8(key), *v = PyUnicode_AsUTF8(value);
        if (!k || !v) {
            otelprof_config_free(cfg);
            return NULL;
        }
        rc = otelprof_config_set(cfg, k, v, err, sizeof err);
    }
    if (rc != OTELPROF_OK) {
        otelprof_config_free(cfg);
        return raise_core(rc, err);
    }
    opy_safe_read_init();
    opy_code_watch();
    otelprof_adapter ad;
    memset(&ad, 0, sizeof ad);
    ad.name = "cpython";
    ad.frame_type = "cpython";
    ad.walk = py_walk;
    ad.resolve = py_resolve;
    ad.resolve_on = OTELPROF_RESOLVE_ON_EXPORTER;
    ad.profile_closed = py_profile_closed;
    ad.fork_child = at_child;
    ad.walk_errors = walk_errors;
    ad.nwalk_errors = (int)(sizeof walk_errors / sizeof walk_errors[0]);
    profiled_interp = PyInterpreterState_Get();
    /* Native frames are on for an adapter only when asked for (as the core decides); the merge
     * buffers hold stacks as deep as the core's (max_depth + 1, see opy_merge_walk). */
    merge_native = opy_merge_init() && cfg->native_frames_set && cfg->native_frames &&
                   opy_merge_reserve(cfg->max_depth + 1) == 0;
    ad.merges_native = merge_native;
    ad.counter_names = counter_names;
    ad.counters = opy_stats_g.v;
    ad.ncounters = OPY_STATS_N;
    /* memory_bytes stays 0: the code cache's table (codecache.c, `slots`: 32 Ki slots of 200
     * bytes on x86-64, 6.25 MiB of static storage) is the adapter's fixed memory, but declaring it
     * would leave less than the core's 1 MiB minimum under every max_memory below 7.25 MiB, which
     * would then refuse to start, and 1 MiB works. The names it keeps for dead code grow during
     * the run and are counted (otelprof_memory_reserve). */
    __atomic_store_n(&opy_python_alive, 1, __ATOMIC_RELEASE);
    rc = otelprof_start(cfg, &ad);
    otelprof_config_free(cfg);
    if (rc == OTELPROF_EDISABLED) Py_RETURN_FALSE;
    if (rc != OTELPROF_OK) return raise_core(rc, NULL);
    if (opy_pinner_start() < 0) {
        Py_BEGIN_ALLOW_THREADS
        otelprof_stop();
        Py_END_ALLOW_THREADS
        PyErr_SetString(PyExc_RuntimeError, "otelprof: cannot start the code pinning thread");
        return NULL;
    }
    Py_RETURN_TRUE;
}

static PyObject *m_stop(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    /* Pin with the GIL we hold, then let it go: the exporter may need it to name the last codes. */
    opy_code_pin_pending();
    otelprof_error rc;
    Py_BEGIN_ALLOW_THREADS
    rc = otelprof_stop();
    opy_pinner_stop();
    Py_END_ALLOW_THREADS
    opy_code_release_all();
    return PyBool_FromLong(rc == OTELPROF_OK);
}

static PyObject *m_flush(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    opy_code_pin_pending();
    otelprof_error rc;
    Py_BEGIN_ALLOW_THREADS
    rc = otelprof_flush();
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(rc == OTELPROF_OK);
}

static PyObject *m_is_running(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    return PyBool_FromLong(otelprof_is_running());
}

/* The interpreter is shutting down: foreign threads must not try to take the GIL any more. */
static PyObject *m_python_exiting(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    python_exiting = 1;
    __atomic_store_n(&opy_python_alive, 0, __ATOMIC_RELEASE);
    Py_RETURN_NONE;
}

static int set_item(PyObject *d, const char *k, uint64_t v) {
    PyObject *o = PyLong_FromUnsignedLongLong(v);
    if (!o) return -1;
    int rc = PyDict_SetItemString(d, k, o);
    Py_DECREF(o);
    return rc;
}

static PyObject *m_stats(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    otelprof_stats st;
    otelprof_stats_get(&st);
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    int bad = set_item(d, "samples_taken", st.samples_taken) || set_item(d, "signals", st.signals) ||
              set_item(d, "timer_overruns", st.timer_overruns) ||
              set_item(d, "handler_ns_total", st.handler_ns_total) ||
              set_item(d, "handler_ns_max", st.handler_ns_max) ||
              set_item(d, "threads_registered", st.threads_registered) ||
              set_item(d, "profiles_written", st.profiles_written) ||
              set_item(d, "bytes_written", st.bytes_written) || set_item(d, "memory_bytes", st.memory_bytes) ||
              set_item(d, "memory_cap_bytes", st.memory_cap_bytes) ||
              set_item(d, "python_threads", (uint64_t)otelprof_thread_list(NULL, NULL, 0));
    /* The adapter's counters, read from its own array (they exist before any start too); the
     * keys keep their order: the walk outcomes after the drop reasons. */
    const size_t walk0 = OPY_STAT_INDEX(walk);
    for (size_t i = 0; !bad && i < OPY_STATS_N; i++)
        if (i < walk0 || i >= walk0 + OPY_WALK__COUNT)
            bad = set_item(d, counter_names[i], __atomic_load_n(&opy_stats_g.v[i], __ATOMIC_RELAXED));
    for (int i = 0; !bad && i < OTELPROF_DROP__COUNT; i++) {
        char k[64];
        snprintf(k, sizeof k, "dropped_%s", otelprof_drop_reason_name((otelprof_drop_reason)i));
        bad = set_item(d, k, st.samples_dropped[i]);
    }
    for (size_t i = walk0; !bad && i < walk0 + OPY_WALK__COUNT; i++)
        bad = set_item(d, counter_names[i], __atomic_load_n(&opy_stats_g.v[i], __ATOMIC_RELAXED));
    /* Samples kept with an error frame, e.g. walk_subinterpreter (the core counts them). */
    for (size_t i = 0; !bad && i < sizeof walk_errors / sizeof walk_errors[0]; i++) {
        char k[64];
        snprintf(k, sizeof k, "walk_%s", walk_errors[i]);
        bad = set_item(d, k, st.walk_errors[i]);
    }
    if (bad) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

/* The thread state goes in as the thread's adapter data (the core attaches it before the
 * thread's timer starts, so the first signal finds it). */
static otelprof_error register_with_state(pid_t tid, void *ts, uintptr_t stack_hi) {
    otelprof_thread_data d = {ts, stack_hi, 0};
    otelprof_error rc = otelprof_thread_register_data(tid, &d, 0);
    if (rc == OTELPROF_EFULL) OPY_STAT_INC(threads_full);
    return rc;
}

/* thread_started(name): the calling Python thread begins; returns its tid. Its samples carry the
 * Python thread name as thread.name (the OS thread keeps its own name). */
static PyObject *m_thread_started(PyObject *self, PyObject *args) {
    (void)self;
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, "|z", &name)) return NULL;
    pid_t tid = otelprof_gettid();
    if (name && *name) otelprof_thread_set_name(name);
    register_with_state(tid, PyThreadState_Get(), stack_top_of(pthread_self()));
    return PyLong_FromLong(tid);
}

static PyObject *m_thread_stopped(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    pid_t tid = otelprof_gettid();
    otelprof_thread_unregister(tid);
    Py_RETURN_NONE;
}

/* register_thread(native_id, ident): a thread that was already running when profiling started.
 * Under the GIL the thread cannot delete its state, so the state found here is live. */
static PyObject *m_register_thread(PyObject *self, PyObject *args) {
    (void)self;
    long native_id;
    unsigned long ident;
    if (!PyArg_ParseTuple(args, "lk", &native_id, &ident)) return NULL;
    PyThreadState *me = PyThreadState_Get();
    PyThreadState *ts = PyInterpreterState_ThreadHead(me->interp);
    for (; ts; ts = PyThreadState_Next(ts))
        if ((long)ts->native_thread_id == native_id) break;
    if (!ts) Py_RETURN_FALSE;
    uintptr_t hi = ts == me ? stack_top_of(pthread_self()) : stack_top_of((pthread_t)ident);
    return PyBool_FromLong(register_with_state((pid_t)native_id, ts, hi) == OTELPROF_OK);
}

/* ---- span context --------------------------------------------------------------------------- */

/* This thread's published record (ours) and its ids, to skip unchanged republishes. */
static __thread void *tl_token;
static __thread uint8_t tl_ids[24];

/* set_span(trace_id: bytes|None, span_id: bytes|None, flags: int): makes this the span of the
 * calling thread's OTEP 4947 record. Changes are arbitrary (asyncio switches tasks without
 * nesting), so the old record is detached and the new one attached with the profiling signal blocked: a
 * sample never sees the gap between the two. */
static PyObject *m_set_span(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer trace = {0}, span = {0};
    int flags = 0;
    if (!PyArg_ParseTuple(args, "z*z*|i", &trace, &span, &flags)) return NULL;
    int has = trace.buf && span.buf && trace.len == 16 && span.len == 8;
    uint8_t ids[24] = {0};
    if (has) {
        memcpy(ids, trace.buf, 16);
        memcpy(ids + 16, span.buf, 8);
    }
    PyBuffer_Release(&trace);
    PyBuffer_Release(&span);
    if ((has && tl_token && memcmp(ids, tl_ids, 24) == 0) || (!has && !tl_token)) Py_RETURN_NONE;
    sigset_t old;
    otelprof_signal_block(&old);
    if (tl_token) otelprof_ctx_detach(tl_token);
    tl_token = has ? otelprof_ctx_attach(ids, ids + 16, (uint8_t)flags, NULL, 0) : NULL;
    otelprof_signal_restore(&old);
    if (tl_token) memcpy(tl_ids, ids, 24);
    OPY_STAT_INC(ctx_published);
    Py_RETURN_NONE;
}

/* ---- tests ---------------------------------------------------------------------------------- */

/* _code_line(code, offset): the adapter's own location-table decoder, compared by the tests with
 * the interpreter's. */
static PyObject *m_code_line(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *code;
    int offset;
    if (!PyArg_ParseTuple(args, "O!i", &PyCode_Type, &code, &offset)) return NULL;
    return PyLong_FromLong(opy_code_line(code, offset));
}


/* after_fork_child(): from os.register_at_fork, once the interpreter is usable in the child. */
static PyObject *m_after_fork_child(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    /* The core's own restart waits for this point too: fork() has returned, threads may start. */
    otelprof_after_fork();
    if (otelprof_is_running() && opy_pinner_start() < 0)
        PyErr_WarnEx(PyExc_RuntimeWarning, "otelprof: cannot restart the code pinning thread in the child", 1);
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;
}

/* exec_prepare() / exec_failed(): around os.execv and os.execve (see otelprof/__init__.py). */
static PyObject *m_exec_prepare(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    otelprof_exec_prepare();
    Py_RETURN_NONE;
}

static PyObject *m_exec_failed(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    otelprof_exec_failed();
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"supported", m_supported, METH_NOARGS, "True when this interpreter version can be profiled."},
    {"start", m_start, METH_VARARGS, "start(options: dict[str, str]) -> bool"},
    {"stop", m_stop, METH_NOARGS, "Stops profiling and writes the final profile."},
    {"flush", m_flush, METH_NOARGS, "Closes and writes the current profile now."},
    {"is_running", m_is_running, METH_NOARGS, NULL},
    {"stats", m_stats, METH_NOARGS, "Self-metrics as a dict."},
    {"thread_started", m_thread_started, METH_VARARGS, "Registers the calling thread."},
    {"thread_stopped", m_thread_stopped, METH_NOARGS, "Unregisters the calling thread."},
    {"register_thread", m_register_thread, METH_VARARGS, "register_thread(native_id, ident)"},
    {"set_span", m_set_span, METH_VARARGS, "set_span(trace_id, span_id, flags=0)"},
    {"after_fork_child", m_after_fork_child, METH_NOARGS, NULL},
    {"python_exiting", m_python_exiting, METH_NOARGS, NULL},
    {"exec_prepare", m_exec_prepare, METH_NOARGS, "Quiesces the calling thread before exec."},
    {"exec_failed", m_exec_failed, METH_NOARGS, "Resumes sampling after a failed exec."},
    {"_code_line", m_code_line, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "otelprof._native",
                                    "otelprof's C core and CPython adapter.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__native(void) {
    PyObject *m = PyModule_Create(&moddef);
    if (!m) return NULL;
    if (PyModule_AddStringConstant(m, "SUPPORTED_VERSIONS", opy_internals_versions()) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
