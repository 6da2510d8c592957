/* The Ruby adapter's internal interface (prefix orb_): the frame walk that runs in signal context,
 * the table that keeps captured frame ids alive for the GC, the resolver that names them on a
 * Ruby thread, thread registration and span publishing. One concept per file:
 *   frame_walk.c    signal context: rb_profile_frames on the interrupted thread, the GC frame,
 *                   the handshake with a compacting GC
 *   frame_table.c   captured ids (iseq / method entry VALUEs), marked for the GC while the core
 *                   holds them (the kit's frame epochs)
 *   resolver.c      names at a safe point: the otelprof-resolver Ruby thread, resolve()
 *   ruby_threads.c  Ruby threads registered with the core (tracepoints), thread names
 *   span_context.c  the OpenTelemetry span of the running fiber, published as OTEP 4947 records
 *   module.c        glue: the adapter struct, Otelprof::Native, start/stop/stats, fork and exec
 *
 * Capabilities (extconf.rb's probes; code under each is not exercised on Ruby 3.1):
 *   HAVE_RB_POSTPONED_JOB_PREREGISTER (3.3): a postponed job any thread may trigger; resolution
 *     requests also trigger one, so a busy GVL holder names frames at its next safe point.
 *   HAVE_RB_PROFILE_THREAD_FRAMES (3.3), HAVE_RB_INTERNAL_THREAD_ADD_EVENT_HOOK (3.2): reported by
 *     Otelprof.capabilities only. Each thread is sampled on its own timer and walks itself, so
 *     walking another thread is never needed, and the tracepoints that register threads exist on
 *     every version. */
#ifndef ORB_H
#define ORB_H

#include <ruby.h>
#include <stdint.h>

#include "otelprof/otelprof.h"

/* The tag of every thread registered by this adapter (otelprof_thread_data.tag): walk() runs
 * rb_profile_frames only on threads that carry it, i.e. live Ruby threads. */
#define ORB_TAG_RUBY_THREAD ((uintptr_t)0x52554259) /* "RUBY" */

/* Frame ids that are not VALUEs (VALUEs of heap objects are 8-aligned and never this small). */
#define ORB_FRAME_GC 1u /* "(garbage collection)" */

/* ---- self-metrics (the adapter's counters, reported by the core and by Otelprof.stats) ------- */
enum orb_stat {
    ORB_STAT_WALK_OK,
    ORB_STAT_WALK_NO_THREAD,  /* signal on a thread that is not a registered Ruby thread */
    ORB_STAT_WALK_NO_EC,      /* a Ruby thread with no execution context (starting or ending) */
    ORB_STAT_WALK_EMPTY,      /* rb_profile_frames found no frame */
    ORB_STAT_GC_SAMPLES,      /* samples taken while this thread ran the GC */
    ORB_STAT_FRAMES_NOTED,    /* ids newly noted in the frame table */
    ORB_STAT_FRAMES_RELEASED, /* ids let go after the core released them */
    ORB_STAT_FRAMES_REJECTED, /* ids found dead or unknown at resolution (shown [unknown]) */
    ORB_STAT_RESOLVER_WAKEUPS,
    ORB_STAT_RESOLVED,
    ORB_STAT_RESOLVE_ERRORS,  /* a Ruby exception while naming a frame */
    ORB_STAT_THREADS_REGISTERED,
    ORB_STAT_THREADS_FULL,
    ORB_STAT_CTX_PUBLISHED,
    ORB_STAT__COUNT
};
extern uint64_t orb_counters[ORB_STAT__COUNT];
extern const char *const orb_counter_names[ORB_STAT__COUNT];
#define ORB_COUNT(s) __atomic_fetch_add(&orb_counters[s], 1, __ATOMIC_RELAXED)

/* walk() error causes: samples kept with one "[label]" frame and counted by the core. */
enum { ORB_WALK_ERR_GC_COMPACTING, ORB_WALK_ERR_FRAME_TABLE_FULL, ORB_WALK_ERR__COUNT };
extern const char *const orb_walk_errors[ORB_WALK_ERR__COUNT];

