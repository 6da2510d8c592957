/* Whole-run folded stacks: every closed profile's samples merged by stack, written as "a;b;c N". */
#include "op_folded.h"
#include "op_intern.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OTHER_KEY "[other]"
#define UNKNOWN_NAME "[unknown]"

struct op_folded {
    op_intern tab;       /* stack key -> index into counts */
    uint64_t *counts;
    size_t counts_cap;
    size_t max_bytes;    /* 0 = unbounded */
    uint64_t total;      /* every sample added, "[other]" included */
    uint64_t other;      /* samples whose stack did not fit under max_bytes */
    char *key;           /* scratch for building one key; reused across samples */
    size_t key_cap;
};

op_folded *op_folded_new(size_t max_bytes) {
    op_folded *f = calloc(1, sizeof(*f));
    if (!f) return NULL;
    f->max_bytes = max_bytes;
    op_intern_init(&f->tab, 0);
    return f;
}

void op_folded_free(op_folded *f) {
    if (!f) return;
    op_intern_free(&f->tab);
    free(f->counts);
    free(f->key);
    free(f);
}

/* Makes room for need more bytes of key. A key longer than the whole cap could never be stored,
 * so refusing it here keeps the scratch buffer bounded too. */
static int key_reserve(op_folded *f, size_t len, size_t need) {
    if (len + need <= f->key_cap) return 0;
    if (f->max_bytes && len + need > f->max_bytes) return -1;
    size_t ncap = f->key_cap ? f->key_cap : 256;
    while (ncap < len + need) ncap *= 2;
    char *k = realloc(f->key, ncap);
    if (!k) return -1;
    f->key = k;
    f->key_cap = ncap;
    return 0;
}

/* Appends name with the separator and line breaks replaced, so every key is one line whose
 * frames split unambiguously on ';'. */
static int key_append(op_folded *f, size_t *len, const char *name) {
    size_t n = strlen(name);
    if (key_reserve(f, *len, n + 1) < 0) return -1;
    char *out = f->key + *len;
    if (*len) *out++ = ';';
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (c == ';') c = ':';
        else if (c == '\n' || c == '\r') c = ' ';
        *out++ = c;
    }
    *len = (size_t)(out - f->key);
    return 0;
}

static const char *frame_name(const op_profile *p, uint32_t idx) {
    if (idx >= p->nsyms || !p->syms) return UNKNOWN_NAME;
    const char *n = p->syms[idx].name;
    /* An empty frame would print as ";;", which readers of the format take as a missing frame. */
    return n && *n ? n : UNKNOWN_NAME;
}

/* Builds the root-first key of s in f->key; returns its length or -1 when it cannot be held. */
static long build_key(op_folded *f, const op_profile *p, const op_profile_sample *s) {
    size_t len = 0;
    if (!s->nframes || !s->frames) return key_append(f, &len, UNKNOWN_NAME) < 0 ? -1 : (long)len;
    for (uint32_t i = s->nframes; i-- > 0;)
        if (key_append(f, &len, frame_name(p, s->frames[i])) < 0) return -1;
    return (long)len;
}

/* Inserts key, keeping the table plus the counts array under max_bytes: the table is offered the
 * cap minus what counts will need once the table's entry arrays next double. */
static int32_t put_key(op_folded *f, const char *key, size_t len) {
    if (f->max_bytes) {
        size_t next = f->tab.cap_entries ? (size_t)f->tab.cap_entries * 2 : 64;
        size_t reserve = next * sizeof(uint64_t);
        f->tab.max_bytes = f->max_bytes > reserve ? f->max_bytes - reserve : 1;
    }
    int32_t i = op_intern_put(&f->tab, key, len, NULL);
    if (i < 0) return -1;
    if ((size_t)i >= f->counts_cap) {
        size_t ncap = f->tab.cap_entries;
        uint64_t *c = realloc(f->counts, ncap * sizeof(uint64_t));
        if (!c) return -1; /* the key stays interned with no count: written as 0, never lost */
        memset(c + f->counts_cap, 0, (ncap - f->counts_cap) * sizeof(uint64_t));
        f->counts = c;
        f->counts_cap = ncap;
    }
    return i;
}

void op_folded_add(op_folded *f, const op_profile *p) {
    if (!f || !p) return;
    for (size_t k = 0; k < p->nsamples; k++) {
        const op_profile_sample *s = &p->samples[k];
        if (s->count <= 0) continue;
        uint64_t c = (uint64_t)s->count;
        f->total += c;
        long len = build_key(f, p, s);
        int32_t i = len < 0 ? -1 : put_key(f, f->key, (size_t)len);
        if (i < 0) f->other += c;
        else f->counts[i] += c;
    }
}

size_t op_folded_nstacks(const op_folded *f) { return f ? op_intern_count(&f->tab) : 0; }
uint64_t op_folded_total(const op_folded *f) { return f ? f->total : 0; }
uint64_t op_folded_dropped(const op_folded *f) { return f ? f->other : 0; }

/* Orders stacks frame by frame: end of key < ';' < any other byte. Plain byte order would put
 * "a;b!" between "a;b" and "a;b;c" and split the subtree of frame b. */
static int line_cmp(const void *pa, const void *pb) {
    const op_folded_line *a = pa, *b = pb;
    size_t n = a->len < b->len ? a->len : b->len;
    for (size_t i = 0; i < n; i++) {
        unsigned ca = (unsigned char)a->stack[i], cb = (unsigned char)b->stack[i];
        if (ca == cb) continue;
        ca = ca == ';' ? 0 : ca + 1;
        cb = cb == ';' ? 0 : cb + 1;
        return ca < cb ? -1 : 1;
    }
    return a->len < b->len ? -1 : a->len > b->len;
}

op_folded_line *op_folded_lines(const op_folded *f, size_t *n) {
    *n = 0;
    if (!f) return NULL;
    uint32_t nkeys = op_intern_count(&f->tab);
    /* A real root-only frame named "[other]" shares the overflow line rather than duplicating it. */
    int32_t other_at = f->other ? op_intern_find(&f->tab, OTHER_KEY, strlen(OTHER_KEY)) : -1;
    size_t total = nkeys + (f->other && other_at < 0 ? 1 : 0);
    if (!total) return NULL;
    op_folded_line *v = malloc(total * sizeof(*v));
    if (!v) {
        *n = SIZE_MAX;
        return NULL;
    }
    for (uint32_t i = 0; i < nkeys; i++) {
        v[i].stack = op_intern_key(&f->tab, i, &v[i].len);
        v[i].count = i < f->counts_cap ? f->counts[i] : 0;
        if ((int32_t)i == other_at) v[i].count += f->other;
    }
    if (total > nkeys) {
        v[nkeys].stack = OTHER_KEY;
        v[nkeys].len = strlen(OTHER_KEY);
        v[nkeys].count = f->other;
    }
    qsort(v, total, sizeof(*v), line_cmp);
    *n = total;
    return v;
}

long op_folded_print(const op_folded *f, FILE *fp) {
    if (!f || !fp) return -1;
    size_t n;
    op_folded_line *v = op_folded_lines(f, &n);
    if (!v && n) return -1;
    long bytes = 0;
    int err = 0;
    for (size_t i = 0; i < n && !err; i++) {
        if (fwrite(v[i].stack, 1, v[i].len, fp) != v[i].len) err = 1;
        int w = fprintf(fp, " %" PRIu64 "\n", v[i].count);
        if (w < 0) err = 1;
        bytes += (long)v[i].len + w;
    }
    free(v);
    return err ? -1 : bytes;
}
