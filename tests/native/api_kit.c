/* Program for the adapter-kit tests, one part per argv[1]:
 *   fork:  an adapter with fork callbacks forks twice, while running and after otelprof_stop;
 *          the callbacks print "<event> <round> pid <pid> [registered <n>]" (the child's line
 *          shows how many threads the core still had registered when its callback ran);
 *   block: 0.4 s of CPU with otelprof_signal_block, then 0.4 s after otelprof_signal_restore;
 *          prints "walks_blocked N walks_open M";
 *   spawn: otelprof_thread_spawn; the new thread prints "spawned blocked <0|1> name <name>";
 *   walkerr: 0.3 s of CPU where walk() reports cause 0 ("gc_active"), 0.3 s where it reports an
 *          undeclared cause (5), 0.3 s of good walks; prints "walk_errors N walk_failed M taken T";
 *   data:  three threads register with adapter data pointing at their own thread-local marker;
 *          walk() reads it back in the handler (otelprof_thread_data_self) and counts matches,
 *          mismatches and misses; then the conditional unregister, IF_NEW, the list, fork and stop
 *          are checked; prints "data ok N bad M missing K" and one line per check;
 *   epoch: 1.2 s of CPU where every walk() (and every 10 ms an otelprof_submit) hands the core a
 *          new id and keeps the epoch read after handing it over; resolve() counts ids the core
 *          still asked about after declaring their epoch released; prints
 *          "epoch resolved N early M closes C released R all_released A";
 *   counters: 0.3 s of CPU with an adapter that declares counters (walk() counts its walks and
 *          frames) and 256 KiB of fixed memory; reserves adapter memory within and past the cap,
 *          while running and after stop; prints "counter <i> <name> <value>" per counter and
 *          the memory figures (see main);
 *   refuse: starts refused for the adapter's fixed memory (over max_memory, or leaving less than
 *          1 MiB) and for too many counters, between starts that fit; prints the results. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "burn.h"
#include "otelprof/otelprof.h"

static volatile int round_no;
static volatile int in_blocked;
static volatile int walk_fails = -1; /* >= 0: walk() reports this cause */
static long walks_blocked, walks_open;
static volatile int check_data;
static long data_ok, data_bad, data_missing;
static int data_listed;
static __thread int tl_marker;
/* epoch part: every id is new; its epoch per the frame-lifetime rule. */
#define EPOCH_IDS (1 << 16)
static volatile int epoch_ids;
static uint64_t next_id = 1, id_epoch[EPOCH_IDS];
static long resolved, resolved_early;

/* The adapter's counters: walk() counts in signal context, with relaxed atomic adds. */
static const char *const kit_counter_names[] = {"kit_walks", "kit_frames", "kit_idle"};
static uint64_t kit_counters[3];

