/* Configuration: defaults, option and environment parsing, range checks, one-line error text. */
#include "op_config.h"
#include "op_log.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <limits.h>
#include <unistd.h>

#define DEFAULT_OUTPUT_DIR "./otelprof-out"

#define NS_PER_US 1000ll
#define NS_PER_MS 1000000ll
#define NS_PER_S 1000000000ll

#define INTERVAL_MIN (100 * NS_PER_US)
#define INTERVAL_MAX (10 * NS_PER_S)
#define EXPORT_INTERVAL_MIN (100 * NS_PER_MS)
#define EXPORT_INTERVAL_MAX (3600 * NS_PER_S)
#define MAX_DEPTH_MAX 2048
#define MAX_THREADS_MAX 65536
#define WALL_THREADS_MAX 4096
/* Below 1 MiB the tables cannot hold one export interval of a busy process; above 16 GiB the cap
 * no longer protects the host from anything, so a value there is almost certainly a typo. */
#define MAX_MEMORY_MIN OP_MAX_MEMORY_MIN
#define MAX_MEMORY_MAX (16ll << 30)
#define OTLP_TIMEOUT_MIN (1 * NS_PER_MS)
#define OTLP_TIMEOUT_MAX (600 * NS_PER_S)
#define EXPORT_QUEUE_MIN (4ll << 10)
#define EXPORT_QUEUE_MAX (1ll << 30)
#define RETRY_INTERVAL_MIN (1 * NS_PER_MS)
#define RETRY_INTERVAL_MAX (600 * NS_PER_S)
#define RETRY_ELAPSED_MAX (3600 * NS_PER_S)

#define HEADERS_EXPECT "comma-separated key=value pairs with percent-encoded values, like " \
    "api-key=abc,x-scope=team%20a"
#define TIMEOUT_EXPECT "milliseconds like 10000, or a duration like 10s, between 1ms and 10m"
#define FILE_EXPECT "the path of a readable PEM file"

/* ---- small parsers ---------------------------------------------------------------------------- */

/* Trims ASCII whitespace on both sides; returns the start and sets *len. Environment values often
 * carry a stray space from shell quoting, and rejecting those would only annoy. */
static const char *trim_n(const char *s, size_t n, size_t *len) {
    while (n && isspace((unsigned char)*s)) { s++; n--; }
    while (n && isspace((unsigned char)s[n - 1])) n--;
    *len = n;
    return s;
}

static const char *trim(const char *s, size_t *len) {
    return trim_n(s, strlen(s), len);
}

/* Parses the leading decimal digits of s[0..len) into *out and returns how many there were;
 * 0 when there are none or the number overflows, both of which make the value invalid. Signs are
 * not accepted: every numeric option is positive. */
static size_t parse_digits(const char *s, size_t len, uint64_t *out) {
    uint64_t v = 0;
    size_t i = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
        i++;
    }
    *out = v;
    return i;
}

static int unit_is(const char *u, size_t ulen, const char *name) {
    return strlen(name) == ulen && strncasecmp(u, name, ulen) == 0;
}

/* Integer and unit, units matched case-insensitively. A bare integer is milliseconds because that
 * is the unit people reach for when they write "interval=20". */
int op_parse_duration(const char *str, int64_t *ns) {
    if (!str || !ns) return -1;
    size_t len;
    const char *s = trim(str, &len);
    uint64_t v;
    size_t nd = parse_digits(s, len, &v);
    if (nd == 0) return -1;
    const char *u = s + nd;
    size_t ulen = len - nd;
    uint64_t mul;
    if (ulen == 0 || unit_is(u, ulen, "ms")) mul = NS_PER_MS;
    else if (unit_is(u, ulen, "ns")) mul = 1;
    else if (unit_is(u, ulen, "us")) mul = NS_PER_US;
    else if (unit_is(u, ulen, "s")) mul = NS_PER_S;
    else if (unit_is(u, ulen, "m")) mul = 60 * NS_PER_S;
    else return -1;
    if (v > (uint64_t)INT64_MAX / mul) return -1;
    *ns = (int64_t)(v * mul);
    return 0;
}

/* KB and KiB both mean 1024: a memory cap is about pages and malloc chunks, and nobody setting
 * "64MB" expects 61 MiB. */
int op_parse_size(const char *str, int64_t *bytes) {
    if (!str || !bytes) return -1;
    size_t len;
    const char *s = trim(str, &len);
    uint64_t v;
    size_t nd = parse_digits(s, len, &v);
    if (nd == 0) return -1;
    const char *u = s + nd;
    size_t ulen = len - nd;
    uint64_t mul;
    if (ulen == 0 || unit_is(u, ulen, "b")) mul = 1;
    else if (unit_is(u, ulen, "kb") || unit_is(u, ulen, "kib")) mul = 1ull << 10;
    else if (unit_is(u, ulen, "mb") || unit_is(u, ulen, "mib")) mul = 1ull << 20;
    else if (unit_is(u, ulen, "gb") || unit_is(u, ulen, "gib")) mul = 1ull << 30;
    else return -1;
    if (v > (uint64_t)INT64_MAX / mul) return -1;
    *bytes = (int64_t)(v * mul);
    return 0;
}

