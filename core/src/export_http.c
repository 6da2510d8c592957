/* OTLP/HTTP sender: one thread posts queued profiles with libcurl, retrying transient failures
 * with exponential backoff and jitter inside a bounded budget, so a slow or dead collector costs
 * queue memory (capped) and never time on the application's or the exporter's threads. */
#include "op_clock.h"
#include "op_curl.h"
#include "op_spawn.h"
#include "op_export_http.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "op_encode.h"
#include "op_export_queue.h"
#include "op_log.h"
#include "op_resource.h"
#include "op_stats.h"
#include "opentelemetry/proto/collector/profiles/v1development/profiles_service.pb-c.h"

#define SIGNAL_PATH "/v1development/profiles"
#define DEFAULT_TIMEOUT_NS 10000000000ll
/* Enough for any status message; a receiver answering with megabytes is not read further. */
#define BODY_CAP (64u << 10)

typedef struct response {
    uint8_t *body;
    size_t len;
    char content_type[96];
    char retry_after[96];
} response;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;       /* CLOCK_MONOTONIC: wakes the sender (work, stop) and stop() */
    pthread_t thread;
    int started;
    int stopping;
    int finished;
    int64_t deadline_ns;       /* monotonic shutdown deadline, once stopping */
    op_export_queue q;
    /* Settings, fixed while started. */
    char *url;
    char *url_shown;           /* url without user:password@, for messages */
    struct curl_slist *headers;/* values are credentials: never logged */
    int gzip;
    int64_t timeout_ns, retry_initial_ns, retry_max_ns, retry_elapsed_ns;
    char *ca, *cert, *key;
    /* Sender thread only. */
    CURL *curl;
    char errbuf[CURL_ERROR_SIZE];
    uint64_t rng;
    uint64_t streak;           /* consecutive failed attempts, for the recovery message */
    uint32_t last_reject;      /* hash of the last rejection logged, so each is reported once */
    int unreachable;           /* a shutdown attempt could not connect: drop the rest at once */
} sx = {.lock = PTHREAD_MUTEX_INITIALIZER};

static unsigned logged_drops; /* bit per otelprof_export_drop already explained in the log */

static void init_sync(void) {
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    memcpy(&sx.lock, &fresh, sizeof fresh);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&sx.cond, &a);
    pthread_condattr_destroy(&a);
}