static int kit_walk(void *user, void *uc, otelprof_frame *out, int max) {
    (void)user, (void)uc;
    if (max < 1) return 0;
    __atomic_fetch_add(&kit_counters[0], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(in_blocked ? &walks_blocked : &walks_open, 1, __ATOMIC_RELAXED);
    if (check_data) {
        otelprof_thread_data d;
        long *which = otelprof_thread_data_self(&d) < 0 ? &data_missing
                      : d.ptr == &tl_marker && d.tag == 7 ? &data_ok : &data_bad;
        __atomic_fetch_add(which, 1, __ATOMIC_RELAXED);
    }
    if (walk_fails >= 0) return OTELPROF_WALK_ERROR(walk_fails);
    out[0].kind = OTELPROF_FRAME_ADAPTER;
    out[0].id = 1;
    if (epoch_ids) {
        uint64_t id = __atomic_fetch_add(&next_id, 1, __ATOMIC_RELAXED) % EPOCH_IDS;
        out[0].id = id;
        __atomic_store_n(&id_epoch[id], otelprof_frames_epoch(), __ATOMIC_RELAXED);
    }
    out[0].aux = 0;
    __atomic_fetch_add(&kit_counters[1], 1, __ATOMIC_RELAXED);
    return 1;
}

static int kit_resolve(void *user, const otelprof_frame *f, otelprof_symbol *out) {
    (void)user;
    if (epoch_ids && f->id < EPOCH_IDS) {
        resolved++;
        if (__atomic_load_n(&id_epoch[f->id], __ATOMIC_RELAXED) < otelprof_frames_released()) resolved_early++;
    }
    memset(out, 0, sizeof *out);
    out->name = "kit_frame";
    return 0;
}

/* write(2) only: these run inside fork(). */
static void say(const char *event) {
    char line[128];
    otelprof_stats st;
    otelprof_stats_get(&st);
    int n = snprintf(line, sizeof line, "%s %d pid %d registered %llu\n", event, round_no, (int)getpid(),
                     (unsigned long long)st.threads_registered);
    if (n > 0) (void)!write(1, line, (size_t)n);
}

static void on_prepare(void *user) { (void)user; say("prepare"); }
static void on_parent(void *user) { (void)user; say("parent"); }
static void on_child(void *user) { (void)user; say("child"); }

static const char *const kit_walk_errors[] = {"gc_active", "not_walkable"};

static void fill_adapter(otelprof_adapter *ad) {
    memset(ad, 0, sizeof *ad);
    ad->walk_errors = kit_walk_errors;
    ad->nwalk_errors = 2;
    ad->name = "kit";
    ad->walk = kit_walk;
    ad->resolve = kit_resolve;
    ad->resolve_on = OTELPROF_RESOLVE_ON_EXPORTER;
    ad->counter_names = kit_counter_names;
    ad->counters = kit_counters;
    ad->ncounters = 3;
}

static int start(void) {
    otelprof_adapter ad;
    fill_adapter(&ad);
    ad.fork_prepare = on_prepare;
    ad.fork_parent = on_parent;
    ad.fork_child = on_child;
    if (otelprof_start(NULL, &ad) != OTELPROF_OK) return -1;
    otelprof_thread_register(otelprof_gettid());
    return 0;
}

static void fork_once(void) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        otelprof_after_fork();
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
}

static void *spawned(void *arg) {
    (void)arg;
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    char name[32] = "";
    pthread_getname_np(pthread_self(), name, sizeof name);
    printf("spawned blocked %d name %s\n", sigismember(&cur, otelprof_signal_number()) == 1, name);
    return NULL;
}

static void register_self(void) {
    otelprof_thread_data d = {&tl_marker, 0, 7};
    otelprof_thread_register_data(otelprof_gettid(), &d, 0);
}

static void *data_worker(void *arg) {
    (void)arg;
    register_self();
    spin_cpu(300000000);
    while (!__atomic_load_n(&data_listed, __ATOMIC_ACQUIRE)) usleep(1000); /* until main listed us */
    otelprof_thread_unregister(otelprof_gettid());
    return NULL;
}

static int data_part(void) {
    pid_t me = otelprof_gettid();
    otelprof_thread_data d = {&tl_marker, 0, 7}, other = {&data_ok, 0, 7}, got;
    printf("replace %d\n", otelprof_thread_register_data(me, &d, 0) == OTELPROF_OK);
    printf("if_new %d\n", otelprof_thread_register_data(me, &other, OTELPROF_THREAD_IF_NEW) == OTELPROF_EEXIST &&
                             otelprof_thread_data_get(me, &got) == 0 && got.ptr == &tl_marker);
    check_data = 1;
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, data_worker, NULL);
    spin_cpu(300000000);
    pid_t tids[8];
    otelprof_thread_data all[8];
    int listed = otelprof_thread_list(tids, all, 8);
    __atomic_store_n(&data_listed, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    check_data = 0;
    printf("data ok %ld bad %ld missing %ld\n", data_ok, data_bad, data_missing);
    printf("listed %d count_after_join %d\n", listed, otelprof_thread_list(NULL, NULL, 0));
    /* The scan's conditional unregister: another thread's data does not match. */
    printf("unregister_if_other %d\n", otelprof_thread_unregister_if(me, &other));
    int removed = otelprof_thread_unregister_if(me, &d);
    printf("unregister_if_same %d gone %d\n", removed, otelprof_thread_data_get(me, &got) == -1);
    /* Fork: the child finds the forking thread's data under its own tid. */
    register_self();
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        otelprof_after_fork();
        int ok = otelprof_thread_data_get(otelprof_gettid(), &got) == 0 && got.ptr == &tl_marker;
        printf("child data %d old_tid %d\n", ok, otelprof_thread_data_get(me, &got) == 0);
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    otelprof_stop();
    printf("after_stop %d\n", otelprof_thread_data_get(me, &got));
    return 0;
}

