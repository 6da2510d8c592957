/* Thread registry: a compact array under a mutex. Registration is rare next to sampling, and the
 * signal path never reads the array, so a lock is fine here.
 *
 * Beside it, the adapters' per-thread data: an open-addressing table keyed by tid, written under
 * the same mutex (so a conditional change of data and registration is one step) and read
 * lock-free by signal handlers. The table is mapped once and never unmapped, so a reader on any
 * thread, at any time, reads valid memory; each run uses the first 2 * max_threads slots (a power
 * of two) and starts them empty. */
#include "op_threads.h"

#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "op_engine.h"
#include "op_log.h"
#include "op_profiler.h"
#include "op_stats.h"

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static op_thread *table;
static uint32_t count, capacity;
static uint32_t *free_slots;  /* stack of unused stable slots */
static uint32_t nfree;
static int accepting;         /* 0 after close: stop cannot race a late registration */

/* ---- adapter data -------------------------------------------------------------------------- */
#define DATA_SLOTS_MAX (1u << 17) /* 2 * the largest max_threads */
#define DATA_PROBES 64u
#define DATA_EMPTY 0
#define DATA_REMOVED (-1)

typedef struct data_slot {
    pid_t tid; /* published last; DATA_EMPTY / DATA_REMOVED */
    otelprof_thread_data d;
} data_slot;

static data_slot *data_tab;  /* DATA_SLOTS_MAX slots, mapped at the first init */
static uint32_t data_mask;   /* slots in use this run - 1; 0 = no table */
static uint32_t data_live;   /* under reg_lock */

static uint32_t data_home(pid_t tid) {
    return ((uint32_t)tid * 2654435761u);
}

/* Starts a run with every slot empty. reg_lock held (or single-threaded). */
static void data_reset(uint32_t max_threads) {
    if (!data_tab) {
        void *m = mmap(NULL, DATA_SLOTS_MAX * sizeof(data_slot), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) return;
        data_tab = m;
    }
    uint32_t want = 64;
    while (want < 2 * max_threads && want < DATA_SLOTS_MAX) want <<= 1;
    uint32_t clear = want > data_mask + 1 ? want : data_mask + 1;
    __atomic_store_n(&data_mask, 0, __ATOMIC_RELEASE);
    for (uint32_t i = 0; i < clear; i++) __atomic_store_n(&data_tab[i].tid, DATA_EMPTY, __ATOMIC_RELAXED);
    data_live = 0;
    __atomic_store_n(&data_mask, want - 1, __ATOMIC_RELEASE);
}

/* Empties every slot of the current run (stop, close). reg_lock held. */
static void data_clear(void) {
    uint32_t mask = data_mask;
    if (!mask) return;
    for (uint32_t i = 0; i <= mask; i++) __atomic_store_n(&data_tab[i].tid, DATA_EMPTY, __ATOMIC_RELEASE);
    data_live = 0;
}

static data_slot *data_find(pid_t tid, uint32_t mask) {
    uint32_t h = data_home(tid);
    for (uint32_t i = 0; i < DATA_PROBES; i++) {
        data_slot *e = &data_tab[(h + i) & mask];
        pid_t t = __atomic_load_n(&e->tid, __ATOMIC_ACQUIRE);
        if (t == tid) return e;
        if (t == DATA_EMPTY) return NULL;
    }
    return NULL;
}

