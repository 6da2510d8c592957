/* Thread context (OTEP 4947): the exported per-thread record pointer and the key-index map. */
#include "op_ctx.h"
#include "op_log.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The one symbol outside readers look for: exported (OTELPROF_API) although the library is built
 * with hidden visibility, and accessed through TLS descriptors (-mtls-dialect=gnu2). */
__thread otel_thread_ctx_record_v1 *otel_thread_ctx_v1;

/* Private bookkeeping that precedes each public record in the same allocation, so a token (the
 * record pointer) leads back to what detach needs without any lookup table. Its size is a
 * multiple of 16 so the record keeps malloc's alignment. */
typedef struct ctx_hdr {
    otel_thread_ctx_record_v1 *prev; /* value of otel_thread_ctx_v1 when this record was attached */
    struct ctx_hdr *below;           /* this thread's previous record of ours, or NULL */
} __attribute__((aligned(16))) ctx_hdr;

#define CTX_REC_FIXED ((size_t)offsetof(otel_thread_ctx_record_v1, attrs_data))
#define CTX_ATTRS_MAX ((size_t)OTELPROF_CTX_MAX_RECORD - CTX_REC_FIXED)
#define CTX_VALUE_MAX 255u

_Static_assert(offsetof(otel_thread_ctx_record_v1, span_id) == 16, "OTEP 4947 layout");
_Static_assert(offsetof(otel_thread_ctx_record_v1, valid) == 24, "OTEP 4947 layout");
_Static_assert(offsetof(otel_thread_ctx_record_v1, trace_flags) == 25, "OTEP 4947 layout");
_Static_assert(offsetof(otel_thread_ctx_record_v1, attrs_data_size) == 26, "OTEP 4947 layout");
_Static_assert(offsetof(otel_thread_ctx_record_v1, attrs_data) == 28, "OTEP 4947 layout");
_Static_assert(sizeof(ctx_hdr) % 16 == 0, "record alignment");

/* This thread's stack of our own records. Kept privately rather than derived from
 * otel_thread_ctx_v1 because that exported pointer may also be written by another OTEP 4947
 * publisher in the process, whose records carry no ctx_hdr. Hidden, so never interposed. */
static __thread ctx_hdr *tl_top;

/* Frees a thread's records when it exits with contexts still attached (a leak otherwise). */
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static int exit_key_ok;
static __thread int tl_exit_armed;

static otel_thread_ctx_record_v1 *hdr_rec(ctx_hdr *h) {
    return (otel_thread_ctx_record_v1 *)(void *)((char *)h + sizeof *h);
}

/* Publishes p as the calling thread's record. The fences order the record's bytes (and the
 * caller's later free of the old record) against the pointer store as seen by a signal handler
 * on this thread; an eBPF reader only reads a stopped thread, so no CPU fence is needed. */
static void publish(otel_thread_ctx_record_v1 *p) {
    __atomic_signal_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&otel_thread_ctx_v1, p, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static void on_thread_exit(void *arg) {
    (void)arg;
    ctx_hdr *h = tl_top;
    if (!h) return;
    ctx_hdr *bottom = h;
    while (bottom->below) bottom = bottom->below;
    publish(bottom->prev);
    tl_top = NULL;
    while (h) {
        ctx_hdr *next = h->below;
        free(h);
        h = next;
    }
}

static void exit_key_init(void) {
    exit_key_ok = pthread_key_create(&exit_key, on_thread_exit) == 0;
}

static void arm_thread_exit(void) {
    if (tl_exit_armed) return;
    pthread_once(&exit_once, exit_key_init);
    /* Any non-NULL value makes the destructor run; without the key records only leak. */
    if (exit_key_ok && pthread_setspecific(exit_key, (void *)1) == 0) tl_exit_armed = 1;
}

/* Longest prefix of v (at most max bytes) that does not split a UTF-8 sequence. */
static size_t utf8_prefix(const char *v, size_t len, size_t max) {
    if (len <= max) return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)v[n] & 0xC0) == 0x80) n--;
    return n;
}

/* Encodes attrs as {u8 key_index; u8 len; u8 val[len]} into out (NULL = measure only), keeping
 * the whole record within OTELPROF_CTX_MAX_RECORD: each value is cut to 255 bytes and to the room
 * left; an entry that cannot hold even its two header bytes, and the ones after it, are dropped
 * (the order is kept, so the caller's first attributes are the ones that survive). */
static size_t encode_attrs(uint8_t *out, const otelprof_ctx_attr *attrs, size_t nattrs) {
    size_t used = 0;
    for (size_t i = 0; i < nattrs; i++) {
        const char *v = attrs[i].value;
        if (!v) continue;
        if (CTX_ATTRS_MAX - used < 2) break;
        size_t room = CTX_ATTRS_MAX - used - 2;
        if (room > CTX_VALUE_MAX) room = CTX_VALUE_MAX;
        size_t n = utf8_prefix(v, strlen(v), room);
        if (out) {
            out[used] = attrs[i].key_index;
            out[used + 1] = (uint8_t)n;
            memcpy(out + used + 2, v, n);
        }
        used += 2 + n;
    }
    return used;
}

