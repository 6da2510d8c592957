/* Unit test: the OTEP 4719 OTEL_CTX mapping, read back the way an outside reader finds it. */
#include "op_ctx.h"

#include "opentelemetry/proto/processcontext/v1development/process_context.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d [pid %d]: CHECK(%s)\n", __FILE__, __LINE__, (int)getpid(), #c); failures++; } } while (0)

typedef Opentelemetry__Proto__Processcontext__V1development__ProcessContext pctx;
typedef Opentelemetry__Proto__Common__V1__KeyValue kv;

typedef struct hdr {
    char signature[8];
    uint32_t version;
    uint32_t payload_size;
    uint64_t published_at_ns;
    uint64_t payload;
} hdr;

/* Finds OTEL_CTX mappings in /proc/<pid>/maps; returns how many, first start in *addr. */
static int find_ctx(pid_t pid, uint64_t *addr) {
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, "/memfd:OTEL_CTX") && !strstr(line, "[anon:OTEL_CTX]") &&
            !strstr(line, "[anon_shmem:OTEL_CTX]"))
            continue;
        if (n++ == 0) *addr = strtoull(line, NULL, 16);
    }
    fclose(f);
    return n;
}

/* The reading protocol: signature, version, non-zero stamp, payload, same stamp again. Reads go
 * through /proc/<pid>/mem as for another process. Returns the malloc'd payload or NULL. */
static uint8_t *read_ctx(pid_t pid, hdr *out, size_t *len) {
    uint64_t addr;
    if (find_ctx(pid, &addr) != 1) return NULL;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    uint8_t *buf = NULL;
    for (int tries = 0; tries < 100; tries++) {
        hdr a, b;
        if (pread(fd, &a, sizeof a, (off_t)addr) != (ssize_t)sizeof a) break;
        if (memcmp(a.signature, "OTEL_CTX", 8) != 0 || a.version != 2) break;
        if (a.published_at_ns == 0) continue;
        free(buf);
        buf = malloc(a.payload_size ? a.payload_size : 1);
        if (pread(fd, buf, a.payload_size, (off_t)a.payload) != (ssize_t)a.payload_size) break;
        if (pread(fd, &b, sizeof b, (off_t)addr) != (ssize_t)sizeof b) break;
        if (b.published_at_ns != a.published_at_ns) continue;
        close(fd);
        *out = a;
        *len = a.payload_size;
        return buf;
    }
    close(fd);
    free(buf);
    return NULL;
}

static const kv *find_kv(kv **kvs, size_t n, const char *key) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(kvs[i]->key, key) == 0) return kvs[i];
    return NULL;
}

static int64_t pid_of(const pctx *c) {
    const kv *p = find_kv(c->resource->attributes, c->resource->n_attributes, "process.pid");
    if (!p || !p->value) return -1;
    if (p->value->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE)
        return p->value->int_value;
    if (p->value->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE)
        return strtoll(p->value->string_value, NULL, 10);
    return -1;
}

static int str_is(const kv *p, const char *want) {
    return p && p->value &&
           p->value->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE &&
           strcmp(p->value->string_value, want) == 0;
}

/* Reads pid's context and checks what every publish must hold; returns the decoded payload. */
static pctx *read_and_check(pid_t pid, hdr *h, const char *const *keys, size_t nkeys) {
    size_t len = 0;
    uint8_t *buf = read_ctx(pid, h, &len);
    CHECK(buf != NULL);
    if (!buf) return NULL;
    CHECK(h->published_at_ns != 0);
    pctx *c = opentelemetry__proto__processcontext__v1development__process_context__unpack(NULL, len, buf);
    free(buf);
    CHECK(c != NULL && c->resource != NULL);
    if (!c || !c->resource) return NULL;
    CHECK(str_is(find_kv(c->resource->attributes, c->resource->n_attributes, "service.name"),
                 "ctx-test-svc"));
    CHECK(c->resource->n_attributes > 0 &&
          strcmp(c->resource->attributes[0]->key, "service.name") == 0);
    CHECK(str_is(find_kv(c->attributes, c->n_attributes, "threadlocal.schema_version"),
                 "tlsdesc_v1_dev"));
    const kv *m = find_kv(c->attributes, c->n_attributes, "threadlocal.attribute_key_map");
    CHECK(m && m->value &&
          m->value->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE);
    if (m && m->value && m->value->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE) {
        const Opentelemetry__Proto__Common__V1__ArrayValue *a = m->value->array_value;
        CHECK(a->n_values == nkeys);
        for (size_t i = 0; i < nkeys && i < a->n_values; i++)
            CHECK(a->values[i]->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE &&
                  strcmp(a->values[i]->string_value, keys[i]) == 0);
    }
    return c;
}

static void free_ctx(pctx *c) {
    if (c) opentelemetry__proto__processcontext__v1development__process_context__free_unpacked(c, NULL);
}

