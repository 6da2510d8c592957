// Virtual threads (JDK 21+): N virtual threads, each in its own span, burn CPU in ROUNDS slices
// of SLICE_US microseconds with a Thread.yield() between slices, so they unmount and resume on
// any carrier. Thread I's stack encodes I: burn is called under (I/100 + 1) frames of hundreds,
// (I/10 % 10 + 1) of tens and (I % 10 + 1) of ones. Prints "span I TRACE_ID SPAN_ID" per thread
// and "done".
//   java -agentpath:libotelprof_jvmti.so -cp <sdk>:<otelprof-jvm.jar>:. SpanVirtual N ROUNDS SLICE_US
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.context.Scope;
import io.opentelemetry.sdk.trace.SdkTracerProvider;
import io.otelprof.jvm.Otelprof;
import io.otelprof.jvm.ProfileIdSpanProcessor;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.List;

public class SpanVirtual {
    static volatile double sink;

    public static void main(String[] args) throws Exception {
        int n = Integer.parseInt(args[0]);
        int rounds = Integer.parseInt(args[1]);
        long sliceNs = Long.parseLong(args[2]) * 1000;
        Tracer tracer = SdkTracerProvider.builder().addSpanProcessor(new ProfileIdSpanProcessor()).build()
                .get("span-virtual");
        // Compiled for JDK 17 like the other workloads: the JDK 21 API through reflection.
        Object builder = Thread.class.getMethod("ofVirtual").invoke(null);
        Method start = Class.forName("java.lang.Thread$Builder").getMethod("start", Runnable.class);
        String[] lines = new String[n];
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int id = i;
            threads.add((Thread) start.invoke(builder, (Runnable) () -> {
                Span span = tracer.spanBuilder("v" + id).startSpan();
                lines[id] = "span " + id + " " + span.getSpanContext().getTraceId() + " "
                        + span.getSpanContext().getSpanId();
                try (Scope s = span.makeCurrent()) {
                    for (int r = 0; r < rounds; r++) {
                        hundreds(id / 100, id, sliceNs);
                        Thread.yield();
                    }
                } finally {
                    span.end();
                }
            }));
        }
        for (Thread t : threads) t.join();
        for (String l : lines) System.out.println(l);
        System.out.println("stats " + Otelprof.stats());
        System.out.println("done");
    }

    static void hundreds(int k, int id, long ns) {
        if (k > 0) hundreds(k - 1, id, ns);
        else tens(id / 10 % 10, id, ns);
    }

    static void tens(int k, int id, long ns) {
        if (k > 0) tens(k - 1, id, ns);
        else ones(id % 10, id, ns);
    }

    static void ones(int k, int id, long ns) {
        if (k > 0) ones(k - 1, id, ns);
        else burnVirtual(ns);
    }

    /** Burns about ns of CPU (wall time on a carrier that is not preempted: the carriers are
     *  as many as the cores). */
    static void burnVirtual(long ns) {
        long end = System.nanoTime() + ns;
        double x = 1;
        while (System.nanoTime() < end) {
            for (int i = 0; i < 2_000; i++) x = x * 1.0000001 + Math.sqrt(x);
        }
        sink = x;
    }
}
