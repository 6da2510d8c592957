/* Program for the adapter-kit tests, one part per argv[1]:
 *   fork:  an adapter with fork callbacks forks twice, while running and after otelprof_stop;
 *          the callbacks print "<event> <round> pid <pid> [registered <n>]" (the child's line
 *          shows how many threads the core still had registered when its callback ran);
 *   block: 0.4 s of CPU with otelprof_signal_block, then 0.4 s after otelprof_signal_restore;
 *          prints "walks_blocked N walks_open M";
 *   spawn: otelprof_thread_spawn; the new thread prints "spawned blocked <0|1> name <name>";
 *   walkerr: 0.3 s of CPU where walk() reports cause 0 ("gc_active"), 0.3 s where it reports an
 *          undeclared cause (5), 0.3 s of good walks; prints "walk_errors N walk_failed M taken T". */
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

static int kit_walk(void *user, void *uc, otelprof_frame *out, int max) {
    (void)user, (void)uc;
    if (max < 1) return 0;
    __atomic_fetch_add(in_blocked ? &walks_blocked : &walks_open, 1, __ATOMIC_RELAXED);
    if (walk_fails >= 0) return OTELPROF_WALK_ERROR(walk_fails);
    out[0].kind = OTELPROF_FRAME_ADAPTER;
    out[0].id = 1;
    out[0].aux = 0;
    return 1;
}

static int kit_resolve(void *user, const otelprof_frame *f, otelprof_symbol *out) {
    (void)user, (void)f;
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

static int start(void) {
    otelprof_adapter ad;
    memset(&ad, 0, sizeof ad);
    ad.walk_errors = kit_walk_errors;
    ad.nwalk_errors = 2;
    ad.name = "kit";
    ad.walk = kit_walk;
    ad.resolve = kit_resolve;
    ad.resolve_on = OTELPROF_RESOLVE_ON_EXPORTER;
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

int main(int argc, char **argv) {
    const char *part = argc > 1 ? argv[1] : "fork";
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
    if (strcmp(part, "spawn") == 0) {
        pthread_t t;
        if (otelprof_thread_spawn(&t, spawned, NULL, "kit-helper") != 0) return 4;
        pthread_join(t, NULL);
        otelprof_stop();
        return 0;
    }
    return 2;
}