static int parse_int_range(const char *str, int lo, int hi, int *out) {
    size_t len;
    const char *s = trim(str, &len);
    uint64_t v;
    size_t nd = parse_digits(s, len, &v);
    if (nd == 0 || nd != len || v < (uint64_t)lo || v > (uint64_t)hi) return -1;
    *out = (int)v;
    return 0;
}

/* Exact word match after trimming, case-insensitive. */
static int word_is(const char *str, const char *word) {
    size_t len;
    const char *s = trim(str, &len);
    return unit_is(s, len, word);
}

static int parse_bool(const char *str, int *out) {
    if (word_is(str, "true") || word_is(str, "1")) { *out = 1; return 0; }
    if (word_is(str, "false") || word_is(str, "0")) { *out = 0; return 0; }
    return -1;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..len) into a new string. Returns NULL with *bad = 1 on a malformed escape
 * or an encoded NUL (which a C string cannot carry), *bad = 0 on ENOMEM. */
static char *pct_decode(const char *s, size_t len, int *bad) {
    char *out = malloc(len + 1);
    *bad = 0;
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') { out[o++] = s[i]; continue; }
        if (i + 2 >= len) { /* fewer than two characters follow the '%' */
            free(out);
            *bad = 1;
            return NULL;
        }
        int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
        if (h < 0 || l < 0 || (h == 0 && l == 0)) {
            free(out);
            *bad = 1;
            return NULL;
        }
        out[o++] = (char)(h * 16 + l);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

static void kv_free(op_kv *kv, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

void op_kv_free(op_kv *kv, size_t n) {
    kv_free(kv, n);
}

/* ---- error text ------------------------------------------------------------------------------- */

/* Copies a user value into dst for an error message: quotes and control characters escaped so the
 * message stays on one line, long values cut with "..." so the line stays readable. */
static void quote_value(char *dst, size_t cap, const char *v) {
    size_t o = 0;
    const size_t shown = 80;
    size_t i;
    for (i = 0; v[i] && i < shown && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7f) o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", c);
        else if (c == '"' || c == '\\') { dst[o++] = '\\'; dst[o++] = (char)c; }
        else dst[o++] = (char)c;
    }
    if (v[i] && o + 4 < cap) { memcpy(dst + o, "...", 3); o += 3; }
    dst[o] = '\0';
}

/* Names the part of a value that was wrong, as "; <what> \"<text>\"", quoted like the value. */
static void detail(char *why, size_t wl, const char *what, const char *text, size_t len) {
    char raw[48], q[200];
    if (len >= sizeof raw) len = sizeof raw - 1;
    memcpy(raw, text, len);
    raw[len] = '\0';
    quote_value(q, sizeof q, raw);
    snprintf(why, wl, "; %s \"%s\"", what, q);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- options ---------------------------------------------------------------------------------- */

/* One option's setter: returns 0, -1 for a bad value (the caller names the expected form; the
 * setter may add a detail to `why`), or -2 when out of memory. Setters leave cfg untouched on
 * failure so a rejected set() never half-applies. */
typedef int (*setter_fn)(otelprof_config *cfg, const char *v, char *why, size_t whylen);

static int set_mode(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    (void)why; (void)wl;
    if (word_is(v, "cpu")) cfg->mode = OP_MODE_CPU;
    else if (word_is(v, "wall")) cfg->mode = OP_MODE_WALL;
    /* The public API promises EDISABLED for mode "off"; it leaves the mode as it was. */
    else if (word_is(v, "off")) cfg->disabled = 1;
    else return -1;
    return 0;
}

static int set_duration(int64_t *dst, const char *v, int64_t lo, int64_t hi) {
    int64_t ns;
    if (op_parse_duration(v, &ns) != 0 || ns < lo || ns > hi) return -1;
    *dst = ns;
    return 0;
}

static int set_interval(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    (void)why; (void)wl;
    return set_duration(&cfg->interval_ns, v, INTERVAL_MIN, INTERVAL_MAX);
}

static int set_export_interval(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    (void)why; (void)wl;
    return set_duration(&cfg->export_interval_ns, v, EXPORT_INTERVAL_MIN, EXPORT_INTERVAL_MAX);
}

static int set_output_dir(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    (void)why; (void)wl;
    size_t len;
    const char *s = trim(v, &len);
    if (len == 0) return -1;
    char *d = strndup(s, len);
    if (!d) return -2;
    free(cfg->output_dir);
    cfg->output_dir = d;
    cfg->output_dir_set = 1;
    return 0;
}

static int set_formats(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    static const struct { const char *name; unsigned bit; } fmts[] = {
        {"otlp", OP_FMT_OTLP}, {"pprof", OP_FMT_PPROF}, {"folded", OP_FMT_FOLDED}, {"html", OP_FMT_HTML},
    };
    unsigned mask = 0;
    const char *p = v;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t raw = comma ? (size_t)(comma - p) : strlen(p);
        size_t wlen;
        const char *w = trim_n(p, raw, &wlen);
        if (wlen) { /* empty items ("otlp,,pprof", a trailing comma) are harmless; skip them */
            size_t k;
            for (k = 0; k < sizeof fmts / sizeof fmts[0]; k++)
                if (unit_is(w, wlen, fmts[k].name)) break;
            if (k == sizeof fmts / sizeof fmts[0]) {
                detail(why, wl, "unknown format", w, wlen);
                return -1;
            }
            mask |= fmts[k].bit;
        }
        if (!comma) break;
        p = comma + 1;
    }
    if (!mask) return -1;
    cfg->formats = mask;
    return 0;
}

static int set_max_depth(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    (void)why; (void)wl;
    return parse_int_range(v, 1, MAX_DEPTH_MAX, &cfg->max_depth);
}

static int set_native_frames(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    (void)why; (void)wl;
    if (parse_bool(v, &cfg->native_frames) != 0) return -1;
    cfg->native_frames_set = 1;
    return 0;
}

static int set_log_level(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    static const char *const names[] = {"off", "error", "warn", "info", "debug"};
    (void)why; (void)wl;
    for (int i = 0; i < 5; i++) {
        if (word_is(v, names[i])) {
            cfg->log_level = OP_LOG_OFF + i;
            return 0;
        }
    }
    return -1;
}

static int set_service_name(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    (void)why; (void)wl;
    size_t len;
    const char *s = trim(v, &len);
    char *d = NULL;
    /* An empty name clears an earlier one, so the fallback chain applies again. */
    if (len && !(d = strndup(s, len))) return -2;
    free(cfg->service_name);
    cfg->service_name = d;
    return 0;
}

/* "k=v,k2=v2" as OTEL_RESOURCE_ATTRIBUTES defines it: whitespace around keys and values trimmed,
 * then each percent-decoded. The new list replaces the old one. */
static int set_resource_attributes(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    op_kv *kv = NULL;
    size_t n = 0, cap = 0;
    const char *p = v;
    int rc = -1;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t raw = comma ? (size_t)(comma - p) : strlen(p);
        size_t elen;
        const char *e = trim_n(p, raw, &elen);
        if (elen) {
            const char *eq = memchr(e, '=', elen);
            if (!eq) {
                detail(why, wl, "no '=' in entry", e, elen);
                goto out;
            }
            size_t klen, vlen;
            const char *k = trim_n(e, (size_t)(eq - e), &klen);
            const char *val = trim_n(eq + 1, elen - (size_t)(eq - e) - 1, &vlen);
            if (klen == 0) {
                detail(why, wl, "empty key in entry", e, elen);
                goto out;
            }
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 8;
                op_kv *g = realloc(kv, nc * sizeof *kv);
                if (!g) { rc = -2; goto out; }
                kv = g;
                cap = nc;
            }
            int bad;
            char *dk = pct_decode(k, klen, &bad);
            char *dv = dk ? pct_decode(val, vlen, &bad) : NULL;
            if (!dk || !dv) {
                free(dk);
                if (bad) detail(why, wl, "bad %-escape in entry", e, elen);
                else rc = -2;
                goto out;
            }
            kv[n].key = dk;
            kv[n].value = dv;
            n++;
        }
        if (!comma) break;
        p = comma + 1;
    }
    kv_free(cfg->resource_attrs, cfg->nresource_attrs);
    cfg->resource_attrs = kv;
    cfg->nresource_attrs = n;
    return 0;
