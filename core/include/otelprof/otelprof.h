/* otelprof public C API: configure, start and stop the in-process profiler, register threads,
 * plug in a runtime adapter, publish the active span, read self-metrics.
 *
 * The profiler is a process-wide singleton: a signal handler has no other way to find its state.
 * Every function states its thread-safety and async-signal-safety ("AS-safe"). */
#ifndef OTELPROF_OTELPROF_H
#define OTELPROF_OTELPROF_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define OTELPROF_API __attribute__((visibility("default")))
#else
#define OTELPROF_API
#endif

/* ---- errors ---------------------------------------------------------------------------------- */
typedef enum otelprof_error {
    OTELPROF_OK = 0,
    OTELPROF_EINVAL,      /* bad option value: the error text names the option and accepted form */
    OTELPROF_ENOMEM,      /* an allocation or a configured memory cap failed */
    OTELPROF_ERUNNING,    /* already started */
    OTELPROF_ESTOPPED,    /* not started */
    OTELPROF_ESYS,        /* a system call failed (timer, signal, thread, file) */
    OTELPROF_EUNSUPPORTED,/* the kernel, runtime or build lacks a needed feature */
    OTELPROF_EDISABLED,   /* OTEL_SDK_DISABLED=true or mode "off" */
    OTELPROF_EFULL,       /* a bounded table is full; the item was dropped and counted */
    OTELPROF_EEXIST,      /* already there; left as it was (see OTELPROF_THREAD_IF_NEW) */
} otelprof_error;

/* Thread-safe, AS-safe: returns a static string. */
OTELPROF_API const char *otelprof_strerror(otelprof_error err);

/* ---- configuration --------------------------------------------------------------------------- */
/* Options use the same names as the environment variables, lower-cased and without the prefix:
 *   mode (cpu|wall), interval, export_interval, output_dir, formats, max_depth, native_frames,
 *   log_level, service_name, resource_attributes, disabled, max_threads, max_memory,
 *   wall_threads_per_tick, signal.
 * Durations take "10ms", "100us", "1s" (a bare number is milliseconds); see docs/CONFIGURATION.md. */
typedef struct otelprof_config otelprof_config;

/* Thread-safe (each config is owned by its caller), not AS-safe. NULL when out of memory. */
OTELPROF_API otelprof_config *otelprof_config_new(void);
OTELPROF_API void otelprof_config_free(otelprof_config *cfg);
/* Sets one option from its text form. On error returns OTELPROF_EINVAL and writes one line naming
 * the option and the accepted form into err (if err is not NULL). Not AS-safe. */
OTELPROF_API otelprof_error otelprof_config_set(otelprof_config *cfg, const char *key,
                                                const char *value, char *err, size_t errlen);
/* Reads OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_SDK_DISABLED and every OTELPROF_*
 * variable; the first invalid one stops the parse with an error as for otelprof_config_set. */
OTELPROF_API otelprof_error otelprof_config_from_env(otelprof_config *cfg, char *err, size_t errlen);

/* ---- frames and adapters --------------------------------------------------------------------- */
/* A frame as captured: opaque ids, never names. Names are resolved later, off the signal path. */
typedef struct otelprof_frame {
    uint64_t id;   /* native: program counter; adapter: e.g. code object, jmethodID, iseq VALUE */
    int32_t aux;   /* adapter: e.g. instruction offset, bci, line; native: 1 = return address
                      (symbolised at pc-1), 0 = exact pc (the interrupted frame) */
    uint32_t kind; /* OTELPROF_FRAME_* */
} otelprof_frame;

#define OTELPROF_FRAME_NATIVE 1u    /* id is a return address/pc in this process */
#define OTELPROF_FRAME_ADAPTER 2u   /* id/aux meaningful only to the adapter's resolve() */
#define OTELPROF_FRAME_TRUNCATED 3u /* marks a stack cut at max_depth (added by the core) */
#define OTELPROF_FRAME_ERROR 4u     /* a failed walk: id = cause, shown "[label]" (added by the core) */

/* walk() reports error cause i (an index into otelprof_adapter.walk_errors) by returning this. */
#define OTELPROF_WALK_ERROR(i) (-2 - (int)(i))
#define OTELPROF_WALK_ERRORS_MAX 16

/* What a resolved frame is called. Strings are copied by the core before resolve() returns
 * to the caller, so the adapter may point into its own scratch memory. */
