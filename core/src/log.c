/* One-line diagnostics on stderr, filtered by the configured level. */
#include "op_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int op_log_level = OP_LOG_WARN;

static const char *const level_names[] = {"off", "error", "warn", "info", "debug"};

void op_log(int level, const char *fmt, ...) {
    /* Written once at start and read from any thread: a relaxed load keeps that race benign. */
    if (level <= OP_LOG_OFF || level > OP_LOG_DEBUG ||
        level > __atomic_load_n(&op_log_level, __ATOMIC_RELAXED))
        return;
    /* Callers log right after a failing call and then report errno, so logging must not
     * clobber it. */
    int saved = errno;
    /* The line is built in one buffer and written with one write(2) so that lines from several
     * threads, and from the host's own stderr writes, never interleave mid-line. */
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "otelprof: %s: ", level_names[level]);
    size_t pre = (size_t)n;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + pre, sizeof buf - pre - 1, fmt, ap);
    va_end(ap);
    size_t len;
    if (m < 0) {
        len = pre;
    } else if ((size_t)m >= sizeof buf - pre - 1) {
        len = sizeof buf - 1 - 1; /* vsnprintf left its NUL at buf[sizeof buf - 2] */
        memcpy(buf + len - 3, "...", 3); /* show that the message was cut */
    } else {
        len = pre + (size_t)m;
    }
    /* A message carrying a newline (say, a path from the user) must not forge a second line. */
    for (size_t i = pre; i < len; i++)
        if (buf[i] == '\n' || buf[i] == '\r') buf[i] = ' ';
    buf[len++] = '\n';
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(2, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            break; /* stderr closed or broken: nothing useful left to do */
        }
        p += w;
        len -= (size_t)w;
    }
    errno = saved;
}
