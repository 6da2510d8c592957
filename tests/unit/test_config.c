/* Unit test: configuration parsing and errors, environment mapping, resource attributes, the
 * memory budget, adapter counters and the self-metric names. */
#include "op_config.h"
#include "op_log.h"
#include "op_resource.h"
#include "op_stats.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s)\n", __FILE__, __LINE__, #c); failures++; } } while (0)

static char err[512];

static otelprof_error set(otelprof_config *c, const char *k, const char *v) {
    err[0] = '\0';
    return otelprof_config_set(c, k, v, err, sizeof err);
}

/* Every rejection is exactly one line that names the option and quotes the value. */
static int one_line_naming(const char *name, const char *value) {
    char q[300];
    snprintf(q, sizeof q, "%s=\"%s\" is invalid: expected ", name, value);
    return strncmp(err, q, strlen(q)) == 0 && !strchr(err, '\n');
}

static const char *const env_vars[] = {
    "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SDK_DISABLED", "OTELPROF_DISABLED",
    "OTELPROF_MODE", "OTELPROF_INTERVAL", "OTELPROF_EXPORT_INTERVAL", "OTELPROF_OUTPUT_DIR",
    "OTELPROF_FORMATS", "OTELPROF_MAX_DEPTH", "OTELPROF_NATIVE_FRAMES", "OTELPROF_LOG_LEVEL",
    "OTELPROF_MAX_THREADS", "OTELPROF_MAX_MEMORY", "OTELPROF_WALL_THREADS_PER_TICK",
    "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROFILES_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_PROFILES_HEADERS", "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_PROFILES_COMPRESSION", "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_PROFILES_TIMEOUT", "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_PROFILES_PROTOCOL", "OTEL_EXPORTER_OTLP_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_PROFILES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_PROFILES_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_PROFILES_CLIENT_CERTIFICATE", "OTELPROF_EXPORT_QUEUE_MAX",
    "OTELPROF_EXPORT_RETRY_INITIAL", "OTELPROF_EXPORT_RETRY_MAX_INTERVAL",
    "OTELPROF_EXPORT_RETRY_MAX_ELAPSED",
};

static void clear_env(void) {
    for (size_t i = 0; i < sizeof env_vars / sizeof env_vars[0]; i++) unsetenv(env_vars[i]);
}

static void test_defaults(void) {
    otelprof_config *c = otelprof_config_new();
    CHECK(c != NULL);
    if (!c) return;
    CHECK(c->mode == OP_MODE_CPU);
    CHECK(c->interval_ns == 10000000);
    CHECK(c->export_interval_ns == 10000000000ll);
    CHECK(c->output_dir && strcmp(c->output_dir, "./otelprof-out") == 0);
    CHECK(c->output_dir_set == 0);
    CHECK(c->formats == OP_FMT_ALL);
    CHECK(c->max_depth == 128);
    CHECK(c->native_frames == 1 && c->native_frames_set == 0);
    CHECK(c->log_level == OP_LOG_WARN);
    CHECK(c->disabled == 0);
    CHECK(c->service_name == NULL);
    CHECK(c->resource_attrs == NULL && c->nresource_attrs == 0);
    CHECK(c->max_threads == 4096);
    CHECK(c->max_memory == 64ll * 1024 * 1024);
    CHECK(c->wall_threads_per_tick == 64);
    otelprof_config_free(c);
    otelprof_config_free(NULL); /* harmless */
}