/* reg_lock held. Returns 0, or -1 when the probe window is full. */
static int data_put(pid_t tid, const otelprof_thread_data *d) {
    uint32_t mask = data_mask;
    if (!mask) return -1;
    uint32_t h = data_home(tid);
    data_slot *at = NULL;
    for (uint32_t i = 0; i < DATA_PROBES; i++) {
        data_slot *e = &data_tab[(h + i) & mask];
        pid_t t = __atomic_load_n(&e->tid, __ATOMIC_RELAXED);
        if (t == tid) {
            at = e;
            break;
        }
        if (t == DATA_REMOVED && !at) at = e;
        if (t == DATA_EMPTY) {
            if (!at) at = e;
            break;
        }
    }
    if (!at) return -1;
    int fresh = __atomic_load_n(&at->tid, __ATOMIC_RELAXED) != tid;
    /* Hidden while it changes, the tid published last: a reader that matches the tid and finds
     * it unchanged after copying has a complete entry (see op_threads_data_get). */
    __atomic_store_n(&at->tid, DATA_REMOVED, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    at->d = *d;
    __atomic_store_n(&at->tid, tid, __ATOMIC_RELEASE);
    if (fresh) data_live++;
    return 0;
}

/* reg_lock held. */
static void data_del(pid_t tid) {
    uint32_t mask = data_mask;
    data_slot *e = mask ? data_find(tid, mask) : NULL;
    if (!e) return;
    __atomic_store_n(&e->tid, DATA_REMOVED, __ATOMIC_RELEASE);
    data_live--;
}

int op_threads_data_get(pid_t tid, otelprof_thread_data *out) {
    uint32_t mask = __atomic_load_n(&data_mask, __ATOMIC_ACQUIRE);
    if (!mask || tid <= 0) return -1;
    data_slot *e = data_find(tid, mask);
    if (!e) return -1;
    otelprof_thread_data copy;
    memcpy(&copy, (const void *)&e->d, sizeof copy);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&e->tid, __ATOMIC_ACQUIRE) != tid) return -1; /* changed under us */
    *out = copy;
    return 0;
}

int op_threads_init(int max_threads) {
    pthread_mutex_lock(&reg_lock);
    free(table);
    free(free_slots);
    table = calloc((size_t)max_threads, sizeof(*table));
    free_slots = calloc((size_t)max_threads, sizeof(*free_slots));
    if (!table || !free_slots) {
        free(table);
        free(free_slots);
        table = NULL;
        free_slots = NULL;
    }
    capacity = table ? (uint32_t)max_threads : 0;
    count = 0;
    nfree = capacity;
    for (uint32_t i = 0; i < capacity; i++) free_slots[i] = capacity - 1 - i;
    accepting = table != NULL;
    data_reset(capacity);
    pthread_mutex_unlock(&reg_lock);
    return table ? 0 : -1;
}

void op_threads_destroy(void) {
    pthread_mutex_lock(&reg_lock);
    free(table);
    free(free_slots);
    table = NULL;
    free_slots = NULL;
    accepting = 0;
    data_clear();
    count = capacity = nfree = 0;
    __atomic_store_n(&op_stats_g.threads_registered, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&reg_lock);
}

static int find(pid_t tid) {
    for (uint32_t i = 0; i < count; i++)
        if (table[i].tid == tid) return (int)i;
    return -1;
}

static void remove_at(uint32_t i);

/* Drops threads that exited without unregistering (their tid no longer exists in this process). */
static void prune_dead(void) {
    pid_t pid = getpid();
    for (uint32_t i = count; i-- > 0;)
        if (syscall(SYS_tgkill, pid, table[i].tid, 0) < 0 && errno == ESRCH) {
            data_del(table[i].tid);
            remove_at(i);
        }
}

