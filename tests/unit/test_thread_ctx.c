/* Unit test: OTEP 4947 thread context records, nesting, signal-time reads and the exported symbol. */
#include "op_ctx.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s)\n", __FILE__, __LINE__, #c); failures++; } } while (0)

static const uint8_t *rec_bytes(const void *r) { return (const uint8_t *)r; }

static uint16_t rec_attrs_size(const void *r) {
    uint16_t n;
    memcpy(&n, rec_bytes(r) + 26, 2); /* host endian, per the OTEP */
    return n;
}

/* ---- nesting and layout ------------------------------------------------------------------ */

static void test_nesting(void) {
    uint8_t t1[16], s1[8], t2[16], s2[8];
    memset(t1, 0x11, 16); memset(s1, 0x12, 8);
    memset(t2, 0x21, 16); memset(s2, 0x22, 8);
    CHECK(otel_thread_ctx_v1 == NULL);
    CHECK(op_ctx_current() == NULL);
    void *a = otelprof_ctx_attach(t1, s1, 1, NULL, 0);
    CHECK(a != NULL && otel_thread_ctx_v1 == a && op_ctx_current() == a);
    void *b = otelprof_ctx_attach(t2, s2, 0, NULL, 0);
    CHECK(b != NULL && b != a && otel_thread_ctx_v1 == b);
    otelprof_ctx_detach(b);
    CHECK(otel_thread_ctx_v1 == a); /* the previous context, not "none" */
    CHECK(memcmp(otel_thread_ctx_v1->trace_id, t1, 16) == 0);
    otelprof_ctx_detach(a);
    CHECK(otel_thread_ctx_v1 == NULL && op_ctx_current() == NULL);
    otelprof_ctx_detach(NULL); /* harmless */
    CHECK(otel_thread_ctx_v1 == NULL);

    /* Out of order: detaching a lower token drops the abandoned records above it; their stale
     * tokens are then ignored. */
    a = otelprof_ctx_attach(t1, s1, 1, NULL, 0);
    b = otelprof_ctx_attach(t2, s2, 1, NULL, 0);
    void *c = otelprof_ctx_attach(t2, s1, 1, NULL, 0);
    otelprof_ctx_detach(b);
    CHECK(otel_thread_ctx_v1 == a);
    otelprof_ctx_detach(c);
    CHECK(otel_thread_ctx_v1 == a);
    otelprof_ctx_detach(a);
    CHECK(otel_thread_ctx_v1 == NULL);
    /* Detaching twice is ignored. */
    a = otelprof_ctx_attach(t1, s1, 1, NULL, 0);
    b = otelprof_ctx_attach(t2, s2, 1, NULL, 0);
    otelprof_ctx_detach(b);
    otelprof_ctx_detach(b);
    CHECK(otel_thread_ctx_v1 == a);
    otelprof_ctx_detach(a);
    CHECK(otel_thread_ctx_v1 == NULL);

    /* NULL ids publish zeros (trace_id 0 = none) but the record is still valid. */
    a = otelprof_ctx_attach(NULL, NULL, 0, NULL, 0);
    const uint8_t *p = rec_bytes(a);
    int zero = 1;
    for (int i = 0; i < 24; i++) zero &= p[i] == 0;
    CHECK(zero && p[24] == 1 && rec_attrs_size(a) == 0);
    otelprof_ctx_detach(a);
}

static void test_layout(void) {
    uint8_t t[16], s[8];
    for (int i = 0; i < 16; i++) t[i] = (uint8_t)(0xa0 + i);
    for (int i = 0; i < 8; i++) s[i] = (uint8_t)(0xb0 + i);
    otelprof_ctx_attr attrs[3] = {{3, "GET /x"}, {7, NULL}, {0, ""}};
    void *tok = otelprof_ctx_attach(t, s, 0x01, attrs, 3);
    CHECK(tok != NULL);
    CHECK(((uintptr_t)tok & 1) == 0); /* 2-byte aligned */
    const uint8_t *p = rec_bytes(otel_thread_ctx_v1);
    CHECK(memcmp(p + 0, t, 16) == 0);
    CHECK(memcmp(p + 16, s, 8) == 0);
    CHECK(p[24] == 1);
    CHECK(p[25] == 0x01);
    /* {3,6,"GET /x"} {0,0,""}: the NULL value is skipped */
    CHECK(rec_attrs_size(p) == 8 + 2);
    CHECK(p[28] == 3 && p[29] == 6 && memcmp(p + 30, "GET /x", 6) == 0);
    CHECK(p[36] == 0 && p[37] == 0);
    otelprof_ctx_detach(tok);
}

