// HTTP service for the JVM rows of bench/run, under a bounded load from the harness:
//   java BenchHttp                 serves on a free port of 127.0.0.1, prints "listening on port P"
//   GET /work?units=N              N work units of BenchSplit (70/30 between hot and cold)
//   GET /quit                      stops the server; the JVM exits
// The JDK's own server (com.sun.net.httpserver) with a pool of 4 workers, as a small service would
// run it; the harness's fixed request count keeps the work per run fixed.
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

public final class BenchHttp {
    public static void main(String[] args) throws Exception {
        // Without TCP_NODELAY, the headers and the body of a response leave as two small writes
        // and the second waits for the client's delayed ACK (~40 ms): the load would measure that.
        System.setProperty("sun.net.httpserver.nodelay", "true");
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 64);
        ExecutorService pool = Executors.newFixedThreadPool(4, r -> new Thread(r, "http-worker"));
        CountDownLatch quit = new CountDownLatch(1);
        server.createContext("/work", ex -> {
            long units;
            try {
                units = Long.parseLong(param(ex, "units", "1"));
            } catch (NumberFormatException e) {
                respond(ex, 400, "units must be an integer\n");
                return;
            }
            respond(ex, 200, "ok " + (BenchSplit.work(units, units) & 0xff) + "\n");
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
        pool.shutdown();
    }

    static String param(HttpExchange ex, String name, String dflt) {
        String raw = ex.getRequestURI().getRawQuery();
        if (raw != null) {
            for (String kv : raw.split("&")) {
                if (kv.startsWith(name + "=")) return kv.substring(name.length() + 1);
            }
        }
        return dflt;
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
