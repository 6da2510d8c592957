/* Unit test: folded stacks merge across profiles, sanitise names, honour the cap, and the HTML
 * flame graph is self-contained and escapes every name. */
#include "op_folded.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s)\n", __FILE__, __LINE__, #c); failures++; } } while (0)

static op_symbol sym(const char *name) {
    op_symbol s;
    memset(&s, 0, sizeof s);
    s.name = name;
    s.mapping = -1;
    s.frame_type = "native";
    return s;
}

static op_profile_sample sample(const uint32_t *frames, uint32_t n, int64_t count) {
    op_profile_sample s;
    memset(&s, 0, sizeof s);
    s.frames = frames;
    s.nframes = n;
    s.count = count;
    s.value = count;
    return s;
}

static op_profile profile(const op_symbol *syms, size_t nsyms, const op_profile_sample *v, size_t n) {
    op_profile p;
    memset(&p, 0, sizeof p);
    p.syms = syms;
    p.nsyms = nsyms;
    p.samples = v;
    p.nsamples = n;
    p.period_ns = 10000000;
    return p;
}

static char *slurp(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, fp)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(fp);
    if (buf) buf[n] = 0;
    if (len) *len = n;
    return buf;
}

static size_t count_str(const char *hay, const char *needle) {
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* Strict UTF-8 check: what the page's <meta charset> promises the browser. */
static int valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 :
                     c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (!len || i + len > n) return 0;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return 0;
        if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] > 0x9F) ||
            (c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] > 0x8F))
            return 0;
        i += len;
    }
    return 1;
}

/* The library prints to a stream; creating the file safely is output_files.c's job. */
static long folded_to_file(const op_folded *f, const char *path) {
    FILE *fp = fopen(path, "w");
    if (!fp) return -1;
    long n = op_folded_print(f, fp);
    return fclose(fp) == 0 ? n : -1;
}

static long html_to_file(const op_folded *f, const char *path, const char *title) {
    FILE *fp = fopen(path, "w");
    if (!fp) return -1;
    long n = op_html_print(f, fp, title);
    return fclose(fp) == 0 ? n : -1;
}