static size_t walk_attrs(const uint8_t *rec, int *ok) {
    size_t size = rec_attrs_size(rec), off = 0, n = 0;
    const uint8_t *a = rec + 28;
    while (off < size) {
        if (size - off < 2 || size - off - 2 < a[off + 1]) { *ok = 0; return n; }
        off += 2u + a[off + 1];
        n++;
    }
    return n;
}

static void test_truncation(void) {
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    otelprof_ctx_attr one = {1, big};
    void *tok = otelprof_ctx_attach(NULL, NULL, 0, &one, 1);
    const uint8_t *p = rec_bytes(tok);
    CHECK(p[28] == 1 && p[29] == 255 && rec_attrs_size(p) == 257);
    otelprof_ctx_detach(tok);

    /* A value of 2-byte UTF-8 characters is cut at a character boundary: 254, not 255. */
    char utf[401];
    for (int i = 0; i < 400; i += 2) { utf[i] = (char)0xc3; utf[i + 1] = (char)0xa9; }
    utf[400] = 0;
    one.value = utf;
    tok = otelprof_ctx_attach(NULL, NULL, 0, &one, 1);
    p = rec_bytes(tok);
    CHECK(p[29] == 254 && (p[30 + 253] & 0xc0) == 0x80 && (p[30 + 252] & 0xe0) == 0xc0);
    otelprof_ctx_detach(tok);

    /* Many long values: the whole record stays within 640 bytes and stays parseable. */
    otelprof_ctx_attr many[8];
    for (int i = 0; i < 8; i++) { many[i].key_index = (uint8_t)i; many[i].value = big; }
    tok = otelprof_ctx_attach(NULL, NULL, 0, many, 8);
    p = rec_bytes(tok);
    size_t size = rec_attrs_size(p);
    CHECK(28 + size <= OTELPROF_CTX_MAX_RECORD);
    CHECK(size >= OTELPROF_CTX_MAX_RECORD - 28 - 2); /* the space is used, not wasted */
    int ok = 1;
    size_t n = walk_attrs(p, &ok);
    CHECK(ok && n == 3);
    CHECK(p[28] == 0 && p[28 + 257] == 1 && p[28 + 514] == 2);
    otelprof_ctx_detach(tok);
}

/* ---- threads -------------------------------------------------------------------------------- */

static pthread_barrier_t bar;
static void *foreign_token;

static void *isolation_thread(void *arg) {
    uint8_t t[16];
    memset(t, (int)(uintptr_t)arg, 16);
    CHECK(otel_thread_ctx_v1 == NULL); /* a new thread starts with no context */
    void *tok = otelprof_ctx_attach(t, NULL, 0, NULL, 0);
    if ((uintptr_t)arg == 0x55) foreign_token = tok;
    pthread_barrier_wait(&bar);
    CHECK(otel_thread_ctx_v1 == tok && otel_thread_ctx_v1->trace_id[0] == (uint8_t)(uintptr_t)arg);
    pthread_barrier_wait(&bar); /* main thread tries to detach our token meanwhile */
    pthread_barrier_wait(&bar);
    CHECK(otel_thread_ctx_v1 == tok && otel_thread_ctx_v1->trace_id[0] == (uint8_t)(uintptr_t)arg);
    otelprof_ctx_detach(tok);
    CHECK(otel_thread_ctx_v1 == NULL);
    return NULL;
}