static void test_duration_table(void) {
    static const struct { const char *s; int ok; int64_t ns; } t[] = {
        {"10ms", 1, 10000000}, {"100us", 1, 100000}, {"250ns", 1, 250}, {"2s", 1, 2000000000},
        {"1m", 1, 60000000000ll}, {"20", 1, 20000000}, {"0", 1, 0}, {"0ns", 1, 0},
        {"10MS", 1, 10000000}, {" 5ms ", 1, 5000000}, {"007s", 1, 7000000000ll},
        {"9223372036854775807ns", 1, INT64_MAX},
        {"9223372036854775808ns", 0, 0}, {"9223372036855ms", 0, 0},
        {"99999999999999999999999", 0, 0}, {"-1ms", 0, 0}, {"+1ms", 0, 0}, {"", 0, 0},
        {"ms", 0, 0}, {"10parsecs", 0, 0}, {"1.5s", 0, 0}, {"10 ms", 0, 0}, {"10msx", 0, 0},
        {"10h", 0, 0}, {"0x10", 0, 0}, {"1e3", 0, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int64_t ns = -7;
        int rc = op_parse_duration(t[i].s, &ns);
        if ((rc == 0) != t[i].ok || (t[i].ok && ns != t[i].ns)) {
            fprintf(stderr, "duration \"%s\": rc=%d ns=%lld\n", t[i].s, rc, (long long)ns);
            failures++;
        }
        if (!t[i].ok) CHECK(ns == -7); /* untouched on failure */
    }
    int64_t ns;
    CHECK(op_parse_duration(NULL, &ns) == -1);
}

static void test_size_table(void) {
    static const struct { const char *s; int ok; int64_t b; } t[] = {
        {"64MB", 1, 64ll << 20}, {"64MiB", 1, 64ll << 20}, {"512KB", 1, 512ll << 10},
        {"512kib", 1, 512ll << 10}, {"1GB", 1, 1ll << 30}, {"1GiB", 1, 1ll << 30},
        {"4096", 1, 4096}, {"100B", 1, 100}, {"0", 1, 0}, {" 2mb", 1, 2ll << 20},
        {"8589934591GiB", 1, 8589934591ll << 30},
        {"8589934592GiB", 0, 0}, {"9223372036854775808", 0, 0}, {"-1MB", 0, 0}, {"", 0, 0},
        {"MB", 0, 0}, {"1TB", 0, 0}, {"1.5GB", 0, 0}, {"1 MB", 0, 0}, {"12q", 0, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int64_t b = -7;
        int rc = op_parse_size(t[i].s, &b);
        if ((rc == 0) != t[i].ok || (t[i].ok && b != t[i].b)) {
            fprintf(stderr, "size \"%s\": rc=%d b=%lld\n", t[i].s, rc, (long long)b);
            failures++;
        }
    }
}

/* For each option: accepted forms with the resulting value, and rejected forms. */
static void test_set(void) {
    otelprof_config *c = otelprof_config_new();
    if (!c) { failures++; return; }

    CHECK(set(c, "mode", "wall") == OTELPROF_OK && c->mode == OP_MODE_WALL);
    CHECK(set(c, "mode", "CPU") == OTELPROF_OK && c->mode == OP_MODE_CPU);
    CHECK(set(c, "mode", "alloc") == OTELPROF_EINVAL && one_line_naming("mode", "alloc"));
    CHECK(c->mode == OP_MODE_CPU);
    CHECK(set(c, "mode", "") == OTELPROF_EINVAL);

    CHECK(set(c, "interval", "100us") == OTELPROF_OK && c->interval_ns == 100000);
    CHECK(set(c, "interval", "10s") == OTELPROF_OK && c->interval_ns == 10000000000ll);
    CHECK(set(c, "interval", "99999ns") == OTELPROF_EINVAL && c->interval_ns == 10000000000ll);
    CHECK(set(c, "interval", "10001ms") == OTELPROF_EINVAL);
    CHECK(set(c, "interval", "10parsecs") == OTELPROF_EINVAL);
    CHECK(strcmp(err, "interval=\"10parsecs\" is invalid: expected a duration like 10ms, 500us or 1s "
                      "between 100us and 10s") == 0);
    CHECK(set(c, "interval", "-5ms") == OTELPROF_EINVAL);
    CHECK(set(c, "interval", "20") == OTELPROF_OK && c->interval_ns == 20000000);

    CHECK(set(c, "export_interval", "100ms") == OTELPROF_OK && c->export_interval_ns == 100000000);
    CHECK(set(c, "export_interval", "1m") == OTELPROF_OK && c->export_interval_ns == 60000000000ll);
    CHECK(set(c, "export_interval", "60m") == OTELPROF_OK && c->export_interval_ns == 3600000000000ll);
    CHECK(set(c, "export_interval", "3601s") == OTELPROF_EINVAL);
    CHECK(set(c, "export_interval", "99ms") == OTELPROF_EINVAL);
    CHECK(one_line_naming("export_interval", "99ms"));

    CHECK(set(c, "output_dir", "/tmp/prof") == OTELPROF_OK && strcmp(c->output_dir, "/tmp/prof") == 0);
    CHECK(c->output_dir_set == 1);
    CHECK(set(c, "output_dir", "") == OTELPROF_EINVAL && strcmp(c->output_dir, "/tmp/prof") == 0);

    CHECK(set(c, "formats", "pprof") == OTELPROF_OK && c->formats == OP_FMT_PPROF);
    CHECK(set(c, "formats", "otlp, folded,html") == OTELPROF_OK &&
          c->formats == (OP_FMT_OTLP | OP_FMT_FOLDED | OP_FMT_HTML));
    CHECK(set(c, "formats", "otlp,otlp") == OTELPROF_OK && c->formats == OP_FMT_OTLP);
    CHECK(set(c, "formats", "otlp,pprof,folded,html") == OTELPROF_OK && c->formats == OP_FMT_ALL);
    CHECK(set(c, "formats", "otlp,json") == OTELPROF_EINVAL && c->formats == OP_FMT_ALL);
    CHECK(strstr(err, "json") != NULL && !strchr(err, '\n'));
    CHECK(set(c, "formats", "otlp,js\non") == OTELPROF_EINVAL && !strchr(err, '\n'));
    CHECK(set(c, "formats", "") == OTELPROF_EINVAL);
    CHECK(set(c, "formats", " , ") == OTELPROF_EINVAL);

    CHECK(set(c, "max_depth", "1") == OTELPROF_OK && c->max_depth == 1);
    CHECK(set(c, "max_depth", "2048") == OTELPROF_OK && c->max_depth == 2048);
    CHECK(set(c, "max_depth", "0") == OTELPROF_EINVAL && c->max_depth == 2048);
    CHECK(set(c, "max_depth", "2049") == OTELPROF_EINVAL);
    CHECK(set(c, "max_depth", "12x") == OTELPROF_EINVAL);
    CHECK(set(c, "max_depth", "-3") == OTELPROF_EINVAL && one_line_naming("max_depth", "-3"));

    CHECK(set(c, "native_frames", "0") == OTELPROF_OK && c->native_frames == 0);
    CHECK(c->native_frames_set == 1);
    CHECK(set(c, "native_frames", "TRUE") == OTELPROF_OK && c->native_frames == 1);
    CHECK(set(c, "native_frames", "false") == OTELPROF_OK && c->native_frames == 0);
    CHECK(set(c, "native_frames", "1") == OTELPROF_OK && c->native_frames == 1);
    CHECK(set(c, "native_frames", "yes") == OTELPROF_EINVAL && c->native_frames == 1);

    static const char *const levels[] = {"off", "error", "warn", "info", "debug"};
    for (int i = 0; i < 5; i++)
        CHECK(set(c, "log_level", levels[i]) == OTELPROF_OK && c->log_level == OP_LOG_OFF + i);
    CHECK(set(c, "log_level", "Info") == OTELPROF_OK && c->log_level == OP_LOG_INFO);
    CHECK(set(c, "log_level", "trace") == OTELPROF_EINVAL && c->log_level == OP_LOG_INFO);

    CHECK(set(c, "service_name", "checkout") == OTELPROF_OK && strcmp(c->service_name, "checkout") == 0);
    CHECK(set(c, "service_name", "") == OTELPROF_OK && c->service_name == NULL);

    CHECK(set(c, "resource_attributes", "a=b%20c,d=%2C") == OTELPROF_OK);
    CHECK(c->nresource_attrs == 2);
    if (c->nresource_attrs == 2) {
        CHECK(strcmp(c->resource_attrs[0].key, "a") == 0 && strcmp(c->resource_attrs[0].value, "b c") == 0);
        CHECK(strcmp(c->resource_attrs[1].key, "d") == 0 && strcmp(c->resource_attrs[1].value, ",") == 0);
    }
    CHECK(set(c, "resource_attributes", " k%3D1 = v=2 , deployment.environment.name=prod,e=,") == OTELPROF_OK);
    CHECK(c->nresource_attrs == 3);
    if (c->nresource_attrs == 3) {
        CHECK(strcmp(c->resource_attrs[0].key, "k=1") == 0 && strcmp(c->resource_attrs[0].value, "v=2") == 0);
        CHECK(strcmp(c->resource_attrs[1].key, "deployment.environment.name") == 0);
        CHECK(strcmp(c->resource_attrs[2].key, "e") == 0 && strcmp(c->resource_attrs[2].value, "") == 0);
    }
    CHECK(set(c, "resource_attributes", "a=b,novalue") == OTELPROF_EINVAL && c->nresource_attrs == 3);
    CHECK(strstr(err, "novalue") && !strchr(err, '\n'));
    CHECK(set(c, "resource_attributes", "=v") == OTELPROF_EINVAL);
    CHECK(set(c, "resource_attributes", " =v") == OTELPROF_EINVAL);
    CHECK(set(c, "resource_attributes", "a=%zz") == OTELPROF_EINVAL);
    CHECK(set(c, "resource_attributes", "a=%2") == OTELPROF_EINVAL);
    CHECK(set(c, "resource_attributes", "a=b%") == OTELPROF_EINVAL);
    CHECK(set(c, "resource_attributes", "a=%00") == OTELPROF_EINVAL);
    CHECK(c->nresource_attrs == 3); /* every rejection left the old list in place */
    CHECK(set(c, "resource_attributes", "") == OTELPROF_OK && c->nresource_attrs == 0);

    CHECK(set(c, "disabled", "TRUE") == OTELPROF_OK && c->disabled == 1);
    CHECK(set(c, "disabled", "False") == OTELPROF_OK && c->disabled == 0);
    CHECK(set(c, "disabled", "1") == OTELPROF_OK && c->disabled == 1);
    CHECK(set(c, "disabled", "0") == OTELPROF_OK && c->disabled == 0);
    CHECK(set(c, "disabled", "on") == OTELPROF_EINVAL && c->disabled == 0);
    CHECK(set(c, "mode", "off") == OTELPROF_OK && c->disabled == 1 && c->mode == OP_MODE_CPU);
    c->disabled = 0;

    CHECK(set(c, "max_threads", "1") == OTELPROF_OK && c->max_threads == 1);
    CHECK(set(c, "max_threads", "65536") == OTELPROF_OK && c->max_threads == 65536);
    CHECK(set(c, "max_threads", "65537") == OTELPROF_EINVAL && c->max_threads == 65536);
    CHECK(set(c, "max_threads", "0") == OTELPROF_EINVAL);

    CHECK(set(c, "max_memory", "16MB") == OTELPROF_OK && c->max_memory == 16ll << 20);
    CHECK(set(c, "max_memory", "1MiB") == OTELPROF_OK && c->max_memory == 1ll << 20);
    CHECK(set(c, "max_memory", "16GiB") == OTELPROF_OK && c->max_memory == 16ll << 30);
    CHECK(set(c, "max_memory", "1048575") == OTELPROF_EINVAL && c->max_memory == 16ll << 30);
    CHECK(set(c, "max_memory", "17GB") == OTELPROF_EINVAL);
    CHECK(set(c, "max_memory", "lots") == OTELPROF_EINVAL && one_line_naming("max_memory", "lots"));

    CHECK(set(c, "wall_threads_per_tick", "1") == OTELPROF_OK && c->wall_threads_per_tick == 1);
    CHECK(set(c, "wall_threads_per_tick", "4096") == OTELPROF_OK && c->wall_threads_per_tick == 4096);
    CHECK(set(c, "wall_threads_per_tick", "4097") == OTELPROF_EINVAL);
    CHECK(set(c, "wall_threads_per_tick", "0") == OTELPROF_EINVAL);

    /* unknown key: EINVAL and the valid keys listed */
    CHECK(set(c, "intervall", "10ms") == OTELPROF_EINVAL);
    CHECK(strstr(err, "intervall") && strstr(err, "export_interval") && strstr(err, "wall_threads_per_tick"));
    CHECK(!strchr(err, '\n'));
    CHECK(set(c, "Max_Depth", "64") == OTELPROF_OK && c->max_depth == 64);
    CHECK(set(c, "mode", NULL) == OTELPROF_EINVAL);
    CHECK(set(c, NULL, "x") == OTELPROF_EINVAL);
    CHECK(otelprof_config_set(NULL, "mode", "cpu", NULL, 0) == OTELPROF_EINVAL);
    /* err may be NULL or tiny */
    CHECK(otelprof_config_set(c, "mode", "bad", NULL, 0) == OTELPROF_EINVAL);
    char tiny[8];
    CHECK(otelprof_config_set(c, "mode", "bad", tiny, sizeof tiny) == OTELPROF_EINVAL);
    CHECK(strlen(tiny) == 7);

    /* a value with a newline or quote cannot break the one-line message */
    CHECK(set(c, "mode", "cpu\nfake: line\"") == OTELPROF_EINVAL && !strchr(err, '\n'));
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK(set(c, "mode", big) == OTELPROF_EINVAL && strlen(err) < 400 && strstr(err, "..."));

    otelprof_config_free(c);
}

static void test_env(void) {
    clear_env();
    otelprof_config *c = otelprof_config_new();
    if (!c) { failures++; return; }
    CHECK(otelprof_config_from_env(c, err, sizeof err) == OTELPROF_OK);
    CHECK(c->interval_ns == 10000000 && c->service_name == NULL && c->output_dir_set == 0);

    /* empty = default */
    setenv("OTELPROF_INTERVAL", "", 1);
    setenv("OTELPROF_MAX_DEPTH", "  ", 1);
    CHECK(otelprof_config_from_env(c, err, sizeof err) == OTELPROF_OK);
    CHECK(c->interval_ns == 10000000 && c->max_depth == 128);

    setenv("OTEL_SERVICE_NAME", "api", 1);
    setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=ignored,team=core%2Fprof", 1);
    setenv("OTEL_SDK_DISABLED", "false", 1);
    setenv("OTELPROF_MODE", "wall", 1);
    setenv("OTELPROF_INTERVAL", "5ms", 1);
    setenv("OTELPROF_EXPORT_INTERVAL", "30s", 1);
    setenv("OTELPROF_OUTPUT_DIR", "/tmp/x", 1);
    setenv("OTELPROF_FORMATS", "otlp", 1);
    setenv("OTELPROF_MAX_DEPTH", "256", 1);
    setenv("OTELPROF_NATIVE_FRAMES", "0", 1);
    setenv("OTELPROF_LOG_LEVEL", "debug", 1);
    setenv("OTELPROF_MAX_THREADS", "100", 1);
    setenv("OTELPROF_MAX_MEMORY", "8MiB", 1);
    setenv("OTELPROF_WALL_THREADS_PER_TICK", "16", 1);
    CHECK(otelprof_config_from_env(c, err, sizeof err) == OTELPROF_OK);
    CHECK(c->service_name && strcmp(c->service_name, "api") == 0);
    CHECK(c->nresource_attrs == 2 && strcmp(c->resource_attrs[1].value, "core/prof") == 0);
    CHECK(c->disabled == 0);
    CHECK(c->mode == OP_MODE_WALL);
    CHECK(c->interval_ns == 5000000);
    CHECK(c->export_interval_ns == 30000000000ll);
    CHECK(strcmp(c->output_dir, "/tmp/x") == 0 && c->output_dir_set == 1);
    CHECK(c->formats == OP_FMT_OTLP);
    CHECK(c->max_depth == 256);
    CHECK(c->native_frames == 0 && c->native_frames_set == 1);
    CHECK(c->log_level == OP_LOG_DEBUG);
    CHECK(c->max_threads == 100);
    CHECK(c->max_memory == 8ll << 20);
    CHECK(c->wall_threads_per_tick == 16);

    /* resource: OTEL_SERVICE_NAME beats the service.name attribute; it appears once, first */
    op_kv *kv;
    size_t n;
    CHECK(op_resource_build(c, NULL, &kv, &n) == 0);
    CHECK(n > 0 && strcmp(kv[0].key, "service.name") == 0 && strcmp(kv[0].value, "api") == 0);
    for (size_t i = 1; i < n; i++) CHECK(strcmp(kv[i].key, "service.name") != 0);
    op_resource_free(kv, n);

    /* an invalid variable: error names the variable and the value */
    setenv("OTELPROF_INTERVAL", "10parsecs", 1);
    CHECK(otelprof_config_from_env(c, err, sizeof err) == OTELPROF_EINVAL);
    CHECK(strcmp(err, "OTELPROF_INTERVAL=\"10parsecs\" is invalid: expected a duration like 10ms, "
                      "500us or 1s between 100us and 10s") == 0);
    setenv("OTELPROF_INTERVAL", "5ms", 1);
    setenv("OTELPROF_MAX_MEMORY", "1TB", 1);
    CHECK(otelprof_config_from_env(c, err, sizeof err) == OTELPROF_EINVAL);
    CHECK(one_line_naming("OTELPROF_MAX_MEMORY", "1TB"));
    unsetenv("OTELPROF_MAX_MEMORY");
    setenv("OTEL_RESOURCE_ATTRIBUTES", "broken", 1);
    CHECK(otelprof_config_from_env(c, err, sizeof err) == OTELPROF_EINVAL);
    CHECK(strstr(err, "OTEL_RESOURCE_ATTRIBUTES") == err);
    unsetenv("OTEL_RESOURCE_ATTRIBUTES");

    /* OTEL_SDK_DISABLED is case-insensitive; OTELPROF_DISABLED can only add to it */
    setenv("OTEL_SDK_DISABLED", "TRUE", 1);
    CHECK(otelprof_config_from_env(c, err, sizeof err) == OTELPROF_OK && c->disabled == 1);
    setenv("OTELPROF_DISABLED", "false", 1);
    CHECK(otelprof_config_from_env(c, err, sizeof err) == OTELPROF_OK && c->disabled == 1);
    setenv("OTEL_SDK_DISABLED", "false", 1);
    setenv("OTELPROF_DISABLED", "true", 1);
    CHECK(otelprof_config_from_env(c, err, sizeof err) == OTELPROF_OK && c->disabled == 1);
    unsetenv("OTELPROF_DISABLED");
    setenv("OTEL_SDK_DISABLED", "maybe", 1);
    CHECK(otelprof_config_from_env(c, err, sizeof err) == OTELPROF_EINVAL);
    CHECK(one_line_naming("OTEL_SDK_DISABLED", "maybe"));
    CHECK(otelprof_config_from_env(NULL, err, sizeof err) == OTELPROF_EINVAL);

    otelprof_config_free(c);
    clear_env();
}

static void test_clone(void) {
    otelprof_config *c = otelprof_config_new();
    if (!c) { failures++; return; }
    CHECK(set(c, "service_name", "svc") == OTELPROF_OK);
    CHECK(set(c, "resource_attributes", "a=1,b=2") == OTELPROF_OK);
    CHECK(set(c, "output_dir", "/tmp/o") == OTELPROF_OK);
    CHECK(set(c, "interval", "1ms") == OTELPROF_OK);
    otelprof_config *d = op_config_clone(c);
    CHECK(d != NULL);
    if (d) {
        CHECK(d->interval_ns == 1000000 && d->output_dir_set == 1);
        CHECK(d->service_name != c->service_name && strcmp(d->service_name, "svc") == 0);
        CHECK(d->output_dir != c->output_dir && strcmp(d->output_dir, "/tmp/o") == 0);
        CHECK(d->nresource_attrs == 2 && d->resource_attrs != c->resource_attrs);
        if (d->nresource_attrs == 2) {
            CHECK(d->resource_attrs[1].key != c->resource_attrs[1].key);
            CHECK(strcmp(d->resource_attrs[1].key, "b") == 0 && strcmp(d->resource_attrs[1].value, "2") == 0);
        }
    }
    /* the clone survives its source */
    otelprof_config_free(c);
    if (d) CHECK(strcmp(d->service_name, "svc") == 0 && strcmp(d->resource_attrs[0].value, "1") == 0);
    otelprof_config_free(d);
    CHECK(op_config_clone(NULL) == NULL);
}

/* A relative output directory is fixed against the working directory at start, so a later
 * chdir() of the program moves no profile; an absolute one is kept as it is. */
static void test_output_dir_resolved(void) {
    char cwd[4096], want[4200];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    static const struct { const char *in, *suffix; } cases[] = {
        {"out", "/out"}, {"./out/a/", "/out/a/"}, {".//./out", "/out"}, {".", ""}, {"./", ""},
        {"../x", "/../x"}, {".hidden", "/.hidden"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        otelprof_config *c = otelprof_config_new();
        if (!c) { failures++; return; }
        CHECK(set(c, "output_dir", cases[i].in) == OTELPROF_OK);
        op_config_resolve_output_dir(c);
        snprintf(want, sizeof want, "%s%s", cwd, cases[i].suffix);
        if (strcmp(c->output_dir, want) != 0) {
            fprintf(stderr, "output_dir %s resolved to %s, expected %s\n", cases[i].in, c->output_dir, want);
            failures++;
        }
        otelprof_config_free(c);
    }
    otelprof_config *c = otelprof_config_new();
    if (!c) { failures++; return; }
    op_config_resolve_output_dir(c); /* the default, ./otelprof-out */
    snprintf(want, sizeof want, "%s/otelprof-out", cwd);
    CHECK(strcmp(c->output_dir, want) == 0);
    CHECK(set(c, "output_dir", "/var/tmp/o") == OTELPROF_OK);
    op_config_resolve_output_dir(c);
    CHECK(strcmp(c->output_dir, "/var/tmp/o") == 0);
    otelprof_config_free(c);
}

static const char *find(const op_kv *kv, size_t n, const char *key) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(kv[i].key, key) == 0) return kv[i].value;
    return NULL;
}

static void test_resource(void) {
    otelprof_config *c = otelprof_config_new();
    if (!c) { failures++; return; }
    op_kv *kv;
    size_t n;
    char exe[300];

    /* no service name anywhere: unknown_service:<executable> */
    CHECK(op_resource_build(c, NULL, &kv, &n) == 0);
    const char *pexe = find(kv, n, "process.executable.name");
    CHECK(pexe && *pexe);
    snprintf(exe, sizeof exe, "unknown_service:%s", pexe ? pexe : "");
    CHECK(n > 0 && strcmp(kv[0].key, "service.name") == 0 && strcmp(kv[0].value, exe) == 0);
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl > 0) {
        self[sl] = '\0';
        CHECK(pexe && strcmp(pexe, strrchr(self, '/') + 1) == 0);
    }
    char pid[24];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    CHECK(find(kv, n, "process.pid") && strcmp(find(kv, n, "process.pid"), pid) == 0);
    CHECK(find(kv, n, "process.runtime.name") == NULL);
    CHECK(find(kv, n, "telemetry.sdk.language") && strcmp(find(kv, n, "telemetry.sdk.language"), "c") == 0);
    CHECK(find(kv, n, "telemetry.sdk.name") && strcmp(find(kv, n, "telemetry.sdk.name"), "otelprof") == 0);
    CHECK(find(kv, n, "telemetry.sdk.version") &&
          strcmp(find(kv, n, "telemetry.sdk.version"), OP_SDK_VERSION) == 0);
    char host[256];
    if (gethostname(host, sizeof host) == 0 && host[0])
        CHECK(find(kv, n, "host.name") && strcmp(find(kv, n, "host.name"), host) == 0);
    /* documented order of the built-in keys */
    static const char *const order[] = {"service.name", "process.pid", "process.executable.name",
                                        "host.name", "telemetry.sdk.name", "telemetry.sdk.language",
                                        "telemetry.sdk.version"};
    size_t pos = 0;
    for (size_t i = 0; i < n && pos < 7; i++)
        if (strcmp(kv[i].key, order[pos]) == 0) pos++;
    CHECK(pos == 7);
    op_resource_free(kv, n);

    /* service.name from the attributes, user keys in order after it, first occurrence wins, and a
     * user value for a built-in key (host.name) is kept */
    CHECK(set(c, "resource_attributes", "team=a,service.name=from-attrs,team=b,host.name=h1,x=1") == OTELPROF_OK);
    CHECK(op_resource_build(c, "cpython", &kv, &n) == 0);
    CHECK(n >= 4);
    if (n >= 4) {
        CHECK(strcmp(kv[0].key, "service.name") == 0 && strcmp(kv[0].value, "from-attrs") == 0);
        CHECK(strcmp(kv[1].key, "team") == 0 && strcmp(kv[1].value, "a") == 0);
        CHECK(strcmp(kv[2].key, "host.name") == 0 && strcmp(kv[2].value, "h1") == 0);
        CHECK(strcmp(kv[3].key, "x") == 0 && strcmp(kv[3].value, "1") == 0);
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) CHECK(strcmp(kv[i].key, kv[j].key) != 0);
    CHECK(find(kv, n, "process.runtime.name") && strcmp(find(kv, n, "process.runtime.name"), "cpython") == 0);
    CHECK(find(kv, n, "telemetry.sdk.language") &&
          strcmp(find(kv, n, "telemetry.sdk.language"), "python") == 0);
    op_resource_free(kv, n);

    /* the service_name option wins over the attribute */
    CHECK(set(c, "service_name", "opt") == OTELPROF_OK);
    CHECK(op_resource_build(c, "ruby", &kv, &n) == 0);
    CHECK(n > 0 && strcmp(kv[0].value, "opt") == 0);
    CHECK(find(kv, n, "telemetry.sdk.language") && strcmp(find(kv, n, "telemetry.sdk.language"), "ruby") == 0);
    op_resource_free(kv, n);

    /* an empty service.name attribute falls through to the fallback */
    CHECK(set(c, "service_name", "") == OTELPROF_OK);
    CHECK(set(c, "resource_attributes", "service.name=") == OTELPROF_OK);
    CHECK(op_resource_build(c, NULL, &kv, &n) == 0);
    CHECK(n > 0 && strcmp(kv[0].value, exe) == 0);
    op_resource_free(kv, n);

    CHECK(op_resource_build(NULL, NULL, &kv, &n) == 0 && n > 0 && strcmp(kv[0].key, "service.name") == 0);
    op_resource_free(kv, n);
    otelprof_config_free(c);
}

