package io.otelprof.jvm;

import io.opentelemetry.context.ContextStorage;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * otelprof for applications that use the OpenTelemetry SDK directly. The profiler itself is the
 * native agent ({@code -agentpath:/path/libotelprof_jvmti.so}); this jar tells it which span each
 * thread is in, so samples carry the span they were taken in.
 *
 * <p>With this jar on the class path the wrapper is installed by itself (it is the application's
 * {@code io.opentelemetry.context.ContextStorageProvider}); an application that has a storage
 * provider of its own calls {@link #install()} before its first use of {@code Context} instead.
 * Under the OpenTelemetry Java agent, give the jar to the agent as an extension
 * ({@code -Dotel.javaagent.extensions=otelprof-jvm.jar}), which installs it.
 */
public final class Otelprof {
    private static final String[] COUNTERS = {
        "ctx_attached", "ctx_detached", "ctx_attach_failed", "ctx_detach_ignored",
        "ctx_virtual_attached", "ctx_mounts", "ctx_unmounts", "ctx_virtual_freed",
    };

    private Otelprof() {}

    /**
     * Wraps OpenTelemetry's context storage so every scope publishes its span. Takes effect only
     * when called before the first {@code Context} use in the process (a rule of
     * {@code ContextStorage.addWrapper}); calling it again, or besides the provider or the Java
     * agent extension, wraps once. Thread-safe.
     */
    public static void install() {
        ContextStorage.addWrapper(PublishingContextStorage::wrap);
    }

    /** True when the native agent is loaded and spans are being published. */
    public static boolean isActive() {
        return ContextBridge.active;
    }

    /**
     * The span a sample of the calling thread would carry now, as a W3C traceparent
     * ({@code 00-<trace id>-<span id>-<flags>}), or null for none (or without the agent): to check
     * a setup, e.g. inside a request handler.
     */
    public static String publishedSpan() {
        return ContextBridge.active ? ContextBridge.current0() : null;
    }

    /**
     * The native side's counters (records published and restored, attaches that could not be
     * made, detaches ignored, virtual-thread mounts and unmounts, ...); empty when the agent is
     * not loaded.
     */
    public static Map<String, Long> stats() {
        Map<String, Long> out = new LinkedHashMap<>();
        if (!ContextBridge.active) return out;
        long[] v = ContextBridge.stats0();
        for (int i = 0; i < COUNTERS.length && i < v.length; i++) out.put(COUNTERS[i], v[i]);
        return out;
    }
}
