/* Capture model (b) with a resolve() that does not return: the toy runtime of api_models.c, whose
 * resolve() longjmps out of otelprof_resolve_pending() for one of its frames ("toy.cursed", id 3)
 * whenever the safe point armed it, as a Ruby exception raised inside the resolution would. The
 * safe point "rescues" it and calls otelprof_resolve_pending() again at its next safe point.
 * argv[1]:
 *   jump: as above, over several profile closes, plus one longjmp out of otelprof_flush();
 *   slow: also, once, resolve() of toy.beta sleeps 2.5 s (past the exporter's 2 s wait), so the
 *         exporter gives up on that close and frees its memory while resolve() is still running.
 * Ends with otelprof_flush() and otelprof_stop() (resolve() returning normally there) and prints
 * what happened and the core's counters. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "burn.h"
#include "otelprof/otelprof.h"

static volatile int current_fn; /* 1 = alpha, 2 = beta, 3 = cursed */
static volatile int resolve_wanted;
static sigjmp_buf jump_back;
static volatile int armed;       /* resolve() of toy.cursed longjmps to jump_back */
static volatile int slow_pending; /* the next resolve() of toy.beta sleeps 2.5 s */
static volatile long longjmps, slow_done, flush_jumped;

static int toy_walk(void *user, void *uc, otelprof_frame *out, int max) {
    (void)user;
    (void)uc;
    int fn = current_fn;
    if (max < 2 || !fn) return 0;
    out[0].kind = OTELPROF_FRAME_ADAPTER;
    out[0].id = (uint64_t)fn;
    out[0].aux = 10 * fn;
    out[1].kind = OTELPROF_FRAME_ADAPTER;
    out[1].id = 99; /* toy.main */
    out[1].aux = 1;
    return 2;
}

static int toy_resolve(void *user, const otelprof_frame *f, otelprof_symbol *out) {
    (void)user;
    static char name[32];
    switch (f->id) {
    case 1: snprintf(name, sizeof name, "toy.alpha"); break;
    case 2:
        if (slow_pending) {
            slow_pending = 0;
            struct timespec ts = {2, 500000000};
            while (nanosleep(&ts, &ts) != 0) {}
            slow_done++;
        }
        snprintf(name, sizeof name, "toy.beta");
        break;
    case 3:
        if (armed) {
            armed = 0;
            siglongjmp(jump_back, 1); /* never returns into the core */
        }
        return -1;
    case 99: snprintf(name, sizeof name, "toy.main"); break;
    default: return -1;
    }
    out->name = name;
    out->filename = "toy.src";
    out->line = f->aux;
    return 0;
}

static void toy_resolve_requested(void *user) {
    (void)user;
    __atomic_store_n(&resolve_wanted, 1, __ATOMIC_RELEASE);
}

/* The runtime's safe point: resolve, "rescuing" a longjmp and coming back at the next one. */
static void safe_point(void) {
    if (!__atomic_load_n(&resolve_wanted, __ATOMIC_ACQUIRE)) return;
    if (sigsetjmp(jump_back, 0) == 0) {
        __atomic_store_n(&resolve_wanted, 0, __ATOMIC_RELEASE);
        armed = 1;
        otelprof_resolve_pending();
        armed = 0;
    } else {
        longjmps++;
        __atomic_store_n(&resolve_wanted, 1, __ATOMIC_RELEASE);
    }
}

static void flush_armed(void) {
    if (sigsetjmp(jump_back, 0) == 0) {
        armed = 1;
        otelprof_flush();
        armed = 0;
    } else {
        longjmps++;
        flush_jumped++;
        __atomic_store_n(&resolve_wanted, 1, __ATOMIC_RELEASE);
    }
}

static int64_t cpu_in[4]; /* CPU time spent in each toy function */

static void run(int fn, int64_t cpu_ns) {
    current_fn = fn;
    int64_t start = thread_cpu_ns(), end = start + cpu_ns, now;
    while ((now = thread_cpu_ns()) < end) {
        spin_cpu(1000000);
        safe_point();
    }
    cpu_in[fn] += now - start;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "jump";
    int slow = strcmp(mode, "slow") == 0;
    otelprof_adapter ad;
    memset(&ad, 0, sizeof ad);
    ad.name = "toy";
    ad.frame_type = "toy";
    ad.walk = toy_walk;
    ad.resolve = toy_resolve;
    ad.resolve_on = OTELPROF_RESOLVE_ON_ADAPTER;
    ad.resolve_requested = toy_resolve_requested;
    otelprof_config *cfg = otelprof_config_new();
    char err[256];
    if (!cfg || otelprof_config_from_env(cfg, err, sizeof err) != OTELPROF_OK ||
        otelprof_config_set(cfg, "export_interval", "250ms", err, sizeof err) != OTELPROF_OK)
        return 2;
    if (otelprof_start(cfg, &ad) != OTELPROF_OK) return 1;
    otelprof_config_free(cfg);
    otelprof_thread_register(otelprof_gettid());
    for (int round = 0; round < 6; round++) {
        if (slow && round == 3) slow_pending = 1;
        run(1, 200000000);
        run(2, 100000000);
        run(3, 100000000);
        /* flush() answers the request on this thread: resolve() longjmps out of it too. Its
         * profile holds toy.cursed unless a periodic close just took those samples: retry. */
        for (int tries = 0; round == 1 && !flush_jumped && tries < 20; tries++) {
            run(3, 10000000);
            flush_armed();
        }
    }
    run(1, 50000000);
    current_fn = 0;
    otelprof_error frc = otelprof_flush();
    otelprof_error src = otelprof_stop();
    otelprof_stats st;
    otelprof_stats_get(&st);
    printf("mode %s longjmps %ld flush_jumped %ld slow_done %ld flush %d stop %d\n", mode, longjmps,
           flush_jumped, slow_done, (int)frc, (int)src);
    printf("cpu_ms alpha %lld beta %lld cursed %lld\n", (long long)(cpu_in[1] / 1000000),
           (long long)(cpu_in[2] / 1000000), (long long)(cpu_in[3] / 1000000));
    printf("stats samples_taken %llu profiles_written %llu unresolved %llu\n",
           (unsigned long long)st.samples_taken, (unsigned long long)st.profiles_written,
           (unsigned long long)st.samples_dropped[OTELPROF_DROP_UNRESOLVED]);
    return frc == OTELPROF_OK && src == OTELPROF_OK ? 0 : 1;
}
