/* The process's resource attributes: service identity, process facts, host and SDK. */
#include "op_resource.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct kv_list {
    op_kv *kv;
    size_t n, cap;
} kv_list;

static int has_key(const kv_list *l, const char *key) {
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->kv[i].key, key) == 0) return 1;
    return 0;
}

/* Appends key=value unless key is present: the first source in the documented order wins.
 * Returns 0, or -1 on ENOMEM. */
static int add(kv_list *l, const char *key, const char *value) {
    if (has_key(l, key)) return 0;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        op_kv *g = realloc(l->kv, nc * sizeof *g);
        if (!g) return -1;
        l->kv = g;
        l->cap = nc;
    }
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return -1;
    }
    l->kv[l->n].key = k;
    l->kv[l->n].value = v;
    l->n++;
    return 0;
}

/* Copies s into out, cut to fit: a name is still useful when shortened. */
static void copy_cut(char *out, size_t cap, const char *s) {
    size_t n = strlen(s);
    if (n >= cap) n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

/* Basename of /proc/self/exe: it names the real binary even when argv[0] was rewritten by the
 * host (as Python and Ruby launchers do). Falls back to the short invocation name. */
static void executable_name(char *out, size_t cap) {
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n > 0) {
        path[n] = '\0';
        /* An executable replaced on disk (say, during an upgrade) reads back with this suffix. */
        static const char deleted[] = " (deleted)";
        size_t dl = sizeof deleted - 1;
        if ((size_t)n > dl && strcmp(path + n - dl, deleted) == 0) path[n - dl] = '\0';
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (*base) {
            copy_cut(out, cap, base);
            return;
        }
    }
    const char *s = program_invocation_short_name;
    copy_cut(out, cap, s && *s ? s : "unknown");
}

/* telemetry.sdk.language takes the semantic-conventions language names, while adapters are
 * named after the runtime; translate the ones we ship and pass any other through. */
static const char *sdk_language(const char *runtime) {
    if (!runtime) return "c";
    if (strcmp(runtime, "cpython") == 0 || strcmp(runtime, "pypy") == 0) return "python";
    if (strcmp(runtime, "jvm") == 0) return "java";
    return runtime;
}

int op_resource_build(const otelprof_config *cfg, const char *runtime, op_kv **out, size_t *n) {
    kv_list l = {0};
    const op_kv *attrs = cfg ? cfg->resource_attrs : NULL;
    size_t nattrs = cfg ? cfg->nresource_attrs : 0;
    char exe[256];
    executable_name(exe, sizeof exe);

    /* service.name goes first: receivers such as Pyroscope key the whole profile on it. An empty
     * name identifies nothing, so it falls through to the next source. */
    const char *service = cfg && cfg->service_name && *cfg->service_name ? cfg->service_name : NULL;
    for (size_t i = 0; !service && i < nattrs; i++)
        if (strcmp(attrs[i].key, "service.name") == 0 && *attrs[i].value) service = attrs[i].value;
    char fallback[300];
    if (!service) {
        snprintf(fallback, sizeof fallback, "unknown_service:%s", exe);
        service = fallback;
    }
    if (add(&l, "service.name", service)) goto oom;

    for (size_t i = 0; i < nattrs; i++)
        if (add(&l, attrs[i].key, attrs[i].value)) goto oom;

    char pid[24];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    if (add(&l, "process.pid", pid)) goto oom;
    if (add(&l, "process.executable.name", exe)) goto oom;
    if (runtime && add(&l, "process.runtime.name", runtime)) goto oom;
    char host[256];
    if (gethostname(host, sizeof host) == 0) {
        host[sizeof host - 1] = '\0'; /* POSIX leaves truncation unterminated */
        if (*host && add(&l, "host.name", host)) goto oom;
    }
    if (add(&l, "telemetry.sdk.name", "otelprof")) goto oom;
    if (add(&l, "telemetry.sdk.language", sdk_language(runtime))) goto oom;
    if (add(&l, "telemetry.sdk.version", OP_SDK_VERSION)) goto oom;

    *out = l.kv;
    *n = l.n;
    return 0;
oom:
    op_resource_free(l.kv, l.n);
    *out = NULL;
    *n = 0;
    errno = ENOMEM;
    return -1;
}

void op_resource_free(op_kv *kv, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}