typedef struct otelprof_symbol {
    const char *name;        /* function name shown to users (qualified where the runtime has it) */
    const char *system_name; /* mangled/system name, or NULL */
    const char *filename;    /* source file or NULL */
    int64_t line;            /* 1-based line, 0 = unknown */
    int64_t start_line;      /* first line of the function, 0 = unknown */
} otelprof_symbol;

/* Where the adapter's resolve() is called. */
#define OTELPROF_RESOLVE_ON_EXPORTER 0 /* on the core's exporter thread */
#define OTELPROF_RESOLVE_ON_ADAPTER 1  /* only inside otelprof_resolve_pending(), on a thread the
                                          adapter chooses (e.g. a Ruby safe point) */

/* A runtime adapter. The core copies the struct at start; `user` is passed back unchanged.
 * Capture models:
 *  (a) walk the interrupted thread's stack in the handler: set walk(); it receives the signal's
 *      ucontext (JVM AsyncGetCallTrace, CPython frame chain) and resolve_on = EXPORTER.
 *  (b) capture raw frames in the handler, symbolise at a runtime safe point: set walk() and
 *      resolve_on = ADAPTER with resolve_requested() (Ruby rb_profile_frames + postponed job).
 *  (c) submit finished samples from ordinary code with otelprof_submit() (sampler threads). */
typedef struct otelprof_adapter {
    const char *name;       /* runtime name: "cpython", "jvm", "ruby" */
    const char *frame_type; /* value of the location attribute profile.frame.type */
    void *user;
    /* Signal context, on the interrupted thread; MUST be AS-safe and bounded. Writes at most max
     * frames, leaf first, and returns how many (0 = nothing to add, <0 = drop this sample). */
    int (*walk)(void *user, void *ucontext, otelprof_frame *out, int max);
    /* Ordinary context (see resolve_on). Returns 0 on success, <0 when the id is no longer valid
     * (the frame is then shown as "[unknown]"). `frame` is the caller's copy.
     * RESOLVE_ON_ADAPTER: called only inside otelprof_resolve_pending() (which otelprof_flush()
     * and otelprof_stop() also run while they wait). The core holds no lock across the call —
     * except inside otelprof_stop(), which holds its start/stop lock — so it may longjmp out (a
     * Ruby exception): the frame being resolved is then shown as "[unknown]" and counted
     * (unresolved), see otelprof_resolve_pending(). It may also outlive the exporter's 2 s wait:
     * its answer is then dropped. Several threads calling otelprof_resolve_pending() at once run
     * resolve() concurrently (each frame is given to one of them).
     * RESOLVE_ON_EXPORTER: on the exporter thread, which holds its work lock (fork() waits for
     * it); it must return, and must not wait for a thread that may be forking. */
    int (*resolve)(void *user, const otelprof_frame *frame, otelprof_symbol *out);
    int resolve_on;
    /* Exporter thread, RESOLVE_ON_ADAPTER only: frames await names; arrange for
     * otelprof_resolve_pending() to run soon. Must not block. */
    void (*resolve_requested)(void *user);
    /* Optional, exporter thread: a profile closed and its frames are named; otelprof_frames_released()
     * has moved on (see "frame lifetime"), so ids the core no longer holds can be let go here. */
    void (*profile_closed)(void *user);
    /* 1: when native frames are on, walk() interleaves them with the runtime's frames itself
     * (through otelprof_unwind_native), putting each interpreter or VM frame's native caller
     * chain where it belongs; 0: the core puts the native stack on the leaf side of walk()'s. */
    int merges_native;
    /* Optional fork callbacks, run from the core's own fork handlers for the adapter of the
     * current or last run (after stop too, so the adapter's locks are always reset): fork_prepare
     * in the parent before the core takes its locks; fork_parent after it released them;
     * fork_child in the child after the core reset its own state, on the only thread left, where
     * no thread may be started (restart the adapter's threads after otelprof_after_fork()). They
     * run inside fork(): async-signal-safe work only. */
    void (*fork_prepare)(void *user);
    void (*fork_parent)(void *user);
    void (*fork_child)(void *user);
    /* Optional labels of walk()'s error causes (at most OTELPROF_WALK_ERRORS_MAX, static
     * strings, e.g. "gc_active"). A walk() that returns OTELPROF_WALK_ERROR(i) keeps its sample:
     * the core records it with one frame "[label]" (on the root side of any native frames) and
     * its full weight, and counts it in otelprof_stats.walk_errors[i]. Returning -1 (or an
     * undeclared cause) still drops the sample as walk_failed. */
    const char *const *walk_errors;
    int nwalk_errors;
    /* Optional self-metrics of the adapter (at most OTELPROF_COUNTERS_MAX): counter i is called
     * counter_names[i] (a static string, e.g. "codes_pinned") and its value is counters[i], which
     * the adapter updates with relaxed atomic adds (__atomic_fetch_add(&counters[i], 1,
     * __ATOMIC_RELAXED)), so walk() may count too. The core keeps reading both arrays after the
     * run (otelprof_stats_counter, the debug "adapter counters:" line): they must live as long
     * as the process (static storage). More than OTELPROF_COUNTERS_MAX, or a NULL array or name,
     * makes otelprof_start() fail with OTELPROF_EINVAL. */
    const char *const *counter_names;
    uint64_t *counters;
    int ncounters;
    /* Optional: bytes the adapter holds for the whole run in tables of fixed size. They count in
     * otelprof_stats.memory_bytes and come out of max_memory before the core sizes its own tables
     * from what is left, which must be at least 1 MiB (the least max_memory accepts), or
     * otelprof_start() fails with OTELPROF_ENOMEM and one line naming max_memory. Tables that
     * grow during the run use otelprof_memory_reserve() instead. */
    size_t memory_bytes;
} otelprof_adapter;

