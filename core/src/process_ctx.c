/* Process context (OTEP 4719): the OTEL_CTX mapping that shows outside readers our resource. */
#include "op_config.h"
#include "op_ctx.h"
#include "op_log.h"
#include "op_resource.h"

#include "opentelemetry/proto/processcontext/v1development/process_context.pb-c.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

/* Older userspace headers lack these; the values are the kernel ABI. */
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#endif
#ifndef PR_SET_VMA_ANON_NAME
#define PR_SET_VMA_ANON_NAME 0
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

typedef Opentelemetry__Proto__Common__V1__AnyValue pb_any;
typedef Opentelemetry__Proto__Common__V1__KeyValue pb_kv;
typedef Opentelemetry__Proto__Common__V1__ArrayValue pb_array;
typedef Opentelemetry__Proto__Resource__V1__Resource pb_resource;
typedef Opentelemetry__Proto__Processcontext__V1development__ProcessContext pb_pctx;

#define PC_SIGNATURE "OTEL_CTX"
#define PC_VERSION 2u
#define PC_SCHEMA_VERSION "tlsdesc_v1_dev"

/* The 32-byte header readers parse; natural alignment gives the packed layout on LP64. */
typedef struct pc_header {
    char signature[8];
    uint32_t version;
    uint32_t payload_size;
    uint64_t published_at_ns; /* CLOCK_BOOTTIME; 0 while an update is in progress */
    uint64_t payload;         /* address of the payload bytes in this process */
} pc_header;

_Static_assert(sizeof(pc_header) == 32, "OTEP 4719 header is 32 bytes");
_Static_assert(offsetof(pc_header, published_at_ns) == 16, "OTEP 4719 layout");
_Static_assert(offsetof(pc_header, payload) == 24, "OTEP 4719 layout");

/* All state below is guarded by pc_mu. */
static pthread_mutex_t pc_mu = PTHREAD_MUTEX_INITIALIZER;
static pc_header *pc_map;      /* the published mapping, or NULL */
static size_t pc_map_len;
static otelprof_config *pc_cfg;/* configuration of the last publish: reused on key changes and
                                  after fork, where re-reading the environment would be wrong */
static char *pc_runtime;
static uint64_t pc_last_ts;

/* ---- payload ------------------------------------------------------------------------------- */

/* Semantic conventions type these as int; op_resource_build hands every value over as text. */
static int int_valued_key(const char *key, const char *value, int64_t *out) {
    if (strcmp(key, "process.pid") != 0 && strcmp(key, "process.parent_pid") != 0) return 0;
    if (!*value) return 0;
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno || *end) return 0;
    *out = v;
    return 1;
}

