package io.otelprof.jvm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanContext;
import io.opentelemetry.api.trace.TraceFlags;
import io.opentelemetry.api.trace.TraceState;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.context.Context;
import io.opentelemetry.sdk.autoconfigure.AutoConfiguredOpenTelemetrySdk;
import io.opentelemetry.sdk.trace.ReadableSpan;
import io.opentelemetry.sdk.trace.SdkTracerProvider;
import java.util.Map;
import org.junit.jupiter.api.Test;

class ProfileIdSpanProcessorTest {
    static final AttributeKey<String> KEY = AttributeKey.stringKey("pyroscope.profile.id");

    static String attr(Span s) {
        return ((ReadableSpan) s).getAttribute(KEY);
    }

    static void checkLocalRoots(Tracer tracer) {
        Span root = tracer.spanBuilder("root").startSpan();
        Span child = tracer.spanBuilder("child").setParent(Context.root().with(root)).startSpan();
        SpanContext remote = SpanContext.createFromRemoteParent("0af7651916cd43dd8448eb211c80319c",
                "b7ad6b7169203331", TraceFlags.getSampled(), TraceState.getDefault());
        Span server = tracer.spanBuilder("server").setParent(Context.root().with(Span.wrap(remote))).startSpan();
        assertEquals(root.getSpanContext().getSpanId(), attr(root));
        assertNull(attr(child));
        assertEquals(server.getSpanContext().getSpanId(), attr(server));
        assertEquals(16, attr(server).length());
    }

    @Test
    void setsTheIdOnLocalRootsOnly() {
        checkLocalRoots(SdkTracerProvider.builder().addSpanProcessor(new ProfileIdSpanProcessor()).build()
                .get("test"));
    }

    @Test
    void autoconfigurationAddsIt() {
        // The jar's AutoConfigurationCustomizerProvider (the Java agent extension) is found by
        // the SDK's autoconfiguration as the Java agent finds it.
        OpenTelemetry otel = AutoConfiguredOpenTelemetrySdk.builder()
                .addPropertiesSupplier(() -> Map.of("otel.traces.exporter", "none", "otel.metrics.exporter", "none",
                        "otel.logs.exporter", "none"))
                .build().getOpenTelemetrySdk();
        checkLocalRoots(otel.getTracer("test"));
    }
}