#define OTELPROF_COUNTERS_MAX 32

/* SIGNAL CONTEXT (AS-safe, bounded), for walk() of an adapter with merges_native: when native
 * frames are enabled, writes the interrupted thread's native stack from the signal's ucontext,
 * leaf first, into out (at most max) and returns how many; 0 when native frames are off. */
OTELPROF_API int otelprof_unwind_native(void *ucontext, otelprof_frame *out, int max);

/* Memory of an adapter's tables that grow during a run (e.g. names kept for code that died),
 * counted in otelprof_stats.memory_bytes and held to max_memory together with the core's tables
 * and the adapter's memory_bytes: reserve n bytes before allocating them. Returns 0, or -1 when
 * the total would pass max_memory, and then nothing is reserved (do without the memory, and count
 * the refusal). The cap is the current or last run's; before the first start nothing is refused.
 * Reservations outlive otelprof_stop(): release them when the memory is freed, whenever that is.
 * Thread-safe, AS-safe (an atomic compare-and-swap loop; no lock, no allocation). */
OTELPROF_API int otelprof_memory_reserve(size_t n);
/* Gives back n bytes reserved with otelprof_memory_reserve(); more than the adapter holds is
 * clamped to what it holds. Thread-safe, AS-safe. */
OTELPROF_API void otelprof_memory_release(size_t n);

/* ---- lifecycle ------------------------------------------------------------------------------- */
/* Starts profiling with cfg (NULL = defaults + environment) and adapter (NULL = native mode:
 * libunwind stacks, ELF symbols). cfg is copied. Thread-safe against stop(); not AS-safe.
 * On error the process is left as it was and one line explains why (log level >= error). */
OTELPROF_API otelprof_error otelprof_start(const otelprof_config *cfg, const otelprof_adapter *adapter);
/* Stops the engines, closes the current profile, writes it, joins the exporter thread.
 * Thread-safe; not AS-safe; never called from a registered thread's signal handler. */
OTELPROF_API otelprof_error otelprof_stop(void);
/* Completes profiling's restart in a fork() child: starts the engine, registers the calling
 * thread and starts the exporter under the child's pid. Call it on the forking thread after
 * fork() returned in the child; native mode's fork() wrapper does, and adapters call it from
 * their after-fork hook (threads must not be started inside fork()'s own handlers). No-op when
 * nothing is pending. Thread-safe; not AS-safe. */
OTELPROF_API otelprof_error otelprof_after_fork(void);
/* Quiesces the calling thread before it replaces the process image with exec: it stops being
 * sampled, the process-wide timer (if that engine runs) stops, and a profiling signal still
 * pending for it is consumed, so none reaches the new image (whose default action for the signal
 * is to terminate). The signal mask and dispositions are left as they were. Call it right before
 * an exec* call; if exec returns, call otelprof_exec_failed(). Native mode's exec* wrappers and
 * the adapters do. No-op when not running, and in a vfork() child (it shares the parent's memory,
 * and no profiling signal is ever sent to it). Thread-safe; not AS-safe. */