out:
    kv_free(kv, n);
    return rc;
}

static int set_disabled(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    (void)why; (void)wl;
    return parse_bool(v, &cfg->disabled);
}

static int set_max_threads(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    (void)why; (void)wl;
    return parse_int_range(v, 1, MAX_THREADS_MAX, &cfg->max_threads);
}

static int set_max_memory(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    (void)why; (void)wl;
    int64_t b;
    if (op_parse_size(v, &b) != 0 || b < MAX_MEMORY_MIN || b > MAX_MEMORY_MAX) return -1;
    cfg->max_memory = b;
    return 0;
}

static int set_wall_threads_per_tick(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    (void)why; (void)wl;
    return parse_int_range(v, 1, WALL_THREADS_MAX, &cfg->wall_threads_per_tick);
}

/* The profiling signal: 0 = auto (a free real-time signal, chosen at start), SIGPROF, or a
 * real-time signal by number or as SIGRTMIN+N / SIGRTMAX-N ("SIG" optional, any case). */
static int set_signal(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    (void)why; (void)wl;
    size_t len;
    const char *s = trim(v, &len);
    if (word_is(v, "auto")) { cfg->signo = 0; return 0; }
    if (word_is(v, "SIGPROF") || word_is(v, "PROF")) { cfg->signo = SIGPROF; return 0; }
    if (len >= 3 && strncasecmp(s, "SIG", 3) == 0) { s += 3; len -= 3; }
    int lo = SIGRTMIN, hi = SIGRTMAX, base, sign;
    if (len >= 5 && strncasecmp(s, "RTMIN", 5) == 0) { base = lo; sign = 1; }
    else if (len >= 5 && strncasecmp(s, "RTMAX", 5) == 0) { base = hi; sign = -1; }
    else {
        int n;
        if (parse_int_range(v, 1, 1024, &n) != 0 || !(n == SIGPROF || (n >= lo && n <= hi))) return -1;
        cfg->signo = n;
        return 0;
    }
    s += 5;
    len -= 5;
    uint64_t off = 0;
    if (len > 0) {
        if (*s != (sign > 0 ? '+' : '-')) return -1;
        if (len == 1 || parse_digits(s + 1, len - 1, &off) != len - 1 || off > 64) return -1;
    }
    int n = base + sign * (int)off;
    if (n < lo || n > hi) return -1;
    cfg->signo = n;
    return 0;
}

