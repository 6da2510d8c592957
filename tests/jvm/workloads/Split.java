// Two methods sharing each worker thread's CPU 70/30 (7 and 3 calls of the same loop, its length
// read from a field so that the JIT cannot specialise either caller), for the share and
// samples-x-interval checks. Each worker runs until it has used the given CPU time, so the number of samples does not
// depend on how busy the machine is; the workers' total CPU time (ThreadMXBean) goes to stderr.
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

    static long spinN = 1_000;

    static void hot() {
        for (int k = 0; k < 7; k++) sink += spin(spinN);
    }

    static void cold() {
        for (int k = 0; k < 3; k++) sink += spin(spinN);
    }

    public static void main(String[] args) throws Exception {
        double cpuSeconds = args.length > 0 ? Double.parseDouble(args[0]) : 3.0;
        int threads = args.length > 1 ? Integer.parseInt(args[1]) : 1;
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        long[] cpu = new long[threads];
        Thread[] ts = new Thread[threads];
        for (int t = 0; t < threads; t++) {
            final int slot = t;
            ts[t] = new Thread(() -> {
                long until = (long) (cpuSeconds * 1e9);
                while (mx.getCurrentThreadCpuTime() < until) {
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