/* Threads racing on the budget: the total never passes the cap and returns to zero. */
static int over_cap;
static void *mem_worker(void *arg) {
    (void)arg;
    for (int i = 0; i < 100000; i++) {
        size_t n = (size_t)(i % 97) + 1;
        if (op_mem_reserve(n) == 0) {
            if (op_mem_used() > 4096)
                __atomic_store_n(&over_cap, 1, __ATOMIC_RELAXED);
            op_mem_release(n);
        }
    }
    return NULL;
}

static void test_mem_threads(void) {
    pthread_t t[4];
    op_mem_set_cap(4096);
    for (int i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, mem_worker, NULL) == 0);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    CHECK(over_cap == 0);
    CHECK(op_mem_used() == 0);
}

/* The exporter's measure of the growing tables and the reservations (core and adapter) are
 * separate: a new measure never erases a reservation, the cap holds for their sum, and an
 * adapter can give back only what it reserved. */
static void test_mem_adapter(void) {
    otelprof_stats s;
    op_mem_set_cap(1000);
    CHECK(op_mem_reserve(300) == 0);             /* the ring, say */
    op_mem_set_measured(500);                    /* aggregation and symbols */
    CHECK(otelprof_memory_reserve(150) == 0);
    otelprof_stats_get(&s);
    CHECK(s.memory_bytes == 950);
    CHECK(otelprof_memory_reserve(51) == -1);    /* 1001 > cap: nothing reserved */
    CHECK(op_mem_used() == 950);
    op_mem_set_measured(400);                    /* the next measure keeps both reservations */
    CHECK(op_mem_used() == 850);
    CHECK(otelprof_memory_reserve(150) == 0);    /* exactly at the cap */
    CHECK(op_mem_reserve(1) == -1);
    otelprof_memory_release(1000);               /* more than it holds: only its own 300 */
    CHECK(op_mem_used() == 700);
    otelprof_memory_release(1);                  /* holds nothing now */
    CHECK(op_mem_used() == 700);
    op_mem_release(300);
    op_mem_set_measured(0);
    CHECK(op_mem_used() == 0);
    op_mem_set_cap(0);                           /* before any start: not refused */
    CHECK(otelprof_memory_reserve(1u << 30) == 0);
    otelprof_memory_release(1u << 30);
    CHECK(op_mem_used() == 0);
    op_mem_set_cap(64u << 20);
}