void *otelprof_ctx_attach(const uint8_t trace_id[16], const uint8_t span_id[8], uint8_t trace_flags,
                          const otelprof_ctx_attr *attrs, size_t nattrs) {
    if (!attrs) nattrs = 0;
    size_t asize = encode_attrs(NULL, attrs, nattrs);
    ctx_hdr *h = malloc(sizeof *h + CTX_REC_FIXED + asize);
    if (!h) return NULL;
    otel_thread_ctx_record_v1 *r = hdr_rec(h);
    if (trace_id) memcpy(r->trace_id, trace_id, sizeof r->trace_id);
    else memset(r->trace_id, 0, sizeof r->trace_id);
    if (span_id) memcpy(r->span_id, span_id, sizeof r->span_id);
    else memset(r->span_id, 0, sizeof r->span_id);
    r->trace_flags = trace_flags;
    r->attrs_data_size = (uint16_t)asize;
    encode_attrs(r->attrs_data, attrs, nattrs);
    r->valid = 1;

    arm_thread_exit();
    h->prev = otel_thread_ctx_v1;
    h->below = tl_top;
    tl_top = h;
    publish(r);
    return r;
}

/* Detach rules. The token is looked up in the calling thread's own stack, never dereferenced
 * first, so a token from another thread (which may be freed concurrently) or one already detached
 * is ignored with a debug line. A token below the top means the scopes above it ended without
 * detaching (e.g. a non-local exit skipped them): those records are abandoned, so the context
 * before the token is restored and the token and everything above it are freed; their own later
 * detaches are then ignored. Caveat: a stale token whose address malloc has since reused for a
 * newer attach cannot be told apart from that attach. */
void otelprof_ctx_detach(void *token) {
    if (!token) return;
    ctx_hdr *h = tl_top;
    while (h && hdr_rec(h) != token) h = h->below;
    if (!h) {
        op_log_debug("thread context: ignoring a detach token not attached on this thread");
        return;
    }
    ctx_hdr *top = tl_top;
    tl_top = h->below;
    publish(h->prev);
    if (top != h) op_log_debug("thread context: detach out of order, dropped the records above it");
    for (;;) {
        ctx_hdr *next = top->below;
        free(top);
        if (top == h) break;
        top = next;
    }
}

/* ---- key map ------------------------------------------------------------------------------- */

/* The key-index -> attribute-name map published in the process context. Indices are u8 in the
 * record, hence at most 256 keys. */
#define CTX_MAX_KEYS 256

static pthread_mutex_t keys_mu = PTHREAD_MUTEX_INITIALIZER;
static char **keys_g;
static size_t nkeys_g;

void op_ctx_keys_free(char **keys, size_t n) {
    if (!keys) return;
    for (size_t i = 0; i < n; i++) free(keys[i]);
    free(keys);
}

static char **keys_dup(const char *const *keys, size_t n) {
    char **out = calloc(n ? n : 1, sizeof *out);
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) {
        out[i] = strdup(keys[i]);
        if (!out[i]) {
            op_ctx_keys_free(out, i);
            return NULL;
        }
    }
    return out;
}

otelprof_error otelprof_ctx_set_keys(const char *const *keys, size_t nkeys) {
    if (nkeys > CTX_MAX_KEYS || (nkeys && !keys)) return OTELPROF_EINVAL;
    for (size_t i = 0; i < nkeys; i++)
        if (!keys[i]) return OTELPROF_EINVAL;
    char **copy = keys_dup(keys, nkeys);
    if (!copy) return OTELPROF_ENOMEM;
    pthread_mutex_lock(&keys_mu);
    char **old = keys_g;
    size_t nold = nkeys_g;
    keys_g = copy;
    nkeys_g = nkeys;
    pthread_mutex_unlock(&keys_mu);
    op_ctx_keys_free(old, nold);
    /* Outside keys_mu: the process context takes its own lock and then keys_mu. */
    op_process_ctx_keys_changed();
    return OTELPROF_OK;
}

int op_ctx_keys_copy(char ***keys, size_t *n) {
    pthread_mutex_lock(&keys_mu);
    char **copy = keys_dup((const char *const *)keys_g, nkeys_g);
    size_t cnt = nkeys_g;
    pthread_mutex_unlock(&keys_mu);
    if (!copy) return -1;
    *keys = copy;
    *n = cnt;
    return 0;
}

void op_ctx_keys_after_fork(void) {
    /* A parent thread may have held the lock at fork(); the child has only the forking thread. */
    pthread_mutex_init(&keys_mu, NULL);
}

__thread char op_thread_name[32];

void otelprof_thread_set_name(const char *name) {
    /* Written with the handler in mind: terminator first, then bytes, then the first byte, so an
     * interrupting sample reads either the old name's prefix or a complete new one. */
    op_thread_name[0] = 0;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (!name || !*name) return;
    size_t n = strlen(name);
    if (n > sizeof op_thread_name - 1) n = sizeof op_thread_name - 1;
    op_thread_name[n] = 0;
    for (size_t i = n; i-- > 1;) op_thread_name[i] = name[i];
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    op_thread_name[0] = name[0];
}