static void test_merge_write_html(const char *dir) {
    /* Profile 1 and 2 index their symbol tables differently; merging goes by name. */
    op_symbol s1[] = {sym("main"), sym("foo"), sym("bar"), sym("we;ird\nna\rme"),
                      sym("baz&'\"<\xff>"), sym("line\xe2\x80\xa8sep")};
    uint32_t a1[] = {2, 1, 0}, b1[] = {1, 0}, c1[] = {3, 0}, d1[] = {4, 0}, e1[] = {5, 0};
    op_profile_sample v1[] = {sample(a1, 3, 5), sample(b1, 2, 3), sample(c1, 2, 2), sample(d1, 2, 1),
                              sample(e1, 2, 1)};
    op_profile p1 = profile(s1, 6, v1, 5);

    op_symbol s2[] = {sym("bar"), sym("foo"), sym("main"), sym("x</script><b>y</b>"), sym("")};
    uint32_t a2[] = {0, 1, 2}, b2[] = {3, 2}, c2[] = {4, 2}, bad[] = {99, 2};
    op_profile_sample v2[] = {sample(a2, 3, 7), sample(b2, 2, 1), sample(a2, 0, 4),
                              sample(b2, 2, 0) /* no samples: ignored */, sample(c2, 2, 1),
                              sample(bad, 2, 1)};
    op_profile p2 = profile(s2, 5, v2, 6);

    op_folded *f = op_folded_new(1 << 20);
    CHECK(f != NULL);
    op_folded_add(f, &p1);
    CHECK(op_folded_total(f) == 12);
    CHECK(op_folded_nstacks(f) == 5);
    op_folded_add(f, &p2);
    CHECK(op_folded_total(f) == 12 + 7 + 1 + 4 + 1 + 1);
    /* new: main;x</script>..., [unknown] (no frames), main;[unknown] (empty and out-of-range) */
    CHECK(op_folded_nstacks(f) == 8);
    CHECK(op_folded_dropped(f) == 0);

    char path[512];
    snprintf(path, sizeof path, "%s/all.folded", dir);
    long w = folded_to_file(f, path);
    size_t len;
    char *txt = slurp(path, &len);
    CHECK(txt != NULL);
    CHECK(w == (long)len);
    /* Sorted frame by frame; names sanitised so every stack is one line. */
    const char *want[] = {
        "[unknown] 4",
        "main;[unknown] 2",
        "main;baz&'\"<\xff> 1",
        "main;foo 3",
        "main;foo;bar 12",
        "main;line\xe2\x80\xa8sep 1",
        "main;we:ird na me 2",
        "main;x</script><b>y</b> 1",
    };
    size_t nl = 0;
    uint64_t sum = 0;
    for (char *save = NULL, *line = txt ? strtok_r(txt, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save), nl++) {
        if (nl < sizeof want / sizeof *want) {
            CHECK(strcmp(line, want[nl]) == 0);
            if (strcmp(line, want[nl]) != 0) fprintf(stderr, "  line %zu: '%s'\n", nl, line);
        }
        sum += strtoull(strrchr(line, ' ') + 1, NULL, 10);
    }
    CHECK(nl == sizeof want / sizeof *want);
    CHECK(sum == op_folded_total(f));
    free(txt);

    snprintf(path, sizeof path, "%s/flame.html", dir);
    w = html_to_file(f, path, "cpu <&> \"svc\"");
    char *html = slurp(path, &len);
    CHECK(html != NULL);
    if (!html) html = calloc(1, 1);
    CHECK(w == (long)len);
    CHECK(strncmp(html, "<!DOCTYPE html>", 15) == 0);
    CHECK(valid_utf8((const unsigned char *)html, len));
    /* Nothing to fetch: no remote URL, no attribute that would load anything. */
    CHECK(!strstr(html, "http://") && !strstr(html, "https://"));
    CHECK(!strstr(html, "src=") && !strstr(html, "href=") && !strstr(html, "@import"));
    CHECK(strstr(html, "<title>cpu &lt;&amp;&gt; &quot;svc&quot;</title>") != NULL);
    CHECK(strstr(html, "\"title\":\"cpu \\u003c\\u0026\\u003e \\\"svc\\\"\"") != NULL);
    CHECK(strstr(html, "\"main\"") && strstr(html, "\"foo\"") && strstr(html, "\"bar\""));
    CHECK(strstr(html, "\"we:ird na me\"") != NULL);
    CHECK(strstr(html, "\"x\\u003c/script\\u003e\\u003cb\\u003ey\\u003c/b\\u003e\"") != NULL);
    CHECK(strstr(html, "\"baz\\u0026\\u0027\\\"\\u003c\\ufffd\\u003e\"") != NULL);
    CHECK(strstr(html, "\"line\\u2028sep\"") != NULL);
    /* Only the page's own two script elements close; the name cannot end the data block. */
    CHECK(count_str(html, "</script") == 2);
    CHECK(!strstr(html, "<b>"));
    CHECK(strstr(html, "\"stacks\":8,\"dropped\":0") != NULL);
    free(html);

    /* A stream that fails its writes makes both report -1. */
    FILE *ro = fopen("/dev/null", "r");
    CHECK(ro != NULL);
    CHECK(op_folded_print(f, ro) == -1);
    CHECK(op_html_print(f, ro, "t") == -1);
    fclose(ro);
    op_folded_free(f);
}

/* Stacks sharing a frame prefix become one subtree even when a sibling name sorts between them
 * byte-wise ("a;b!" lies between "a;b" and "a;b;c"). */
static void test_tree(const char *dir) {
    op_symbol s[] = {sym("a"), sym("b"), sym("c"), sym("b!")};
    uint32_t ab[] = {1, 0}, abc[] = {2, 1, 0}, ab2[] = {3, 0};
    op_profile_sample v[] = {sample(ab, 2, 1), sample(ab2, 2, 4), sample(abc, 3, 2)};
    op_profile p = profile(s, 4, v, 3);
    op_folded *f = op_folded_new(0);
    op_folded_add(f, &p);
    char path[512];
    snprintf(path, sizeof path, "%s/tree.folded", dir);
    CHECK(folded_to_file(f, path) > 0);
    char *txt = slurp(path, NULL);
    CHECK(txt && strcmp(txt, "a;b 1\na;b;c 2\na;b! 4\n") == 0);
    free(txt);
    snprintf(path, sizeof path, "%s/tree.html", dir);
    CHECK(html_to_file(f, path, NULL) > 0);
    char *html = slurp(path, NULL);
    /* preorder (depth, name, samples): a 7 > b 3 > c 2, then b! 4 */
    CHECK(html && strstr(html, "\"names\":[\"a\",\"b\",\"c\",\"b!\"],\"nodes\":[1,0,7,2,1,3,3,2,2,2,3,4]"));
    free(html);

    /* An empty accumulator still writes an empty file and a working page. */
    op_folded *e = op_folded_new(0);
    snprintf(path, sizeof path, "%s/empty.folded", dir);
    CHECK(folded_to_file(e, path) == 0);
    snprintf(path, sizeof path, "%s/empty.html", dir);
    CHECK(html_to_file(e, path, "empty") > 0);
    op_folded_free(e);
    op_folded_free(f);
}