/* ---- OTLP exporter options -------------------------------------------------------------------- */

/* RFC 9110 token characters: what an HTTP field name may hold. */
static int is_tchar(unsigned char c) {
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Entries are named by position only: a header value is usually a token, and the key alone can
 * already say what kind of secret sits next to it. */
int op_parse_headers(const char *v, op_kv **out, size_t *nout, char *why, size_t wl) {
    op_kv *kv = NULL;
    size_t n = 0, cap = 0;
    unsigned entry = 0;
    const char *p = v;
    int rc = -1;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t raw = comma ? (size_t)(comma - p) : strlen(p);
        size_t elen;
        const char *e = trim_n(p, raw, &elen);
        entry++;
        if (elen) {
            const char *eq = memchr(e, '=', elen);
            if (!eq) {
                snprintf(why, wl, "; entry %u has no '='", entry);
                goto out;
            }
            size_t klen, vlen;
            const char *k = trim_n(e, (size_t)(eq - e), &klen);
            const char *val = trim_n(eq + 1, elen - (size_t)(eq - e) - 1, &vlen);
            int bad;
            char *dk = pct_decode(k, klen, &bad);
            if (!dk) {
                if (bad) snprintf(why, wl, "; entry %u has a bad %%-escape in its key", entry);
                else rc = -2;
                goto out;
            }
            char *dv = pct_decode(val, vlen, &bad);
            if (!dv) {
                free(dk);
                if (bad) snprintf(why, wl, "; entry %u has a bad %%-escape in its value", entry);
                else rc = -2;
                goto out;
            }
            int key_ok = dk[0] != '\0', val_ok = 1;
            for (const char *c = dk; *c; c++) key_ok &= is_tchar((unsigned char)*c);
            /* A decoded CR or LF would let a value inject a header line of its own. */
            for (const unsigned char *c = (const unsigned char *)dv; *c; c++)
                if ((*c < 0x20 && *c != '\t') || *c == 0x7f) val_ok = 0;
            if (!key_ok || !val_ok) {
                free(dk);
                free(dv);
                snprintf(why, wl, "; entry %u has %s", entry,
                         !key_ok ? "an empty key or one that is not an HTTP header name"
                                 : "a control character in its value");
                goto out;
            }
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 8;
                op_kv *g = realloc(kv, nc * sizeof *kv);
                if (!g) { free(dk); free(dv); rc = -2; goto out; }
                kv = g;
                cap = nc;
            }
            kv[n].key = dk;
            kv[n].value = dv;
            n++;
        }
        if (!comma) break;
        p = comma + 1;
    }
    *out = kv;
    *nout = n;
    return 0;
out:
    kv_free(kv, n);
    return rc;
}

int op_check_endpoint(const char *s, char *why, size_t wl) {
    size_t len;
    const char *v = trim(s, &len);
    size_t skip;
    if (len >= 7 && strncasecmp(v, "http://", 7) == 0) skip = 7;
    else if (len >= 8 && strncasecmp(v, "https://", 8) == 0) skip = 8;
    else {
        snprintf(why, wl, "; the scheme must be http:// or https://");
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c <= 0x20 || c == 0x7f) {
            snprintf(why, wl, "; it contains a space or control character");
            return -1;
        }
    }
    const char *h = v + skip, *end = v + len;
    const char *slash = memchr(h, '/', (size_t)(end - h));
    const char *hend = slash ? slash : end;
    const char *at = NULL;
    for (const char *c = h; c < hend; c++)
        if (*c == '@') at = c;
    if (at) h = at + 1; /* user:password@ is allowed; libcurl sends it as basic auth */
    if (h == hend) {
        snprintf(why, wl, "; the host is missing");
        return -1;
    }
    const char *colon = NULL;
    if (*h == '[') { /* IPv6 literal */
        const char *rb = memchr(h, ']', (size_t)(hend - h));
        if (!rb || rb == h + 1) {
            snprintf(why, wl, "; the IPv6 address is not closed with ']'");
            return -1;
        }
        if (rb + 1 < hend) {
            if (rb[1] != ':') {
                snprintf(why, wl, "; unexpected text after the IPv6 address");
                return -1;
            }
            colon = rb + 1;
        }
    } else {
        colon = memchr(h, ':', (size_t)(hend - h));
        if (colon == h) {
            snprintf(why, wl, "; the host is missing");
            return -1;
        }
    }
    if (colon) {
        uint64_t port;
        size_t pl = (size_t)(hend - colon - 1);
        if (pl == 0 || parse_digits(colon + 1, pl, &port) != pl || port == 0 || port > 65535) {
            snprintf(why, wl, "; the port must be a number between 1 and 65535");
            return -1;
        }
    }
    return 0;
}

