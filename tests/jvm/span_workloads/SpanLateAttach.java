// The bridge with the native agent attached late (jcmd PID JVMTI.agent_load ...): spans are used
// before the attach (nothing is published: no agent), the program prints "waiting" and reads a
// line from stdin; after the attach, scopes publish (at once when the agent binds the bridge
// itself, else within about a second of scope changes, when the bridge looks again). Prints
// "ok NAME" / "FAIL NAME: detail", "done".
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.context.Scope;
import io.opentelemetry.sdk.trace.SdkTracerProvider;
import io.otelprof.jvm.Otelprof;
import io.otelprof.jvm.ProfileIdSpanProcessor;
import java.io.BufferedReader;
import java.io.InputStreamReader;

public class SpanLateAttach {
    public static void main(String[] args) throws Exception {
        Tracer tracer = SdkTracerProvider.builder().addSpanProcessor(new ProfileIdSpanProcessor()).build()
                .get("late-attach");
        Span a = tracer.spanBuilder("a").startSpan();
        try (Scope s = a.makeCurrent()) {
            System.out.println((Otelprof.isActive() ? "FAIL inactive before: active" : "ok inactive before"));
        }
        System.out.println("waiting");
        System.out.flush();
        new BufferedReader(new InputStreamReader(System.in)).readLine();
        String want = "00-" + a.getSpanContext().getTraceId() + "-" + a.getSpanContext().getSpanId() + "-"
                + a.getSpanContext().getTraceFlags().asHex();
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (!Otelprof.isActive() && System.nanoTime() < deadline) {
            a.makeCurrent().close();
        }
        boolean active = Otelprof.isActive();
        System.out.println(active ? "ok active after attach" : "FAIL active after attach: still inactive");
        try (Scope s = a.makeCurrent()) {
            String got = Otelprof.publishedSpan();
            System.out.println(want.equals(got) ? "ok published after attach" : "FAIL published after attach: " + got);
        }
        String after = Otelprof.publishedSpan();
        System.out.println(after == null ? "ok restored after attach" : "FAIL restored after attach: " + after);
        System.out.println("done");
    }
}
