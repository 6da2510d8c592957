/* Local outputs: per-interval OTLP and pprof files, whole-run folded stacks and HTML flame graph.
 * Every file is written to an exclusive temporary name and renamed, so readers never see half a
 * file and a symlink planted by someone else is never followed. The profiler runs inside other
 * people's processes, often privileged ones, so the directory is checked before anything is
 * written into it, and files and directories we create are private (0600, 0700) whatever the
 * host's umask: stacks reveal code paths and frame names. */
#include "op_output.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "op_encode.h"
#include "op_folded.h"
#include "op_log.h"
#include "op_stats.h"

#define DEFAULT_DIR "./otelprof-out"
/* Bytes of the service name in file names: keeps every name far below NAME_MAX (255) with the
 * pid, sequence, extension and temporary suffix added. */
#define SERVICE_MAX 64
#define HASH_LEN 9 /* "-" and 8 hex digits */
#define TMP_TRIES 100
#define PATH_BUF 4096

struct op_output {
    char *dir;
    char *service;     /* sanitised for file names */
    unsigned formats;
    op_folded *folded;
    unsigned seq;
    int warned_dir;
    int refused;       /* the directory failed the start-up check: no local files this run */
    pid_t pid;         /* pid the sequence belongs to: a fork child restarts at 0 */
};

/* File names keep [A-Za-z0-9._-] and turn anything else into '_'. Leading '.' and '-' become '_'
 * too, so a service name can neither hide its files ("..x") nor look like an option to shell
 * tools; with '/' gone, no name can leave the directory. */
static char name_char(char c, int leading) {
    if (leading && (c == '.' || c == '-')) return '_';
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.')
        return c;
    return '_';
}

static uint32_t fnv1a(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* The service part of file names, at most SERVICE_MAX bytes. A longer name keeps its first bytes
 * plus a hash of the whole name, so names that differ only past the cap stay distinct. */
static char *sanitise(const char *s) {
    if (!s || !*s) s = "otelprof";
    size_t n = strlen(s), keep = n <= SERVICE_MAX ? n : SERVICE_MAX - HASH_LEN;
    char *d = malloc(SERVICE_MAX + 1);
    if (!d) return NULL;
    int leading = 1;
    for (size_t i = 0; i < keep; i++) {
        d[i] = name_char(s[i], leading);
        leading = leading && (s[i] == '.' || s[i] == '-');
    }
    d[keep] = 0;
    if (n > keep) snprintf(d + keep, HASH_LEN + 1, "-%08" PRIx32, fnv1a(s));
    return d;
}

/* Trailing slashes dropped: lstat("link/") would follow the link and hide it from the check. */
static char *dir_of(const otelprof_config *cfg) {
    char *d = strdup(cfg->output_dir ? cfg->output_dir : DEFAULT_DIR);
    for (size_t n = d ? strlen(d) : 0; n > 1 && d[n - 1] == '/'; n--) d[n - 1] = 0;
    return d;
}

op_output *op_output_new(const otelprof_config *cfg, const char *service_name) {
    op_output *o = calloc(1, sizeof(*o));
    if (!o) return NULL;
    o->dir = dir_of(cfg);
    o->service = sanitise(service_name);
    o->formats = cfg->formats;
    o->folded = op_folded_new((size_t)(op_config_core_memory(cfg) / 8));
    o->pid = getpid();
    if (!o->dir || !o->service || !o->folded) {
        op_output_free(o);
        return NULL;
    }
    return o;
}

int op_output_matches(const op_output *o, const otelprof_config *cfg, const char *service_name) {
    char *dir = dir_of(cfg), *svc = sanitise(service_name);
    int same = dir && svc && strcmp(o->dir, dir) == 0 && strcmp(o->service, svc) == 0 &&
               o->formats == cfg->formats && o->pid == getpid();
    free(dir);
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

/* ---- temporary files ----
 * Atomic replacement of one file, for every local output: an exclusive temporary file (O_EXCL,
 * random name, mode 0600 whatever the umask) in the final file's directory, renamed over it when
 * complete. A symlink planted at either name is never followed. */

typedef struct tmp_file {
    const char *path;
    char tmp[PATH_BUF + 32];
} tmp_file;

/* Unpredictable temporary names: O_EXCL already makes a planted file or symlink harmless, but with
 * a predictable name (pid) another user could pre-plant it and make every write fail. */
static uint64_t random64(void) {
    uint64_t r;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r) return r;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, &r, sizeof r);
        close(fd);
        if (n == (ssize_t)sizeof r) return r;
    }
    /* No entropy source (seccomp filter, chroot without /dev): still exclusive, only guessable. */
    static uint64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ((uint64_t)ts.tv_nsec << 24) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 44) ^
           (++counter * 0x9e3779b97f4a7c15ull);
}