static void *leaky_thread(void *arg) {
    (void)arg;
    /* Exits with contexts attached: the thread-exit hook frees them (the leak checker sees). */
    otelprof_ctx_attach(NULL, NULL, 0, NULL, 0);
    otelprof_ctx_attach(NULL, NULL, 0, NULL, 0);
    return NULL;
}

static void test_threads(void) {
    pthread_t a, b, c;
    pthread_barrier_init(&bar, NULL, 3);
    pthread_create(&a, NULL, isolation_thread, (void *)(uintptr_t)0x55);
    pthread_create(&b, NULL, isolation_thread, (void *)(uintptr_t)0x66);
    pthread_barrier_wait(&bar);
    CHECK(otel_thread_ctx_v1 == NULL);
    pthread_barrier_wait(&bar);
    otelprof_ctx_detach(foreign_token); /* another thread's token: ignored */
    CHECK(otel_thread_ctx_v1 == NULL);
    pthread_barrier_wait(&bar);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    pthread_barrier_destroy(&bar);
    pthread_create(&c, NULL, leaky_thread, NULL);
    pthread_join(c, NULL);
}

/* ---- signal-time reads ---------------------------------------------------------------------- */

static volatile sig_atomic_t sig_with, sig_without, sig_bad;

/* Every record the loop below attaches is self-consistent: all id bytes equal one seed, and one
 * attribute whose value is `len` copies of that seed. A torn or freed record breaks that. */
static void on_prof(int sig) {
    (void)sig;
    const otel_thread_ctx_record_v1 *raw = otel_thread_ctx_v1;
    const otel_thread_ctx_record_v1 *r = op_ctx_current();
    if (raw && raw->valid != 1) sig_bad = sig_bad + 1; /* pointer swap never shows valid=0 */
    if (!r) { sig_without = sig_without + 1; return; }
    uint8_t seed = r->trace_id[0];
    int ok = r->trace_flags == seed;
    for (int i = 0; i < 16; i++) ok &= r->trace_id[i] == seed;
    uint8_t inv = (uint8_t)~seed;
    for (int i = 0; i < 8; i++) ok &= r->span_id[i] == inv;
    uint8_t len = (uint8_t)(seed % 200);
    ok &= r->attrs_data_size == 2u + len && r->attrs_data[0] == seed && r->attrs_data[1] == len;
    for (unsigned i = 0; ok && i < len; i++) ok &= r->attrs_data[2 + i] == (uint8_t)('a' + seed % 26);
    if (ok) sig_with = sig_with + 1;
    else sig_bad = sig_bad + 1;
}

static void test_signal_reads(void) {
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_prof;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGPROF, &sa, &old);
    struct itimerval it = {{0, 100}, {0, 100}};
    setitimer(ITIMER_PROF, &it, NULL);

    char val[256];
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned iter = 0;; iter++) {
        uint8_t seed = (uint8_t)(iter * 7 + 1);
        uint8_t t[16], s[8];
        memset(t, seed, 16);
        memset(s, (uint8_t)~seed, 8);
        uint8_t len = (uint8_t)(seed % 200);
        memset(val, 'a' + seed % 26, len);
        val[len] = 0;
        otelprof_ctx_attr at = {seed, val};
        void *outer = otelprof_ctx_attach(t, s, seed, &at, 1);
        seed = (uint8_t)(seed + 3);
        memset(t, seed, 16);
        memset(s, (uint8_t)~seed, 8);
        len = (uint8_t)(seed % 200);
        memset(val, 'a' + seed % 26, len);
        val[len] = 0;
        at.key_index = seed;
        void *inner = otelprof_ctx_attach(t, s, seed, &at, 1);
        /* Most time attached, some detached, so both states get sampled. */
        for (volatile int spin = 0; spin < 400; spin++) {}
        otelprof_ctx_detach(inner);
        for (volatile int spin = 0; spin < 100; spin++) {}
        otelprof_ctx_detach(outer);
        for (volatile int spin = 0; spin < 100; spin++) {}
        if ((iter & 255) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            double el = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
            if ((sig_with > 150 && sig_without > 30) || el > 5) break;
        }
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_PROF, &off, NULL);
    sigaction(SIGPROF, &old, NULL);
    CHECK(sig_bad == 0);
    CHECK(sig_with > 0);
    CHECK(sig_without > 0);
    printf("test_thread_ctx: signals with context %d, without %d, inconsistent %d\n",
           (int)sig_with, (int)sig_without, (int)sig_bad);
}

