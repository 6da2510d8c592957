/* The own x86-64 unwinder (core/src/unwind_own.c) against libunwind, the reference: in a profiling
 * signal's handler both walk the same ucontext, and every frame must agree (address and kind of
 * address), on stacks that exercise the rules: deep recursion in code without frame pointers,
 * libc frames between ours (qsort calling back), a call through the PLT, a signal handler
 * interrupted in turn (the sigreturn trampoline), another thread's stack, and a module loaded
 * after the tables were first built (dlopen of libz, picked up by op_unwind_own_maintain). */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <zlib.h>

#include "op_profiler.h"
#include "op_unwind.h"
#include "op_unwind_own.h"

#define MAXF 512

static volatile sig_atomic_t compared, mismatched, walked_deep, through_signal;
static char first_mismatch[4096];
static volatile int in_usr1;

static void describe(char *buf, size_t len, const otelprof_frame *f, int n) {
    size_t u = strlen(buf);
    for (int i = 0; i < n && u + 24 < len; i++)
        u += (size_t)snprintf(buf + u, len - u, " %lx/%d", (unsigned long)f[i].id, (int)f[i].aux);
    if (u + 2 < len) strcat(buf, "\n");
}

static void on_prof(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)si;
    static otelprof_frame a[MAXF], b[MAXF]; /* one handler at a time: SIGPROF is blocked in it */
    op_g.unwinder_own = 0;
    int na = op_unwind_native(uc, a, MAXF);
    int nb = op_unwind_own(uc, b, MAXF);
    if (nb < 0) return; /* no bounds for this stack */
    compared++;
    if (in_usr1) through_signal++;
    if (na > 100) walked_deep++;
    int same = na == nb;
    for (int i = 0; same && i < na; i++) same = a[i].id == b[i].id && a[i].aux == b[i].aux;
    if (!same && !mismatched++) {
        snprintf(first_mismatch, sizeof first_mismatch, "libunwind %d:", na);
        describe(first_mismatch, sizeof first_mismatch, a, na);
        strcat(first_mismatch, "own ");
        describe(first_mismatch, sizeof first_mismatch, b, nb);
    }
}

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static volatile unsigned long sink;

__attribute__((noinline)) static unsigned long spin(int n) {
    unsigned long x = 1;
    for (int i = 0; i < n; i++) x = x * 6364136223846793005ul + 1442695040888963407ul;
    sink += x;
    return x;
}

__attribute__((noinline)) static unsigned long recurse(int depth) {
    if (depth == 0) return spin(20000);
    unsigned long r = recurse(depth - 1);
    sink += r; /* not a tail call */
    return r + 1;
}

static int cmp(const void *x, const void *y) {
    spin(200);
    return (*(const int *)x > *(const int *)y) - (*(const int *)x < *(const int *)y);
}

static void sort_some(void) {
    int v[512];
    for (int i = 0; i < 512; i++) v[i] = (i * 7919) % 512;
    qsort(v, 512, sizeof v[0], cmp);
}

static void on_usr1(int sig) {
    (void)sig;
    in_usr1 = 1;
    recurse(3);
    in_usr1 = 0;
}

static void run_for(double secs, void (*fn)(void)) {
    double end = cpu_now() + secs;
    while (cpu_now() < end) fn();
}

static void deep(void) { recurse(150); }
static void shallow(void) { recurse(2); }
static void nested(void) { raise(SIGUSR1); }
static void compress_some(void) {
    /* zlib through the PLT, and libz's own frames (a module in the tables since start). */
    static unsigned char in[1 << 16], out[1 << 17];
    for (size_t i = 0; i < sizeof in; i++) in[i] = (unsigned char)(i * 31 + (i >> 7));
    uLongf len = sizeof out;
    compress2(out, &len, in, sizeof in, 9);
}

static void *thread_main(void *arg) {
    (void)arg;
    op_unwind_own_thread_init();
    run_for(0.3, deep);
    run_for(0.2, sort_some);
    return NULL;
}

/* libbz2 (an Essential package's dependency on Debian) is not linked: loaded late, on purpose. */
typedef int (*bz_compress_fn)(char *, unsigned *, char *, unsigned, int, int, int);
static bz_compress_fn late_compress;
static void late_module(void) {
    static char in[1 << 16], out[1 << 17];
    for (size_t i = 0; i < sizeof in; i++) in[i] = (char)(i * 31 + (i >> 7));
    unsigned len = sizeof out;
    late_compress(out, &len, in, sizeof in, 9, 0, 0);
}

int main(void) {
    op_unwind_init();
    if (op_unwind_own_init() < 0) {
        printf("SKIP: the own unwinder is x86-64 only\n");
#if defined(__x86_64__)
        return 1;
#else
        return 0;
#endif
    }
    op_unwind_own_thread_init();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_prof;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGPROF, &sa, NULL);
    signal(SIGUSR1, on_usr1);
    struct itimerval it = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_PROF, &it, NULL);

    run_for(0.3, deep);
    int deep_seen = walked_deep;
    run_for(0.2, shallow);
    run_for(0.3, sort_some);
    run_for(0.3, compress_some);
    run_for(0.3, nested);
    pthread_t t;
    pthread_create(&t, NULL, thread_main, NULL);
    pthread_join(t, NULL);
    /* A library loaded now: its rows arrive with the next maintenance pass. */
    int before_late = compared;
    void *h = dlopen("libbz2.so.1.0", RTLD_NOW | RTLD_LOCAL);
    late_compress = h ? (bz_compress_fn)dlsym(h, "BZ2_bzBuffToBuffCompress") : NULL;
    op_unwind_own_maintain();
    if (late_compress) run_for(0.3, late_module);
    int late = compared - before_late;
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_PROF, &off, NULL);
    op_unwind_own_counts c;
    op_unwind_own_get_counts(&c);
    printf("compared %d (%d in a late module%s), mismatched %d, deep %d, through a signal frame %d; own walks %llu, "
           "ended at a rule %llu, at bounds %llu, frame-pointer frames %llu\n",
           (int)compared, late, late_compress ? "" : ": libbz2 missing", (int)mismatched, deep_seen, (int)through_signal, (unsigned long long)c.walks,
           (unsigned long long)c.ended_rule, (unsigned long long)c.ended_bounds,
           (unsigned long long)c.fp_frames);
    if (mismatched) printf("first mismatch:\n%s", first_mismatch);
    /* ~2 s of CPU at a 1 ms timer (at most 250 Hz here): hundreds of samples; each class seen. */
    int ok = compared >= 100 && !mismatched && deep_seen > 0 && through_signal > 0 && c.ended_rule == 0 &&
             c.ended_bounds == 0 && (!late_compress || late >= 10);
    printf("%s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