static int tmp_open(tmp_file *t, const char *path) {
    t->path = path;
    for (int i = 0; i < TMP_TRIES; i++) {
        int n = snprintf(t->tmp, sizeof t->tmp, "%s.tmp.%016" PRIx64, path, random64());
        if (n < 0 || (size_t)n >= sizeof t->tmp) {
            errno = ENAMETOOLONG;
            return -1;
        }
        /* In the final directory, so rename() is atomic; O_NOFOLLOW backs up O_EXCL. */
        int fd = open(t->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno == EEXIST) continue;
        if (fd < 0) return -1;
        /* The umask can only have taken bits away from 0600; fchmod makes the mode exactly 0600.
         * Where it fails (a filesystem without modes) the file is no more open than 0600. */
        (void)fchmod(fd, 0600);
        return fd;
    }
    errno = EEXIST;
    return -1;
}

static int tmp_commit(tmp_file *t, int ok) {
    /* rename() replaces whatever is at the final name, a symlink included, without following it. */
    if (ok && rename(t->tmp, t->path) == 0) return 0;
    int e = errno ? errno : EIO;
    unlink(t->tmp);
    errno = e;
    return -1;
}

static FILE *tmp_fopen(tmp_file *t, const char *path) {
    int fd = tmp_open(t, path);
    if (fd < 0) return NULL;
    FILE *fp = fdopen(fd, "w");
    if (!fp) {
        int e = errno;
        close(fd);
        unlink(t->tmp);
        errno = e;
    }
    return fp;
}

static int tmp_fclose(tmp_file *t, FILE *fp, int err) {
    int ok = !err && !ferror(fp), e = errno;
    if (fclose(fp) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    errno = e;
    return tmp_commit(t, ok);
}

static int write_all(int fd, const uint8_t *data, size_t len) {
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (w == 0) errno = EIO;
            return -1;
        }
        off += (size_t)w;
    }
    return 0;
}

static int write_atomic(const char *path, const uint8_t *data, size_t len) {
    tmp_file t;
    int fd = tmp_open(&t, path);
    if (fd < 0) return -1;
    int ok = write_all(fd, data, len) == 0, e = errno;
    if (close(fd) < 0 && ok) {
        ok = 0;
        e = errno;
    }
    errno = e;
    if (tmp_commit(&t, ok) < 0) return -1;
    OP_STAT_ADD(bytes_written, len);
    return 0;
}

typedef long (*printer)(const op_folded *f, FILE *fp, const char *title);

static long print_folded(const op_folded *f, FILE *fp, const char *title) {
    (void)title;
    return op_folded_print(f, fp);
}

/* The whole-run files: printed through stdio into the temporary file. Returns bytes or -1. */
static long write_printed(const char *path, const op_folded *f, printer print, const char *title) {
    tmp_file t;
    FILE *fp = tmp_fopen(&t, path);
    if (!fp) return -1;
    long n = print(f, fp, title);
    return tmp_fclose(&t, fp, n < 0) < 0 ? -1 : n;
}

/* ---- the directory ---- */

static int reason(char *why, size_t wl, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int reason(char *why, size_t wl, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, wl, fmt, ap);
    va_end(ap);
    return -1;
}