static int set_str(char **dst, const char *v) {
    size_t len;
    const char *s = trim(v, &len);
    char *d = NULL;
    if (len && !(d = strndup(s, len))) return -2;
    free(*dst);
    *dst = d;
    return 0;
}

static int set_endpoint_in(otelprof_config *cfg, int which, const char *v, char *why, size_t wl) {
    if (op_check_endpoint(v, why, wl) < 0) return -1;
    return set_str(&cfg->otlp[which].endpoint, v);
}
static int set_endpoint(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    return set_endpoint_in(cfg, OP_OTLP_ALL, v, why, wl);
}
static int set_profiles_endpoint(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    return set_endpoint_in(cfg, OP_OTLP_PROFILES, v, why, wl);
}

static int set_headers_in(otelprof_config *cfg, int which, const char *v, char *why, size_t wl) {
    op_kv *kv;
    size_t n;
    int rc = op_parse_headers(v, &kv, &n, why, wl);
    if (rc < 0) return rc;
    op_otlp_opts *o = &cfg->otlp[which];
    kv_free(o->headers, o->nheaders);
    o->headers = kv;
    o->nheaders = n;
    o->headers_set = 1;
    return 0;
}
static int set_headers(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    return set_headers_in(cfg, OP_OTLP_ALL, v, why, wl);
}
static int set_profiles_headers(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    return set_headers_in(cfg, OP_OTLP_PROFILES, v, why, wl);
}

static int set_compression_in(otelprof_config *cfg, int which, const char *v) {
    if (word_is(v, "gzip")) cfg->otlp[which].compression = OP_COMPRESS_GZIP;
    else if (word_is(v, "none")) cfg->otlp[which].compression = OP_COMPRESS_NONE;
    else return -1;
    return 0;
}
static int set_compression(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    (void)why; (void)wl;
    return set_compression_in(cfg, OP_OTLP_ALL, v);
}
static int set_profiles_compression(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    (void)why; (void)wl;
    return set_compression_in(cfg, OP_OTLP_PROFILES, v);
}

/* The specification gives the timeout in milliseconds, which is what a bare number means here. */
static int set_timeout_in(otelprof_config *cfg, int which, const char *v) {
    return set_duration(&cfg->otlp[which].timeout_ns, v, OTLP_TIMEOUT_MIN, OTLP_TIMEOUT_MAX);
}
static int set_timeout(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    (void)why; (void)wl;
    return set_timeout_in(cfg, OP_OTLP_ALL, v);
}
static int set_profiles_timeout(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    (void)why; (void)wl;
    return set_timeout_in(cfg, OP_OTLP_PROFILES, v);
}

/* Checked now, so a typo is one clear line at start rather than a TLS error at every export. */
static int set_file(char **dst, const char *v, char *why, size_t wl) {
    size_t len;
    const char *s = trim(v, &len);
    char *d = strndup(s, len);
    if (!d) return -2;
    if (access(d, R_OK) != 0) {
        snprintf(why, wl, "; %s", strerror(errno));
        free(d);
        return -1;
    }
    free(*dst);
    *dst = d;
    return 0;
}
#define FILE_SETTERS(field)                                                                       \
    static int set_##field(otelprof_config *cfg, const char *v, char *why, size_t wl) {          \
        return set_file(&cfg->otlp[OP_OTLP_ALL].field, v, why, wl);                             \
    }                                                                                             \
    static int set_profiles_##field(otelprof_config *cfg, const char *v, char *why, size_t wl) { \
        return set_file(&cfg->otlp[OP_OTLP_PROFILES].field, v, why, wl);                        \
    }
FILE_SETTERS(certificate)
FILE_SETTERS(client_key)
FILE_SETTERS(client_certificate)

/* Only OTLP/HTTP with protobuf bodies is built in; saying so at start beats silently sending
 * HTTP to a gRPC port. */
static int set_protocol(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    (void)cfg;
    if (word_is(v, "http/protobuf")) return 0;
    if (word_is(v, "grpc"))
        snprintf(why, wl, "; gRPC is not supported: use the OTLP/HTTP port, usually 4318");
    else if (word_is(v, "http/json"))
        snprintf(why, wl, "; JSON bodies are not supported");
    return -1;
}

static int set_export_queue_max(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    (void)why; (void)wl;
    int64_t b;
    if (op_parse_size(v, &b) != 0 || b < EXPORT_QUEUE_MIN || b > EXPORT_QUEUE_MAX) return -1;
    cfg->export_queue_max = b;
    return 0;
}

static int set_retry_initial(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    (void)why; (void)wl;
    return set_duration(&cfg->retry_initial_ns, v, RETRY_INTERVAL_MIN, RETRY_INTERVAL_MAX);
}

