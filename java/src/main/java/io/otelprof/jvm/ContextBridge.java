package io.otelprof.jvm;

import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The JNI natives that publish a span as the calling thread's OTEP 4947 thread-context record
 * (jvmti/context_jni.c, inside libotelprof_jvmti.so). The native agent binds them with
 * RegisterNatives when this class is prepared, whatever class loader loaded it (the application's,
 * or the OpenTelemetry Java agent's extension loader), and again for an agent attached later with
 * jcmd, which then also sets {@link #active}. Without the agent nothing is bound: {@link #active}
 * stays false, the bridge does nothing, and says so once; it looks again now and then
 * ({@link #retry}), so an agent attached later that did not bind it is found too.
 */
final class ContextBridge {
    private static final Logger LOG = Logger.getLogger("io.otelprof");

    /** Bit of attach0's flags: the calling thread is a virtual thread (its record follows it
     *  from carrier to carrier). */
    static final int VIRTUAL = 0x100;

    /** java.lang.VirtualThread on JDK 21+, else null. Compared by identity, which is cheaper
     *  than Thread.isVirtual() and leaves out the bound virtual threads of platforms without
     *  continuations, which run on a thread of their own and so are published as platform
     *  threads are. */
    private static final Class<?> VIRTUAL_THREAD = virtualThreadClass();

    /** True once the natives are bound. Plain (not volatile): the native agent sets it once,
     *  with the JNI, on late attach; a thread that sees it late only publishes a little later. */
    static boolean active = probe();

    private static int inactiveCalls;
    private static long nextProbe = System.nanoTime();

    private ContextBridge() {}

    /**
     * Called on attaches while inactive: every 1024th call, and at most once a second, probes
     * the natives again (quietly), for an agent attached late. Returns the new state. Races
     * between threads only probe once more.
     */
    static boolean retry() {
        if ((++inactiveCalls & 1023) != 0) return false;
        long now = System.nanoTime();
        if (now - nextProbe < 0) return false;
        nextProbe = now + 1_000_000_000L;
        try {
            if (ready0() == 1) active = true;
        } catch (UnsatisfiedLinkError e) {
            // still no agent
        }
        return active;
    }

    /** Returns the version of the native side's protocol (1). */
    private static native int ready0();

    /**
     * Publishes (traceHi:traceLo, spanId, flags) as the calling thread's record, the ids as the
     * big-endian halves of their bytes, and returns a token for {@link #detach0}; 0 when the
     * record could not be made (counted natively). Flags: the W3C trace flags in the low byte,
     * {@link #VIRTUAL} for a virtual thread. All zero ids publish "no span".
     */
    static native long attach0(long traceHi, long traceLo, long spanId, int flags);

    /** Restores the record that was current before the attach that returned token; flags as
     *  given to that attach. */
    static native void detach0(long token, int flags);

    /** The calling thread's record as a sampler sees it, as a W3C traceparent, or null. */
    static native String current0();

    /** The native side's counters, in the order of {@link Otelprof#stats()}'s keys. */
    static native long[] stats0();

    static boolean onVirtualThread() {
        return VIRTUAL_THREAD != null && Thread.currentThread().getClass() == VIRTUAL_THREAD;
    }

    private static Class<?> virtualThreadClass() {
        try {
            return Class.forName("java.lang.VirtualThread", false, null);
        } catch (ClassNotFoundException | LinkageError e) {
            return null;
        }
    }

    private static boolean probe() {
        try {
            int version = ready0();
            if (version == 1) return true;
            LOG.warning("otelprof: libotelprof_jvmti.so speaks context protocol " + version
                    + ", this jar speaks 1: spans are not published (use the jar and the agent of"
                    + " one build)");
        } catch (UnsatisfiedLinkError e) {
            LOG.log(Level.INFO, "otelprof: the native agent is not loaded (start the JVM with"
                    + " -agentpath:/path/to/libotelprof_jvmti.so): spans are not published to"
                    + " profiles");
        }
        return false;
    }
}
