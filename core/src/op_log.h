/* One-line diagnostics to stderr, prefixed "otelprof: <level>: ". Never from signal context. */
#ifndef OP_LOG_H
#define OP_LOG_H

enum { OP_LOG_OFF = 0, OP_LOG_ERROR = 1, OP_LOG_WARN = 2, OP_LOG_INFO = 3, OP_LOG_DEBUG = 4 };

/* Current level; set from the configuration at start (default OP_LOG_WARN). */
extern int op_log_level;

/* Thread-safe (one write(2) per line), not AS-safe. Appends the newline itself. */
void op_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define op_log_error(...) op_log(OP_LOG_ERROR, __VA_ARGS__)
#define op_log_warn(...) op_log(OP_LOG_WARN, __VA_ARGS__)
#define op_log_info(...) op_log(OP_LOG_INFO, __VA_ARGS__)
#define op_log_debug(...) op_log(OP_LOG_DEBUG, __VA_ARGS__)

#endif