static uint64_t next_rand(void) {
    /* xorshift64*: jitter only needs to decorrelate processes, not to be unpredictable. */
    uint64_t x = sx.rng ? sx.rng : 0x9e3779b97f4a7c15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    sx.rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

static void seed_rand(void) {
    if (getrandom(&sx.rng, sizeof sx.rng, GRND_NONBLOCK) != sizeof sx.rng)
        sx.rng = (uint64_t)op_mono_ns() ^ (uint64_t)getpid() << 32;
}

static uint32_t hash_str(uint32_t h, const char *s) {
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void update_queue_stats(void) {
    __atomic_store_n(&op_stats_g.export_queue_depth, (uint64_t)sx.q.count, __ATOMIC_RELAXED);
    __atomic_store_n(&op_stats_g.export_queue_bytes, (uint64_t)sx.q.bytes, __ATOMIC_RELAXED);
}

/* Counts n dropped profiles and explains the first drop of each kind; later ones are counted
 * only, so a long outage cannot flood the application's stderr. */
static void dropped(otelprof_export_drop why, uint64_t n) {
    static const char *const hint[OTELPROF_EXPORT_DROP__COUNT] = {
        [OTELPROF_EXPORT_DROP_QUEUE_FULL] = "the export queue is full (the collector is slower than "
                                            "profiles arrive, or unreachable; see OTELPROF_EXPORT_QUEUE_MAX)",
        [OTELPROF_EXPORT_DROP_RETRIES] = "its retry budget ran out (OTELPROF_EXPORT_RETRY_MAX_ELAPSED)",
        [OTELPROF_EXPORT_DROP_REJECTED] = "the receiver rejected it",
        [OTELPROF_EXPORT_DROP_SHUTDOWN] = "it was still unsent at shutdown (the collector was "
                                          "unreachable, or OTEL_EXPORTER_OTLP_TIMEOUT passed)",
        [OTELPROF_EXPORT_DROP_ENCODE] = "it could not be compressed (out of memory)",
    };
    if (!n) return;
    OP_STAT_ADD(export_dropped[why], n);
    unsigned bit = 1u << why;
    if (!(__atomic_fetch_or(&logged_drops, bit, __ATOMIC_RELAXED) & bit))
        op_log_warn("OTLP export: dropped %llu profile%s because %s; further drops are counted "
                    "(export_dropped) but not logged",
                    (unsigned long long)n, n == 1 ? "" : "s", hint[why]);
}

/* ---- pure helpers ---------------------------------------------------------------------------- */

char *op_export_url(const char *general, const char *profiles) {
    if (profiles && *profiles) return strdup(profiles);
    if (!general || !*general) return NULL;
    size_t n = strlen(general);
    while (n && general[n - 1] == '/') n--;
    char *u = malloc(n + sizeof SIGNAL_PATH);
    if (!u) return NULL;
    memcpy(u, general, n);
    memcpy(u + n, SIGNAL_PATH, sizeof SIGNAL_PATH);
    return u;
}

int64_t op_export_backoff_ns(int retry, int64_t initial_ns, int64_t max_ns, uint64_t rnd) {
    if (retry < 1) retry = 1;
    int64_t d = initial_ns;
    for (int i = 1; i < retry && d < max_ns; i++) d = d > INT64_MAX / 2 ? INT64_MAX : d * 2;
    if (d > max_ns) d = max_ns;
    if (d <= 1) return d;
    /* Jitter within the upper half keeps the exponential spacing while spreading processes that
     * failed together, so a recovering collector is not hit by all of them at once. */
    int64_t half = d / 2;
    return half + (int64_t)(rnd % (uint64_t)(d - half + 1));
}

int op_export_retry_after(const char *value, int64_t now_s, int64_t *delay_ns) {
    if (!value) return -1;
    while (*value == ' ' || *value == '\t') value++;
    if (*value >= '0' && *value <= '9') {
        int64_t s = 0;
        const char *p = value;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (s > 1000000000ll) return -1; /* decades: not a real answer */
            s = s * 10 + (*p - '0');
        }
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (*p) return -1;
        *delay_ns = s * 1000000000ll;
        return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end) return -1;
    while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n') end++;
    if (*end) return -1;
    int64_t at = (int64_t)timegm(&tm);
    *delay_ns = at > now_s ? (at - now_s) * 1000000000ll : 0;
    return 0;
}

int op_export_status_class(long status) {
    if (status >= 200 && status < 300) return OP_HTTP_OK;
    if (status == 429 || status == 502 || status == 503 || status == 504) return OP_HTTP_RETRY;
    return OP_HTTP_REJECT;
}

/* Copies text as one printable line (it goes to a log line of the application). */
static int printable(const uint8_t *s, size_t len, char *out, size_t cap) {
    size_t o = 0;
    if (!cap) return -1;
    for (size_t i = 0; i < len && o + 4 < cap; i++) {
        unsigned char c = s[i];
        out[o++] = (c >= 0x20 && c < 0x7f) || c >= 0x80 ? (char)c : ' ';
    }
    if (len && o + 4 >= cap) { memcpy(out + o, "...", 3); o += 3; }
    while (o && out[o - 1] == ' ') o--;
    out[o] = '\0';
    return (int)o;
}

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) { *v = r; return 0; }
    }
    return -1;
}

/* google.rpc.Status { int32 code = 1; string message = 2; repeated Any details = 3; } read by
 * hand: it is the only message of that package we need. */