static int set_retry_max_interval(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    (void)why; (void)wl;
    return set_duration(&cfg->retry_max_interval_ns, v, RETRY_INTERVAL_MIN, RETRY_INTERVAL_MAX);
}

static int set_retry_max_elapsed(otelprof_config *cfg, const char *v, char *why, size_t wl) {
    (void)why; (void)wl;
    return set_duration(&cfg->retry_max_elapsed_ns, v, 0, RETRY_ELAPSED_MAX);
}

typedef struct option {
    const char *key;
    const char *env; /* environment variable, or NULL */
    setter_fn set;
    const char *expect; /* completes "is invalid: expected ..." */
} option;

/* Header values hold credentials: their error text never shows the value. */
static int is_secret(const option *opt) {
    return opt->set == set_headers || opt->set == set_profiles_headers;
}

/* Order matters for from_env: the first invalid variable is the one reported. */
static const option options[] = {
    {"service_name", "OTEL_SERVICE_NAME", set_service_name, "a service name"},
    {"resource_attributes", "OTEL_RESOURCE_ATTRIBUTES", set_resource_attributes,
     "comma-separated key=value pairs with percent-encoded keys and values, like a=b,c=d%20e"},
    {"disabled", "OTEL_SDK_DISABLED", set_disabled, "true or false"},
    {"mode", "OTELPROF_MODE", set_mode, "cpu, wall or off"},
    {"interval", "OTELPROF_INTERVAL", set_interval,
     "a duration like 10ms, 500us or 1s between 100us and 10s"},
    {"export_interval", "OTELPROF_EXPORT_INTERVAL", set_export_interval,
     "a duration like 10s, 500ms or 1m between 100ms and 60m"},
    {"output_dir", "OTELPROF_OUTPUT_DIR", set_output_dir, "a non-empty directory path"},
    {"formats", "OTELPROF_FORMATS", set_formats,
     "a non-empty comma-separated list of otlp, pprof, folded, html"},
    {"max_depth", "OTELPROF_MAX_DEPTH", set_max_depth, "an integer between 1 and 2048"},
    {"native_frames", "OTELPROF_NATIVE_FRAMES", set_native_frames, "1, 0, true or false"},
    {"log_level", "OTELPROF_LOG_LEVEL", set_log_level, "off, error, warn, info or debug"},
    {"max_threads", "OTELPROF_MAX_THREADS", set_max_threads, "an integer between 1 and 65536"},
    {"max_memory", "OTELPROF_MAX_MEMORY", set_max_memory,
     "a size like 64MiB, 512KB or 1GB (KB = KiB = 1024) between 1MiB and 16GiB"},
    {"wall_threads_per_tick", "OTELPROF_WALL_THREADS_PER_TICK", set_wall_threads_per_tick,
     "an integer between 1 and 4096"},
    {"signal", "OTELPROF_SIGNAL", set_signal,
     "auto, SIGPROF, SIGRTMIN+N, SIGRTMAX-N, or a real-time signal number"},
    /* The signal-specific variable follows the general one so that it wins. */
    {"otlp_protocol", "OTEL_EXPORTER_OTLP_PROTOCOL", set_protocol, "http/protobuf"},
    {"otlp_profiles_protocol", "OTEL_EXPORTER_OTLP_PROFILES_PROTOCOL", set_protocol, "http/protobuf"},
    {"otlp_endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT", set_endpoint,
     "an http:// or https:// URL like http://localhost:4318"},
    {"otlp_profiles_endpoint", "OTEL_EXPORTER_OTLP_PROFILES_ENDPOINT", set_profiles_endpoint,
     "an http:// or https:// URL like http://localhost:4318/v1development/profiles"},
    {"otlp_headers", "OTEL_EXPORTER_OTLP_HEADERS", set_headers, HEADERS_EXPECT},
    {"otlp_profiles_headers", "OTEL_EXPORTER_OTLP_PROFILES_HEADERS", set_profiles_headers,
     HEADERS_EXPECT},
    {"otlp_compression", "OTEL_EXPORTER_OTLP_COMPRESSION", set_compression, "gzip or none"},
    {"otlp_profiles_compression", "OTEL_EXPORTER_OTLP_PROFILES_COMPRESSION",
     set_profiles_compression, "gzip or none"},
    {"otlp_timeout", "OTEL_EXPORTER_OTLP_TIMEOUT", set_timeout, TIMEOUT_EXPECT},
    {"otlp_profiles_timeout", "OTEL_EXPORTER_OTLP_PROFILES_TIMEOUT", set_profiles_timeout,
     TIMEOUT_EXPECT},
    {"otlp_certificate", "OTEL_EXPORTER_OTLP_CERTIFICATE", set_certificate, FILE_EXPECT},
    {"otlp_profiles_certificate", "OTEL_EXPORTER_OTLP_PROFILES_CERTIFICATE",
     set_profiles_certificate, FILE_EXPECT},
    {"otlp_client_key", "OTEL_EXPORTER_OTLP_CLIENT_KEY", set_client_key, FILE_EXPECT},
    {"otlp_profiles_client_key", "OTEL_EXPORTER_OTLP_PROFILES_CLIENT_KEY", set_profiles_client_key,
     FILE_EXPECT},
    {"otlp_client_certificate", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", set_client_certificate,
     FILE_EXPECT},
    {"otlp_profiles_client_certificate", "OTEL_EXPORTER_OTLP_PROFILES_CLIENT_CERTIFICATE",
     set_profiles_client_certificate, FILE_EXPECT},
    {"export_queue_max", "OTELPROF_EXPORT_QUEUE_MAX", set_export_queue_max,
     "a size like 8MiB or 512KB between 4KiB and 1GiB"},
    {"export_retry_initial", "OTELPROF_EXPORT_RETRY_INITIAL", set_retry_initial,
     "a duration like 1s or 500ms between 1ms and 10m"},
    {"export_retry_max_interval", "OTELPROF_EXPORT_RETRY_MAX_INTERVAL", set_retry_max_interval,
     "a duration like 30s or 5s between 1ms and 10m"},
    {"export_retry_max_elapsed", "OTELPROF_EXPORT_RETRY_MAX_ELAPSED", set_retry_max_elapsed,
     "a duration like 60s or 5m between 0 (never retry) and 60m"},
};
#define NOPTIONS (sizeof options / sizeof options[0])