OTELPROF_API void otelprof_exec_prepare(void);
/* Undoes otelprof_exec_prepare() after exec failed: the thread is sampled again. Thread-safe;
 * not AS-safe. */
OTELPROF_API void otelprof_exec_failed(void);
/* The profiling signal of the current or last run (0 before the first start): a free real-time
 * signal unless configured (option signal). Code that must keep a sample from landing inside a
 * short critical section blocks this signal. Thread-safe, AS-safe. */
OTELPROF_API int otelprof_signal_number(void);
/* Blocks the profiling signal on the calling thread and saves the previous mask in *old, so that
 * no sample lands inside a short critical section (an adapter switching the records a sample
 * reads); otelprof_signal_restore(old) puts the mask back, and a signal that arrived meanwhile is
 * taken then, its weight intact. Calling thread only; AS-safe. */
OTELPROF_API void otelprof_signal_block(sigset_t *old);
OTELPROF_API void otelprof_signal_restore(const sigset_t *old);
/* Starts fn(arg) on a new thread named name (at most 15 bytes shown), the way the core starts
 * its own: every signal blocked in it, so it is never sampled nor interrupted by the profiler.
 * For an adapter's helper threads. Returns 0 or the pthread_create error. Thread-safe; not
 * AS-safe. */
OTELPROF_API int otelprof_thread_spawn(pthread_t *thread, void *(*fn)(void *), void *arg,
                                       const char *name);
/* Closes the current profile now and writes it (blocks until written or 10 s). Thread-safe. */
OTELPROF_API otelprof_error otelprof_flush(void);
/* Thread-safe, AS-safe. */
OTELPROF_API int otelprof_is_running(void);

/* ---- threads --------------------------------------------------------------------------------- */
/* Registers kernel thread `tid` of this process for sampling; callable from any thread.
 * Idempotent. OTELPROF_EFULL when max_threads are registered (counted). Thread-safe, not AS-safe. */
OTELPROF_API otelprof_error otelprof_thread_register(pid_t tid);
/* Stops sampling `tid` (call before or as the thread exits). Thread-safe, not AS-safe. */
OTELPROF_API void otelprof_thread_unregister(pid_t tid);
/* Names the calling thread in its samples (sample attribute thread.name, up to 31 bytes) in place
 * of its OS name, without renaming the OS thread; NULL or "" goes back to the OS name. Calling
 * thread only; AS-safe. */
OTELPROF_API void otelprof_thread_set_name(const char *name);
/* The calling thread's kernel tid, cached per thread once profiling has started (no system call
 * after the first; a fork child's thread gets its own). Thread-safe, AS-safe. */
OTELPROF_API pid_t otelprof_gettid(void);

/* What an adapter keeps per sampled thread, for its walk() to read in signal context: the
 * runtime's thread (PyThreadState*, JNIEnv*, a Ruby thread VALUE) and where its C stack ends. */
typedef struct otelprof_thread_data {
    void *ptr;          /* the adapter's; never dereferenced by the core */
    uintptr_t stack_hi; /* highest address of the thread's C stack, 0 = unknown */
    uintptr_t tag;      /* the adapter's, e.g. how the thread was found */
} otelprof_thread_data;

#define OTELPROF_THREAD_IF_NEW 1u /* leave a tid that has data as it is (OTELPROF_EEXIST) */

/* Registers tid as otelprof_thread_register() does, with the adapter's data attached first, so
 * the thread's first signal finds it. A tid registered again gets the new data (unless flags has
 * OTELPROF_THREAD_IF_NEW and it has data already: OTELPROF_EEXIST, nothing changes).
 * Unregistering removes the data; stop removes all. In a fork child the forking thread's data
 * carries over to its new tid. OTELPROF_ESTOPPED when not running (nothing kept), OTELPROF_EFULL
 * when the tables are full (counted as threads_full). Thread-safe, not AS-safe. */
OTELPROF_API otelprof_error otelprof_thread_register_data(pid_t tid, const otelprof_thread_data *data,
                                                          unsigned flags);
/* Copies tid's data into *out: 0, or -1 when it has none. Any thread, any time (also in a signal
 * handler and after stop, which finds none). Thread-safe, AS-safe. */
