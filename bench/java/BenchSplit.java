// Benchmark workload for the JVM rows of bench/run: a fixed amount of work split 70/30 between
// hot() and cold() by iteration count, on one thread or several.
//   java BenchSplit single <units>          one thread does <units> work units
//   java BenchSplit threads <units> <n>     n threads share <units> work units
//   java BenchSplit calibrate               prints seconds of CPU per unit, once the JIT has settled
// The harness calibrates once, without a profiler, and passes a unit count: a workload that timed
// itself would do less work under a profiler and hide the overhead.
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;

public final class BenchSplit {
    // Integer mixing the JIT cannot fold away; the iteration counts set the 7:3 split.
    static long hot(long x) {
        for (int i = 0; i < 70_000; i++) x = x * 6364136223846793005L + 1442695040888963407L;
        return x;
    }

    static long cold(long x) {
        for (int i = 0; i < 30_000; i++) x = x * 6364136223846793005L + 1442695040888963407L;
        return x;
    }

    static long work(long units, long seed) {
        long x = seed;
        for (long u = 0; u < units; u++) x = cold(hot(x));
        return x;
    }

    static long threads(long units, int n) throws InterruptedException {
        long per = Math.max(1, units / n);
        long[] results = new long[n];
        Thread[] ts = new Thread[n];
        for (int i = 0; i < n; i++) {
            final int k = i;
            ts[i] = new Thread(() -> results[k] = work(per, k + 1), "bench-worker-" + i);
            ts[i].start();
        }
        long acc = 0;
        for (int i = 0; i < n; i++) {
            ts[i].join();
            acc ^= results[i];
        }
        return acc;
    }

    static void calibrate() {
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        long sink = work(2_000, 1); // interpreted, then compiled: not what a long run pays per unit
        long n = 500, t0 = mx.getCurrentThreadCpuTime();
        sink ^= work(n, 2);
        double per = (mx.getCurrentThreadCpuTime() - t0) / 1e9 / n;
        System.out.println(per + " " + (sink & 1));
    }

    public static void main(String[] args) throws Exception {
        long acc;
        switch (args[0]) {
            case "calibrate":
                calibrate();
                return;
            case "single":
                acc = work(Long.parseLong(args[1]), 1);
                break;
            case "threads":
                acc = threads(Long.parseLong(args[1]), Integer.parseInt(args[2]));
                break;
            default:
                System.err.println("usage: BenchSplit single|threads|calibrate ...");
                System.exit(2);
                return;
        }
        System.out.println("ok " + (acc & 1));
    }
}