static int epoch_part(void) {
    uint64_t first = otelprof_frames_epoch();
    epoch_ids = 1;
    for (int i = 0; i < 120; i++) {
        spin_cpu(10000000);
        uint64_t id = __atomic_fetch_add(&next_id, 1, __ATOMIC_RELAXED) % EPOCH_IDS;
        otelprof_frame f = {id, 0, OTELPROF_FRAME_ADAPTER};
        otelprof_sample s;
        memset(&s, 0, sizeof s);
        s.frames = &f;
        s.nframes = 1;
        if (otelprof_submit(&s) == OTELPROF_OK) __atomic_store_n(&id_epoch[id], otelprof_frames_epoch(), __ATOMIC_RELAXED);
    }
    uint64_t closes = otelprof_frames_epoch() - first, released = otelprof_frames_released() - first;
    otelprof_stop();
    uint64_t max = 0;
    for (uint64_t i = 1; i < next_id && i < EPOCH_IDS; i++) max = id_epoch[i] > max ? id_epoch[i] : max;
    printf("epoch resolved %ld early %ld closes %llu released %llu all_released %d\n", resolved, resolved_early,
           (unsigned long long)closes, (unsigned long long)released, otelprof_frames_released() > max);
    return 0;
}

#define KIB 1024ull
#define MIB (1024ull * 1024)

static unsigned long long memory_now(void) {
    otelprof_stats st;
    otelprof_stats_get(&st);
    return (unsigned long long)st.memory_bytes;
}

/* The adapter declares counters and 256 KiB of fixed memory, and reserves 64 KiB of growing
 * memory while running. max_memory comes from the environment (the test sets 2 MiB). */
static int counters_part(void) {
    otelprof_adapter ad;
    fill_adapter(&ad);
    ad.memory_bytes = 256 * KIB;
    if (otelprof_start(NULL, &ad) != OTELPROF_OK) return 3;
    otelprof_thread_register(otelprof_gettid());
    spin_cpu(300000000);
    otelprof_stats st;
    otelprof_stats_get(&st);
    unsigned long long cap = (unsigned long long)st.memory_cap_bytes, running = st.memory_bytes;
    int fits = otelprof_memory_reserve(64 * KIB);
    unsigned long long with = memory_now();
    int past = otelprof_memory_reserve((size_t)cap); /* the ring and 256 KiB are held already */
    unsigned long long after_refusal = memory_now();
    otelprof_stop();
    for (int i = 0;; i++) {
        const char *name;
        uint64_t value;
        if (otelprof_stats_counter(i, &name, &value) < 0) break;
        printf("counter %d %s %llu\n", i, name, (unsigned long long)value);
    }
    printf("out_of_range %d %d\n", otelprof_stats_counter(3, NULL, NULL), otelprof_stats_counter(-1, NULL, NULL));
    /* Stopped: the ring, the fixed bytes and the exporter's tables are gone; the adapter's
     * reservation is not, and the last run's cap still holds it. */
    unsigned long long stopped = memory_now();
    int over = otelprof_memory_reserve((size_t)(cap - 64 * KIB + 1));
    int exact = otelprof_memory_reserve((size_t)(cap - 64 * KIB));
    unsigned long long full = memory_now();
    otelprof_memory_release((size_t)(2 * cap)); /* clamped to what the adapter holds */
    printf("memory cap %llu running %llu fits %d with %llu past %d after_refusal %llu stopped %llu "
           "over %d exact %d full %llu released %llu\n",
           cap, running, fits, with, past, after_refusal, stopped, over, exact, full, memory_now());
    return 0;
}

