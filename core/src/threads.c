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

int op_threads_init(int max_threads) {
    pthread_mutex_lock(&reg_lock);
    free(table);
    table = calloc((size_t)max_threads, sizeof(*table));
    capacity = table ? (uint32_t)max_threads : 0;
    count = 0;
    pthread_mutex_unlock(&reg_lock);
    return table ? 0 : -1;
}

void op_threads_destroy(void) {
    pthread_mutex_lock(&reg_lock);
    free(table);
    table = NULL;
    count = capacity = 0;
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
    int rc = 0;
    pthread_mutex_lock(&reg_lock);
    if (!table || find(tid) >= 0) goto out;
    if (count == capacity) prune_dead();
    if (count == capacity) {
        op_stat_drop(OTELPROF_DROP_THREADS_FULL);
        rc = -1;
        goto out;
    }
    op_thread *t = &table[count];
    memset(t, 0, sizeof(*t));
    t->tid = tid;
    if (op_g.engine && op_g.engine->thread_start && op_g.engine->thread_start(t) < 0) {
        /* The thread exited already, or the kernel refused a timer: counted, never fatal. */
        op_stat_drop(OTELPROF_DROP_TIMER_FAILED);
        rc = -1;
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
    table[i] = table[--count];
    __atomic_fetch_sub(&op_stats_g.threads_registered, 1, __ATOMIC_RELAXED);
}

void op_threads_remove(pid_t tid) {
    pthread_mutex_lock(&reg_lock);
    int i = table ? find(tid) : -1;
    if (i >= 0) remove_at((uint32_t)i);
    pthread_mutex_unlock(&reg_lock);
}

void op_threads_remove_all(void) {
    pthread_mutex_lock(&reg_lock);
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
    __atomic_store_n(&op_stats_g.threads_registered, 0, __ATOMIC_RELAXED);
}
