/* Unit test: OTLP/HTTP export helpers: endpoint URLs, header and endpoint parsing, backoff with
 * jitter, Retry-After, status classes and google.rpc.Status messages. */
#include "op_config.h"
#include "op_export_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s)\n", __FILE__, __LINE__, #c); failures++; } } while (0)

static int url_is(const char *general, const char *profiles, const char *want) {
    char *u = op_export_url(general, profiles);
    int ok = want ? (u && strcmp(u, want) == 0) : u == NULL;
    if (!ok) fprintf(stderr, "url(%s, %s) = %s, want %s\n", general ? general : "-",
                     profiles ? profiles : "-", u ? u : "NULL", want ? want : "NULL");
    free(u);
    return ok;
}

static void test_urls(void) {
    CHECK(url_is("http://localhost:4318", NULL, "http://localhost:4318/v1development/profiles"));
    CHECK(url_is("http://localhost:4318/", NULL, "http://localhost:4318/v1development/profiles"));
    CHECK(url_is("https://gw.example/otlp//", NULL, "https://gw.example/otlp/v1development/profiles"));
    /* The signal-specific endpoint is used exactly as given, and wins. */
    CHECK(url_is("http://a:4318", "http://b:9999/custom", "http://b:9999/custom"));
    CHECK(url_is(NULL, "http://b:9999", "http://b:9999"));
    CHECK(url_is(NULL, NULL, NULL));
    CHECK(url_is("", "", NULL));
}

static void test_endpoint_check(void) {
    static const struct { const char *s; int ok; } t[] = {
        {"http://localhost:4318", 1}, {"https://collector.example.com", 1}, {"HTTP://x", 1},
        {"http://127.0.0.1:4318/base/path", 1}, {"http://[::1]:4318", 1}, {"http://user:pw@h:1", 1},
        {" http://padded:4318 ", 1},
        {"localhost:4318", 0}, {"grpc://x:4317", 0}, {"http://", 0}, {"http://:4318", 0},
        {"http://h:0", 0}, {"http://h:65536", 0}, {"http://h:43a8", 0}, {"http://h:", 0},
        {"http://h h", 0}, {"http://[::1", 0}, {"", 0}, {"http://h\n", 1 /* trimmed */},
        {"http://h\x01x", 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char why[200] = "";
        int rc = op_check_endpoint(t[i].s, why, sizeof why);
        if ((rc == 0) != t[i].ok) {
            fprintf(stderr, "endpoint \"%s\": rc %d (%s)\n", t[i].s, rc, why);
            failures++;
        }
        if (rc != 0) CHECK(why[0] == ';');
    }
}

static void test_headers(void) {
    op_kv *kv = NULL;
    size_t n = 0;
    char why[200] = "";
    CHECK(op_parse_headers(" api-key = secret%20one , x-scope=a%2Cb%3Dc,empty=,,", &kv, &n, why, sizeof why) == 0);
    CHECK(n == 3);
    if (n == 3) {
        CHECK(strcmp(kv[0].key, "api-key") == 0 && strcmp(kv[0].value, "secret one") == 0);
        CHECK(strcmp(kv[1].key, "x-scope") == 0 && strcmp(kv[1].value, "a,b=c") == 0);
        CHECK(strcmp(kv[2].key, "empty") == 0 && strcmp(kv[2].value, "") == 0);
    }
    op_kv_free(kv, n);
    CHECK(op_parse_headers("", &kv, &n, why, sizeof why) == 0 && n == 0);
    op_kv_free(kv, n);
    /* '=' inside a value after the first is part of the value (base64 padding). */
    CHECK(op_parse_headers("Authorization=Basic dXNlcjpwdw==", &kv, &n, why, sizeof why) == 0 && n == 1);
    if (n == 1) CHECK(strcmp(kv[0].value, "Basic dXNlcjpwdw==") == 0);
    op_kv_free(kv, n);

    static const char *const bad[] = {
        "novalue", "a=1,novalue", "=v", "bad key=v", "k(x)=v", "k=%zz", "k=%0", "k=%00",
        "k=line%0d%0aX-Injected: 1", "k=tab%09ok%7f", "%zz=v",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        kv = NULL;
        n = 0;
        int rc = op_parse_headers(bad[i], &kv, &n, why, sizeof why);
        if (rc != -1) {
            fprintf(stderr, "headers \"%s\" accepted\n", bad[i]);
            failures++;
            op_kv_free(kv, n);
        }
        CHECK(strstr(why, "entry ") != NULL);
    }
    /* The error names the entry by position and never shows a value. */
    CHECK(op_parse_headers("a=1,token=s3cr%zz", &kv, &n, why, sizeof why) == -1);
    CHECK(strstr(why, "entry 2") && !strstr(why, "s3cr"));
}

static void test_backoff(void) {
    const int64_t s = 1000000000ll;
    /* Without jitter's randomness (rnd = 0) each delay is the lower half of its window. */
    CHECK(op_export_backoff_ns(1, s, 30 * s, 0) == s / 2);
    CHECK(op_export_backoff_ns(2, s, 30 * s, 0) == s);
    CHECK(op_export_backoff_ns(3, s, 30 * s, 0) == 2 * s);
    CHECK(op_export_backoff_ns(10, s, 30 * s, 0) == 15 * s);
    CHECK(op_export_backoff_ns(1000, s, 30 * s, 0) == 15 * s); /* no overflow at huge counts */
    CHECK(op_export_backoff_ns(0, s, 30 * s, 0) == s / 2);
    /* Every random value lands in [d/2, d]. */
    uint64_t x = 88172645463325252ull;
    for (int retry = 1; retry <= 8; retry++) {
        int64_t d = s << (retry - 1);
        if (d > 30 * s) d = 30 * s;
        int64_t lo = INT64_MAX, hi = 0;
        for (int i = 0; i < 2000; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            int64_t b = op_export_backoff_ns(retry, s, 30 * s, x);
            CHECK(b >= d / 2 && b <= d);
            if (b < lo) lo = b;
            if (b > hi) hi = b;
        }
        CHECK(hi - lo > d / 4); /* and they are spread, not all equal */
    }
    CHECK(op_export_backoff_ns(3, 1000000, 5000000, 12345) <= 4000000);
}

static void test_retry_after(void) {
    int64_t d = -1;
    CHECK(op_export_retry_after("3", 0, &d) == 0 && d == 3000000000ll);
    CHECK(op_export_retry_after(" 0 ", 0, &d) == 0 && d == 0);
    CHECK(op_export_retry_after("120\r\n", 0, &d) == 0 && d == 120000000000ll);
    /* Sun, 06 Nov 1994 08:49:37 GMT = 784111777 */
    CHECK(op_export_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111770, &d) == 0 && d == 7000000000ll);
    CHECK(op_export_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111800, &d) == 0 && d == 0);
    CHECK(op_export_retry_after("soon", 0, &d) == -1);
    CHECK(op_export_retry_after("-1", 0, &d) == -1);
    CHECK(op_export_retry_after("1.5", 0, &d) == -1);
    CHECK(op_export_retry_after("", 0, &d) == -1);
    CHECK(op_export_retry_after("99999999999999999999", 0, &d) == -1);
    CHECK(op_export_retry_after(NULL, 0, &d) == -1);
}