/* ---- key map -------------------------------------------------------------------------------- */

static void test_keys(void) {
    const char *keys[] = {"http.route", "user.id", ""};
    CHECK(otelprof_ctx_set_keys(keys, 3) == OTELPROF_OK);
    char **got = NULL;
    size_t n = 0;
    CHECK(op_ctx_keys_copy(&got, &n) == 0);
    CHECK(n == 3 && strcmp(got[0], "http.route") == 0 && strcmp(got[1], "user.id") == 0 &&
          strcmp(got[2], "") == 0);
    op_ctx_keys_free(got, n);
    const char *bad[] = {"a", NULL};
    CHECK(otelprof_ctx_set_keys(bad, 2) == OTELPROF_EINVAL);
    static const char *many[257];
    for (int i = 0; i < 257; i++) many[i] = "k";
    CHECK(otelprof_ctx_set_keys(many, 257) == OTELPROF_EINVAL);
    CHECK(otelprof_ctx_set_keys(many, 256) == OTELPROF_OK);
    CHECK(otelprof_ctx_set_keys(NULL, 0) == OTELPROF_OK);
    CHECK(op_ctx_keys_copy(&got, &n) == 0 && n == 0);
    op_ctx_keys_free(got, n);
}

/* ---- the exported symbol, as an outside reader sees it -------------------------------------- */

/* Looks otel_thread_ctx_v1 up in the library's .dynsym: it must be a defined, GLOBAL, DEFAULT
 * visibility STT_TLS symbol, and (x86-64) be reached through a TLSDESC relocation. */
static void check_dynsym(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    if (fd < 0) return;
    struct stat st;
    fstat(fd, &st);
    const uint8_t *f = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    CHECK(f != MAP_FAILED);
    if (f == MAP_FAILED) return;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)f;
    CHECK(memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_ident[EI_CLASS] == ELFCLASS64);
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(f + eh->e_shoff);
    int found = 0, tlsdesc = 0;
    size_t symidx = 0;
    int dynsym_sec = -1;
    char unexpected[512] = "";
    for (int i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type != SHT_DYNSYM) continue;
        dynsym_sec = i;
        const Elf64_Sym *sym = (const Elf64_Sym *)(f + sh[i].sh_offset);
        const char *str = (const char *)(f + sh[sh[i].sh_link].sh_offset);
        size_t n = sh[i].sh_size / sizeof *sym;
        for (size_t j = 0; j < n; j++) {
            const char *name = str + sym[j].st_name;
            int defined = sym[j].st_shndx != SHN_UNDEF;
            if (defined && ELF64_ST_BIND(sym[j].st_info) != STB_LOCAL && *name &&
                strncmp(name, "otelprof_", 9) != 0 && strcmp(name, "otel_thread_ctx_v1") != 0 &&
                strlen(unexpected) + strlen(name) + 2 < sizeof unexpected) {
                strcat(unexpected, " ");
                strcat(unexpected, name);
            }
            if (strcmp(name, "otel_thread_ctx_v1") != 0) continue;
            found = 1;
            symidx = j;
            CHECK(ELF64_ST_TYPE(sym[j].st_info) == STT_TLS);
            CHECK(ELF64_ST_BIND(sym[j].st_info) == STB_GLOBAL);
            CHECK(ELF64_ST_VISIBILITY(sym[j].st_other) == STV_DEFAULT);
            CHECK(defined);
            CHECK(sym[j].st_size == sizeof(void *));
        }
    }
    CHECK(found);