int op_export_status_message(const uint8_t *body, size_t len, char *out, size_t cap) {
    const uint8_t *p = body, *end = body + len;
    int found = -1;
    while (p < end) {
        uint64_t key, v;
        if (read_varint(&p, end, &key) < 0) return -1;
        switch (key & 7) {
        case 0:
            if (read_varint(&p, end, &v) < 0) return -1;
            break;
        case 1:
            if (end - p < 8) return -1;
            p += 8;
            break;
        case 5:
            if (end - p < 4) return -1;
            p += 4;
            break;
        case 2:
            if (read_varint(&p, end, &v) < 0 || v > (uint64_t)(end - p)) return -1;
            if ((key >> 3) == 2) found = printable(p, (size_t)v, out, cap);
            p += v;
            break;
        default:
            return -1;
        }
    }
    return found;
}

/* ---- one HTTP attempt ------------------------------------------------------------------------ */

static size_t on_body(char *data, size_t size, size_t n, void *arg) {
    response *r = arg;
    size_t len = size * n, room = BODY_CAP - r->len;
    if (len > room) len = room;
    if (len) {
        if (!r->body && !(r->body = malloc(BODY_CAP))) return size * n;
        memcpy(r->body + r->len, data, len);
        r->len += len;
    }
    return size * n;
}

static void header_value(const char *line, size_t len, const char *name, char *dst, size_t cap) {
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(line, name, nl) != 0) return;
    const char *v = line + nl;
    size_t vl = len - nl;
    while (vl && (*v == ' ' || *v == '\t')) { v++; vl--; }
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ')) vl--;
    if (vl >= cap) vl = cap - 1;
    memcpy(dst, v, vl);
    dst[vl] = '\0';
}

static size_t on_header(char *line, size_t size, size_t n, void *arg) {
    response *r = arg;
    size_t len = size * n;
    header_value(line, len, "content-type:", r->content_type, sizeof r->content_type);
    header_value(line, len, "retry-after:", r->retry_after, sizeof r->retry_after);
    return len;
}

/* Aborts a transfer in progress once the shutdown deadline has passed. */
static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    (void)arg; (void)dt; (void)dn; (void)ut; (void)un;
    int stopping = __atomic_load_n(&sx.stopping, __ATOMIC_ACQUIRE);
    return stopping && op_mono_ns() >= __atomic_load_n(&sx.deadline_ns, __ATOMIC_ACQUIRE);
}

static CURL *make_handle(void) {
    CURL *c = op_curl.easy_init();
    if (!c) return NULL;
    /* No SIGALRM for timeouts: signals belong to the host and SIGPROF to us. */
    op_curl.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    op_curl.easy_setopt(c, CURLOPT_URL, sx.url);
    op_curl.easy_setopt(c, CURLOPT_POST, 1L);
    op_curl.easy_setopt(c, CURLOPT_HTTPHEADER, sx.headers);
    op_curl.easy_setopt(c, CURLOPT_USERAGENT, "otelprof/" OP_SDK_VERSION);
    op_curl.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    op_curl.easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    op_curl.easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    op_curl.easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    op_curl.easy_setopt(c, CURLOPT_ERRORBUFFER, sx.errbuf);
    op_curl.easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    op_curl.easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    /* Verification stays on (libcurl's default); these only choose what to verify with. */
    if (sx.ca) op_curl.easy_setopt(c, CURLOPT_CAINFO, sx.ca);
    if (sx.cert) op_curl.easy_setopt(c, CURLOPT_SSLCERT, sx.cert);
    if (sx.key) op_curl.easy_setopt(c, CURLOPT_SSLKEY, sx.key);
    return c;
}

enum { R_OK_, R_RETRY, R_REJECT, R_ABORTED };

static int is_tls_error(CURLcode cc) {
    switch (cc) {
    case CURLE_SSL_CONNECT_ERROR: case CURLE_PEER_FAILED_VERIFICATION: case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER: case CURLE_SSL_CACERT_BADFILE: case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED: case CURLE_SSL_ENGINE_INITFAILED: case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR: case CURLE_SSL_PINNEDPUBKEYNOTMATCH: case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_USE_SSL_FAILED: case CURLE_SSL_SHUTDOWN_FAILED:
        return 1;
    default:
        return 0;
    }
}

