/* Local outputs: per-interval OTLP and pprof files, whole-run folded stacks and HTML flame graph.
 * Every file is written to a temporary name and renamed, so readers never see half a file. */
#include "op_output.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "op_encode.h"
#include "op_folded.h"
#include "op_log.h"
#include "op_stats.h"

struct op_output {
    char *dir;
    char *service;     /* sanitised for file names */
    unsigned formats;
    op_folded *folded;
    unsigned seq;
    int warned_dir;
    pid_t pid;         /* pid the sequence belongs to: a fork child restarts at 0 */
};

static char *sanitise(const char *s) {
    char *d = strdup(s && *s ? s : "otelprof");
    for (char *p = d; p && *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            *p = '_';
    return d;
}

op_output *op_output_new(const otelprof_config *cfg, const char *service_name) {
    op_output *o = calloc(1, sizeof(*o));
    if (!o) return NULL;
    o->dir = strdup(cfg->output_dir ? cfg->output_dir : "./otelprof-out");
    o->service = sanitise(service_name);
    o->formats = cfg->formats;
    o->folded = op_folded_new((size_t)(cfg->max_memory / 8));
    o->pid = getpid();
    if (!o->dir || !o->service || !o->folded) {
        op_output_free(o);
        return NULL;
    }
    return o;
}

int op_output_matches(const op_output *o, const otelprof_config *cfg, const char *service_name) {
    const char *dir = cfg->output_dir ? cfg->output_dir : "./otelprof-out";
    char *svc = sanitise(service_name);
    int same = svc && strcmp(o->dir, dir) == 0 && strcmp(o->service, svc) == 0 &&
               o->formats == cfg->formats && o->pid == getpid();
    free(svc);
    return same;
}

void op_output_free(op_output *o) {
    if (!o) return;
    free(o->dir);
    free(o->service);
    if (o->folded) op_folded_free(o->folded);
    free(o);
}

/* mkdir -p */
static int ensure_dir(const char *dir) {
    char buf[4096];
    size_t n = strlen(dir);
    if (n >= sizeof buf) return -1;
    memcpy(buf, dir, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) < 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST) return -1;
    return 0;
}

static int write_atomic(const char *path, const uint8_t *data, size_t len) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            close(fd);
            unlink(tmp);
            return -1;
        }
        off += (size_t)w;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        unlink(tmp);
        return -1;
    }
    OP_STAT_ADD(bytes_written, len);
    return 0;
}

static void failed(op_output *o, const char *what, const char *path) {
    if (!o->warned_dir) {
        op_log_error("cannot write %s file %s: %s (set OTELPROF_OUTPUT_DIR to a writable directory)",
                     what, path, strerror(errno));
        o->warned_dir = 1;
    }
}

int op_output_write(op_output *o, const op_profile *p, int final) {
    (void)final;
    int rc = 0, wrote = 0;
    char path[4096];
    pid_t pid = getpid();
    if (pid != o->pid) {
        o->pid = pid;
        o->seq = 0;
    }
    if (ensure_dir(o->dir) < 0) {
        failed(o, "output", o->dir);
        uint64_t n = 0;
        for (size_t i = 0; i < p->nsamples; i++) n += (uint64_t)p->samples[i].count;
        op_stat_drop_n(OTELPROF_DROP_WRITE_FAILED, n);
        return -1;
    }
    if (p->nsamples) {
        unsigned seq = o->seq++;
        if (o->formats & OP_FMT_OTLP) {
            uint8_t *buf = NULL;
            size_t len = 0;
            snprintf(path, sizeof path, "%s/%s-%d-%04u.otlp.pb", o->dir, o->service, (int)pid, seq);
            if (op_encode_otlp(p, &buf, &len) < 0 || write_atomic(path, buf, len) < 0) {
                failed(o, "OTLP", path);
                rc = -1;
            } else {
                wrote = 1;
            }
            free(buf);
        }
        if (o->formats & OP_FMT_PPROF) {
            uint8_t *raw = NULL, *gz = NULL;
            size_t rlen = 0, glen = 0;
            snprintf(path, sizeof path, "%s/%s-%d-%04u.pb.gz", o->dir, o->service, (int)pid, seq);
            if (op_encode_pprof(p, &raw, &rlen) < 0 || op_gzip(raw, rlen, &gz, &glen) < 0 ||
                write_atomic(path, gz, glen) < 0) {
                failed(o, "pprof", path);
                rc = -1;
            } else {
                wrote = 1;
            }
            free(raw);
            free(gz);
        }
    }
    op_folded_add(o->folded, p);
    if (o->formats & OP_FMT_FOLDED) {
        snprintf(path, sizeof path, "%s/%s-%d.folded", o->dir, o->service, (int)pid);
        long n = op_folded_write(o->folded, path);
        if (n < 0) {
            failed(o, "folded", path);
            rc = -1;
        } else {
            OP_STAT_ADD(bytes_written, n);
            wrote = 1;
        }
    }
    if (o->formats & OP_FMT_HTML) {
        char title[512];
        snprintf(title, sizeof title, "%s (pid %d) - %s", o->service, (int)pid,
                 p->mode == OP_MODE_WALL ? "wall clock" : "CPU");
        snprintf(path, sizeof path, "%s/%s-%d.html", o->dir, o->service, (int)pid);
        long n = op_html_write(o->folded, path, title);
        if (n < 0) {
            failed(o, "HTML", path);
            rc = -1;
        } else {
            OP_STAT_ADD(bytes_written, n);
            wrote = 1;
        }
    }
    if (wrote && p->nsamples) OP_STAT_INC(profiles_written);
    if (rc < 0) {
        /* Counted once per profile, in samples, whichever outputs failed. */
        uint64_t n = 0;
        for (size_t i = 0; i < p->nsamples; i++) n += (uint64_t)p->samples[i].count;
        op_stat_drop_n(OTELPROF_DROP_WRITE_FAILED, n);
    }
    return rc;
}
