// Cost of a scope that changes the span (makeCurrent + close), on a platform thread and, on JDK
// 21+, on a virtual thread: best of 5 rounds of 2,000,000, in ns per attach+close. Run with the
// native agent (the bridge publishes) and without it (the wrapper only delegates) to see what
// publishing adds. Prints "platform NS" and "virtual NS".
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.context.Scope;
import io.opentelemetry.sdk.trace.SdkTracerProvider;
import io.otelprof.jvm.ProfileIdSpanProcessor;
import java.lang.reflect.Method;

public class SpanBench {
    static volatile long sink;

    public static void main(String[] args) throws Exception {
        Tracer tracer = SdkTracerProvider.builder().addSpanProcessor(new ProfileIdSpanProcessor()).build()
                .get("span-bench");
        Span a = tracer.spanBuilder("a").startSpan();
        Span b = tracer.spanBuilder("b").startSpan();
        double[] plat = new double[1];
        Thread pt = new Thread(() -> plat[0] = best(a, b));
        pt.start();
        pt.join();
        System.out.printf("platform %.1f%n", plat[0]);
        try {
            Method ofVirtual = Thread.class.getMethod("ofVirtual");
            Method start = Class.forName("java.lang.Thread$Builder").getMethod("start", Runnable.class);
            double[] out = new double[1];
            Thread t = (Thread) start.invoke(ofVirtual.invoke(null), (Runnable) () -> out[0] = best(a, b));
            t.join();
            System.out.printf("virtual %.1f%n", out[0]);
        } catch (NoSuchMethodException e) {
            System.out.println("virtual none");
        }
    }

    static double best(Span a, Span b) {
        double best = Double.MAX_VALUE;
        int n = 2_000_000;
        for (int round = 0; round < 5; round++) {
            long t0 = System.nanoTime();
            for (int i = 0; i < n; i++) {
                try (Scope s = ((i & 1) == 0 ? a : b).makeCurrent()) {
                    sink += i;
                }
            }
            best = Math.min(best, (System.nanoTime() - t0) / (double) n);
        }
        return best;
    }
}