int op_threads_add(pid_t tid, const otelprof_thread_data *d, int if_new) {
    int rc = OP_THREADS_OK;
    pthread_mutex_lock(&reg_lock);
    if (!table || !accepting) {
        rc = OP_THREADS_CLOSED;
        goto out;
    }
    if (d && if_new && data_mask && data_find(tid, data_mask)) {
        rc = OP_THREADS_EXISTS;
        goto out;
    }
    /* Data first: the thread's first signal, as soon as its timer runs, must find it. */
    if (d && data_put(tid, d) < 0) {
        op_stat_drop(OTELPROF_DROP_THREADS_FULL);
        rc = OP_THREADS_FULL;
        goto out;
    }
    /* Present already: the same thread registering twice, or a new thread that got the tid of one
     * that exited unregistered. Either way re-arm, so the live thread surely has a timer. */
    int old = find(tid);
    if (old >= 0) remove_at((uint32_t)old);
    if (count == capacity) prune_dead();
    if (count == capacity) {
        op_stat_drop(OTELPROF_DROP_THREADS_FULL);
        rc = OP_THREADS_FULL;
        goto undo;
    }
    op_thread *t = &table[count];
    memset(t, 0, sizeof(*t));
    t->tid = tid;
    t->slot = free_slots[--nfree];
    if (op_g.engine && op_g.engine->thread_start && op_g.engine->thread_start(t) < 0) {
        /* The thread exited already, or the kernel refused a timer: counted, never fatal. */
        free_slots[nfree++] = t->slot;
        op_stat_drop(OTELPROF_DROP_TIMER_FAILED);
        rc = OP_THREADS_FAILED;
        goto undo;
    }
    count++;
    OP_STAT_INC(threads_registered);
    goto out;
undo:
    if (d) data_del(tid);
out:
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

static void remove_at(uint32_t i) {
    if (op_g.engine && op_g.engine->thread_stop) op_g.engine->thread_stop(&table[i]);
    free_slots[nfree++] = table[i].slot;
    table[i] = table[--count];
    __atomic_fetch_sub(&op_stats_g.threads_registered, 1, __ATOMIC_RELAXED);
}

void op_threads_remove(pid_t tid, int keep_data) {
    pthread_mutex_lock(&reg_lock);
    int i = table ? find(tid) : -1;
    if (i >= 0) remove_at((uint32_t)i);
    if (!keep_data) data_del(tid);
    pthread_mutex_unlock(&reg_lock);
}

int op_threads_remove_if(pid_t tid, const otelprof_thread_data *expected) {
    int removed = 0;
    pthread_mutex_lock(&reg_lock);
    data_slot *e = data_mask ? data_find(tid, data_mask) : NULL;
    if (e && e->d.ptr == expected->ptr && e->d.tag == expected->tag) {
        int i = table ? find(tid) : -1;
        if (i >= 0) remove_at((uint32_t)i);
        data_del(tid);
        removed = 1;
    }
    pthread_mutex_unlock(&reg_lock);
    return removed;
}

int op_threads_data_list(pid_t *tids, otelprof_thread_data *data, int max) {
    pthread_mutex_lock(&reg_lock);
    int n = 0;
    uint32_t mask = data_mask;
    if (max <= 0 || !tids || !data) {
        n = (int)data_live;
    } else if (mask) {
        for (uint32_t i = 0; i <= mask && n < max; i++) {
            pid_t t = data_tab[i].tid;
            if (t <= 0) continue;
            tids[n] = t;
            data[n++] = data_tab[i].d;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return n;
}

int op_threads_contains(pid_t tid) {
    pthread_mutex_lock(&reg_lock);
    int found = table && find(tid) >= 0;
    pthread_mutex_unlock(&reg_lock);
    return found;
}

void op_threads_close(void) {
    pthread_mutex_lock(&reg_lock);
    accepting = 0;
    while (table && count) remove_at(count - 1);
    data_clear();
    pthread_mutex_unlock(&reg_lock);
}

void op_threads_visit(uint32_t *cursor, uint32_t max, void (*fn)(op_thread *t, void *arg), void *arg) {
    pthread_mutex_lock(&reg_lock);
    uint32_t n = count < max ? count : max;
    for (uint32_t k = 0; k < n; k++) {
        if (*cursor >= count) *cursor = 0;
        fn(&table[(*cursor)++], arg);
    }
    pthread_mutex_unlock(&reg_lock);
}

uint32_t op_threads_count(void) {
    pthread_mutex_lock(&reg_lock);
    uint32_t n = count;
    pthread_mutex_unlock(&reg_lock);
    return n;
}

void op_threads_forget_all(pid_t old_tid, pid_t new_tid) {
    /* Child of fork: the lock may have been held by a thread that no longer exists. */
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    memcpy(&reg_lock, &fresh, sizeof fresh);
    /* Only the forking thread exists here: its data moves to its new tid, for its registration
     * when the restart completes; the rest is forgotten. */
    otelprof_thread_data keep;
    int have = op_threads_data_get(old_tid, &keep) == 0;
    data_clear();
    if (have) data_put(new_tid, &keep);
    count = 0;
    nfree = capacity;
    for (uint32_t i = 0; i < capacity; i++) free_slots[i] = capacity - 1 - i;
    __atomic_store_n(&op_stats_g.threads_registered, 0, __ATOMIC_RELAXED);
}
