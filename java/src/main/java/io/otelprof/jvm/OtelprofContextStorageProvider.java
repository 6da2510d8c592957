package io.otelprof.jvm;

import io.opentelemetry.context.ContextStorage;
import io.opentelemetry.context.ContextStorageProvider;

/**
 * The storage provider OpenTelemetry finds on the class path: the default thread-local storage,
 * wrapped to publish spans. OpenTelemetry takes a provider only when it is the only one (or named
 * by {@code -Dio.opentelemetry.context.contextStorageProvider}); an application with a provider of
 * its own names that one and calls {@link Otelprof#install()}, which wraps whatever storage is
 * chosen.
 */
public final class OtelprofContextStorageProvider implements ContextStorageProvider {
    @Override
    public ContextStorage get() {
        return PublishingContextStorage.wrap(ContextStorage.defaultStorage());
    }
}
