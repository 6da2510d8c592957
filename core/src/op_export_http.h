/* OTLP/HTTP export: a sender thread ("otelprof-send") posts each closed profile's
 * ExportProfilesServiceRequest to the configured endpoint, with retries, backoff and a bounded
 * queue, so neither the application nor the exporter thread ever waits on the network. */
#ifndef OP_EXPORT_HTTP_H
#define OP_EXPORT_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "op_config.h"

/* ---- lifecycle (exporter.c) ------------------------------------------------------------------ */

/* 1 when cfg names an endpoint (OTEL_EXPORTER_OTLP_[PROFILES_]ENDPOINT). */
int op_export_http_configured(const otelprof_config *cfg);
/* Starts the sender when an endpoint is configured: 0 not configured, 1 started, -1 error
 * (logged). Initialises libcurl once per process. Not thread-safe (called from start). */
int op_export_http_start(const otelprof_config *cfg);
/* Queues one encoded request (takes ownership of the malloc'd body). Never blocks on the network;
 * when the queue is over its cap the oldest waiting profile is dropped and counted. Thread-safe. */
void op_export_http_submit(uint8_t *body, size_t len);
/* Bytes waiting in the queue now (for the memory self-metric). Thread-safe. */
size_t op_export_http_queued_bytes(void);
/* Sends what is queued until the shutdown deadline (the export timeout), then drops and counts
 * the rest and joins the thread. No retries wait on backoff after this is called. */
void op_export_http_stop(void);
/* Fork child: the sender thread does not exist here and the parent's connection must not be
 * touched; forget both (a bounded leak) and start a fresh sender if one was running. */
void op_export_http_after_fork(void);

/* ---- pure helpers, exposed for the unit tests ------------------------------------------------ */

/* The URL to post to: the signal-specific endpoint as is, else the general one with
 * "/v1development/profiles" appended (one '/' between them). malloc'd; NULL if neither is set. */
char *op_export_url(const char *general, const char *profiles);

/* Backoff before retry number `retry` (1 = first retry): initial * 2^(retry-1) capped at max,
 * then jittered to a point in [d/2, d] picked by rnd. */
int64_t op_export_backoff_ns(int retry, int64_t initial_ns, int64_t max_ns, uint64_t rnd);

/* Parses a Retry-After value: delta-seconds or an HTTP-date (IMF-fixdate), relative to now_s
 * (Unix seconds). 0 and *delay_ns (>= 0, a past date gives 0), or -1 when unparseable. */
int op_export_retry_after(const char *value, int64_t now_s, int64_t *delay_ns);

enum { OP_HTTP_OK = 0, OP_HTTP_RETRY = 1, OP_HTTP_REJECT = 2 };
/* How a response status is treated: 2xx OK; 429, 502, 503, 504 RETRY; anything else REJECT. */
int op_export_status_class(long status);

/* The message of a google.rpc.Status protobuf body (field 2), copied into out as printable text.
 * Returns its length, or -1 when the body is not such a message. */
int op_export_status_message(const uint8_t *body, size_t len, char *out, size_t cap);

#endif