static void sleep_ms(int ms) {
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

static int child_main(pid_t parent, const char *const *keys, size_t nkeys) {
    uint64_t addr;
    /* MADV_DONTFORK: the parent's mapping is not here. */
    CHECK(find_ctx(getpid(), &addr) == 0);
    op_process_ctx_after_fork();
    CHECK(find_ctx(getpid(), &addr) == 1);
    hdr h;
    pctx *c = read_and_check(getpid(), &h, keys, nkeys);
    CHECK(c && pid_of(c) == getpid());
    free_ctx(c);
    /* An outside reader (this child) reading the parent through /proc/<ppid>/mem. */
    c = read_and_check(parent, &h, keys, nkeys);
    CHECK(c && pid_of(c) == parent);
    free_ctx(c);
    return failures ? 1 : 0;
}

int main(void) {
    setenv("OTEL_SERVICE_NAME", "ctx-test-svc", 1);
    unsetenv("OTEL_SDK_DISABLED");
    unsetenv("OTELPROF_DISABLED");
    uint64_t addr;
    CHECK(find_ctx(getpid(), &addr) == 0);

    const char *keys[] = {"http.route", "user.id"};
    CHECK(otelprof_ctx_set_keys(keys, 2) == OTELPROF_OK);
    otelprof_error perr = otelprof_process_ctx_publish(NULL);
    if (perr == OTELPROF_EUNSUPPORTED) {
        /* Neither memfd nor named anonymous mappings: nothing an outside reader could find. */
        printf("test_process_ctx: note: process context unsupported here, skipped\n");
        return 0;
    }
    CHECK(perr == OTELPROF_OK);
    if (find_ctx(getpid(), &addr) != 1) {
        fprintf(stderr, "test_process_ctx: no OTEL_CTX mapping in /proc/self/maps\n");
        return 1;
    }

    /* Direct read of our own header, at the address maps gives. */
    const volatile hdr *self = (const volatile hdr *)(uintptr_t)addr;
    CHECK(memcmp((const char *)self->signature, "OTEL_CTX", 8) == 0);
    CHECK(self->version == 2);
    uint64_t ts1 = self->published_at_ns;
    CHECK(ts1 != 0);
    CHECK(self->payload_size > 0 && self->payload != 0);
    pctx *c = opentelemetry__proto__processcontext__v1development__process_context__unpack(
        NULL, self->payload_size, (const uint8_t *)(uintptr_t)self->payload);
    CHECK(c != NULL && pid_of(c) == getpid());
    free_ctx(c);
    sleep_ms(5);
    CHECK(self->published_at_ns == ts1); /* stable while nothing changes */

    hdr h;
    c = read_and_check(getpid(), &h, keys, 2);
    CHECK(h.published_at_ns == ts1);
    free_ctx(c);

    /* New keys republish in place with a new stamp. */
    const char *keys3[] = {"http.route", "user.id", "tenant"};
    CHECK(otelprof_ctx_set_keys(keys3, 3) == OTELPROF_OK);
    CHECK(find_ctx(getpid(), &addr) == 1);
    c = read_and_check(getpid(), &h, keys3, 3);
    CHECK(h.published_at_ns > ts1);
    free_ctx(c);
    uint64_t ts2 = h.published_at_ns;

    /* A payload larger than the mapping moves to a new mapping; still exactly one. */
    otelprof_config *cfg = otelprof_config_new();
    CHECK(cfg != NULL);
    static char big[9000];
    strcpy(big, "big=");
    memset(big + 4, 'z', sizeof big - 5);
    big[sizeof big - 1] = 0;
    char err[256];
    CHECK(otelprof_config_from_env(cfg, err, sizeof err) == OTELPROF_OK);
    CHECK(otelprof_config_set(cfg, "resource_attributes", big, err, sizeof err) == OTELPROF_OK);
    CHECK(otelprof_process_ctx_publish(cfg) == OTELPROF_OK);
    otelprof_config_free(cfg);
    CHECK(find_ctx(getpid(), &addr) == 1);
    c = read_and_check(getpid(), &h, keys3, 3);
    CHECK(h.published_at_ns > ts2 && h.payload_size > 9000);
    if (c) {
        const kv *b = find_kv(c->resource->attributes, c->resource->n_attributes, "big");
        CHECK(b && b->value && b->value->string_value && strlen(b->value->string_value) == sizeof big - 5);
    }
    free_ctx(c);
    /* Back to the environment's configuration (in place: the mapping is now large). */
    CHECK(otelprof_process_ctx_publish(NULL) == OTELPROF_OK);
    CHECK(find_ctx(getpid(), &addr) == 1);
    c = read_and_check(getpid(), &h, keys3, 3);
    CHECK(c && !find_kv(c->resource->attributes, c->resource->n_attributes, "big"));
    free_ctx(c);
    uint64_t ts_parent = h.published_at_ns;

    /* fork: the child publishes its own context; the parent's is untouched. Yama may forbid a
     * child from reading its parent, so allow it explicitly (harmless where Yama is absent). */
    prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
    fflush(NULL);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) _exit(child_main(parent, keys3, 3));
    CHECK(child > 0);
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    c = read_and_check(getpid(), &h, keys3, 3);
    CHECK(c && pid_of(c) == getpid());
    CHECK(h.published_at_ns == ts_parent);
    free_ctx(c);

    op_process_ctx_unpublish();
    CHECK(find_ctx(getpid(), &addr) == 0);
    /* Not published: a key change does not bring it back. */
    CHECK(otelprof_ctx_set_keys(keys, 2) == OTELPROF_OK);
    CHECK(find_ctx(getpid(), &addr) == 0);
    CHECK(otelprof_ctx_set_keys(NULL, 0) == OTELPROF_OK);

    if (failures) {
        fprintf(stderr, "test_process_ctx: %d failures\n", failures);
        return 1;
    }
    printf("test_process_ctx: ok\n");
    return 0;
}