static void test_cap(const char *dir) {
    enum { N = 5000 };
    static op_symbol syms[N + 1];
    static char names[N][16];
    static uint32_t frames[N][2];
    static op_profile_sample v[N];
    syms[N] = sym("root");
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "fn_%d", i);
        syms[i] = sym(names[i]);
        frames[i][0] = (uint32_t)i;
        frames[i][1] = N;
        v[i] = sample(frames[i], 2, 1 + i % 3);
    }
    op_profile p = profile(syms, N + 1, v, N);
    op_folded *f = op_folded_new(16 * 1024);
    op_folded_add(f, &p);
    uint64_t total = 0;
    for (int i = 0; i < N; i++) total += (uint64_t)(1 + i % 3);
    CHECK(op_folded_total(f) == total);
    CHECK(op_folded_nstacks(f) > 10 && op_folded_nstacks(f) < N);
    CHECK(op_folded_dropped(f) > 0);
    /* Stacks already held keep counting after the cap is reached. */
    op_folded_add(f, &p);
    CHECK(op_folded_total(f) == 2 * total);
    CHECK(op_folded_nstacks(f) < N);

    char path[512];
    snprintf(path, sizeof path, "%s/cap.folded", dir);
    CHECK(folded_to_file(f, path) > 0);
    char *txt = slurp(path, NULL);
    CHECK(txt != NULL);
    char want[64];
    snprintf(want, sizeof want, "\n[other] %llu\n", (unsigned long long)op_folded_dropped(f));
    CHECK(txt && (strstr(txt, want) || strncmp(txt, want + 1, strlen(want) - 1) == 0));
    uint64_t sum = 0;
    size_t lines = 0;
    for (char *save = NULL, *line = txt ? strtok_r(txt, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save), lines++)
        sum += strtoull(strrchr(line, ' ') + 1, NULL, 10);
    CHECK(sum == 2 * total);
    CHECK(lines == op_folded_nstacks(f) + 1);
    free(txt);
    snprintf(path, sizeof path, "%s/cap.html", dir);
    CHECK(html_to_file(f, path, "capped") > 0);
    op_folded_free(f);

    /* A cap too small for anything sends every sample to "[other]". */
    f = op_folded_new(64);
    op_folded_add(f, &p);
    CHECK(op_folded_nstacks(f) == 0 && op_folded_dropped(f) == total);
    snprintf(path, sizeof path, "%s/tiny.folded", dir);
    CHECK(folded_to_file(f, path) > 0);
    txt = slurp(path, NULL);
    snprintf(want, sizeof want, "[other] %llu\n", (unsigned long long)total);
    CHECK(txt && strcmp(txt, want) == 0);
    free(txt);
    op_folded_free(f);
}

int main(void) {
    char dir[] = "/tmp/test_folded.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_merge_write_html(dir);
    test_tree(dir);
    test_cap(dir);
    if (!getenv("TEST_FOLDED_KEEP")) {
        /* Left in place when asked, so the generated pages can be opened in a browser. */
        DIR *d = opendir(dir);
        struct dirent *e;
        char p[512];
        while (d && (e = readdir(d)))
            if (e->d_name[0] != '.' && snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < (int)sizeof p)
                unlink(p);
        if (d) closedir(d);
        rmdir(dir);
    } else {
        printf("test_folded: output kept in %s\n", dir);
    }
    if (failures) { printf("test_folded: %d failures\n", failures); return 1; }
    printf("test_folded: ok\n");
    return 0;
}
