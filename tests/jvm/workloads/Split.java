// Two Java methods sharing each worker thread's CPU 70/30, for the share and samples-x-interval
// checks. The split is made in CPU time: the worker runs hot() for 70% and cold() for 30% of
// periods of 50-150 ms of its own CPU time (lengths drawn from a seeded Random, so no period
// lines up with the kernel's tick). Sampling then errs only at the periods' edges, far less than
// independent samples would (a split made of iteration counts, 7:3 calls of one loop, spread 0.7 pp
// over 10 runs at 4,500 samples). Each worker stops after the given CPU time; the workers' total
// CPU time (ThreadMXBean) goes to stderr as worker_cpu_ns.
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Random;

public class Split {
    static final ThreadMXBean MX = ManagementFactory.getThreadMXBean();
    static long sink;

    static long spin(long n) {
        long x = sink;
        for (long i = 0; i < n; i++) {
            x = x * 6364136223846793005L + 1442695040888963407L;
            x ^= x >>> 29;
        }
        return x;
    }

    /** Burns the calling thread's CPU for ns nanoseconds in chunks of about 40 us. */
    static long burn(long ns) {
        long x = 0, until = MX.getCurrentThreadCpuTime() + ns;
        while (MX.getCurrentThreadCpuTime() < until) x += spin(20_000);
        return x;
    }

    static void hot(long periodNs) { sink += burn(periodNs * 7 / 10); }

    static void cold(long periodNs) { sink += burn(periodNs * 3 / 10); }

    public static void main(String[] args) throws Exception {
        double cpuSeconds = args.length > 0 ? Double.parseDouble(args[0]) : 3.0;
        int threads = args.length > 1 ? Integer.parseInt(args[1]) : 1;
        long[] cpu = new long[threads];
        Thread[] ts = new Thread[threads];
        for (int t = 0; t < threads; t++) {
            final int slot = t;
            ts[t] = new Thread(() -> {
                Random r = new Random(42 + slot);
                long until = (long) (cpuSeconds * 1e9);
                while (MX.getCurrentThreadCpuTime() < until) {
                    long period = 50_000_000L + (long) (r.nextDouble() * 100_000_000L);
                    hot(period);
                    cold(period);
                }
                cpu[slot] = MX.getCurrentThreadCpuTime();
            }, "worker-" + t);
            ts[t].start();
        }
        long total = 0;
        for (int t = 0; t < threads; t++) {
            ts[t].join();
            total += cpu[t];
        }
        System.err.println("worker_cpu_ns=" + total);
        System.out.println("result " + (sink != 42));
    }
}