/* Serialises ProcessContext { resource, attributes = threadlocal.* } into a malloc'd buffer. */
static int build_payload(const otelprof_config *cfg, uint8_t **out, size_t *outlen) {
    op_kv *res = NULL;
    size_t nres = 0;
    char **keys = NULL;
    size_t nkeys = 0;
    pb_kv *res_kv = NULL, **res_kvp = NULL, *tl_kv = NULL, **tl_kvp = NULL;
    pb_any *res_av = NULL, *key_av = NULL, **key_avp = NULL, *tl_av = NULL;
    int rc = -1;

    if (op_resource_build(cfg, pc_runtime, &res, &nres) != 0) return -1;
    if (op_ctx_keys_copy(&keys, &nkeys) != 0) goto out;

    res_kv = calloc(nres + 1, sizeof *res_kv);
    res_kvp = calloc(nres + 1, sizeof *res_kvp);
    res_av = calloc(nres + 1, sizeof *res_av);
    key_av = calloc(nkeys + 1, sizeof *key_av);
    key_avp = calloc(nkeys + 1, sizeof *key_avp);
    tl_kv = calloc(2, sizeof *tl_kv);
    tl_kvp = calloc(2, sizeof *tl_kvp);
    tl_av = calloc(2, sizeof *tl_av);
    if (!res_kv || !res_kvp || !res_av || !key_av || !key_avp || !tl_kv || !tl_kvp || !tl_av) goto out;

    for (size_t i = 0; i < nres; i++) {
        opentelemetry__proto__common__v1__any_value__init(&res_av[i]);
        int64_t iv;
        if (int_valued_key(res[i].key, res[i].value, &iv)) {
            res_av[i].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
            res_av[i].int_value = iv;
        } else {
            res_av[i].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
            res_av[i].string_value = res[i].value;
        }
        opentelemetry__proto__common__v1__key_value__init(&res_kv[i]);
        res_kv[i].key = res[i].key;
        res_kv[i].value = &res_av[i];
        res_kvp[i] = &res_kv[i];
    }
    pb_resource resource = OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
    resource.n_attributes = nres;
    resource.attributes = res_kvp;

    for (size_t i = 0; i < nkeys; i++) {
        opentelemetry__proto__common__v1__any_value__init(&key_av[i]);
        key_av[i].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
        key_av[i].string_value = keys[i];
        key_avp[i] = &key_av[i];
    }
    pb_array key_arr = OPENTELEMETRY__PROTO__COMMON__V1__ARRAY_VALUE__INIT;
    key_arr.n_values = nkeys;
    key_arr.values = key_avp;

    /* The map is published even when empty so a reader can tell "no keys" from "no support". */
    opentelemetry__proto__common__v1__any_value__init(&tl_av[0]);
    tl_av[0].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    tl_av[0].string_value = (char *)PC_SCHEMA_VERSION;
    opentelemetry__proto__common__v1__any_value__init(&tl_av[1]);
    tl_av[1].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
    tl_av[1].array_value = &key_arr;
    for (int i = 0; i < 2; i++) {
        opentelemetry__proto__common__v1__key_value__init(&tl_kv[i]);
        tl_kv[i].value = &tl_av[i];
        tl_kvp[i] = &tl_kv[i];
    }
    tl_kv[0].key = (char *)"threadlocal.schema_version";
    tl_kv[1].key = (char *)"threadlocal.attribute_key_map";

    pb_pctx msg = OPENTELEMETRY__PROTO__PROCESSCONTEXT__V1DEVELOPMENT__PROCESS_CONTEXT__INIT;
    msg.resource = &resource;
    msg.n_attributes = 2;
    msg.attributes = tl_kvp;

    size_t len = opentelemetry__proto__processcontext__v1development__process_context__get_packed_size(&msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) goto out;
    opentelemetry__proto__processcontext__v1development__process_context__pack(&msg, buf);
    *out = buf;
    *outlen = len;
    rc = 0;
out:
    free(res_kv);
    free(res_kvp);
    free(res_av);
    free(key_av);
    free(key_avp);
    free(tl_kv);
    free(tl_kvp);
    free(tl_av);
    op_ctx_keys_free(keys, nkeys);
    op_resource_free(res, nres);
    return rc;
}

/* ---- mapping ------------------------------------------------------------------------------- */

/* A strictly increasing, non-zero CLOCK_BOOTTIME stamp: readers detect a change by comparing
 * stamps, so two publishes within one clock tick must still differ. */
static uint64_t next_timestamp(void) {
    struct timespec ts;
    uint64_t now = 0;
    if (clock_gettime(CLOCK_BOOTTIME, &ts) == 0)
        now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    if (now <= pc_last_ts) now = pc_last_ts + 1;
    pc_last_ts = now;
    return now;
}

/* Names the mapping for /proc/<pid>/maps: [anon:OTEL_CTX] for the anonymous fallback, and
 * [anon_shmem:OTEL_CTX] for the memfd one on kernels that name shmem (else it stays
 * /memfd:OTEL_CTX). Called after every write regardless of the outcome, because eBPF readers on
 * kernels without CONFIG_ANON_VMA_NAME may hook prctl to discover new contexts. */
static int name_mapping(void *addr, size_t len) {
    if (prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)addr, (unsigned long)len,
              (unsigned long)PC_SIGNATURE) == 0)
        return 0;
    if (errno != EINVAL) op_log_debug("process context: naming the mapping failed: %s", strerror(errno));
    return -1;
}