#define VALID_KEYS "mode, interval, export_interval, output_dir, formats, max_depth, native_frames, " \
    "log_level, service_name, resource_attributes, disabled, max_threads, max_memory, " \
    "wall_threads_per_tick, signal, otlp_[profiles_]{endpoint, headers, compression, timeout, protocol, " \
    "certificate, client_key, client_certificate}, export_queue_max, export_retry_initial, " \
    "export_retry_max_interval, export_retry_max_elapsed"

static const option *find_option(const char *key) {
    for (size_t i = 0; i < NOPTIONS; i++)
        if (strcasecmp(key, options[i].key) == 0) return &options[i];
    return NULL;
}

/* Applies one option; `name` is what the user wrote (option key or variable), for the message. */
static otelprof_error apply(otelprof_config *cfg, const option *opt, const char *name,
                            const char *value, char *err, size_t errlen) {
    char why[256] = "";
    int rc = opt->set(cfg, value, why, sizeof why);
    if (rc == 0) return OTELPROF_OK;
    if (rc == -2) {
        set_err(err, errlen, "%s: out of memory", name);
        return OTELPROF_ENOMEM;
    }
    if (is_secret(opt)) {
        set_err(err, errlen, "%s is invalid (value not shown: it may hold credentials): expected %s%s",
                name, opt->expect, why);
        return OTELPROF_EINVAL;
    }
    char q[256];
    quote_value(q, sizeof q, value);
    set_err(err, errlen, "%s=\"%s\" is invalid: expected %s%s", name, q, opt->expect, why);
    return OTELPROF_EINVAL;
}

/* ---- public ----------------------------------------------------------------------------------- */

static void otlp_free(op_otlp_opts *o) {
    free(o->endpoint);
    kv_free(o->headers, o->nheaders);
    free(o->certificate);
    free(o->client_key);
    free(o->client_certificate);
    memset(o, 0, sizeof *o);
}

static int kv_copy(op_kv **dst, size_t *ndst, const op_kv *src, size_t n) {
    *dst = NULL;
    *ndst = 0;
    if (!n) return 0;
    if (!(*dst = calloc(n, sizeof **dst))) return -1;
    for (size_t i = 0; i < n; i++) {
        *ndst = i + 1; /* so a failure below frees what was copied */
        (*dst)[i].key = strdup(src[i].key);
        (*dst)[i].value = strdup(src[i].value);
        if (!(*dst)[i].key || !(*dst)[i].value) return -1;
    }
    return 0;
}

static int dup_or_null(char **dst, const char *src) {
    *dst = src ? strdup(src) : NULL;
    return src && !*dst ? -1 : 0;
}

static int otlp_copy(op_otlp_opts *d, const op_otlp_opts *s) {
    *d = *s;
    d->endpoint = d->certificate = d->client_key = d->client_certificate = NULL;
    d->headers = NULL;
    d->nheaders = 0;
    if (dup_or_null(&d->endpoint, s->endpoint) < 0 || dup_or_null(&d->certificate, s->certificate) < 0 ||
        dup_or_null(&d->client_key, s->client_key) < 0 ||
        dup_or_null(&d->client_certificate, s->client_certificate) < 0 ||
        kv_copy(&d->headers, &d->nheaders, s->headers, s->nheaders) < 0)
        return -1;
    return 0;
}

otelprof_config *otelprof_config_new(void) {
    otelprof_config *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->mode = OP_MODE_CPU;
    c->interval_ns = 10 * NS_PER_MS;
    c->export_interval_ns = 10 * NS_PER_S;
    c->output_dir = strdup(DEFAULT_OUTPUT_DIR);
    if (!c->output_dir) { free(c); return NULL; }
    c->formats = OP_FMT_ALL;
    c->max_depth = 128;
    /* 1 here; otelprof_start() turns it off under an adapter unless native_frames_set. */
    c->native_frames = 1;
    c->log_level = OP_LOG_WARN;
    c->max_threads = 4096;
    c->max_memory = 64ll << 20;
    c->wall_threads_per_tick = 64;
    c->retry_initial_ns = 1 * NS_PER_S;
    c->retry_max_interval_ns = 30 * NS_PER_S;
    c->retry_max_elapsed_ns = 60 * NS_PER_S;
    return c;
}

