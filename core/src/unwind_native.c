/* Signal-context native stack walk of the interrupted thread, with libunwind (local only). */
#include "op_unwind.h"

#include <errno.h>
#include <signal.h>
#include <ucontext.h>

/* Local-only entry points (_UL*): the fast same-process unwinder that -lunwind provides.
 * Without this, libunwind.h names the generic remote-capable ones from libunwind-<arch>. */
#ifndef UNW_LOCAL_ONLY
#define UNW_LOCAL_ONLY
#endif
#include <libunwind.h>

/*
 * Signal safety, as verified against libunwind 1.6.2 (Debian) and glibc 2.36:
 *
 * - Caching policy. UNW_CACHE_PER_THREAD keeps the register-state cache in thread-local
 *   storage: cache hits take no lock. Debian's libunwind 1.6.2 is built without per-thread
 *   caching and silently maps that request to UNW_CACHE_GLOBAL (unw_set_caching_policy turns 2
 *   into 1): every unw_step() then blocks all signals (rt_sigprocmask), takes one process-wide
 *   mutex for the cache lookup, and restores the mask - about 3 syscalls per frame, measured.
 *   That is AS-safe in practice: the mutex is only ever held with signals blocked, so a handler
 *   can never interrupt its own thread's holder, and other threads hold it for one lookup.
 *   Hazard: fork() while another thread holds it leaves it locked forever in the child; a
 *   child that samples then hangs in its first walk. The fork handler must not resume sampling
 *   in a child forked while a walk was in flight (or must not use native frames there).
 * - The cache has 2^7 entries by default and stays so: a larger size makes every thread of a
 *   per-thread build mmap() its own table on first use, inside the handler, and libunwind 1.6
 *   never unmaps it when the thread exits. A small cache only costs more misses (below).
 * - Cache misses call dl_iterate_phdr(), which takes glibc's recursive dl_load_write_lock
 *   (libunwind masks signals around the call, which protects only its own callers).
 *   * Another thread holds it (inside dlopen/dlclose/dl_iterate_phdr): our handler waits until
 *     it is released; no deadlock, but the sample can be slow.
 *   * The interrupted thread itself holds it: the lock is recursive, so we re-enter and walk
 *     the object list while dlopen/dlclose on this very thread may be mid-update. glibc
 *     appends/unlinks with single pointer stores, so in practice this reads a consistent list.
 *   * The interrupted thread is inside pthread_mutex_lock() on that lock, after taking the lock
 *     word but before recording itself as owner: the recursive check fails and the handler
 *     waits for itself forever. The window is a few instructions wide; it is the one known
 *     self-deadlock of libunwind-in-a-handler, shared by every profiler that uses it.
 *   glibc 2.35+ has the lock-free _dl_find_object(), but libunwind 1.6 does not use it.
 * - No malloc on the unw_step() path of this build: internal records (e.g. for
 *   DW_CFA_remember_state) come from libunwind's own mmap-backed pools, under a mutex held with
 *   signals blocked. Its malloc() calls sit in the ELF reader behind unw_get_proc_name(), which
 *   is never called here (names are resolved later, off the signal path).
 * - The cache is keyed by pc only and is flushed only by unw_flush_cache(). After dlclose()
 *   and a different object mapped at the same address, a stale entry can apply the wrong frame
 *   rule; libunwind does not validate addresses derived from DWARF rules, so such a walk can
 *   report a wrong caller or, in the worst case, fault. It needs an unload, a reload at the same
 *   address and a sample there before the entry is evicted from the small cache.
 * - Frame-pointer fallback (code without unwind info) makes libunwind validate each address
 *   with msync() and a write() to a private pipe before reading it: syscalls, AS-safe.
 * - libunwind's one-time global setup (tdep_init) takes a lock and is not AS-safe: it runs in
 *   op_unwind_init(), before any timer can fire.
 */

/* The handler's ucontext is passed straight to libunwind: on x86-64 Linux its local context
 * type is the kernel's ucontext_t. */
#if defined(__x86_64__)
_Static_assert(sizeof(unw_context_t) == sizeof(ucontext_t), "unw_context_t is ucontext_t");
#endif

/* Frame aux values; see op_unwind.h. */
#define AUX_EXACT_PC 0
#define AUX_RETURN_ADDRESS 1

int op_unwind_native(void *uc, otelprof_frame *out, int max) {
    if (!uc || !out || max <= 0) return 0;
    int saved_errno = errno;
    int n = 0;
    unw_cursor_t cur;
    /* UNW_INIT_SIGNAL_FRAME: frame 0 is an exact pc, so its unwind rule is looked up at pc, not
     * pc-1 (which would pick the previous function's rule when pc is a function's first byte). */
    if (unw_init_local2(&cur, (unw_context_t *)uc, UNW_INIT_SIGNAL_FRAME) < 0) goto out;
    int32_t aux = AUX_EXACT_PC;
    for (;;) {
        unw_word_t ip = 0;
        if (unw_get_reg(&cur, UNW_REG_IP, &ip) < 0 || ip == 0) break;
        out[n].id = (uint64_t)ip;
        out[n].aux = aux;
        out[n].kind = OTELPROF_FRAME_NATIVE;
        if (++n >= max) break;
        if (unw_step(&cur) <= 0) break;
        aux = AUX_RETURN_ADDRESS;
#if defined(__x86_64__)
        /* A frame reached through a signal trampoline (this handler interrupted another
         * handler) holds the pc where that earlier signal struck: exact, not a return address.
         * On x86-64 libunwind reports this right after the step that crossed the trampoline
         * (it describes the frame just left); other ports answer for the current frame, so
         * there every caller frame is treated as a return address. */
        if (unw_is_signal_frame(&cur) > 0) aux = AUX_EXACT_PC;
#endif
    }
out:
    errno = saved_errno;
    return n;
}

/* Walks the calling thread's own stack once so libunwind finishes its lazy global setup and
 * fills this thread's cache. noinline keeps a real frame to step through. */
__attribute__((noinline)) static int warm_walk(void) {
    unw_context_t ctx;
    unw_cursor_t cur;
    int steps = 0;
    if (unw_getcontext(&ctx) != 0 || unw_init_local(&cur, &ctx) < 0) return 0;
    while (steps < 256 && unw_step(&cur) > 0) steps++;
    return steps;
}

void op_unwind_init(void) {
    /* Caching policy and size: see the notes at the top. Changing the policy flushes every
     * cache, so this runs before sampling starts; a repeated call asks for the same policy
     * and flushes nothing. The warm walk runs libunwind's lazy, lock-taking setup here and
     * seeds the cache (the whole process's, where the build falls back to a global cache). */
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
    (void)warm_walk();
}
