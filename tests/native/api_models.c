/* Program for the capture-model tests: a toy "runtime" whose current function is a global
 * variable, profiled through an adapter in one of the three models given by argv[1]:
 *   a: walk() in the handler reads the interrupted pc from the signal's ucontext and the runtime
 *      state; resolve() runs on the exporter thread;
 *   b: walk() captures raw ids in the handler; resolve() runs only in otelprof_resolve_pending(),
 *      which the main loop calls at its "safe points" when asked;
 *   c: no walk(); the main loop submits finished samples itself with otelprof_submit(). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include "burn.h"
#include "otelprof/otelprof.h"

static volatile int current_fn; /* 1 = "alpha", 2 = "beta": the toy runtime's frame */
static volatile int resolve_wanted;
static int resolve_calls_off_thread;
static pid_t main_tid;
static long ucontext_seen;

static int toy_walk(void *user, void *uc, otelprof_frame *out, int max) {
    (void)user;
    if (max < 2) return 0;
    ucontext_t *u = uc;
    if (u && u->uc_mcontext.gregs[REG_RIP]) __atomic_fetch_add(&ucontext_seen, 1, __ATOMIC_RELAXED);
    int fn = current_fn;
    if (!fn) return 0;
    out[0].kind = OTELPROF_FRAME_ADAPTER;
    out[0].id = (uint64_t)fn;
    out[0].aux = 10 * fn; /* "line" */
    out[1].kind = OTELPROF_FRAME_ADAPTER;
    out[1].id = 99; /* the toy runtime's main */
    out[1].aux = 1;
    return 2;
}

static int toy_resolve(void *user, const otelprof_frame *f, otelprof_symbol *out) {
    const char *model = user;
    if (model[0] == 'b' && otelprof_gettid() != main_tid) resolve_calls_off_thread++;
    static char name[32];
    switch (f->id) {
    case 1: snprintf(name, sizeof name, "toy.alpha"); break;
    case 2: snprintf(name, sizeof name, "toy.beta"); break;
    case 99: snprintf(name, sizeof name, "toy.main"); break;
    default: return -1;
    }
    out->name = name;
    out->filename = "toy.src";
    out->line = f->aux;
    out->start_line = f->aux;
    return 0;
}

static void toy_resolve_requested(void *user) {
    (void)user;
    __atomic_store_n(&resolve_wanted, 1, __ATOMIC_RELEASE);
}

static void safe_point(void) {
    if (__atomic_exchange_n(&resolve_wanted, 0, __ATOMIC_ACQ_REL)) otelprof_resolve_pending();
}

static void submit_current(void) {
    otelprof_frame fr[2];
    int n = toy_walk(NULL, NULL, fr, 2);
    otelprof_sample s = {0};
    s.frames = fr;
    s.nframes = n;
    otelprof_submit(&s);
}

int main(int argc, char **argv) {
    const char *model = argc > 1 ? argv[1] : "a";
    main_tid = otelprof_gettid();
    otelprof_adapter ad;
    memset(&ad, 0, sizeof ad);
    ad.name = "toy";
    ad.frame_type = "toy";
    ad.user = (void *)model;
    ad.resolve = toy_resolve;
    ad.walk = model[0] == 'c' ? NULL : toy_walk;
    ad.resolve_on = model[0] == 'b' ? OTELPROF_RESOLVE_ON_ADAPTER : OTELPROF_RESOLVE_ON_EXPORTER;
    ad.resolve_requested = model[0] == 'b' ? toy_resolve_requested : NULL;
    if (otelprof_start(NULL, &ad) != OTELPROF_OK) return 1;
    otelprof_thread_register(main_tid);
    /* 0.6 s of alpha then 0.3 s of beta, three times; CPU-time driven so shares are 2:1. */
    for (int round = 0; round < 3; round++) {
        for (int fn = 1; fn <= 2; fn++) {
            current_fn = fn;
            int64_t end = thread_cpu_ns() + (fn == 1 ? 600000000 : 300000000);
            while (thread_cpu_ns() < end) {
                spin_cpu(1000000);
                if (model[0] == 'c') submit_current();
                safe_point();
            }
        }
    }
    current_fn = 0;
    /* For model b, stop() answers the last resolution request on this thread itself. */
    otelprof_error rc = otelprof_stop();
    otelprof_stats st;
    otelprof_stats_get(&st);
    printf("model %s ucontext_seen %ld off_thread_resolves %d\n", model, ucontext_seen,
           resolve_calls_off_thread);
    printf("stats samples_taken %llu signals %llu handler_ns_total %llu handler_ns_max %llu "
           "profiles_written %llu bytes_written %llu unresolved %llu\n",
           (unsigned long long)st.samples_taken, (unsigned long long)st.signals,
           (unsigned long long)st.handler_ns_total, (unsigned long long)st.handler_ns_max,
           (unsigned long long)st.profiles_written, (unsigned long long)st.bytes_written,
           (unsigned long long)st.samples_dropped[OTELPROF_DROP_UNRESOLVED]);
    return rc == OTELPROF_OK ? 0 : 1;
}
