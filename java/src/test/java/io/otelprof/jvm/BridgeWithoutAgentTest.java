package io.otelprof.jvm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanContext;
import io.opentelemetry.api.trace.TraceFlags;
import io.opentelemetry.api.trace.TraceState;
import io.opentelemetry.context.Context;
import io.opentelemetry.context.ContextStorage;
import io.opentelemetry.context.Scope;
import org.junit.jupiter.api.Test;

/** The JVM running the unit tests has no native agent: the bridge is inactive and the wrapper only
 *  delegates. (With the agent, tests/jvm/test_span_sdk.py checks what is published.) */
class BridgeWithoutAgentTest {
    static final Span A = Span.wrap(SpanContext.create("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331",
            TraceFlags.getSampled(), TraceState.getDefault()));

    @Test
    void providerOnTheClassPathWrapsTheStorage() {
        // target/classes holds META-INF/services/io.opentelemetry.context.ContextStorageProvider.
        assertInstanceOf(PublishingContextStorage.class, ContextStorage.get());
    }

    @Test
    void wrappingIsIdempotent() {
        ContextStorage inner = ContextStorage.defaultStorage();
        ContextStorage once = PublishingContextStorage.wrap(inner);
        assertInstanceOf(PublishingContextStorage.class, once);
        assertSame(once, PublishingContextStorage.wrap(once));
        Otelprof.install(); // after the first Context use: no effect, no error
        assertInstanceOf(PublishingContextStorage.class, ContextStorage.get());
    }

    @Test
    void inactiveWithoutTheAgent() {
        assertFalse(Otelprof.isActive());
        assertTrue(Otelprof.stats().isEmpty());
        try (Scope s = A.makeCurrent()) {
            assertSame(A, Span.current());
            assertNull(Otelprof.publishedSpan());
            try (Scope r = Context.root().makeCurrent()) {
                assertFalse(Span.current().getSpanContext().isValid());
            }
            assertSame(A, Span.current());
        }
        assertFalse(Span.current().getSpanContext().isValid());
    }

    @Test
    void virtualThreadClassIsFoundOnlyWhereItExists() {
        boolean hasVirtual = Runtime.version().feature() >= 21;
        Thread t = Thread.currentThread();
        assertFalse(ContextBridge.onVirtualThread(), t.toString());
        assertEquals(hasVirtual, classExists("java.lang.VirtualThread"));
    }

    private static boolean classExists(String name) {
        try {
            Class.forName(name, false, null);
            return true;
        } catch (ClassNotFoundException e) {
            return false;
        }
    }
}
