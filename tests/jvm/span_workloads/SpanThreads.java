// Platform threads through the SDK directly: each of N threads ("span-worker-I") burns CPU in
// burnOutside, then inside its own span in burnInside, then outside again. Prints
// "span THREAD TRACE_ID SPAN_ID" per thread and "done".
//   java -agentpath:libotelprof_jvmti.so -cp <sdk>:<otelprof-jvm.jar>:. SpanThreads N MS
// MS: CPU milliseconds inside the span per thread (half as much before and after it).
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.context.Scope;
import io.opentelemetry.sdk.trace.SdkTracerProvider;
import io.otelprof.jvm.Otelprof;
import io.otelprof.jvm.ProfileIdSpanProcessor;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.ArrayList;
import java.util.List;

public class SpanThreads {
    static final ThreadMXBean MX = ManagementFactory.getThreadMXBean();
    static volatile double sink;

    public static void main(String[] args) throws Exception {
        int n = Integer.parseInt(args[0]);
        long ms = Long.parseLong(args[1]);
        Tracer tracer = SdkTracerProvider.builder().addSpanProcessor(new ProfileIdSpanProcessor()).build()
                .get("span-threads");
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            String name = "span-worker-" + i;
            threads.add(new Thread(() -> {
                burnOutside(ms / 2);
                Span span = tracer.spanBuilder(name).startSpan();
                try (Scope s = span.makeCurrent()) {
                    synchronized (SpanThreads.class) {
                        System.out.println("span " + name + " " + span.getSpanContext().getTraceId() + " "
                                + span.getSpanContext().getSpanId());
                    }
                    burnInside(ms);
                } finally {
                    span.end();
                }
                burnOutside(ms / 2);
            }, name));
        }
        for (Thread t : threads) t.start();
        for (Thread t : threads) t.join();
        System.out.println("active " + Otelprof.isActive());
        System.out.println("done");
    }

    static void burnInside(long ms) {
        burn(ms);
    }

    static void burnOutside(long ms) {
        burn(ms);
    }

    /** Burns ms of this thread's CPU time. */
    static void burn(long ms) {
        long end = MX.getCurrentThreadCpuTime() + ms * 1_000_000;
        double x = 1;
        while (MX.getCurrentThreadCpuTime() < end) {
            for (int i = 0; i < 20_000; i++) x = x * 1.0000001 + Math.sqrt(x);
        }
        sink = x;
    }
}