static void test_status_class(void) {
    CHECK(op_export_status_class(200) == OP_HTTP_OK);
    CHECK(op_export_status_class(202) == OP_HTTP_OK);
    static const long retry[] = {429, 502, 503, 504};
    for (size_t i = 0; i < 4; i++) CHECK(op_export_status_class(retry[i]) == OP_HTTP_RETRY);
    static const long reject[] = {400, 401, 403, 404, 413, 415, 500, 501, 301, 0};
    for (size_t i = 0; i < sizeof reject / sizeof reject[0]; i++)
        CHECK(op_export_status_class(reject[i]) == OP_HTTP_REJECT);
}

static void test_status_message(void) {
    /* google.rpc.Status{code: 3, message: "bad profile", details: [Any{type_url: "t"}]} */
    static const uint8_t st[] = {0x08, 0x03, 0x12, 0x0b, 'b', 'a', 'd', ' ', 'p', 'r', 'o', 'f', 'i', 'l', 'e',
                                 0x1a, 0x03, 0x0a, 0x01, 't'};
    char out[64];
    CHECK(op_export_status_message(st, sizeof st, out, sizeof out) == 11 && strcmp(out, "bad profile") == 0);
    /* Control characters never reach the log line; long messages are cut. */
    static const uint8_t nl[] = {0x12, 0x04, 'a', '\n', 'b', 0x1b};
    CHECK(op_export_status_message(nl, sizeof nl, out, sizeof out) == 3 && strcmp(out, "a b") == 0);
    char small[8];
    static const uint8_t longmsg[] = {0x12, 0x0a, '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'};
    CHECK(op_export_status_message(longmsg, sizeof longmsg, small, sizeof small) > 0);
    CHECK(strlen(small) < sizeof small && strstr(small, "..."));
    static const uint8_t trunc[] = {0x12, 0x20, 'x'};
    CHECK(op_export_status_message(trunc, sizeof trunc, out, sizeof out) == -1);
    static const uint8_t nomsg[] = {0x08, 0x03};
    CHECK(op_export_status_message(nomsg, sizeof nomsg, out, sizeof out) == -1);
    CHECK(op_export_status_message((const uint8_t *)"<html>", 6, out, sizeof out) == -1);
}

int main(void) {
    test_urls();
    test_endpoint_check();
    test_headers();
    test_backoff();
    test_retry_after();
    test_status_class();
    test_status_message();
    if (failures) fprintf(stderr, "%d failure(s)\n", failures);
    else printf("test_export_http: ok\n");
    return failures != 0;
}
