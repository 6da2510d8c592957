package io.otelprof.jvm;

import io.opentelemetry.api.trace.SpanContext;
import io.opentelemetry.context.Context;
import io.opentelemetry.sdk.common.CompletableResultCode;
import io.opentelemetry.sdk.trace.ReadWriteSpan;
import io.opentelemetry.sdk.trace.ReadableSpan;
import io.opentelemetry.sdk.trace.SpanProcessor;

/**
 * Sets {@code pyroscope.profile.id} (the span's own id, 16 lower-case hex digits) on every local
 * root span — a span whose parent is absent or remote — which Grafana's traces-to-profiles joins
 * on: {@code SdkTracerProvider.builder().addSpanProcessor(new ProfileIdSpanProcessor())}. The Java
 * agent extension adds it by itself.
 */
public final class ProfileIdSpanProcessor implements SpanProcessor {
    static final String ATTRIBUTE = "pyroscope.profile.id";

    @Override
    public void onStart(Context parentContext, ReadWriteSpan span) {
        SpanContext parent = span.getParentSpanContext();
        if (!parent.isValid() || parent.isRemote()) {
            span.setAttribute(ATTRIBUTE, span.getSpanContext().getSpanId());
        }
    }

    @Override
    public boolean isStartRequired() {
        return true;
    }

    @Override
    public void onEnd(ReadableSpan span) {}

    @Override
    public boolean isEndRequired() {
        return false;
    }

    @Override
    public CompletableResultCode shutdown() {
        return CompletableResultCode.ofSuccess();
    }
}