/* A fresh zeroed mapping of len bytes that a child will not inherit, or NULL with *err set. */
static pc_header *map_new(size_t len, otelprof_error *err) {
    void *addr = MAP_FAILED;
    /* MFD_NOEXEC_SEAL keeps us working under vm.memfd_noexec=2; kernels before 6.3 reject it. */
    int fd = memfd_create(PC_SIGNATURE, MFD_CLOEXEC | MFD_NOEXEC_SEAL);
    if (fd < 0 && errno == EINVAL) fd = memfd_create(PC_SIGNATURE, MFD_CLOEXEC);
    if (fd >= 0) {
        if (ftruncate(fd, (off_t)len) == 0)
            addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        /* The mapping keeps the file alive and visible in maps; the descriptor is not needed. */
        close(fd);
    }
    if (addr == MAP_FAILED) {
        op_log_debug("process context: memfd unavailable (%s), using an anonymous mapping",
                     strerror(errno));
        addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (addr == MAP_FAILED) {
            *err = OTELPROF_ESYS;
            return NULL;
        }
        /* Without memfd only the name makes the mapping findable; OTEP 4719 counts a context
         * that is neither as unavailable, so give up before writing rather than leave an
         * invisible mapping behind. The kernel feature does not come and go, so probing the
         * empty mapping is as good as naming it afterwards. */
        if (name_mapping(addr, len) != 0) {
            op_log_info("process context: no memfd and the kernel cannot name anonymous mappings "
                        "(CONFIG_ANON_VMA_NAME); not published");
            munmap(addr, len);
            *err = OTELPROF_EUNSUPPORTED;
            return NULL;
        }
    }
    /* A child must not show its parent's resource (e.g. the parent's pid) as its own. */
    if (madvise(addr, len, MADV_DONTFORK) != 0) {
        op_log_warn("process context: madvise(MADV_DONTFORK) failed: %s", strerror(errno));
        munmap(addr, len);
        *err = OTELPROF_ESYS;
        return NULL;
    }
    return addr;
}

/* Orders our writes to the mapping for a reader in another process. ThreadSanitizer rejects
 * standalone fences, so its builds use a sequentially consistent read-modify-write instead,
 * which is a full barrier as well. */