static otelprof_error start_sized(const char *max_memory, size_t memory_bytes, int ncounters) {
    otelprof_config *cfg = otelprof_config_new();
    if (!cfg || otelprof_config_set(cfg, "max_memory", max_memory, NULL, 0) != OTELPROF_OK) return OTELPROF_ENOMEM;
    otelprof_adapter ad;
    fill_adapter(&ad);
    ad.memory_bytes = memory_bytes;
    ad.ncounters = ncounters;
    otelprof_error rc = otelprof_start(cfg, &ad);
    otelprof_config_free(cfg);
    return rc;
}

/* Each refusal leaves the profiler stopped and logs one line; a start that fits still works. */
static int refuse_part(void) {
    otelprof_error over = start_sized("4MiB", (size_t)(3 * MIB + 1), 3); /* leaves < 1 MiB */
    int running_after = otelprof_is_running();
    otelprof_error huge = start_sized("4MiB", (size_t)-1, 3);
    otelprof_error counters = start_sized("4MiB", 0, OTELPROF_COUNTERS_MAX + 1);
    otelprof_error fits = start_sized("4MiB", (size_t)(3 * MIB), 3); /* exactly 1 MiB left */
    unsigned long long held = memory_now();
    otelprof_stop();
    printf("refuse over %d running %d huge %d counters %d fits %d held %llu stopped %llu enomem %d einval %d\n",
           over, running_after, huge, counters, fits, held, memory_now(), OTELPROF_ENOMEM, OTELPROF_EINVAL);
    return 0;
}

int main(int argc, char **argv) {
    const char *part = argc > 1 ? argv[1] : "fork";
    if (strcmp(part, "counters") == 0) return counters_part();
    if (strcmp(part, "refuse") == 0) return refuse_part();
    if (start() < 0) return 3;
    if (strcmp(part, "fork") == 0) {
        spin_cpu(100000000);
        round_no = 1;
        fork_once();
        otelprof_stop();
        round_no = 2;
        fork_once();
        return 0;
    }
    if (strcmp(part, "block") == 0) {
        sigset_t old;
        otelprof_signal_block(&old);
        in_blocked = 1;
        spin_cpu(400000000);
        in_blocked = 0;
        otelprof_signal_restore(&old);
        spin_cpu(400000000);
        otelprof_stop();
        printf("walks_blocked %ld walks_open %ld\n", walks_blocked, walks_open);
        return 0;
    }
    if (strcmp(part, "walkerr") == 0) {
        walk_fails = 0;
        spin_cpu(300000000);
        walk_fails = 5;
        spin_cpu(300000000);
        walk_fails = -1;
        spin_cpu(300000000);
        otelprof_stats st;
        otelprof_stats_get(&st);
        otelprof_stop();
        printf("walk_errors %llu walk_failed %llu taken %llu name %s\n", (unsigned long long)st.walk_errors[0],
               (unsigned long long)st.samples_dropped[OTELPROF_DROP_WALK_FAILED],
               (unsigned long long)st.samples_taken, otelprof_walk_error_name(0));
        return 0;
    }
    if (strcmp(part, "data") == 0) return data_part();
    if (strcmp(part, "epoch") == 0) return epoch_part();
    if (strcmp(part, "spawn") == 0) {
        pthread_t t;
        if (otelprof_thread_spawn(&t, spawned, NULL, "kit-helper") != 0) return 4;
        pthread_join(t, NULL);
        otelprof_stop();
        return 0;
    }
    return 2;
}
