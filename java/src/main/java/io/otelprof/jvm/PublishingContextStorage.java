package io.otelprof.jvm;

import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanContext;
import io.opentelemetry.context.Context;
import io.opentelemetry.context.ContextStorage;
import io.opentelemetry.context.Scope;

/**
 * Wraps the application's (or the OpenTelemetry Java agent's) ContextStorage: every attach that
 * changes the current span publishes the new one as the thread's OTEP 4947 record, and closing
 * that scope restores the record that was current before it. Attaches that leave the span as it
 * was (a context that only adds baggage or another key, or the same context again) publish
 * nothing and return the delegate's scope as it is.
 */
final class PublishingContextStorage implements ContextStorage {
    private final ContextStorage delegate;

    PublishingContextStorage(ContextStorage delegate) {
        this.delegate = delegate;
    }

    /** The wrapper ContextStorage.addWrapper takes: wraps once, whoever asks twice (the SPI
     *  provider, an explicit install, the Java agent extension). */
    static ContextStorage wrap(ContextStorage storage) {
        return storage instanceof PublishingContextStorage ? storage : new PublishingContextStorage(storage);
    }

    @Override
    public Scope attach(Context toAttach) {
        if ((!ContextBridge.active && !ContextBridge.retry()) || toAttach == null) return delegate.attach(toAttach);
        SpanContext before = spanContext(delegate.current());
        Scope scope = delegate.attach(toAttach);
        SpanContext after = spanContext(toAttach);
        if (after == before) return scope;
        int flags = ContextBridge.onVirtualThread() ? ContextBridge.VIRTUAL : 0;
        long token;
        if (after == null) {
            token = ContextBridge.attach0(0, 0, 0, flags);
        } else {
            String trace = after.getTraceId();
            token = ContextBridge.attach0(SpanIds.hex16(trace, 0), SpanIds.hex16(trace, 16),
                    SpanIds.hex16(after.getSpanId(), 0), flags | (after.getTraceFlags().asByte() & 0xff));
        }
        return token == 0 ? scope : new PublishedScope(scope, token, flags);
    }

    @Override
    public Context current() {
        return delegate.current();
    }

    @Override
    public Context root() {
        return delegate.root();
    }

    /** The valid SpanContext of ctx's span, or null for none. */
    private static SpanContext spanContext(Context ctx) {
        if (ctx == null) return null;
        Span span = Span.fromContextOrNull(ctx);
        if (span == null) return null;
        SpanContext sc = span.getSpanContext();
        return sc.isValid() ? sc : null;
    }

    /** The delegate's scope plus the token of the record published with it. */
    private static final class PublishedScope implements Scope {
        private final Scope inner;
        private final long token;
        private final int flags;
        private boolean closed;

        PublishedScope(Scope inner, long token, int flags) {
            this.inner = inner;
            this.token = token;
            this.flags = flags;
        }

        @Override
        public void close() {
            inner.close();
            // A token is detached once: a second close must not detach a newer record that
            // reused the freed one's address.
            if (closed) return;
            closed = true;
            ContextBridge.detach0(token, flags);
        }
    }
}