/* mkdir, private: mode exactly 0700 whatever the umask. Only what we create is chmod'ed (never a
 * directory the user made), and without following a symlink swapped in after the mkdir. A failing
 * chmod leaves 0700 minus the umask, never more open. */
static int make_dir(const char *path) {
    if (mkdir(path, 0700) == 0) {
        (void)fchmodat(AT_FDCWD, path, 0700, AT_SYMLINK_NOFOLLOW);
        return 0;
    }
    return errno == EEXIST ? 0 : -1;
}

/* mkdir -p: components that already exist (symlinks such as /var/run included) are taken as they
 * are; only the last one is checked, by check_dir. */
static int ensure_dir(const char *dir) {
    char buf[PATH_BUF];
    size_t n = strlen(dir);
    if (n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, dir, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (make_dir(buf) < 0) return -1;
        *p = '/';
    }
    return make_dir(buf);
}

/* Files are written by path into dir, so dir must be a real directory (not a symlink someone could
 * point elsewhere) where nobody else can remove or rename our files: not writable by group or
 * others unless sticky, and then ours. */
static int check_dir(const char *dir, char *why, size_t wl) {
    struct stat st;
    if (lstat(dir, &st) < 0) return reason(why, wl, "cannot examine it: %s", strerror(errno));
    if (S_ISLNK(st.st_mode)) return reason(why, wl, "it is a symbolic link");
    if (!S_ISDIR(st.st_mode)) return reason(why, wl, "it is not a directory");
    if (!(st.st_mode & (S_IWGRP | S_IWOTH))) return 0;
    if (!(st.st_mode & S_ISVTX))
        return reason(why, wl, "it is writable by group or others and has no sticky bit");
    if (st.st_uid != geteuid())
        return reason(why, wl, "it is writable by group or others and owned by uid %u, not by "
                      "this process (euid %u)", (unsigned)st.st_uid, (unsigned)geteuid());
    return 0;
}

static int prepare_dir(const char *dir, char *why, size_t wl) {
    if (ensure_dir(dir) < 0) return reason(why, wl, "cannot create it: %s", strerror(errno));
    return check_dir(dir, why, wl);
}

/* Proves at start that files can be created (read-only filesystem, no permission), instead of
 * finding out at the first export, maybe long after the program started. */
static int probe_dir(const char *dir, char *why, size_t wl) {
    char path[PATH_BUF];
    tmp_file t;
    int fd = -1;
    if (snprintf(path, sizeof path, "%s/.otelprof-probe", dir) >= (int)sizeof path)
        errno = ENAMETOOLONG;
    else
        fd = tmp_open(&t, path);
    if (fd < 0) return reason(why, wl, "cannot create a file in it: %s", strerror(errno));
    close(fd);
    unlink(t.tmp);
    return 0;
}

int op_output_open(op_output *o) {
    char why[256];
    o->refused = prepare_dir(o->dir, why, sizeof why) < 0 || probe_dir(o->dir, why, sizeof why) < 0;
    if (o->refused)
        op_log_error("output directory %s (OTELPROF_OUTPUT_DIR) refused: %s; no local files will "
                     "be written", o->dir, why);
    return o->refused ? -1 : 0;
}

/* ---- writing ---- */

static void failed(op_output *o, const char *what, const char *path, const char *why) {
    if (!o->warned_dir) {
        op_log_error("cannot write %s %s: %s (set OTELPROF_OUTPUT_DIR to a writable directory)",
                     what, path, why);
        o->warned_dir = 1;
    }
}

static void drop_samples(const op_profile *p) {
    uint64_t n = 0;
    for (size_t i = 0; i < p->nsamples; i++) n += (uint64_t)p->samples[i].count;
    op_stat_drop_n(OTELPROF_DROP_WRITE_FAILED, n);
}

/* <dir>/<service>-<pid>[-<seq>].<ext>; seq < 0 for the whole-run files. */
static int file_path(char *path, const op_output *o, pid_t pid, long seq, const char *ext) {
    int n = seq < 0 ? snprintf(path, PATH_BUF, "%s/%s-%d.%s", o->dir, o->service, (int)pid, ext)
                    : snprintf(path, PATH_BUF, "%s/%s-%d-%04ld.%s", o->dir, o->service, (int)pid,
                               seq, ext);
    if (n >= 0 && n < PATH_BUF) return 0;
    errno = ENAMETOOLONG;
    return -1;
}