OTELPROF_API int otelprof_thread_data_get(pid_t tid, otelprof_thread_data *out);
/* The calling thread's data, as otelprof_thread_data_get(); inside walk() it costs no system
 * call (the core's handler knows the tid). Thread-safe, AS-safe. */
OTELPROF_API int otelprof_thread_data_self(otelprof_thread_data *out);
/* Unregisters tid only while its data still equals *expected (ptr and tag), in one step: for an
 * adapter's scan that drops a thread it found, without dropping a newer thread that reused the
 * tid and registered itself meanwhile. Returns 1 when removed. Thread-safe, not AS-safe. */
OTELPROF_API int otelprof_thread_unregister_if(pid_t tid, const otelprof_thread_data *expected);
/* Copies the tids and data of at most max registered threads that have data and returns how many
 * were copied; with max <= 0 (arrays may be NULL) returns how many there are. Thread-safe, not
 * AS-safe. */
OTELPROF_API int otelprof_thread_list(pid_t *tids, otelprof_thread_data *data, int max);

/* ---- capture model (c) and deferred resolution ----------------------------------------------- */
typedef struct otelprof_sample {
    uint64_t timestamp_ns;  /* CLOCK_REALTIME; 0 = now */
    pid_t tid;              /* 0 = calling thread */
    int64_t weight;         /* cpu: number of intervals (>=1); wall: nanoseconds; 0 = one interval */
    const uint8_t *trace_id;/* 16 bytes or NULL (no link) */
    const uint8_t *span_id; /* 8 bytes or NULL */
    const otelprof_frame *frames; /* leaf first */
    int nframes;
} otelprof_sample;
/* Queues a finished sample. Thread-safe, AS-safe (lock-free, no allocation); when the queue is
 * full the sample is dropped, counted, and OTELPROF_EFULL returned. */
OTELPROF_API otelprof_error otelprof_submit(const otelprof_sample *sample);
/* ---- frame lifetime ---------------------------------------------------------------------------
 * An adapter whose frame ids must stay valid until named (a pinned code object, an iseq the GC
 * must not free, a jmethodID) learns from the core exactly how long it holds them, by epochs:
 * the epoch advances as each profile close begins, and after a close has named its frames the
 * core publishes the oldest epoch it may still hold frames from. The rule: for each id, keep the
 * largest otelprof_frames_epoch() read after the id was handed to the core — read inside walk()
 * (any time in it), or after otelprof_submit() returned. While that value is >=
 * otelprof_frames_released(), the core may still hold the id (a GC mark function marks it);
 * once it is below, the core holds it no more and never will again unless it is captured anew.
 * The released epoch moves on after each close (before the adapter's profile_closed runs, which
 * is a natural place to let ids go) and covers everything at stop. A resolve() that outlived the
 * exporter's wait (RESOLVE_ON_ADAPTER) may still be running with its own copy of a released id. */
/* The current epoch. Thread-safe, AS-safe. */
OTELPROF_API uint64_t otelprof_frames_epoch(void);
/* The oldest epoch whose frames the core may still hold (see above). Thread-safe, AS-safe. */
OTELPROF_API uint64_t otelprof_frames_released(void);

/* Resolves every adapter frame awaiting a name by calling adapter->resolve() on the calling thread.
 * For RESOLVE_ON_ADAPTER adapters. Thread-safe, not AS-safe. Returns the number resolved here.
 * The core takes no lock across a resolve() call: frames are claimed one at a time under a lock
 * that is dropped before resolve() runs and retaken only to copy its answer. So resolve() may
 * longjmp out of otelprof_resolve_pending(): nothing stays locked or allocated; the frame it was
 * resolving is shown as "[unknown]" and counted (unresolved); the frames not yet claimed stay
 * pending. The next otelprof_resolve_pending() call on that thread resolves them and completes
 * the profile (a call on another thread resolves them too, and the close then ends when the
 * exporter's 2 s wait does); if no call comes, the exporter names them "[unknown]" when its 2 s
 * wait ends. The same holds for a longjmp out of otelprof_flush(). otelprof_stop() holds the
 * profiler's start/stop lock while it answers: a resolve() that does not return from
 * otelprof_stop() leaves that lock held (later otelprof_start/stop, exec and fork() block on it),
 * so it must return there. A resolve() still running when the exporter's wait ends has its
 * answer dropped; it never touches a closed profile. */
