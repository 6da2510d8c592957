/* Unit test: ELF symbolisation of this process, and native unwinding from a signal handler. */
#include "op_symbolize.h"
#include "op_unwind.h"

#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/time.h>

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s)\n", __FILE__, __LINE__, #c); failures++; } } while (0)

volatile unsigned sink;
int data_object = 42; /* lives in a data segment: no executable mapping covers it */

__attribute__((noinline)) static int local_fn(int x) {
    volatile int v = x;
    return v * 3 + 1;
}

__attribute__((noinline)) int global_fn(int x) {
    volatile int v = x;
    return v - 7;
}

static int is_lower_hex(const char *s) {
    if (!s || !*s || strlen(s) % 2) return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return 0;
    return 1;
}

/* Looks a captured frame up as the profiler does: return addresses at pc-1. */
static const char *frame_name(op_symbolizer *s, const otelprof_frame *f) {
    op_native_sym ns;
    if (op_symbolizer_lookup(s, f->aux ? f->id - 1 : f->id, &ns) < 0 || !ns.name) return "?";
    return ns.name;
}

static int frame_index(op_symbolizer *s, const otelprof_frame *f, int n, int from, const char *name) {
    for (int i = from; i < n; i++)
        if (strcmp(frame_name(s, &f[i]), name) == 0) return i;
    return -1;
}

static void dump(op_symbolizer *s, const otelprof_frame *f, int n) {
    for (int i = 0; i < n; i++)
        fprintf(stderr, "  #%d %#llx aux=%d %s\n", i, (unsigned long long)f[i].id, f[i].aux,
                frame_name(s, &f[i]));
}

/* ---- symbolisation ---------------------------------------------------------------------- */