/* Each writer returns 1 when it wrote its file, -1 (logged once) when it failed. */
static int write_otlp(op_output *o, const op_profile *p, pid_t pid, unsigned seq) {
    char path[PATH_BUF];
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = 1;
    if (file_path(path, o, pid, seq, "otlp.pb") < 0 || op_encode_otlp(p, &buf, &len) < 0 ||
        write_atomic(path, buf, len) < 0) {
        failed(o, "OTLP file", path, strerror(errno));
        rc = -1;
    }
    free(buf);
    return rc;
}

static int write_pprof(op_output *o, const op_profile *p, pid_t pid, unsigned seq) {
    char path[PATH_BUF];
    uint8_t *raw = NULL, *gz = NULL;
    size_t rlen = 0, glen = 0;
    int rc = 1;
    if (file_path(path, o, pid, seq, "pb.gz") < 0 || op_encode_pprof(p, &raw, &rlen) < 0 ||
        op_gzip(raw, rlen, &gz, &glen) < 0 || write_atomic(path, gz, glen) < 0) {
        failed(o, "pprof file", path, strerror(errno));
        rc = -1;
    }
    free(raw);
    free(gz);
    return rc;
}

/* One whole-run file (folded or HTML): the run so far, printed into a fresh temporary file. */
static int write_whole_run(op_output *o, pid_t pid, const char *ext, const char *what, printer print,
                           const char *title) {
    char path[PATH_BUF];
    long n = file_path(path, o, pid, -1, ext) < 0 ? -1 : write_printed(path, o->folded, print, title);
    if (n < 0) {
        failed(o, what, path, strerror(errno));
        return -1;
    }
    OP_STAT_ADD(bytes_written, n);
    return 1;
}

static int write_html(op_output *o, const op_profile *p, pid_t pid) {
    char title[512];
    snprintf(title, sizeof title, "%s (pid %d) - %s", o->service, (int)pid,
             p->mode == OP_MODE_WALL ? "wall clock" : "CPU");
    return write_whole_run(o, pid, "html", "HTML file", op_html_print, title);
}

int op_output_write(op_output *o, const op_profile *p, int final) {
    (void)final;
    char why[256];
    pid_t pid = getpid();
    if (pid != o->pid) {
        o->pid = pid;
        o->seq = 0;
    }
    /* Refused at start (already logged): counted, never retried. Otherwise the directory is made
     * again if it was removed, and checked again: it may have been swapped or opened up since. */
    if (o->refused) {
        drop_samples(p);
        return -1;
    }
    if (prepare_dir(o->dir, why, sizeof why) < 0) {
        failed(o, "output directory", o->dir, why);
        drop_samples(p);
        return -1;
    }
    int r[4] = {0, 0, 0, 0};
    if (p->nsamples) {
        unsigned seq = o->seq++;
        if (o->formats & OP_FMT_OTLP) r[0] = write_otlp(o, p, pid, seq);
        if (o->formats & OP_FMT_PPROF) r[1] = write_pprof(o, p, pid, seq);
    }
    op_folded_add(o->folded, p);
    if (o->formats & OP_FMT_FOLDED)
        r[2] = write_whole_run(o, pid, "folded", "folded file", print_folded, NULL);
    if (o->formats & OP_FMT_HTML) r[3] = write_html(o, p, pid);
    int wrote = r[0] > 0 || r[1] > 0 || r[2] > 0 || r[3] > 0;
    int bad = r[0] < 0 || r[1] < 0 || r[2] < 0 || r[3] < 0;
    if (wrote && p->nsamples) OP_STAT_INC(profiles_written);
    /* Counted once per profile, in samples, whichever outputs failed. */
    if (bad) drop_samples(p);
    return bad ? -1 : 0;
}