void otelprof_config_free(otelprof_config *cfg) {
    if (!cfg) return;
    free(cfg->output_dir);
    free(cfg->service_name);
    kv_free(cfg->resource_attrs, cfg->nresource_attrs);
    for (int i = 0; i < 2; i++) otlp_free(&cfg->otlp[i]);
    free(cfg);
}

void op_config_resolve_output_dir(otelprof_config *cfg) {
    const char *rel = cfg->output_dir;
    char cwd[PATH_MAX];
    if (!rel || rel[0] == '/' || !getcwd(cwd, sizeof cwd) || cwd[0] != '/') return;
    while (rel[0] == '.' && rel[1] == '/') /* "./x" and "././x" name cwd/x */
        for (rel++; *rel == '/'; rel++) {}
    if (strcmp(rel, ".") == 0) rel = "";
    size_t n = strlen(cwd) + 1 + strlen(rel) + 1;
    char *abs = malloc(n);
    if (!abs) return; /* still usable as it is */
    snprintf(abs, n, "%s%s%s", cwd, *rel && strcmp(cwd, "/") ? "/" : "", rel);
    free(cfg->output_dir);
    cfg->output_dir = abs;
}

otelprof_config *op_config_clone(const otelprof_config *cfg) {
    if (!cfg) return NULL;
    otelprof_config *c = malloc(sizeof *c);
    if (!c) return NULL;
    *c = *cfg;
    c->output_dir = NULL;
    c->service_name = NULL;
    c->resource_attrs = NULL;
    c->nresource_attrs = 0;
    memset(c->otlp, 0, sizeof c->otlp);
    for (int i = 0; i < 2; i++)
        if (otlp_copy(&c->otlp[i], &cfg->otlp[i]) < 0) goto fail;
    if (cfg->output_dir && !(c->output_dir = strdup(cfg->output_dir))) goto fail;
    if (cfg->service_name && !(c->service_name = strdup(cfg->service_name))) goto fail;
    if (cfg->nresource_attrs) {
        c->resource_attrs = calloc(cfg->nresource_attrs, sizeof *c->resource_attrs);
        if (!c->resource_attrs) goto fail;
        for (size_t i = 0; i < cfg->nresource_attrs; i++) {
            c->nresource_attrs = i + 1; /* so a failure below frees what was copied */
            c->resource_attrs[i].key = strdup(cfg->resource_attrs[i].key);
            c->resource_attrs[i].value = strdup(cfg->resource_attrs[i].value);
            if (!c->resource_attrs[i].key || !c->resource_attrs[i].value) goto fail;
        }
    }
    return c;
fail:
    otelprof_config_free(c);
    return NULL;
}

otelprof_error otelprof_config_set(otelprof_config *cfg, const char *key, const char *value,
                                   char *err, size_t errlen) {
    if (!cfg || !key) {
        set_err(err, errlen, "otelprof_config_set: config and option name must not be NULL");
        return OTELPROF_EINVAL;
    }
    const option *opt = find_option(key);
    if (opt) {
        if (!value) {
            set_err(err, errlen, "%s has no value: expected %s", key, opt->expect);
            return OTELPROF_EINVAL;
        }
        return apply(cfg, opt, key, value, err, errlen);
    }
    char q[256];
    quote_value(q, sizeof q, key);
    set_err(err, errlen, "unknown option \"%s\": expected one of " VALID_KEYS, q);
    return OTELPROF_EINVAL;
}

otelprof_error otelprof_config_from_env(otelprof_config *cfg, char *err, size_t errlen) {
    if (!cfg) {
        set_err(err, errlen, "otelprof_config_from_env: config must not be NULL");
        return OTELPROF_EINVAL;
    }
    for (size_t i = 0; i < NOPTIONS; i++) {
        const char *v = getenv(options[i].env);
        size_t len;
        if (!v || (trim(v, &len), len == 0)) continue; /* unset or blank: keep the default */
        otelprof_error e = apply(cfg, &options[i], options[i].env, v, err, errlen);
        if (e != OTELPROF_OK) return e;
    }
    /* OTELPROF_DISABLED is a second switch that can only turn profiling off, so it never
     * re-enables what OTEL_SDK_DISABLED turned off for every OpenTelemetry SDK in the process. */
    const char *v = getenv("OTELPROF_DISABLED");
    size_t len;
    if (v && (trim(v, &len), len != 0)) {
        int was = cfg->disabled;
        otelprof_error e = apply(cfg, find_option("disabled"), "OTELPROF_DISABLED", v, err, errlen);
        if (e != OTELPROF_OK) return e;
        cfg->disabled |= was;
    }
    return OTELPROF_OK;
}
