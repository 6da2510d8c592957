// What a sampler reads as each thread's span (Otelprof.publishedSpan(), the OTEP 4947 record)
// across scope changes: nesting, baggage-only contexts, the root context, out-of-order closes,
// other threads, and virtual threads moving between carriers. Prints "ok NAME" or "FAIL NAME:
// detail" per check and "done"; exits 1 on any failure.
//   java -agentpath:libotelprof_jvmti.so -cp <sdk>:<otelprof-jvm.jar>:. SpanSemantics [MODE]
// MODE "spi" (default): the wrapper comes from the jar's ContextStorageProvider; "install": from
// Otelprof.install() (the class path then holds the jar's classes without their service files);
// "inactive": run without the native agent, where scopes work as ever and nothing is published.
import io.opentelemetry.api.baggage.Baggage;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.context.Context;
import io.opentelemetry.context.ContextStorage;
import io.opentelemetry.context.Scope;
import io.opentelemetry.sdk.trace.SdkTracerProvider;
import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.sdk.trace.ReadableSpan;
import io.otelprof.jvm.Otelprof;
import io.otelprof.jvm.ProfileIdSpanProcessor;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

public class SpanSemantics {
    static int failures;

    static void check(String name, boolean ok, Object detail) {
        System.out.println((ok ? "ok " : "FAIL ") + name + (ok ? "" : ": " + detail));
        if (!ok) failures++;
    }

    static String tp(Span s) {
        return "00-" + s.getSpanContext().getTraceId() + "-" + s.getSpanContext().getSpanId() + "-"
                + s.getSpanContext().getTraceFlags().asHex();
    }

    static long stat(String k) {
        return Otelprof.stats().getOrDefault(k, -1L);
    }

    public static void main(String[] args) throws Exception {
        String mode = args.length > 0 ? args[0] : "spi";
        if (mode.equals("install")) Otelprof.install();
        // (An SDK without span processors makes no spans.)
        Tracer tracer = SdkTracerProvider.builder().addSpanProcessor(new ProfileIdSpanProcessor()).build()
                .get("span-semantics");
        if (mode.equals("inactive")) {
            inactive(tracer);
            return;
        }
        check("active", Otelprof.isActive(), "the native agent's natives are not bound");
        check("storage wrapped", ContextStorage.get().getClass().getName().startsWith("io.otelprof."),
                ContextStorage.get().getClass());
        check("none outside spans", Otelprof.publishedSpan() == null, Otelprof.publishedSpan());

        Span a = tracer.spanBuilder("a").startSpan();
        Span b = tracer.spanBuilder("b").setParent(Context.current().with(a)).startSpan();
        AttributeKey<String> pid = AttributeKey.stringKey("pyroscope.profile.id");
        check("pyroscope.profile.id on the local root", a.getSpanContext().getSpanId()
                .equals(((ReadableSpan) a).getAttribute(pid)), ((ReadableSpan) a).getAttribute(pid));
        check("no pyroscope.profile.id on a child", ((ReadableSpan) b).getAttribute(pid) == null,
                ((ReadableSpan) b).getAttribute(pid));
        try (Scope sa = a.makeCurrent()) {
            check("attach", tp(a).equals(Otelprof.publishedSpan()), Otelprof.publishedSpan());
            try (Scope sb = b.makeCurrent()) {
                check("nested attach", tp(b).equals(Otelprof.publishedSpan()), Otelprof.publishedSpan());
            }
            check("close restores the outer span", tp(a).equals(Otelprof.publishedSpan()), Otelprof.publishedSpan());

            long before = stat("ctx_attached");
            try (Scope sbag = Context.current().with(Baggage.builder().put("k", "v").build()).makeCurrent()) {
                check("baggage-only context keeps the span", tp(a).equals(Otelprof.publishedSpan()),
                        Otelprof.publishedSpan());
                check("baggage-only context publishes nothing", stat("ctx_attached") == before,
                        stat("ctx_attached") + " vs " + before);
            }
            try (Scope sr = Context.root().makeCurrent()) {
                check("root context inside a span: none", Otelprof.publishedSpan() == null, Otelprof.publishedSpan());
            }
            check("after the root context: the span again", tp(a).equals(Otelprof.publishedSpan()),
                    Otelprof.publishedSpan());

            // Another thread never sees this thread's span, and its own spans stay its own.
            String[] seen = new String[2];
            Thread t = new Thread(() -> {
                seen[0] = Objects.toString(Otelprof.publishedSpan());
                try (Scope s2 = b.makeCurrent()) {
                    seen[1] = Otelprof.publishedSpan();
                }
            });
            t.start();
            t.join();
            check("other thread starts with none", "null".equals(seen[0]), seen[0]);
            check("other thread's own span", tp(b).equals(seen[1]), seen[1]);
            check("this thread unchanged", tp(a).equals(Otelprof.publishedSpan()), Otelprof.publishedSpan());
        }
        check("none after the last close", Otelprof.publishedSpan() == null, Otelprof.publishedSpan());

        // Out of order: closing the outer scope first restores what was before it.
        Scope so = a.makeCurrent();
        Scope si = b.makeCurrent();
        so.close();
        check("out-of-order close restores the outer's previous", Otelprof.publishedSpan() == null,
                Otelprof.publishedSpan());
        si.close();
        so.close(); // a second close detaches nothing
        a.makeCurrent().close();
        check("state usable after misuse", Otelprof.publishedSpan() == null, Otelprof.publishedSpan());

        virtualThreads(tracer);

        Map<String, Long> st = Otelprof.stats();
        check("counters", st.get("ctx_attached") > 0 && st.get("ctx_attach_failed") == 0, st);
        System.out.println("stats " + st);
        System.out.println("done");
        System.exit(failures == 0 ? 0 : 1);
    }