static void test_symbols(void) {
    op_symbolizer *s = op_symbolizer_new(0);
    CHECK(s != NULL);
    if (!s) return;
    op_native_sym ns;
    CHECK(op_symbolizer_lookup(s, (uint64_t)(uintptr_t)&global_fn, &ns) == -1); /* not refreshed */
    op_symbolizer_refresh(s);

    char exe[PATH_MAX];
    CHECK(realpath("/proc/self/exe", exe) != NULL);

    uint64_t a = (uint64_t)(uintptr_t)&local_fn;
    CHECK(op_symbolizer_lookup(s, a, &ns) == 0);
    CHECK(ns.name && strcmp(ns.name, "local_fn") == 0);
    CHECK(ns.sym_start == a);
    CHECK(ns.map && ns.map->start <= a && a < ns.map->limit);
    CHECK(ns.map && ns.map->filename && strcmp(ns.map->filename, exe) == 0);
    /* gcc on Debian links with --build-id by default. */
    CHECK(ns.map && is_lower_hex(ns.map->build_id));
    const op_mapping *exe_map = ns.map;
    CHECK(op_symbolizer_lookup(s, a + 1, &ns) == 0 && ns.name && strcmp(ns.name, "local_fn") == 0);

    uint64_t g = (uint64_t)(uintptr_t)&global_fn;
    CHECK(op_symbolizer_lookup(s, g + 2, &ns) == 0);
    CHECK(ns.name && strcmp(ns.name, "global_fn") == 0 && ns.sym_start == g);
    CHECK(ns.map == exe_map);

    /* libc's own printf (not an interposed one), preferred over its alias _IO_printf. */
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    CHECK(libc != NULL);
    if (libc) {
        void *pf = dlsym(libc, "printf");
        CHECK(pf != NULL);
        CHECK(op_symbolizer_lookup(s, (uint64_t)(uintptr_t)pf + 4, &ns) == 0);
        CHECK(ns.name && strcmp(ns.name, "printf") == 0);
        CHECK(ns.sym_start == (uint64_t)(uintptr_t)pf);
        CHECK(ns.map && ns.map->filename && strstr(ns.map->filename, "libc.so"));
        CHECK(ns.map && ns.map->filename[0] == '/');
        dlclose(libc);
    }

    /* Addresses outside every executable mapping. */
    CHECK(op_symbolizer_lookup(s, 16, &ns) == -1 && ns.map == NULL && ns.name == NULL);
    CHECK(op_symbolizer_lookup(s, (uint64_t)(uintptr_t)&data_object, &ns) == -1);
    void *heap = malloc(64);
    CHECK(op_symbolizer_lookup(s, (uint64_t)(uintptr_t)heap, &ns) == -1);
    free(heap);
    CHECK(op_symbolizer_lookup(s, UINT64_MAX, &ns) == -1);

    /* The vdso is symbolised from its in-memory image. */
    uint64_t vdso = (uint64_t)getauxval(AT_SYSINFO_EHDR);
    if (vdso) {
        CHECK(op_symbolizer_lookup(s, vdso + 8, &ns) == 0);
        CHECK(ns.map && strcmp(ns.map->filename, "[vdso]") == 0);
        int named = 0; /* its .dynsym functions (clock_gettime, ...) have names */
        for (uint64_t p = vdso; p < vdso + 8192 && !named; p += 16)
            named = op_symbolizer_lookup(s, p, &ns) == 0 && ns.name && ns.name[0];
        CHECK(named);
    }

    /* A second refresh with nothing loaded or unloaded keeps everything. */
    op_symbolizer_refresh(s);
    CHECK(op_symbolizer_lookup(s, a, &ns) == 0 && ns.map == exe_map);

    /* dlopen: picked up by the next refresh. dlclose: kept (stale), names stay valid. */
    void *z = dlopen("libz.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (z) {
        dlclose(z); /* already loaded by something else: the unload case cannot be tested */
    } else if ((z = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL))) {
        void *fn = dlsym(z, "zlibVersion");
        CHECK(fn != NULL);
        uint64_t za = (uint64_t)(uintptr_t)fn;
        CHECK(op_symbolizer_lookup(s, za, &ns) == -1);
        op_symbolizer_refresh(s);
        CHECK(op_symbolizer_lookup(s, za, &ns) == 0);
        CHECK(ns.name && strcmp(ns.name, "zlibVersion") == 0);
        CHECK(ns.map && strstr(ns.map->filename, "libz.so") && is_lower_hex(ns.map->build_id));
        const char *zname = ns.name;
        const op_mapping *zmap = ns.map;
        dlclose(z);
        if (!dlopen("libz.so.1", RTLD_NOW | RTLD_NOLOAD)) {
            op_symbolizer_refresh(s);
            CHECK(op_symbolizer_lookup(s, za, &ns) == 0);
            CHECK(ns.name == zname && ns.map == zmap);
            CHECK(strcmp(zname, "zlibVersion") == 0 && strstr(zmap->filename, "libz.so"));
            CHECK(op_symbolizer_lookup(s, a, &ns) == 0 && ns.map == exe_map);
        }
    }

    CHECK(op_symbolizer_lookup(NULL, a, &ns) == -1);
    op_symbolizer_free(s);
    op_symbolizer_free(NULL);
}

/* ---- unwinding ---------------------------------------------------------------------------- */

#define MAXF 128
static otelprof_frame frames[MAXF];
static volatile int nframes = -1;
static volatile int frames_max = MAXF;

static void on_prof(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)si;
    if (nframes < 0) nframes = op_unwind_native(uc, frames, frames_max);
}

/* Each call is followed by more work, so none of them becomes a tail call. */
__attribute__((noinline)) void chain_c(void) {
    raise(SIGPROF);
    sink++;
}
__attribute__((noinline)) void chain_b(void) {
    chain_c();
    sink++;
}
__attribute__((noinline)) void chain_a(void) {
    chain_b();
    sink++;
}

__attribute__((noinline)) void usr1_handler(int sig) {
    (void)sig;
    raise(SIGPROF);
    sink++;
}
__attribute__((noinline)) void nest_outer(void) {
    raise(SIGUSR1);
    sink++;
}

static int raise_in_loader(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)info;
    (void)size;
    (void)arg;
    raise(SIGPROF);
    return 1;
}

__attribute__((noinline)) void spin_here(int n) {
    for (int i = 0; i < n && nframes < 0; i++) sink += (unsigned)i;
}
__attribute__((noinline)) void spin_caller(void) {
    spin_here(1 << 20);
    sink++;
}