/* The receiver's reason for a rejection, as one printable line. */
static void reason(const response *r, char *out, size_t cap) {
    out[0] = '\0';
    if (!r->len) return;
    if (strstr(r->content_type, "protobuf")) {
        if (op_export_status_message(r->body, r->len, out, cap) < 0) snprintf(out, cap, "(undecodable body)");
    } else {
        printable(r->body, r->len, out, cap);
    }
}

static void log_partial(const response *r) {
    if (!r->len || !strstr(r->content_type, "protobuf")) return;
    Opentelemetry__Proto__Collector__Profiles__V1development__ExportProfilesServiceResponse *m =
        opentelemetry__proto__collector__profiles__v1development__export_profiles_service_response__unpack(
            NULL, r->len, r->body);
    if (!m) return;
    const Opentelemetry__Proto__Collector__Profiles__V1development__ExportProfilesPartialSuccess *ps =
        m->partial_success;
    if (ps && (ps->rejected_profiles > 0 || (ps->error_message && *ps->error_message))) {
        if (ps->rejected_profiles > 0) OP_STAT_ADD(export_rejected_profiles, ps->rejected_profiles);
        char msg[256];
        printable((const uint8_t *)(ps->error_message ? ps->error_message : ""),
                  ps->error_message ? strlen(ps->error_message) : 0, msg, sizeof msg);
        uint32_t h = hash_str(hash_str(2166136261u, "partial"), msg);
        if (h != sx.last_reject) {
            sx.last_reject = h;
            op_log_warn("OTLP export to %s: the receiver rejected %lld profile%s: %s", sx.url_shown,
                        (long long)ps->rejected_profiles, ps->rejected_profiles == 1 ? "" : "s",
                        *msg ? msg : "(no message)");
        }
    }
    opentelemetry__proto__collector__profiles__v1development__export_profiles_service_response__free_unpacked(m, NULL);
}

static void note_failure(otelprof_export_failure f, const char *what) {
    OP_STAT_INC(export_failures[f]);
    if (sx.streak++ == 0)
        op_log_warn("OTLP export to %s failed: %s; retrying with backoff (until it recovers, further "
                    "failures are counted in export_failures but not logged)", sx.url_shown, what);
}

/* Posts body once. R_OK_, R_RETRY (with *retry_after_ns >= 0 when the server said when), R_REJECT
 * (logged) or R_ABORTED (the shutdown deadline passed). */