OTELPROF_API int otelprof_resolve_pending(void);

/* ---- thread context: OTEP 4947 --------------------------------------------------------------- */
/* The record published through the exported TLS pointer `otel_thread_ctx_v1`. */
typedef struct __attribute__((packed, aligned(2))) otel_thread_ctx_record_v1 {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t valid;
    uint8_t trace_flags;
    uint16_t attrs_data_size;
    uint8_t attrs_data[]; /* {u8 key_index; u8 len; u8 val[len]} ... */
} otel_thread_ctx_record_v1;

#define OTELPROF_CTX_MAX_RECORD 640

/* Per-thread pointer read by in-process and external (eBPF) profilers. */
extern OTELPROF_API __thread otel_thread_ctx_record_v1 *otel_thread_ctx_v1;

typedef struct otelprof_ctx_attr {
    uint8_t key_index; /* index into the thread-context key map (otelprof_ctx_set_keys) */
    const char *value; /* UTF-8, truncated to 255 bytes */
} otelprof_ctx_attr;

/* Publishes span (trace_id, span_id, flags, attrs) as the calling thread's current context and
 * returns a token for otelprof_ctx_detach(), or NULL when out of memory (context unchanged).
 * Works whether or not the profiler runs. Calling thread only; not AS-safe. */
OTELPROF_API void *otelprof_ctx_attach(const uint8_t trace_id[16], const uint8_t span_id[8],
                                       uint8_t trace_flags, const otelprof_ctx_attr *attrs,
                                       size_t nattrs);
/* Restores the context that was current before the matching attach. Detaches must nest; a token
 * from another thread is ignored. Calling thread only; not AS-safe. */
OTELPROF_API void otelprof_ctx_detach(void *token);
/* Sets the key-index -> attribute-name map published in the process context. Thread-safe. */
OTELPROF_API otelprof_error otelprof_ctx_set_keys(const char *const *keys, size_t nkeys);

/* ---- process context: OTEP 4719 -------------------------------------------------------------- */
/* (Re)publishes the OTEL_CTX mapping from the current configuration's resource attributes.
 * otelprof_start() and the fork handler call it; adapters call it after changing the resource.
 * Thread-safe, not AS-safe. */
OTELPROF_API otelprof_error otelprof_process_ctx_publish(const otelprof_config *cfg);

/* ---- self-metrics ---------------------------------------------------------------------------- */
typedef enum otelprof_drop_reason {
    OTELPROF_DROP_RING_FULL = 0,  /* capture queue full */
    OTELPROF_DROP_NOT_RUNNING,    /* signal after stop, or on an unregistered thread */
    OTELPROF_DROP_WALK_FAILED,    /* adapter walk returned <0 or nothing */
    OTELPROF_DROP_TRUNCATED,      /* stack longer than max_depth: kept, cut, counted here */
    OTELPROF_DROP_AGG_FULL,       /* aggregation table at its memory cap */
    OTELPROF_DROP_SYMBOL_FULL,    /* frame left unnamed: symbol tables at their memory cap */
    OTELPROF_DROP_THREADS_FULL,   /* thread table full: thread not sampled */
    OTELPROF_DROP_TIMER_FAILED,   /* per-thread timer could not be created */
    OTELPROF_DROP_UNRESOLVED,     /* adapter frame never resolved */
    OTELPROF_DROP_WRITE_FAILED,   /* output file could not be written */
    OTELPROF_DROP__COUNT
} otelprof_drop_reason;

/* Why one attempt to send a profile over OTLP/HTTP failed. */
typedef enum otelprof_export_failure {
    OTELPROF_EXPORT_FAIL_CONNECT = 0, /* refused, reset, name not resolved, no response: retried */
    OTELPROF_EXPORT_FAIL_TIMEOUT,     /* OTEL_EXPORTER_OTLP_TIMEOUT passed: retried */
    OTELPROF_EXPORT_FAIL_TLS,         /* certificate or handshake error: not retried */
    OTELPROF_EXPORT_FAIL_RETRYABLE,   /* HTTP 429, 502, 503, 504: retried */
    OTELPROF_EXPORT_FAIL_REJECTED,    /* any other non-2xx status: not retried */
    OTELPROF_EXPORT_FAIL__COUNT
} otelprof_export_failure;