    static void inactive(Tracer tracer) {
        check("inactive", !Otelprof.isActive(), "natives bound without the agent?");
        Span a = tracer.spanBuilder("a").startSpan();
        try (Scope sa = a.makeCurrent()) {
            check("scopes still work", Span.current() == a, Span.current());
            check("nothing published", Otelprof.publishedSpan() == null, Otelprof.publishedSpan());
        }
        check("scope closed", !Span.current().getSpanContext().isValid(), Span.current());
        check("no counters", Otelprof.stats().isEmpty(), Otelprof.stats());
        System.out.println("done");
        System.exit(failures == 0 ? 0 : 1);
    }

    // Virtual threads (JDK 21+): each keeps its own span across unmount/mount on any carrier,
    // and one that ends inside a scope has its records freed.
    static void virtualThreads(Tracer tracer) throws Exception {
        Method ofVirtual;
        try {
            ofVirtual = Thread.class.getMethod("ofVirtual");
        } catch (NoSuchMethodException e) {
            System.out.println("virtual threads: not on this JDK");
            return;
        }
        Object builder = ofVirtual.invoke(null);
        Method unstarted = Class.forName("java.lang.Thread$Builder").getMethod("unstarted", Runnable.class);
        int n = 200;
        AtomicInteger wrong = new AtomicInteger();
        AtomicInteger checks = new AtomicInteger();
        Map<String, Boolean> carriers = new ConcurrentHashMap<>();
        List<String> firstWrong = new ArrayList<>();
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            Runnable r = () -> {
                Span s = tracer.spanBuilder("v").startSpan();
                String want = tp(s);
                try (Scope sc = s.makeCurrent()) {
                    for (int k = 0; k < 20; k++) {
                        Thread.yield(); // unmounts; resumes on any carrier
                        carriers.put(carrierName(), true);
                        String got = Otelprof.publishedSpan();
                        checks.incrementAndGet();
                        if (!want.equals(got)) {
                            wrong.incrementAndGet();
                            synchronized (firstWrong) {
                                if (firstWrong.size() < 3) firstWrong.add(want + " != " + got);
                            }
                        }
                    }
                }
                Thread.yield();
                if (Otelprof.publishedSpan() != null) wrong.incrementAndGet();
            };
            threads.add((Thread) unstarted.invoke(builder, r));
        }
        for (Thread t : threads) t.start();
        for (Thread t : threads) t.join();
        check("virtual threads keep their span across mounts", wrong.get() == 0,
                wrong.get() + " of " + checks.get() + " wrong, e.g. " + firstWrong);
        check("virtual threads ran on several carriers", carriers.size() >= 2, carriers.keySet());
        check("mount events seen", stat("ctx_mounts") >= n, Otelprof.stats());
        check("carrier shows none after its virtual threads", Otelprof.publishedSpan() == null,
                Otelprof.publishedSpan());

        long freed = stat("ctx_virtual_freed");
        CountDownLatch done = new CountDownLatch(1);
        Thread leaky = (Thread) unstarted.invoke(builder, (Runnable) () -> {
            tracer.spanBuilder("leak").startSpan().makeCurrent(); // never closed
            done.countDown();
        });
        leaky.start();
        leaky.join();
        done.await();
        check("records of a virtual thread that ended inside a scope are freed",
                stat("ctx_virtual_freed") == freed + 1, Otelprof.stats());
    }

    static String carrierName() {
        // "VirtualThread[#22]/runnable@ForkJoinPool-1-worker-3": the carrier after the '@'.
        String s = Thread.currentThread().toString();
        return s.substring(s.indexOf('@') + 1);
    }
}
