/* The OpenTelemetry span of the running fiber, published as the thread's OTEP 4947 record, which
 * the core's handler reads for every sample (and external profilers read too). Nothing here runs
 * in signal context: the record is republished whenever the answer can change — after
 * OpenTelemetry::Context.attach, .detach and .clear (wrapped in lib/otelprof/opentelemetry.rb)
 * and after every fiber switch (a FIBER_SWITCH tracepoint: Fiber#resume, #yield, #transfer and
 * Enumerator#next all switch fibers without touching the context).
 *
 * The span is read the way OpenTelemetry Ruby (API 1.5+, up to 1.8 for Ruby 3.1) keeps it, by
 * instance variables and with no method call: the current fiber's @opentelemetry_context (an
 * Array of Context) -> its last Context -> @entries (a Hash keyed by Context::Key objects) -> the
 * value under OpenTelemetry::Trace::CURRENT_SPAN_KEY (found by identity) -> the span's @context
 * (a SpanContext) -> @trace_id (16 bytes), @span_id (8 bytes) and @trace_flags. An all-zero id
 * (the invalid span) is no span. Anything shaped otherwise is no span either. */
#include <string.h>

#include "orb.h"

#include <ruby/debug.h>

static VALUE span_key = Qnil; /* CURRENT_SPAN_KEY once OpenTelemetry is loaded */
static VALUE tp_fiber = Qnil;
static ID id_stack, id_entries, id_context, id_trace_id, id_span_id, id_trace_flags, id_flags;

/* This thread's published record (ours) and its ids, to skip unchanged republishes. */
static __thread void *tl_token;
static __thread uint8_t tl_ids[24];

static VALUE ivar(VALUE obj, ID id) {
    return RB_SPECIAL_CONST_P(obj) ? Qnil : rb_ivar_get(obj, id);
}

typedef struct found {
    VALUE span;
} found;

static int match_key(VALUE key, VALUE value, VALUE arg) {
    if (key != span_key) return ST_CONTINUE;
    ((found *)arg)->span = value;
    return ST_STOP;
}

static int binary(VALUE s, long len, uint8_t *out) {
    if (!RB_TYPE_P(s, T_STRING) || RSTRING_LEN(s) != len) return 0;
    memcpy(out, RSTRING_PTR(s), (size_t)len);
    for (long i = 0; i < len; i++)
        if (out[i]) return 1;
    return 0;
}

/* The running fiber's span: 1 and its ids and flags, or 0. GVL. */
static int current_span(uint8_t ids[24], uint8_t *flags) {
    VALUE stack = ivar(rb_fiber_current(), id_stack);
    if (!RB_TYPE_P(stack, T_ARRAY) || RARRAY_LEN(stack) == 0) return 0;
    VALUE entries = ivar(RARRAY_AREF(stack, RARRAY_LEN(stack) - 1), id_entries);
    if (!RB_TYPE_P(entries, T_HASH)) return 0;
    found f = {Qnil};
    rb_hash_foreach(entries, match_key, (VALUE)&f);
    VALUE sc = ivar(f.span, id_context);
    if (!binary(ivar(sc, id_trace_id), 16, ids) || !binary(ivar(sc, id_span_id), 8, ids + 16)) return 0;
    VALUE tf = ivar(sc, id_trace_flags);
    if (!FIXNUM_P(tf)) tf = ivar(tf, id_flags); /* a TraceFlags object */
    *flags = FIXNUM_P(tf) ? (uint8_t)FIX2LONG(tf) : 0;
    return 1;
}

void orb_span_publish_current(void) {
    if (NIL_P(span_key)) return;
    uint8_t ids[24] = {0}, flags = 0;
    int has = current_span(ids, &flags);
    if ((has && tl_token && memcmp(ids, tl_ids, 24) == 0) || (!has && !tl_token)) return;
    /* Detach the old record and attach the new one with no sample landing in between. */
    sigset_t old;
    otelprof_signal_block(&old);
    if (tl_token) otelprof_ctx_detach(tl_token);
    tl_token = has ? otelprof_ctx_attach(ids, ids + 16, flags, NULL, 0) : NULL;
    otelprof_signal_restore(&old);
    if (tl_token) memcpy(tl_ids, ids, 24);
    ORB_COUNT(ORB_STAT_CTX_PUBLISHED);
}

static void on_fiber_switch(VALUE tp, void *data) {
    (void)tp, (void)data;
    orb_span_publish_current();
}

void orb_span_set_key(VALUE key) {
    if (!id_stack) {
        id_stack = rb_intern("@opentelemetry_context");
        id_entries = rb_intern("@entries");
        id_context = rb_intern("@context");
        id_trace_id = rb_intern("@trace_id");
        id_span_id = rb_intern("@span_id");
        id_trace_flags = rb_intern("@trace_flags");
        id_flags = rb_intern("@flags");
        rb_gc_register_address(&span_key);
        rb_gc_register_address(&tp_fiber);
    }
    span_key = key;
    if (NIL_P(tp_fiber)) tp_fiber = rb_tracepoint_new(0, RUBY_EVENT_FIBER_SWITCH, on_fiber_switch, NULL);
    if (NIL_P(key)) rb_tracepoint_disable(tp_fiber);
    else rb_tracepoint_enable(tp_fiber);
    orb_span_publish_current();
}
