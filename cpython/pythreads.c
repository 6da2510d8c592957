/* Thread table: kernel tid -> the thread's PyThreadState and C stack top. Written under a mutex
 * when threads start and end (and by the periodic scan for threads that never announce
 * themselves); read lock-free by the signal handler for the C stack bound of the thread it
 * interrupted. */
#include <pthread.h>
#include <string.h>

#include "opy.h"

#define SLOTS 8192u /* power of two; live Python threads are far fewer */
#define PROBES 64u
#define EMPTY 0
#define REMOVED (-1)

static opy_thread table[SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t live;

static uint32_t slot_of(pid_t tid) {
    return ((uint32_t)tid * 2654435761u) & (SLOTS - 1);
}

/* Lock held. Returns 1 when added, 0 when updated (or, with only_new, already there), -1 full. */
static int put_locked(pid_t tid, void *tstate, uintptr_t stack_hi, int scanned, int only_new) {
    uint32_t h = slot_of(tid), free_at = SLOTS;
    for (uint32_t i = 0; i < PROBES; i++) {
        uint32_t s = (h + i) & (SLOTS - 1);
        pid_t t = __atomic_load_n(&table[s].tid, __ATOMIC_RELAXED);
        if (t == tid) {
            if (only_new) return 0;
            free_at = s;
            break;
        }
        if (t == REMOVED && free_at == SLOTS) free_at = s;
        if (t == EMPTY) {
            if (free_at == SLOTS) free_at = s;
            break;
        }
    }
    if (free_at == SLOTS) {
        OPY_STAT_INC(threads_full);
        return -1;
    }
    opy_thread *e = &table[free_at];
    int fresh = __atomic_load_n(&e->tid, __ATOMIC_RELAXED) != tid;
    /* Hide the slot while it changes, then publish the tid last: a handler that matches the tid
     * sees complete fields (one that finds nothing meanwhile only loses its stack bound). */
    __atomic_store_n(&e->tid, REMOVED, __ATOMIC_RELEASE);
    e->tstate = tstate;
    e->stack_hi = stack_hi;
    e->scanned = scanned;
    __atomic_store_n(&e->tid, tid, __ATOMIC_RELEASE);
    if (fresh) live++;
    return fresh;
}

int opy_threads_put(pid_t tid, void *tstate, uintptr_t stack_hi) {
    pthread_mutex_lock(&lock);
    int rc = put_locked(tid, tstate, stack_hi, 0, 0);
    pthread_mutex_unlock(&lock);
    return rc < 0 ? -1 : 0;
}

#define SCAN_MAX 1024

void opy_threads_scan(void) {
    static pid_t tids[SCAN_MAX];
    static void *states[SCAN_MAX];
    int n = opy_list_threads(tids, states, SCAN_MAX);
    if (n < 0) return;
    pid_t self = opy_pinner_tid();
    pthread_mutex_lock(&lock);
    /* Scanned entries whose thread state left the list: the thread is gone or left Python.
     * (Not decidable from a truncated list.) Unregistered under the lock: a thread that reuses
     * the tid registers itself only after its put, which waits for this lock, so this cannot
     * remove the newcomer's timer. */
    for (uint32_t i = 0; n < SCAN_MAX && i < SLOTS; i++) {
        pid_t t = __atomic_load_n(&table[i].tid, __ATOMIC_RELAXED);
        if (t <= 0 || !table[i].scanned) continue;
        int listed = 0;
        for (int k = 0; k < n && !listed; k++) listed = tids[k] == t;
        if (!listed) {
            __atomic_store_n(&table[i].tid, REMOVED, __ATOMIC_RELEASE);
            live--;
            otelprof_thread_unregister(t);
        }
    }
    /* New ones. No stack bound: their C frames are read through safe reads. */
    int nnew = 0;
    for (int k = 0; k < n; k++)
        if (tids[k] != self && put_locked(tids[k], states[k], 0, 1, 1) == 1) tids[nnew++] = tids[k];
    pthread_mutex_unlock(&lock);
    if (!otelprof_is_running()) return;
    for (int k = 0; k < nnew; k++) {
        otelprof_thread_register(tids[k]);
        OPY_STAT_INC(threads_scanned);
    }
}

void opy_threads_del(pid_t tid) {
    pthread_mutex_lock(&lock);
    uint32_t h = slot_of(tid);
    for (uint32_t i = 0; i < PROBES; i++) {
        opy_thread *e = &table[(h + i) & (SLOTS - 1)];
        pid_t t = __atomic_load_n(&e->tid, __ATOMIC_RELAXED);
        if (t == EMPTY) break;
        if (t == tid) {
            __atomic_store_n(&e->tid, REMOVED, __ATOMIC_RELEASE);
            live--;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
}

void opy_threads_clear(void) {
    pthread_mutex_lock(&lock);
    for (uint32_t i = 0; i < SLOTS; i++) __atomic_store_n(&table[i].tid, EMPTY, __ATOMIC_RELEASE);
    live = 0;
    pthread_mutex_unlock(&lock);
}

int opy_threads_get(pid_t tid, opy_thread *out) {
    uint32_t h = slot_of(tid);
    for (uint32_t i = 0; i < PROBES; i++) {
        opy_thread *e = &table[(h + i) & (SLOTS - 1)];
        pid_t t = __atomic_load_n(&e->tid, __ATOMIC_ACQUIRE);
        if (t == EMPTY) return -1;
        if (t == tid) {
            out->tid = tid;
            out->tstate = e->tstate;
            out->stack_hi = e->stack_hi;
            return 0;
        }
    }
    return -1;
}

void opy_threads_after_fork(pid_t old_tid, pid_t new_tid) {
    /* Only the forking thread exists in the child, and the lock may have been held by another. */
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    memcpy(&lock, &fresh, sizeof fresh);
    opy_thread keep;
    int have = opy_threads_get(old_tid, &keep) == 0;
    memset(table, 0, sizeof table);
    live = 0;
    if (have) opy_threads_put(new_tid, keep.tstate, keep.stack_hi);
}

uint64_t opy_threads_count(void) {
    pthread_mutex_lock(&lock);
    uint64_t n = live;
    pthread_mutex_unlock(&lock);
    return n;
}
