/* Self-contained HTML flame graph: the folded stacks folded into a call tree, embedded as JSON. */
#include "op_folded.h"
#include "op_intern.h"
#include "flamegraph_template.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Length of the valid UTF-8 sequence at s[0..n), with its code point in *cp; 0 when invalid
 * (overlong, surrogate, past U+10FFFF, truncated), so the caller replaces just that byte. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c < 0x80) { *cp = c; return 1; }
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;      /* overlong */
        else if (c == 0xED) hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;      /* overlong */
        else if (c == 0xF4) hi = 0x8F; /* past U+10FFFF */
    } else return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    uint32_t v = c & (0xFFu >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

/* A JSON string safe inside <script>: no '<', '>' or '&' can start a tag, comment or entity,
 * U+2028/2029 are escaped for older JavaScript parsers, invalid UTF-8 becomes U+FFFD. */
static void put_json_str(FILE *fp, const char *p, size_t n) {
    const unsigned char *s = (const unsigned char *)p;
    fputc('"', fp);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = utf8_seq(s + i, n - i, &cp);
        if (!len) {
            fputs("\\ufffd", fp);
            i++;
            continue;
        }
        if (cp == '"') fputs("\\\"", fp);
        else if (cp == '\\') fputs("\\\\", fp);
        else if (cp < 0x20 || cp == '<' || cp == '>' || cp == '&' || cp == '\'' || cp == 0x7F ||
                 cp == 0x2028 || cp == 0x2029)
            fprintf(fp, "\\u%04" PRIx32, cp);
        else fwrite(s + i, 1, len, fp);
        i += len;
    }
    fputc('"', fp);
}

/* Title text for the <title> element: markup characters as entities, controls as spaces. */
static void put_html_text(FILE *fp, const char *p) {
    const unsigned char *s = (const unsigned char *)p;
    size_t n = strlen(p);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = utf8_seq(s + i, n - i, &cp);
        if (!len) {
            fputs("\xEF\xBF\xBD", fp); /* U+FFFD */
            i++;
            continue;
        }
        switch (cp) {
        case '&': fputs("&amp;", fp); break;
        case '<': fputs("&lt;", fp); break;
        case '>': fputs("&gt;", fp); break;
        case '"': fputs("&quot;", fp); break;
        case '\'': fputs("&#39;", fp); break;
        default:
            if (cp < 0x20 || cp == 0x7F) fputc(' ', fp);
            else fwrite(s + i, 1, len, fp);
        }
        i += len;
    }
}

/* The call tree in preorder, one node per distinct frame path. */
typedef struct tree {
    uint32_t *depth, *name;
    uint64_t *value;
    size_t n, cap;
    op_intern names;   /* frame name -> index in the JSON names array */
    struct { const char *s; size_t len; uint32_t node; } *path; /* frames of the previous line */
    size_t path_cap;
} tree;

static int tree_push(tree *t, uint32_t depth, uint32_t name) {
    if (t->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 1024;
        uint32_t *d = realloc(t->depth, ncap * sizeof(*d));
        if (!d) return -1;
        t->depth = d;
        uint32_t *nm = realloc(t->name, ncap * sizeof(*nm));
        if (!nm) return -1;
        t->name = nm;
        uint64_t *v = realloc(t->value, ncap * sizeof(*v));
        if (!v) return -1;
        t->value = v;
        t->cap = ncap;
    }
    t->depth[t->n] = depth;
    t->name[t->n] = name;
    t->value[t->n] = 0;
    t->n++;
    return 0;
}

/* Lines arrive sorted frame by frame, so a frame path's whole subtree is one run of lines: a
 * line shares the nodes of the previous line's common prefix and opens new ones after it. */
static int tree_build(tree *t, const op_folded_line *v, size_t nlines) {
    for (size_t l = 0; l < nlines; l++) {
        const char *s = v[l].stack, *end = s + v[l].len;
        size_t d = 0;
        int shared = 1;
        for (const char *f = s;;) {
            const char *semi = memchr(f, ';', (size_t)(end - f));
            size_t len = (size_t)((semi ? semi : end) - f);
            if (d == t->path_cap) {
                size_t ncap = t->path_cap ? t->path_cap * 2 : 64;
                void *p = realloc(t->path, ncap * sizeof(*t->path));
                if (!p) return -1;
                t->path = p;
                memset(t->path + t->path_cap, 0, (ncap - t->path_cap) * sizeof(*t->path));
                t->path_cap = ncap;
            }
            if (shared && (!t->path[d].s || t->path[d].len != len || memcmp(t->path[d].s, f, len)))
                shared = 0;
            if (!shared) {
                int32_t name = op_intern_put(&t->names, f, len, NULL);
                if (name < 0 || tree_push(t, (uint32_t)d + 1, (uint32_t)name) < 0) return -1;
                t->path[d].s = f;
                t->path[d].len = len;
                t->path[d].node = (uint32_t)(t->n - 1);
            }
            t->value[t->path[d].node] += v[l].count;
            d++;
            if (!semi) break;
            f = semi + 1;
        }
        /* Deeper entries belong to the previous line only; the next line must not share them. */
        if (d < t->path_cap) t->path[d].s = NULL;
    }
    return 0;
}

static void tree_free(tree *t) {
    free(t->depth);
    free(t->name);
    free(t->value);
    free(t->path);
    op_intern_free(&t->names);
}

static void put_json(FILE *fp, const tree *t, const char *title, size_t nstacks, uint64_t dropped) {
    fputs("{\"title\":", fp);
    put_json_str(fp, title, strlen(title));
    fprintf(fp, ",\"stacks\":%zu,\"dropped\":%" PRIu64 ",\"names\":[", nstacks, dropped);
    for (uint32_t i = 0; i < op_intern_count(&t->names); i++) {
        size_t len;
        const char *k = op_intern_key(&t->names, i, &len);
        if (i) fputc(',', fp);
        put_json_str(fp, k, len);
    }
    fputs("],\"nodes\":[", fp);
    for (size_t i = 0; i < t->n; i++) {
        /* A line break now and then keeps the file friendly to editors and diff tools. */
        fprintf(fp, "%s%" PRIu32 ",%" PRIu32 ",%" PRIu64, i ? (i % 16 ? "," : ",\n") : "",
                t->depth[i], t->name[i], t->value[i]);
    }
    fputs("]}", fp);
}

long op_html_print(const op_folded *f, FILE *fp, const char *title) {
    if (!f || !fp) return -1;
    if (!title) title = "otelprof";
    size_t nlines;
    op_folded_line *v = op_folded_lines(f, &nlines);
    if (!v && nlines) return -1;
    tree t;
    memset(&t, 0, sizeof t);
    op_intern_init(&t.names, 0);
    long ret = -1, start = ftell(fp);
    if (tree_build(&t, v, nlines) < 0) {
        errno = ENOMEM;
        goto out;
    }
    fputs(op_fg_template_head, fp);
    put_html_text(fp, title);
    fputs(op_fg_template_mid, fp);
    put_json(fp, &t, title, op_folded_nstacks(f), op_folded_dropped(f));
    fputs(op_fg_template_tail, fp);
    long end = ftell(fp);
    if (!ferror(fp) && start >= 0 && end >= start) ret = end - start;
out:
    tree_free(&t);
    free(v);
    return ret;
}
