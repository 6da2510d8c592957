/* Signal-context native stack walk of the interrupted thread, with libunwind (local only). */
#include "op_unwind.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

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
 * - Cache misses call dl_iterate_phdr() while holding that cache mutex; dl_iterate_phdr takes
 *   glibc's recursive loader lock (dl_load_write_lock), also held by dlopen/dlclose and by
 *   anyone's dl_iterate_phdr callback. A signal that lands on a thread holding the loader lock
 *   therefore deadlocks: it waits for the cache mutex, whose holder waits for the loader lock.
 *   Measured: 8 threads sampled at 5 kHz and one thread doing dlopen/dlclose hang within
 *   seconds. The same thread also could re-enter the loader lock (it is recursive) and walk
 *   the object list in the middle of dlclose, which unmaps an object before unlinking it:
 *   reading its program headers would fault.
 *   Guard: op_unwind_init() locates the loader lock (see find_loader_lock) and the handler
 *   does not call libunwind when the interrupted thread may hold it (may_hold_loader_lock:
 *   it owns it, or the lock word is taken with no owner recorded, the few instructions inside
 *   pthread_mutex_lock/unlock where the owner field lags); it reports the exact pc only.
 *   glibc 2.35+ has the lock-free _dl_find_object(); libunwind 1.6 does not use it.
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

/* glibc's loader write lock, or NULL when it could not be located (other libc, unexpected
 * layout): then the guard is off. Written once before sampling starts. */
static const pthread_mutex_t *loader_lock;

typedef struct lock_search {
    const unsigned char *base;
    size_t size;
    pid_t tid;
    const pthread_mutex_t *found;
    int matches;
} lock_search;

/* Runs inside dl_iterate_phdr, i.e. while this thread holds the loader write lock: the one
 * recursive mutex in the loader's state owned by this thread with a count of 1. */
static int find_lock_cb(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)info;
    (void)size;
    lock_search *ls = arg;
    size_t align = _Alignof(pthread_mutex_t);
    for (size_t off = 0; off + sizeof(pthread_mutex_t) <= ls->size; off += align) {
        const pthread_mutex_t *m = (const pthread_mutex_t *)(const void *)(ls->base + off);
        if (m->__data.__owner == ls->tid && m->__data.__lock != 0 && m->__data.__count == 1 &&
            (m->__data.__kind & 3) == PTHREAD_MUTEX_RECURSIVE_NP) {
            ls->found = m;
            ls->matches++;
        }
    }
    return 1; /* one call is enough */
}

/* Locates dl_load_write_lock inside ld.so's _rtld_global (a GLIBC_PRIVATE object) by looking
 * for it while it is held, rather than trusting a version-specific offset. */
static void find_loader_lock(void) {
    void *g = dlsym(RTLD_DEFAULT, "_rtld_global");
    Dl_info di;
    const ElfW(Sym) *sym = NULL;
    if (!g || !dladdr1(g, &di, (void **)&sym, RTLD_DL_SYMENT) || !sym || sym->st_size == 0)
        return;
    lock_search ls = {(const unsigned char *)g, sym->st_size, otelprof_gettid(), NULL, 0};
    dl_iterate_phdr(find_lock_cb, &ls);
    /* Exactly one candidate, and no longer ours once dl_iterate_phdr has returned. */
    if (ls.matches == 1 && ls.found->__data.__owner != ls.tid)
        __atomic_store_n(&loader_lock, ls.found, __ATOMIC_RELEASE);
}

/* Whether the interrupted thread (the caller: a handler runs on it) may hold the loader lock.
 * glibc's recursive mutex takes the lock word before it records the owner, and on release clears
 * the owner before it frees the lock word: in those windows the lock is held with owner 0. So a
 * held lock word with no owner counts as ours too. Another thread inside such a window is a
 * false positive that costs one sample its callers, never a hang. */
static int may_hold_loader_lock(void) {
    const pthread_mutex_t *m = __atomic_load_n(&loader_lock, __ATOMIC_ACQUIRE);
    if (!m) return 0;
    int owner = __atomic_load_n(&m->__data.__owner, __ATOMIC_RELAXED);
    if (owner == (int)otelprof_gettid()) return 1;
    return owner == 0 && __atomic_load_n(&m->__data.__lock, __ATOMIC_RELAXED) != 0;
}

/* Exact pc of the interrupted context, read without libunwind. */
static uint64_t context_pc(const ucontext_t *u) {
#if defined(__x86_64__)
    return (uint64_t)u->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uint64_t)u->uc_mcontext.pc;
#else
    (void)u;
    return 0;
#endif
}

int op_unwind_native(void *uc, otelprof_frame *out, int max) {
    if (!uc || !out || max <= 0) return 0;
    int saved_errno = errno;
    int n = 0;
    if (may_hold_loader_lock()) {
        /* This thread is inside the loader: libunwind could deadlock or fault here (see the
         * notes at the top). The leaf alone still attributes the sample. */
        uint64_t pc = context_pc(uc);
        if (pc) {
            out[0].id = pc;
            out[0].aux = AUX_EXACT_PC;
            out[0].kind = OTELPROF_FRAME_NATIVE;
            n = 1;
        }
        goto out;
    }
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
     * seeds the cache (the whole process's, where the build falls back to a global cache).
     * The loader-lock guard must be in place before the first sample. */
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
    if (!__atomic_load_n(&loader_lock, __ATOMIC_ACQUIRE)) find_loader_lock();
    (void)warm_walk();
}