/* ---- frame_walk.c ---------------------------------------------------------------------------- */
/* SIGNAL CONTEXT: the adapter's walk(). */
int orb_walk(void *user, void *ucontext, otelprof_frame *out, int max);
/* 0 when this build cannot find a thread's execution context (start refuses). */
int orb_walk_supported(void);
/* At load, from Kernel#require: learns how to tell C method frames (see frame_walk.c). */
void orb_walk_self_test(void);
int orb_walk_skips_unstarted(void);
/* Installs the GC enter/exit hooks (idempotent). Ruby thread with the GVL. */
void orb_gc_hooks_install(void);
void orb_gc_hooks_enable(int on);
/* A compaction may run while n > 0 (GC.compact in progress, or GC.auto_compact on). */
void orb_compaction_possible(int delta);
/* fork child (AS-safe): no walker or GC of the parent's survives. */
void orb_walk_after_fork(void);

/* ---- frame_table.c --------------------------------------------------------------------------- */
/* Maps the table (first start). -1 when the memory cannot be had. Not AS-safe. */
int orb_frames_init(void);
size_t orb_frames_bytes(void);
/* SIGNAL CONTEXT (AS-safe, lock-free): keeps id alive at least while epoch >= the core's
 * released epoch. -1 when the table is full (the id is not protected: drop its sample). */
int orb_frames_note(VALUE id, uint64_t epoch);
/* GVL: 1 when id is held (noted and not released), so it is a live object safe to name. */
int orb_frames_held(VALUE id);
/* Exporter thread, after a close: lets go of ids whose epoch is below the released one. */
void orb_frames_release_old(uint64_t released);
/* After stop (no handler runs): forgets every id. */
void orb_frames_clear(void);
/* The Ruby object whose mark function marks the held ids (created once, never collected). */
void orb_frames_register_marker(void);

/* ---- resolver.c ------------------------------------------------------------------------------ */
int orb_resolve(void *user, const otelprof_frame *frame, otelprof_symbol *out);
void orb_resolve_requested(void *user);
/* Starts / stops the otelprof-resolver Ruby thread (GVL). Start returns -1 on failure. */
int orb_resolver_start(void);
void orb_resolver_stop(void);
/* The resolver's Thread (Qnil when none), which is never sampled. */
VALUE orb_resolver_thread(void);
/* fork child (AS-safe): the thread is gone; its lock and condition are fresh. */
void orb_resolver_after_fork(void);

/* ---- ruby_threads.c -------------------------------------------------------------------------- */
/* Registers every live Ruby thread and installs the begin/end hooks for new ones (GVL). */
void orb_threads_start(void);
void orb_threads_stop(void);
/* Registers the calling Ruby thread (GVL), e.g. the forking thread in a child. */
void orb_thread_register_current(void);
/* The thread with kernel id tid was renamed (Thread#name=): its samples carry name from now on. */
void orb_thread_renamed(pid_t tid, const char *name);
/* SIGNAL CONTEXT: applies a rename made from another thread to the calling thread. */
void orb_thread_apply_name(void *ptr);
/* After stop: frees every record (the core dropped every thread's data). */
void orb_threads_free_all(void);
/* Records held now (one per registered Ruby thread). GVL. */
size_t orb_threads_live(void);
/* In a fork child after otelprof_after_fork(): frees the records of threads that stayed behind. */
void orb_threads_after_fork(void);
/* Excludes the calling thread from sampling (the resolver). */
void orb_thread_exclude_current(void);

/* ---- span_context.c -------------------------------------------------------------------------- */
/* key: OpenTelemetry's CURRENT_SPAN_KEY (Qnil: OpenTelemetry not loaded). GVL. */
void orb_span_set_key(VALUE key);
/* Publishes the span active on the current fiber as the calling thread's OTEP 4947 record. */
void orb_span_publish_current(void);

#endif /* ORB_H */
