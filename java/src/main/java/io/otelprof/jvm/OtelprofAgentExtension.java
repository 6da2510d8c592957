package io.otelprof.jvm;

import io.opentelemetry.sdk.autoconfigure.spi.AutoConfigurationCustomizer;
import io.opentelemetry.sdk.autoconfigure.spi.AutoConfigurationCustomizerProvider;

/**
 * The OpenTelemetry Java agent extension ({@code -Dotel.javaagent.extensions=otelprof-jvm.jar}),
 * also picked up by the SDK's autoconfiguration: wraps the agent's context storage, so the spans
 * of its auto-instrumentation reach the samples, and adds {@link ProfileIdSpanProcessor}. The
 * agent runs customize() before it makes any context current; inside the agent the OpenTelemetry
 * classes this refers to are the agent's own (its extension loader relocates them).
 */
public final class OtelprofAgentExtension implements AutoConfigurationCustomizerProvider {
    @Override
    public void customize(AutoConfigurationCustomizer customizer) {
        Otelprof.install();
        customizer.addTracerProviderCustomizer(
                (builder, config) -> builder.addSpanProcessor(new ProfileIdSpanProcessor()));
    }
}
