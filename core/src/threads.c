/* Thread registry: a compact array under a mutex. Registration is rare next to sampling, and the
 * signal path never reads it, so a lock is fine here. */
#include "op_threads.h"

#include <errno.h>
#include <pthread.h>
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
        if (syscall(SYS_tgkill, pid, table[i].tid, 0) < 0 && errno == ESRCH) remove_at(i);
}

int op_threads_add(pid_t tid) {
    int rc = OP_THREADS_OK;
    pthread_mutex_lock(&reg_lock);
    if (!table || !accepting) {
        rc = OP_THREADS_CLOSED;
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
        goto out;
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
        goto out;
    }
    count++;
    OP_STAT_INC(threads_registered);
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

void op_threads_remove(pid_t tid) {
    pthread_mutex_lock(&reg_lock);
    int i = table ? find(tid) : -1;
    if (i >= 0) remove_at((uint32_t)i);
    pthread_mutex_unlock(&reg_lock);
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

void op_threads_forget_all(void) {
    /* Child of fork: the lock may have been held by a thread that no longer exists. */
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    memcpy(&reg_lock, &fresh, sizeof fresh);
    count = 0;
    nfree = capacity;
    for (uint32_t i = 0; i < capacity; i++) free_slots[i] = capacity - 1 - i;
    __atomic_store_n(&op_stats_g.threads_registered, 0, __ATOMIC_RELAXED);
}
