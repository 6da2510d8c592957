// A small HTTP service to profile under the OpenTelemetry Java agent (examples/java/README.md):
//   GET /price?items=N  CPU-heavy: prices N options by Monte Carlo simulation
//   GET /io?ms=M        I/O: writes, syncs and reads back a file, then waits M ms for a "backend"
//   GET /quit           stops the server; the JVM exits
// Uses only the JDK (com.sun.net.httpserver); the agent instruments it, so each request runs in
// a server span. Prints "listening on port P" once it accepts connections.
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

public final class PriceService {
    public static void main(String[] args) throws Exception {
        int port = args.length > 0 ? Integer.parseInt(args[0]) : 8080;
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 64);
        ExecutorService pool = Executors.newFixedThreadPool(4, r -> {
            Thread t = new Thread(r, "http-worker");
            t.setDaemon(true);
            return t;
        });
        CountDownLatch quit = new CountDownLatch(1);
        server.createContext("/price", ex -> {
            try {
                respond(ex, 200, price(query(ex)));
            } catch (NumberFormatException e) {
                respond(ex, 400, "items must be an integer\n");
            }
        });
        server.createContext("/io", ex -> {
            try {
                respond(ex, 200, io(query(ex)));
            } catch (NumberFormatException e) {
                respond(ex, 400, "ms must be an integer\n");
            }
        });
        server.createContext("/quit", ex -> {
            respond(ex, 200, "bye\n");
            quit.countDown();
        });
        server.setExecutor(pool);
        server.start();
        System.out.println("listening on port " + server.getAddress().getPort());
        quit.await();
        server.stop(0);
        // The /quit handler's span ends only when its handler returns, after the countDown: wait
        // for the workers, so that span ends and is exported at exit like every other.
        pool.shutdown();
        pool.awaitTermination(10, TimeUnit.SECONDS);
        System.out.println("stopped");
    }

    /** Average discounted payoff of a European call, per item, by simulation. */
    static String price(Map<String, String> q) {
        int items = Integer.parseInt(q.getOrDefault("items", "20"));
        SplittableRandom rnd = new SplittableRandom(items);
        double total = 0;
        for (int i = 0; i < items; i++) total += simulate(rnd, 100 + i % 10, 100, 0.2, 0.01, 20_000);
        return String.format("%.4f%n", total / items);
    }

    static double simulate(SplittableRandom rnd, double spot, double strike, double vol, double rate,
                           int paths) {
        double sum = 0;
        for (int p = 0; p < paths; p++) {
            // Box-Muller normal draw
            double z = Math.sqrt(-2 * Math.log(rnd.nextDouble(1e-12, 1))) * Math.cos(2 * Math.PI * rnd.nextDouble());
            double end = spot * Math.exp((rate - vol * vol / 2) + vol * z);
            sum += Math.max(end - strike, 0);
        }
        return Math.exp(-rate) * sum / paths;
    }

    static String io(Map<String, String> q) throws IOException {
        int ms = Integer.parseInt(q.getOrDefault("ms", "20"));
        Path f = Files.createTempFile("price-io", ".dat");
        try {
            byte[] block = new byte[64 * 1024];
            Files.write(f, block, StandardOpenOption.WRITE, StandardOpenOption.SYNC);
            int n = Files.readAllBytes(f).length;
            Thread.sleep(ms);
            return n + " bytes\n";
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return "interrupted\n";
        } finally {
            Files.deleteIfExists(f);
        }
    }

    static Map<String, String> query(HttpExchange ex) {
        Map<String, String> out = new HashMap<>();
        String raw = ex.getRequestURI().getRawQuery();
        if (raw == null) return out;
        for (String kv : raw.split("&")) {
            int eq = kv.indexOf('=');
            if (eq > 0) out.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        return out;
    }

    static void respond(HttpExchange ex, int status, String body) throws IOException {
        byte[] b = body.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
        ex.sendResponseHeaders(status, b.length);
        try (OutputStream os = ex.getResponseBody()) {
            os.write(b);
        }
    }
}