__attribute__((noinline)) static void test_unwind(op_symbolizer *s) {
    CHECK(op_unwind_native(NULL, frames, MAXF) == 0);
    CHECK(op_unwind_native(&frames, frames, 0) == 0);

    /* raise() from a known chain */
    nframes = -1;
    chain_a();
    int n = nframes;
    CHECK(n > 4);
    int ic = frame_index(s, frames, n, 0, "chain_c");
    int ib = frame_index(s, frames, n, ic + 1, "chain_b");
    int ia = frame_index(s, frames, n, ib + 1, "chain_a");
    int it = frame_index(s, frames, n, ia + 1, "test_unwind");
    int im = frame_index(s, frames, n, it + 1, "main");
    CHECK(ic > 0 && ib == ic + 1 && ia == ib + 1 && it == ia + 1 && im == it + 1);
    CHECK(n > 0 && frames[0].aux == 0);
    for (int i = 0; i < n; i++) {
        CHECK(frames[i].kind == OTELPROF_FRAME_NATIVE);
        CHECK(frames[i].id != 0);
        if (i > 0) CHECK(frames[i].aux == 1);
    }
    if (!(ic > 0 && im == it + 1)) dump(s, frames, n);

    /* truncation */
    frames_max = 2;
    nframes = -1;
    chain_a();
    CHECK(nframes == 2);
    frames_max = MAXF;

    /* A handler interrupted by the profiling signal: the frame after the trampoline is the pc
     * where the first signal struck, exact (aux 0); return addresses are aux 1. */
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = usr1_handler;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, &old) == 0);
    nframes = -1;
    nest_outer();
    sigaction(SIGUSR1, &old, NULL);
    n = nframes;
    int ih = frame_index(s, frames, n, 0, "usr1_handler");
    int io = frame_index(s, frames, n, ih + 1, "nest_outer");
    int it2 = frame_index(s, frames, n, io + 1, "test_unwind");
    int im2 = frame_index(s, frames, n, it2 + 1, "main");
    CHECK(ih > 0 && io > ih + 1 && it2 == io + 1 && im2 == it2 + 1);
#if defined(__x86_64__)
    int exact = 0;
    for (int i = ih + 1; i < io; i++) exact += frames[i].aux == 0;
    CHECK(exact == 1);
#endif
    if (!(ih > 0 && im2 == it2 + 1)) dump(s, frames, n);

    /* Inside the loader lock (here: a dl_iterate_phdr callback) libunwind is not called and
     * only the exact pc is reported. */
    nframes = -1;
    dl_iterate_phdr(raise_in_loader, NULL);
#if defined(__GLIBC__)
    CHECK(nframes == 1 && frames[0].aux == 0 && frames[0].id != 0);
#endif
    nframes = -1;
    chain_a(); /* and a normal walk right after */
    CHECK(nframes > 4);

    /* CPU timer while spinning: frame 0 lands in spin_here. */
    struct itimerval tick = {{0, 1000}, {0, 1000}};
    int got = 0;
    for (int tries = 0; tries < 400 && !got; tries++) {
        nframes = -1;
        CHECK(setitimer(ITIMER_PROF, &tick, NULL) == 0);
        while (nframes < 0) spin_caller();
        struct itimerval off = {{0, 0}, {0, 0}};
        setitimer(ITIMER_PROF, &off, NULL);
        n = nframes;
        if (n > 0 && strcmp(frame_name(s, &frames[0]), "spin_here") == 0) {
            got = 1;
            CHECK(frames[0].aux == 0);
            int isc = frame_index(s, frames, n, 1, "spin_caller");
            int itu = frame_index(s, frames, n, isc + 1, "test_unwind");
            int imn = frame_index(s, frames, n, itu + 1, "main");
            CHECK(isc == 1 && itu == 2 && imn == 3);
            if (imn < 0) dump(s, frames, n);
        }
    }
    CHECK(got);
}

int main(void) {
    test_symbols();

    op_unwind_init();
    op_unwind_init(); /* idempotent */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_prof;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGPROF, &sa, NULL) == 0);
    op_symbolizer *s = op_symbolizer_new(0);
    CHECK(s != NULL);
    if (s) {
        op_symbolizer_refresh(s);
        test_unwind(s);
        op_symbolizer_free(s);
    }
    signal(SIGPROF, SIG_IGN);

    if (failures) return 1;
    printf("test_symbolize: ok\n");
    return 0;
}