/* Adapter counters as otelprof_stats_counter reports them: in range, by index, live values. */
static void test_counters(void) {
    static const char *const names[] = {"alpha", "beta"};
    static uint64_t values[2];
    const char *name = NULL;
    uint64_t v = 7;
    CHECK(otelprof_stats_counter(0, &name, &v) == -1 && v == 7); /* none published yet */
    op_stats_publish_counters(names, values, 2);
    __atomic_fetch_add(&values[1], 3, __ATOMIC_RELAXED);
    CHECK(otelprof_stats_counter(1, &name, &v) == 0 && strcmp(name, "beta") == 0 && v == 3);
    CHECK(otelprof_stats_counter(0, &name, &v) == 0 && strcmp(name, "alpha") == 0 && v == 0);
    CHECK(otelprof_stats_counter(0, NULL, NULL) == 0);
    CHECK(otelprof_stats_counter(2, &name, &v) == -1 && otelprof_stats_counter(-1, &name, &v) == -1);
    op_stats_publish_counters(NULL, NULL, 0);
    CHECK(otelprof_stats_counter(0, &name, &v) == -1);
}

static void test_mem(void) {
    otelprof_stats s;
    op_mem_set_cap(1000);
    CHECK(op_mem_reserve(600) == 0);
    CHECK(op_mem_reserve(400) == 0);  /* exactly at the cap */
    CHECK(op_mem_reserve(1) == -1);    /* over: nothing accounted */
    otelprof_stats_get(&s);
    CHECK(s.memory_bytes == 1000 && s.memory_cap_bytes == 1000);
    op_mem_release(500);
    CHECK(op_mem_reserve(501) == -1);
    CHECK(op_mem_reserve(500) == 0);
    CHECK(op_mem_reserve((size_t)-1) == -1); /* would wrap */
    op_mem_release(1000);
    otelprof_stats_get(&s);
    CHECK(s.memory_bytes == 0);
    op_mem_release(10); /* over-release clamps */
    otelprof_stats_get(&s);
    CHECK(s.memory_bytes == 0);
    op_mem_set_cap(0);  /* 0 = no cap configured */
    CHECK(op_mem_reserve(1u << 30) == 0);
    op_mem_release(1u << 30);
    op_mem_set_cap(64u << 20);
    otelprof_stats_get(&s);
    CHECK(s.memory_cap_bytes == 64u << 20 && s.memory_bytes == 0);

    OP_STAT_INC(samples_taken);
    op_stat_drop(OTELPROF_DROP_AGG_FULL);
    op_stat_drop_n(OTELPROF_DROP_RING_FULL, 3);
    otelprof_stats_get(&s);
    CHECK(s.samples_taken == 1 && s.samples_dropped[OTELPROF_DROP_AGG_FULL] == 1);
    CHECK(s.samples_dropped[OTELPROF_DROP_RING_FULL] == 3);
    otelprof_stats_get(NULL);
}