#if defined(__x86_64__)
    for (int i = 0; found && i < eh->e_shnum; i++) {
        if (sh[i].sh_type != SHT_RELA || (int)sh[i].sh_link != dynsym_sec) continue;
        const Elf64_Rela *r = (const Elf64_Rela *)(f + sh[i].sh_offset);
        for (size_t j = 0; j < sh[i].sh_size / sizeof *r; j++)
            if (ELF64_R_TYPE(r[j].r_info) == R_X86_64_TLSDESC && ELF64_R_SYM(r[j].r_info) == symidx)
                tlsdesc = 1;
    }
    CHECK(tlsdesc); /* built with -mtls-dialect=gnu2 */
#else
    (void)tlsdesc;
    (void)symidx;
    (void)dynsym_sec;
#endif
    if (*unexpected) printf("test_thread_ctx: note: other exported symbols:%s\n", unexpected);
    munmap((void *)f, (size_t)st.st_size);
}

typedef void *(*attach_fn)(const uint8_t *, const uint8_t *, uint8_t, const otelprof_ctx_attr *, size_t);
typedef void (*detach_fn)(void *);
static void *so_handle;

static void *external_thread(void *arg) {
    otel_thread_ctx_record_v1 **main_slot = arg;
    /* dlsym of a TLS symbol yields the calling thread's instance. */
    otel_thread_ctx_record_v1 **slot = dlsym(so_handle, "otel_thread_ctx_v1");
    CHECK(slot != NULL && slot != main_slot);
    CHECK(slot && *slot == NULL);
    return NULL;
}

static void test_external(const char *path) {
    check_dynsym(path);
    so_handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!so_handle) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        failures++;
        return;
    }
    otel_thread_ctx_record_v1 **slot = dlsym(so_handle, "otel_thread_ctx_v1");
    attach_fn attach = (attach_fn)dlsym(so_handle, "otelprof_ctx_attach");
    detach_fn detach = (detach_fn)dlsym(so_handle, "otelprof_ctx_detach");
    CHECK(slot && attach && detach);
    if (!slot || !attach || !detach) return;
    if (slot == &otel_thread_ctx_v1)
        printf("test_thread_ctx: note: the library's otel_thread_ctx_v1 is interposed by the program's\n");
    /* Where the loader put the library's TLS: a small negative offset from the thread pointer is
     * static TLS (signal-safe access); elsewhere is a lazily allocated dynamic block. */
    long off = (long)((uintptr_t)slot - (uintptr_t)__builtin_thread_pointer());
    printf("test_thread_ctx: library TLS at thread pointer %+ld (%s)\n", off,
           (off < 0 && off > -65536) ? "static TLS" : "dynamic TLS");

    CHECK(*slot == NULL);
    uint8_t t[16], s[8];
    memset(t, 0x42, 16);
    memset(s, 0x24, 8);
    otelprof_ctx_attr at = {2, "v"};
    void *outer = attach(t, s, 1, &at, 1);
    uint8_t t2[16] = {0x77}, s2[8] = {0x88};
    void *inner = attach(t2, s2, 0, NULL, 0);
    CHECK(outer && inner && *slot == inner);
    detach(inner);
    CHECK(*slot == outer);
    const uint8_t *p = rec_bytes(*slot);
    CHECK(p[0] == 0x42 && p[16] == 0x24 && p[24] == 1 && p[25] == 1 && rec_attrs_size(p) == 3 &&
          p[28] == 2 && p[29] == 1 && p[30] == 'v');
    pthread_t th;
    pthread_create(&th, NULL, external_thread, slot);
    pthread_join(th, NULL);
    detach(outer);
    CHECK(*slot == NULL);
    /* The library is left loaded: it owns TLS and a thread-exit hook. */
}

int main(int argc, char **argv) {
    test_nesting();
    test_layout();
    test_truncation();
    test_threads();
    test_keys();
    test_signal_reads();
    if (argc > 1) test_external(argv[1]);
    else printf("test_thread_ctx: note: no library path given, exported-symbol checks skipped\n");
    if (failures) {
        fprintf(stderr, "test_thread_ctx: %d failures\n", failures);
        return 1;
    }
    printf("test_thread_ctx: ok\n");
    return 0;
}
