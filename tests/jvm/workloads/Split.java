// Two methods sharing one thread's CPU 70/30 (by iteration counts of the same loop body), for
// the share and samples-x-interval checks; prints the thread's CPU time (ThreadMXBean) on stderr.
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;

public class Split {
    static long sink;

    static long spin(long n) {
        long x = sink;
        for (long i = 0; i < n; i++) {
            x = x * 6364136223846793005L + 1442695040888963407L;
            x ^= x >>> 29;
        }
        return x;
    }

    static void hot() { sink += spin(7_000); }

    static void cold() { sink += spin(3_000); }

    public static void main(String[] args) throws Exception {
        double seconds = args.length > 0 ? Double.parseDouble(args[0]) : 3.0;
        int threads = args.length > 1 ? Integer.parseInt(args[1]) : 1;
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        long[] cpu = new long[threads];
        Thread[] ts = new Thread[threads];
        for (int t = 0; t < threads; t++) {
            final int slot = t;
            ts[t] = new Thread(() -> {
                long end = System.nanoTime() + (long) (seconds * 1e9);
                while (System.nanoTime() < end) {
                    for (int i = 0; i < 100; i++) { hot(); cold(); }
                }
                cpu[slot] = mx.getCurrentThreadCpuTime();
            }, "worker-" + t);
            ts[t].start();
        }
        long total = 0;
        for (int t = 0; t < threads; t++) { ts[t].join(); total += cpu[t]; }
        System.err.println("worker_cpu_ns=" + total);
        System.out.println("result " + (sink != 42));
    }
}