static void full_fence(void) {
#if defined(__SANITIZE_THREAD__)
    static int dummy;
    __atomic_fetch_add(&dummy, 0, __ATOMIC_SEQ_CST);
#else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

/* Marks the header as being updated; readers that see 0 retry. */
static void begin_update(pc_header *h) {
    __atomic_store_n(&h->published_at_ns, 0, __ATOMIC_RELAXED);
    full_fence();
}

static void end_update(pc_header *h) {
    full_fence();
    __atomic_store_n(&h->published_at_ns, next_timestamp(), __ATOMIC_RELAXED);
    full_fence();
}

static void write_payload(pc_header *h, const uint8_t *payload, size_t len) {
    uint8_t *dst = (uint8_t *)(h + 1);
    memcpy(dst, payload, len);
    h->payload_size = (uint32_t)len;
    h->payload = (uint64_t)(uintptr_t)dst;
}

static void unmap_locked(void) {
    if (!pc_map) return;
    begin_update(pc_map);
    munmap(pc_map, pc_map_len);
    pc_map = NULL;
    pc_map_len = 0;
}

/* Puts payload in place. The payload lives right after the header in the same mapping, with the
 * pointer field aimed at it, which serves readers that follow the pointer and readers that read
 * on after the header alike. A payload that still fits is rewritten in place (stamp 0, rewrite,
 * new stamp); a larger one gets a new mapping, and the old one is retired before the new one is
 * signed, so there is never more than one valid context in the process. */
static otelprof_error place_locked(const uint8_t *payload, size_t len) {
    if (len > UINT32_MAX - sizeof(pc_header)) return OTELPROF_EINVAL;
    if (pc_map && sizeof(pc_header) + len <= pc_map_len) {
        begin_update(pc_map);
        write_payload(pc_map, payload, len);
        end_update(pc_map);
        name_mapping(pc_map, pc_map_len);
        return OTELPROF_OK;
    }
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t maplen = (sizeof(pc_header) + len + page - 1) / page * page;
    otelprof_error err = OTELPROF_OK;
    pc_header *h = map_new(maplen, &err);
    if (!h) return err;
    h->version = PC_VERSION;
    write_payload(h, payload, len);
    unmap_locked();
    end_update(h);
    /* The signature goes last: a reader that sees it may trust every other field. */
    memcpy(h->signature, PC_SIGNATURE, sizeof h->signature);
    full_fence();
    name_mapping(h, maplen);
    pc_map = h;
    pc_map_len = maplen;
    return OTELPROF_OK;
}

/* Publishes from cfg, which on success becomes pc_cfg (ownership passes here). */
static otelprof_error publish_locked(otelprof_config *cfg) {
    uint8_t *payload = NULL;
    size_t len = 0;
    if (build_payload(cfg, &payload, &len) != 0) return OTELPROF_ENOMEM;
    otelprof_error err = place_locked(payload, len);
    free(payload);
    if (err == OTELPROF_OK && cfg != pc_cfg) {
        otelprof_config_free(pc_cfg);
        pc_cfg = cfg;
    }
    return err;
}

otelprof_error otelprof_process_ctx_publish(const otelprof_config *cfg) {
    otelprof_config *own = NULL;
    if (!cfg) {
        own = otelprof_config_new();
        if (!own) return OTELPROF_ENOMEM;
        char why[256];
        otelprof_error e = otelprof_config_from_env(own, why, sizeof why);
        if (e != OTELPROF_OK) {
            op_log_error("process context: %s", why);
            otelprof_config_free(own);
            return e;
        }
        cfg = own;
    }
    if (cfg->disabled) {
        otelprof_config_free(own);
        return OTELPROF_EDISABLED;
    }
    otelprof_config *copy = own ? own : op_config_clone(cfg);
    if (!copy) return OTELPROF_ENOMEM;

    pthread_mutex_lock(&pc_mu);
    otelprof_error err = publish_locked(copy);
    pthread_mutex_unlock(&pc_mu);
    if (err != OTELPROF_OK) {
        op_log_warn("process context: publish failed: %s", otelprof_strerror(err));
        otelprof_config_free(copy);
    }
    return err;
}

void op_process_ctx_keys_changed(void) {
    pthread_mutex_lock(&pc_mu);
    if (pc_map && pc_cfg) {
        otelprof_error err = publish_locked(pc_cfg);
        if (err != OTELPROF_OK)
            op_log_warn("process context: republish after a key change failed: %s",
                        otelprof_strerror(err));
    }
    pthread_mutex_unlock(&pc_mu);
}

void op_process_ctx_set_runtime(const char *runtime) {
    char *copy = runtime ? strdup(runtime) : NULL;
    if (runtime && !copy) return; /* keeps the previous name; only the label is affected */
    pthread_mutex_lock(&pc_mu);
    char *old = pc_runtime;
    pc_runtime = copy;
    pthread_mutex_unlock(&pc_mu);
    free(old);
}

void op_process_ctx_after_fork(void) {
    /* Only the forking thread survives; any lock another thread held is reset, not waited for. */
    pthread_mutex_init(&pc_mu, NULL);
    op_ctx_keys_after_fork();
    /* MADV_DONTFORK left no mapping at pc_map in the child: forget it without unmapping, since
     * that range may now belong to something else. */
    int was_published = pc_map != NULL;
    pc_map = NULL;
    pc_map_len = 0;
    if (!was_published || !pc_cfg) return;
    otelprof_error err = publish_locked(pc_cfg);
    if (err != OTELPROF_OK)
        op_log_warn("process context: publish after fork failed: %s", otelprof_strerror(err));
}

void op_process_ctx_unpublish(void) {
    pthread_mutex_lock(&pc_mu);
    unmap_locked();
    otelprof_config_free(pc_cfg);
    pc_cfg = NULL;
    pthread_mutex_unlock(&pc_mu);
}