static int attempt(const uint8_t *body, size_t len, int64_t *retry_after_ns) {
    response r;
    memset(&r, 0, sizeof r);
    *retry_after_ns = -1;
    int64_t timeout = sx.timeout_ns;
    if (__atomic_load_n(&sx.stopping, __ATOMIC_ACQUIRE)) {
        int64_t left = sx.deadline_ns - op_mono_ns();
        if (left <= 0) return R_ABORTED;
        if (left < timeout) timeout = left;
    }
    long ms = (long)(timeout / 1000000);
    if (ms < 1) ms = 1;
    sx.errbuf[0] = '\0';
    op_curl.easy_setopt(sx.curl, CURLOPT_POSTFIELDS, (const char *)body);
    op_curl.easy_setopt(sx.curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    op_curl.easy_setopt(sx.curl, CURLOPT_TIMEOUT_MS, ms);
    op_curl.easy_setopt(sx.curl, CURLOPT_CONNECTTIMEOUT_MS, ms);
    op_curl.easy_setopt(sx.curl, CURLOPT_WRITEDATA, &r);
    op_curl.easy_setopt(sx.curl, CURLOPT_HEADERDATA, &r);
    OP_STAT_INC(export_attempts);
    CURLcode cc = op_curl.easy_perform(sx.curl);
    int rc;
    char what[CURL_ERROR_SIZE + 64];
    if (cc != CURLE_OK) {
        const char *detail = sx.errbuf[0] ? sx.errbuf : op_curl.easy_strerror(cc);
        if (cc == CURLE_ABORTED_BY_CALLBACK) {
            rc = R_ABORTED;
        } else if (is_tls_error(cc)) {
            OP_STAT_INC(export_failures[OTELPROF_EXPORT_FAIL_TLS]);
            uint32_t h = hash_str(2166136261u, detail);
            if (h != sx.last_reject) {
                sx.last_reject = h;
                op_log_error("OTLP export to %s failed: TLS: %s (not retried; check "
                             "OTEL_EXPORTER_OTLP_CERTIFICATE and the client key/certificate)",
                             sx.url_shown, detail);
            }
            sx.streak++;
            rc = R_REJECT;
        } else if (cc == CURLE_OPERATION_TIMEDOUT) {
            snprintf(what, sizeof what, "no answer within the timeout (%s)", detail);
            note_failure(OTELPROF_EXPORT_FAIL_TIMEOUT, what);
            rc = R_RETRY;
        } else {
            snprintf(what, sizeof what, "%s", detail);
            note_failure(OTELPROF_EXPORT_FAIL_CONNECT, what);
            rc = R_RETRY;
        }
    } else {
        long status = 0;
        op_curl.easy_getinfo(sx.curl, CURLINFO_RESPONSE_CODE, &status);
        switch (op_export_status_class(status)) {
        case OP_HTTP_OK:
            OP_STAT_INC(export_successes);
            OP_STAT_ADD(export_bytes_sent, len);
            if (sx.streak) {
                op_log_info("OTLP export to %s recovered after %llu failed attempt%s", sx.url_shown,
                            (unsigned long long)sx.streak, sx.streak == 1 ? "" : "s");
                sx.streak = 0;
            }
            log_partial(&r);
            rc = R_OK_;
            break;
        case OP_HTTP_RETRY: {
            int64_t d;
            if (r.retry_after[0] && op_export_retry_after(r.retry_after, (int64_t)time(NULL), &d) == 0)
                *retry_after_ns = d;
            snprintf(what, sizeof what, "HTTP %ld", status);
            note_failure(OTELPROF_EXPORT_FAIL_RETRYABLE, what);
            rc = R_RETRY;
            break;
        }
        default: {
            OP_STAT_INC(export_failures[OTELPROF_EXPORT_FAIL_REJECTED]);
            sx.streak++;
            char msg[256];
            reason(&r, msg, sizeof msg);
            char code[16];
            snprintf(code, sizeof code, "%ld", status);
            uint32_t h = hash_str(hash_str(2166136261u, code), msg);
            /* Reported once: the same rejection every interval says nothing new. */
            if (h != sx.last_reject) {
                sx.last_reject = h;
                op_log_error("OTLP export to %s rejected with HTTP %ld: %s (not retried; the same "
                             "rejection again is counted, not logged)",
                             sx.url_shown, status, *msg ? msg : "(no message)");
            }
            rc = R_REJECT;
        }
        }
    }
    free(r.body);
    return rc;
}

/* ---- the sender thread ----------------------------------------------------------------------- */

/* Waits until `until` (monotonic ns) or until stop is requested. Called without the lock. */
static void wait_until(int64_t until) {
    struct timespec ts = {(time_t)(until / 1000000000ll), (long)(until % 1000000000ll)};
    pthread_mutex_lock(&sx.lock);
    while (!sx.stopping && op_mono_ns() < until)
        if (pthread_cond_timedwait(&sx.cond, &sx.lock, &ts) == ETIMEDOUT) break;
    pthread_mutex_unlock(&sx.lock);
}

static void deliver(op_export_item *it) {
    const uint8_t *body = it->data;
    size_t len = it->len;
    uint8_t *gz = NULL;
    if (sx.gzip) {
        size_t glen;
        if (op_gzip(it->data, it->len, &gz, &glen) < 0) {
            dropped(OTELPROF_EXPORT_DROP_ENCODE, 1);
            return;
        }
        body = gz;
        len = glen;
        /* The raw body is not needed for retries: give its memory back now. */
        free(it->data);
        it->data = NULL;
    }
    OP_STAT_ADD(export_bytes_raw, it->len);
    int64_t first = op_mono_ns();
    for (int tries = 0;; tries++) {
        int stopping = __atomic_load_n(&sx.stopping, __ATOMIC_ACQUIRE);
        if (stopping && (sx.unreachable || op_mono_ns() >= sx.deadline_ns)) {
            dropped(OTELPROF_EXPORT_DROP_SHUTDOWN, 1);
            break;
        }
        if (tries) OP_STAT_INC(export_retries);
        int64_t ra;
        int rc = attempt(body, len, &ra);
        if (rc == R_OK_) break;
        if (rc == R_REJECT) {
            dropped(OTELPROF_EXPORT_DROP_REJECTED, 1);
            break;
        }
        if (rc == R_ABORTED) {
            dropped(OTELPROF_EXPORT_DROP_SHUTDOWN, 1);
            break;
        }
        /* At shutdown each profile gets one attempt; a collector that cannot be reached then
         * is not tried again for every profile still queued. */
        if (__atomic_load_n(&sx.stopping, __ATOMIC_ACQUIRE)) {
            sx.unreachable = 1;
            dropped(OTELPROF_EXPORT_DROP_SHUTDOWN, 1);
            break;
        }
        int64_t delay = ra >= 0 ? ra : op_export_backoff_ns(tries + 1, sx.retry_initial_ns, sx.retry_max_ns,
                                                            next_rand());
        int64_t now = op_mono_ns();
        if (now + delay - first > sx.retry_elapsed_ns) {
            dropped(OTELPROF_EXPORT_DROP_RETRIES, 1);
            break;
        }
        wait_until(now + delay);
    }
    free(gz);
}

static void *sender_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&sx.lock);
    for (;;) {
        while (!sx.stopping && !sx.q.head) pthread_cond_wait(&sx.cond, &sx.lock);
        op_export_item *it = op_export_queue_pop(&sx.q);
        update_queue_stats();
        if (!it) break; /* stopping and nothing left */
        pthread_mutex_unlock(&sx.lock);
        deliver(it);
        op_export_item_free(it);
        pthread_mutex_lock(&sx.lock);
    }
    sx.finished = 1;
    pthread_cond_broadcast(&sx.cond);
    pthread_mutex_unlock(&sx.lock);
    return NULL;
}