static void test_names(void) {
    static const char *const want[OTELPROF_DROP__COUNT] = {
        "ring_full", "not_running", "walk_failed", "truncated", "agg_full",
        "symbol_full", "threads_full", "timer_failed", "unresolved", "write_failed",
    };
    for (int r = 0; r < OTELPROF_DROP__COUNT; r++) {
        const char *got = otelprof_drop_reason_name((otelprof_drop_reason)r);
        CHECK(got && strcmp(got, want[r]) == 0);
    }
    CHECK(strcmp(otelprof_drop_reason_name(OTELPROF_DROP__COUNT), "unknown") == 0);
    for (int e = OTELPROF_OK; e <= OTELPROF_EFULL; e++) {
        const char *s = otelprof_strerror((otelprof_error)e);
        CHECK(s && *s && strcmp(s, "unknown error") != 0);
    }
    CHECK(strcmp(otelprof_strerror((otelprof_error)999), "unknown error") == 0);
}

/* op_log writes one prefixed line to fd 2, honours the level and keeps errno. */
static void test_log(void) {
    int pipefd[2];
    if (pipe(pipefd) != 0) { failures++; return; }
    int saved = dup(2);
    dup2(pipefd[1], 2);
    op_log_level = OP_LOG_WARN;
    errno = ERANGE;
    op_log_error("bad %s", "thing\nwith newline");
    CHECK(errno == ERANGE);
    op_log_info("hidden");
    op_log_warn("w");
    op_log_level = OP_LOG_OFF;
    op_log_error("also hidden");
    op_log_level = OP_LOG_WARN;
    char longmsg[3000];
    memset(longmsg, 'y', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = '\0';
    op_log_warn("%s", longmsg);
    dup2(saved, 2);
    close(saved);
    close(pipefd[1]);
    char buf[4096] = "";
    size_t got = 0;
    ssize_t r;
    while ((r = read(pipefd[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
    close(pipefd[0]);
    static const char first[] = "otelprof: error: bad thing with newline\notelprof: warn: w\n";
    CHECK(strncmp(buf, first, sizeof first - 1) == 0);
    /* the over-long line is cut to the buffer, marked, and still ends the line */
    const char *cut = buf + sizeof first - 1;
    size_t cutlen = strlen(cut);
    CHECK(cutlen > 0 && cutlen < 1100 && strncmp(cut, "otelprof: warn: yyy", 19) == 0);
    CHECK(cutlen >= 4 && strcmp(cut + cutlen - 4, "...\n") == 0);
    CHECK(strchr(cut, '\n') == cut + cutlen - 1);
}

/* OTLP exporter variables: endpoint forms, headers that never leak into messages, the protocol
 * check, the signal-specific variables kept apart from the general ones. */
static void test_otlp(void) {
    otelprof_config *c = otelprof_config_new();
    CHECK(c != NULL);
    if (!c) return;
    CHECK(c->otlp[OP_OTLP_ALL].endpoint == NULL && c->otlp[OP_OTLP_PROFILES].endpoint == NULL);
    CHECK(c->otlp[OP_OTLP_ALL].compression == OP_COMPRESS_UNSET && c->otlp[OP_OTLP_ALL].timeout_ns == 0);
    CHECK(c->export_queue_max == 0);
    CHECK(c->retry_initial_ns == 1000000000ll && c->retry_max_interval_ns == 30000000000ll);
    CHECK(c->retry_max_elapsed_ns == 60000000000ll);

    CHECK(set(c, "otlp_endpoint", " http://127.0.0.1:4318 ") == OTELPROF_OK);
    CHECK(strcmp(c->otlp[OP_OTLP_ALL].endpoint, "http://127.0.0.1:4318") == 0);
    CHECK(set(c, "otlp_profiles_endpoint", "https://x.example/p") == OTELPROF_OK);
    CHECK(strcmp(c->otlp[OP_OTLP_PROFILES].endpoint, "https://x.example/p") == 0);
    CHECK(set(c, "otlp_endpoint", "localhost:4318") == OTELPROF_EINVAL);
    CHECK(one_line_naming("otlp_endpoint", "localhost:4318") && strstr(err, "http://"));
    CHECK(strcmp(c->otlp[OP_OTLP_ALL].endpoint, "http://127.0.0.1:4318") == 0); /* unchanged */

    CHECK(set(c, "otlp_compression", "GZIP") == OTELPROF_OK && c->otlp[OP_OTLP_ALL].compression == OP_COMPRESS_GZIP);
    CHECK(set(c, "otlp_profiles_compression", "none") == OTELPROF_OK &&
          c->otlp[OP_OTLP_PROFILES].compression == OP_COMPRESS_NONE);
    CHECK(set(c, "otlp_compression", "zstd") == OTELPROF_EINVAL && one_line_naming("otlp_compression", "zstd"));

    CHECK(set(c, "otlp_timeout", "2500") == OTELPROF_OK && c->otlp[OP_OTLP_ALL].timeout_ns == 2500000000ll);
    CHECK(set(c, "otlp_profiles_timeout", "3s") == OTELPROF_OK &&
          c->otlp[OP_OTLP_PROFILES].timeout_ns == 3000000000ll);
    CHECK(set(c, "otlp_timeout", "0") == OTELPROF_EINVAL);
    CHECK(set(c, "otlp_timeout", "soon") == OTELPROF_EINVAL && one_line_naming("otlp_timeout", "soon"));

    CHECK(set(c, "otlp_protocol", "http/protobuf") == OTELPROF_OK);
    CHECK(set(c, "otlp_protocol", "grpc") == OTELPROF_EINVAL);
    CHECK(one_line_naming("otlp_protocol", "grpc") && strstr(err, "gRPC is not supported"));
    CHECK(set(c, "otlp_profiles_protocol", "http/json") == OTELPROF_EINVAL);

    CHECK(set(c, "otlp_headers", "api-key=t0k%3Den,x=1") == OTELPROF_OK);
    CHECK(c->otlp[OP_OTLP_ALL].nheaders == 2 && strcmp(c->otlp[OP_OTLP_ALL].headers[0].value, "t0k=en") == 0);
    CHECK(c->otlp[OP_OTLP_ALL].headers_set == 1 && c->otlp[OP_OTLP_PROFILES].headers_set == 0);
    /* A rejected headers value is named but never shown, not even in part. */
    CHECK(set(c, "otlp_headers", "api-key=VERYSECRET,broken") == OTELPROF_EINVAL);
    CHECK(strncmp(err, "otlp_headers is invalid (value not shown", 40) == 0);
    CHECK(!strstr(err, "VERYSECRET") && !strstr(err, "broken") && strstr(err, "entry 2") && !strchr(err, '\n'));
    CHECK(c->otlp[OP_OTLP_ALL].nheaders == 2); /* unchanged */
    CHECK(set(c, "otlp_profiles_headers", "") == OTELPROF_OK);
    CHECK(c->otlp[OP_OTLP_PROFILES].headers_set == 1 && c->otlp[OP_OTLP_PROFILES].nheaders == 0);

    CHECK(set(c, "otlp_certificate", "/nonexistent/ca.pem") == OTELPROF_EINVAL);
    CHECK(one_line_naming("otlp_certificate", "/nonexistent/ca.pem") && strstr(err, "No such file"));
    CHECK(set(c, "otlp_certificate", "/proc/self/status") == OTELPROF_OK);
    CHECK(strcmp(c->otlp[OP_OTLP_ALL].certificate, "/proc/self/status") == 0);
    CHECK(set(c, "otlp_profiles_client_key", "/proc/self/status") == OTELPROF_OK);

    CHECK(set(c, "export_queue_max", "2MiB") == OTELPROF_OK && c->export_queue_max == 2 << 20);
    CHECK(set(c, "export_queue_max", "1KB") == OTELPROF_EINVAL);
    CHECK(set(c, "export_queue_max", "4KiB") == OTELPROF_OK && c->export_queue_max == 4096);
    CHECK(set(c, "export_retry_initial", "5ms") == OTELPROF_OK && c->retry_initial_ns == 5000000);
    CHECK(set(c, "export_retry_max_interval", "0") == OTELPROF_EINVAL);
    CHECK(set(c, "export_retry_max_elapsed", "0") == OTELPROF_OK && c->retry_max_elapsed_ns == 0);

    /* Deep copy of every new string and list. */
    otelprof_config *d = op_config_clone(c);
    CHECK(d != NULL);
    if (d) {
        CHECK(d->otlp[OP_OTLP_ALL].endpoint != c->otlp[OP_OTLP_ALL].endpoint);
        CHECK(strcmp(d->otlp[OP_OTLP_PROFILES].endpoint, "https://x.example/p") == 0);
        CHECK(d->otlp[OP_OTLP_ALL].nheaders == 2 && d->otlp[OP_OTLP_ALL].headers != c->otlp[OP_OTLP_ALL].headers);
        CHECK(strcmp(d->otlp[OP_OTLP_ALL].headers[1].key, "x") == 0);
        CHECK(d->otlp[OP_OTLP_PROFILES].headers_set == 1);
        CHECK(strcmp(d->otlp[OP_OTLP_PROFILES].client_key, "/proc/self/status") == 0);
        otelprof_config_free(d);
    }
    otelprof_config_free(c);

    /* The environment: names in errors are the variables themselves. */
    clear_env();
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://h:4318", 1);
    setenv("OTEL_EXPORTER_OTLP_PROFILES_TIMEOUT", "750", 1);
    setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20abc", 1);
    c = otelprof_config_new();
    CHECK(otelprof_config_from_env(c, err, sizeof err) == OTELPROF_OK);
    CHECK(strcmp(c->otlp[OP_OTLP_ALL].endpoint, "http://h:4318") == 0);
    CHECK(c->otlp[OP_OTLP_PROFILES].timeout_ns == 750000000ll);
    CHECK(strcmp(c->otlp[OP_OTLP_ALL].headers[0].value, "Bearer abc") == 0);
    otelprof_config_free(c);
    setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", 1);
    c = otelprof_config_new();
    CHECK(otelprof_config_from_env(c, err, sizeof err) == OTELPROF_EINVAL);
    CHECK(one_line_naming("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"));
    otelprof_config_free(c);
    clear_env();
    setenv("OTEL_EXPORTER_OTLP_PROFILES_HEADERS", "k=v%0aInjected: yes", 1);
    c = otelprof_config_new();
    CHECK(otelprof_config_from_env(c, err, sizeof err) == OTELPROF_EINVAL);
    CHECK(strncmp(err, "OTEL_EXPORTER_OTLP_PROFILES_HEADERS is invalid", 46) == 0 && !strstr(err, "Injected"));
    otelprof_config_free(c);
    clear_env();
}

int main(void) {
    test_defaults();
    test_otlp();
    test_duration_table();
    test_size_table();
    test_set();
    test_env();
    test_clone();
    test_output_dir_resolved();
    test_resource();
    test_mem();
    test_mem_threads();
    test_mem_adapter();
    test_counters();
    test_names();
    test_log();
    if (failures) { printf("test_config: %d failures\n", failures); return 1; }
    printf("test_config: ok\n");
    return 0;
}