/* Why a profile was never delivered. */
typedef enum otelprof_export_drop {
    OTELPROF_EXPORT_DROP_QUEUE_FULL = 0, /* the oldest waiting profile made room for a newer one */
    OTELPROF_EXPORT_DROP_RETRIES,        /* the retry budget ran out */
    OTELPROF_EXPORT_DROP_REJECTED,       /* the receiver refused it (TLS, or a non-retryable status) */
    OTELPROF_EXPORT_DROP_SHUTDOWN,       /* still unsent when the shutdown deadline passed */
    OTELPROF_EXPORT_DROP_ENCODE,         /* could not be encoded or compressed (memory) */
    OTELPROF_EXPORT_DROP__COUNT
} otelprof_export_drop;

typedef struct otelprof_stats {
    uint64_t samples_taken;     /* samples that reached the capture queue */
    uint64_t samples_dropped[OTELPROF_DROP__COUNT];
    uint64_t signals;           /* signals handled */
    uint64_t timer_overruns;    /* expirations folded into a sample's weight */
    uint64_t handler_ns_total;  /* time spent in the signal handler */
    uint64_t handler_ns_max;
    /* handler time histogram: bucket i counts handlers that took [2^i, 2^(i+1)) ns (i = 0..31,
     * the last bucket open-ended), for percentiles */
    uint64_t handler_ns_hist[32];
    uint64_t threads_registered;/* now */
    uint64_t profiles_written;  /* profiles closed and written by at least one output */
    uint64_t bytes_written;     /* bytes of all local files written */
    uint64_t memory_bytes;      /* bytes held by the core's tables now, with the adapter's
                                   memory_bytes and its otelprof_memory_reserve() reservations */
    uint64_t memory_cap_bytes;
    /* OTLP/HTTP export; all zero when no endpoint is configured */
    uint64_t export_attempts;       /* HTTP requests made, retries included */
    uint64_t export_successes;      /* requests answered with 2xx */
    uint64_t export_failures[OTELPROF_EXPORT_FAIL__COUNT]; /* failed attempts, by cause */
    uint64_t export_retries;        /* attempts that repeated an earlier failed one */
    uint64_t export_bytes_sent;     /* request bodies as sent (compressed under gzip) */
    uint64_t export_bytes_raw;      /* the same bodies before compression */
    uint64_t export_queue_depth;    /* profiles waiting for the network now */
    uint64_t export_queue_bytes;    /* their encoded size now */
    uint64_t export_dropped[OTELPROF_EXPORT_DROP__COUNT]; /* profiles never delivered, by reason */
    uint64_t export_rejected_profiles; /* receivers' partial-success rejected_profiles, summed */
    uint64_t walk_errors[OTELPROF_WALK_ERRORS_MAX]; /* samples kept with an error frame, by cause */
} otelprof_stats;

/* Thread-safe; AS-safe (reads counters). Fields are a snapshot, not atomic as a whole. */
OTELPROF_API void otelprof_stats_get(otelprof_stats *out);
/* The label of walk error cause i of the current or last run's adapter, or NULL. Thread-safe. */
OTELPROF_API const char *otelprof_walk_error_name(int i);
/* Adapter counter i (0 .. ncounters - 1) of the current or last run's adapter: sets *name (the
 * adapter's static string) and *value (either may be NULL) and returns 0; -1 when i is out of
 * range (also when the run had no adapter, or declared no counters; and, never waiting, while a
 * concurrent otelprof_start() is switching to the next run's). Iterate from 0 until -1: the
 * ABI-stable way to read an adapter's counters without knowing them. Thread-safe, AS-safe. */
OTELPROF_API int otelprof_stats_counter(int i, const char **name, uint64_t *value);
/* Thread-safe, AS-safe: "ring_full", "not_running", ... */
OTELPROF_API const char *otelprof_drop_reason_name(otelprof_drop_reason r);
/* Thread-safe, AS-safe: "connect", "timeout", "tls", "retryable", "rejected". */
OTELPROF_API const char *otelprof_export_failure_name(otelprof_export_failure f);
/* Thread-safe, AS-safe: "queue_full", "retries", "rejected", "shutdown", "encode". */
OTELPROF_API const char *otelprof_export_drop_name(otelprof_export_drop d);

#ifdef __cplusplus
}
#endif
#endif