static int spawn(void) {
    if (op_spawn(&sx.thread, sender_main, NULL, "otelprof-send")) return -1;
    sx.started = 1;
    return 0;
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

int op_export_http_configured(const otelprof_config *cfg) {
    return cfg && (cfg->otlp[OP_OTLP_ALL].endpoint || cfg->otlp[OP_OTLP_PROFILES].endpoint);
}

static char *hide_userinfo(const char *url) {
    const char *s = strstr(url, "://");
    const char *h = s ? s + 3 : url;
    size_t hl = strcspn(h, "/");
    const char *at = memchr(h, '@', hl);
    if (!at) return strdup(url);
    size_t pre = (size_t)(h - url);
    char *o = malloc(strlen(url) + 8);
    if (!o) return NULL;
    memcpy(o, url, pre);
    strcpy(o + pre, "***");
    strcat(o, at);
    return o;
}

static void free_settings(void) {
    free(sx.url);
    free(sx.url_shown);
    op_curl.slist_free_all(sx.headers);
    free(sx.ca);
    free(sx.cert);
    free(sx.key);
    sx.url = sx.url_shown = sx.ca = sx.cert = sx.key = NULL;
    sx.headers = NULL;
}

/* Signal-specific settings win over the general ones, field by field. */
static int load_settings(const otelprof_config *cfg) {
    const op_otlp_opts *all = &cfg->otlp[OP_OTLP_ALL], *sig = &cfg->otlp[OP_OTLP_PROFILES];
    const op_otlp_opts *hdr = sig->headers_set ? sig : all;
    int compression = sig->compression ? sig->compression : all->compression;
    const char *ca = sig->certificate ? sig->certificate : all->certificate;
    const char *cert = sig->client_certificate ? sig->client_certificate : all->client_certificate;
    const char *key = sig->client_key ? sig->client_key : all->client_key;
    sx.url = op_export_url(all->endpoint, sig->endpoint);
    sx.url_shown = sx.url ? hide_userinfo(sx.url) : NULL;
    sx.gzip = compression == OP_COMPRESS_GZIP;
    sx.timeout_ns = sig->timeout_ns ? sig->timeout_ns : all->timeout_ns ? all->timeout_ns : DEFAULT_TIMEOUT_NS;
    sx.retry_initial_ns = cfg->retry_initial_ns;
    sx.retry_max_ns = cfg->retry_max_interval_ns;
    sx.retry_elapsed_ns = cfg->retry_max_elapsed_ns;
    if (!sx.url || !sx.url_shown || (ca && !(sx.ca = strdup(ca))) || (cert && !(sx.cert = strdup(cert))) ||
        (key && !(sx.key = strdup(key))))
        return -1;
    struct curl_slist *l = NULL, *n;
#define ADD(line)                                  \
    do {                                           \
        if (!(n = op_curl.slist_append(l, line))) {   \
            op_curl.slist_free_all(l);                \
            return -1;                             \
        }                                          \
        l = n;                                     \
    } while (0)
    ADD("Content-Type: application/x-protobuf");
    if (sx.gzip) ADD("Content-Encoding: gzip");
    /* An empty Expect: stops libcurl waiting up to a second for "100 Continue" on large bodies. */
    ADD("Expect:");
    for (size_t i = 0; i < hdr->nheaders; i++) {
        size_t sz = strlen(hdr->headers[i].key) + strlen(hdr->headers[i].value) + 3;
        char *line = malloc(sz);
        if (!line) {
            op_curl.slist_free_all(l);
            return -1;
        }
        /* "Key;" is libcurl's way to send a header with an empty value. */
        if (hdr->headers[i].value[0]) snprintf(line, sz, "%s: %s", hdr->headers[i].key, hdr->headers[i].value);
        else snprintf(line, sz, "%s;", hdr->headers[i].key);
        n = op_curl.slist_append(l, line);
        memset(line, 0, sz);
        free(line);
        if (!n) {
            op_curl.slist_free_all(l);
            return -1;
        }
        l = n;
    }
#undef ADD
    sx.headers = l;
    return 0;
}

static void reset_run_state(void) {
    sx.stopping = 0;
    sx.finished = 0;
    sx.deadline_ns = 0;
    sx.streak = 0;
    sx.last_reject = 0;
    sx.unreachable = 0;
    __atomic_store_n(&logged_drops, 0, __ATOMIC_RELAXED);
    update_queue_stats();
}

int op_export_http_start(const otelprof_config *cfg) {
    if (!op_export_http_configured(cfg)) return 0;
    char why[256];
    if (op_curl_load(why, sizeof why) < 0) {
        op_log_error("cannot load libcurl (%s); OTLP export is off", why);
        return -1;
    }
    init_sync();
    if (load_settings(cfg) < 0) {
        free_settings();
        op_log_error("out of memory while configuring OTLP export");
        return -1;
    }
    size_t cap = cfg->export_queue_max ? (size_t)cfg->export_queue_max : (size_t)(op_config_core_memory(cfg) / 8);
    op_export_queue_init(&sx.q, cap);
    seed_rand();
    reset_run_state();
    if (!(sx.curl = make_handle()) || spawn() < 0) {
        if (sx.curl) op_curl.easy_cleanup(sx.curl);
        sx.curl = NULL;
        free_settings();
        op_log_error("cannot start the OTLP sender thread");
        return -1;
    }
    op_log_info("OTLP export to %s (%s, timeout %lld ms, queue cap %zu bytes)", sx.url_shown,
                sx.gzip ? "gzip" : "uncompressed", (long long)(sx.timeout_ns / 1000000), cap);
    return 1;
}

void op_export_http_submit(uint8_t *body, size_t len) {
    if (!sx.started) {
        free(body);
        return;
    }
    pthread_mutex_lock(&sx.lock);
    int d = op_export_queue_push(&sx.q, body, len);
    update_queue_stats();
    pthread_cond_broadcast(&sx.cond);
    pthread_mutex_unlock(&sx.lock);
    if (d < 0) dropped(OTELPROF_EXPORT_DROP_ENCODE, 1);
    else dropped(OTELPROF_EXPORT_DROP_QUEUE_FULL, (uint64_t)d);
}

size_t op_export_http_queued_bytes(void) {
    return (size_t)__atomic_load_n(&op_stats_g.export_queue_bytes, __ATOMIC_RELAXED);
}

void op_export_http_stop(void) {
    if (!sx.started) return;
    pthread_mutex_lock(&sx.lock);
    __atomic_store_n(&sx.deadline_ns, op_mono_ns() + sx.timeout_ns, __ATOMIC_RELEASE);
    __atomic_store_n(&sx.stopping, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&sx.cond);
    pthread_mutex_unlock(&sx.lock);
    /* Bounded: every attempt after this point ends by the deadline (libcurl's timeout is cut to
     * what is left, and the progress callback aborts a transfer that outlives it). */
    pthread_join(sx.thread, NULL);
    sx.started = 0;
    op_curl.easy_cleanup(sx.curl);
    sx.curl = NULL;
    dropped(OTELPROF_EXPORT_DROP_SHUTDOWN, op_export_queue_clear(&sx.q));
    update_queue_stats();
    if (op_log_level >= OP_LOG_DEBUG) {
        otelprof_stats st;
        otelprof_stats_get(&st);
        op_log_debug("export final: attempts=%llu ok=%llu retries=%llu fail_connect=%llu fail_timeout=%llu "
                     "fail_tls=%llu fail_retryable=%llu fail_rejected=%llu drop_queue_full=%llu "
                     "drop_retries=%llu drop_rejected=%llu drop_shutdown=%llu drop_encode=%llu "
                     "bytes_sent=%llu bytes_raw=%llu rejected_profiles=%llu",
                     (unsigned long long)st.export_attempts, (unsigned long long)st.export_successes,
                     (unsigned long long)st.export_retries,
                     (unsigned long long)st.export_failures[OTELPROF_EXPORT_FAIL_CONNECT],
                     (unsigned long long)st.export_failures[OTELPROF_EXPORT_FAIL_TIMEOUT],
                     (unsigned long long)st.export_failures[OTELPROF_EXPORT_FAIL_TLS],
                     (unsigned long long)st.export_failures[OTELPROF_EXPORT_FAIL_RETRYABLE],
                     (unsigned long long)st.export_failures[OTELPROF_EXPORT_FAIL_REJECTED],
                     (unsigned long long)st.export_dropped[OTELPROF_EXPORT_DROP_QUEUE_FULL],
                     (unsigned long long)st.export_dropped[OTELPROF_EXPORT_DROP_RETRIES],
                     (unsigned long long)st.export_dropped[OTELPROF_EXPORT_DROP_REJECTED],
                     (unsigned long long)st.export_dropped[OTELPROF_EXPORT_DROP_SHUTDOWN],
                     (unsigned long long)st.export_dropped[OTELPROF_EXPORT_DROP_ENCODE],
                     (unsigned long long)st.export_bytes_sent, (unsigned long long)st.export_bytes_raw,
                     (unsigned long long)st.export_rejected_profiles);
    }
    free_settings();
}

void op_export_http_after_fork(void) {
    init_sync();
    if (!sx.started) return;
    /* The parent's handle shares its sockets with the parent: closing or reusing it here would
     * corrupt the parent's connection, and the queue may have been mid-update. Both are left
     * behind (a bounded, one-time leak per fork); the parent sends its own profiles. */
    sx.started = 0;
    sx.curl = NULL;
    op_export_queue_init(&sx.q, sx.q.cap);
    seed_rand();
    reset_run_state();
    if (!(sx.curl = make_handle()) || spawn() < 0)
        op_log_error("fork child %d: cannot restart the OTLP sender; its profiles are not exported",
                     (int)getpid());
}
