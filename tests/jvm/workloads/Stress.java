// Stress for the JVM agent: class loading and unloading through class loaders of its own,
// thread churn, NullPointerExceptions from implicit null checks and StackOverflowErrors from stack
// banging (both are SIGSEGV handled by the VM), run for a fixed amount of work. It prints only
// results that do not depend on timing, so a run with and without the agent prints the same.
import java.io.InputStream;
import java.util.function.LongUnaryOperator;

public class Stress {
    static byte[] payload;

    /** Defines StressPayload itself (child first); everything else comes from the parent. */
    static final class OwnLoader extends ClassLoader {
        OwnLoader() { super(Stress.class.getClassLoader()); }

        @Override
        protected Class<?> loadClass(String name, boolean resolve) throws ClassNotFoundException {
            if (!name.startsWith("StressPayload")) return super.loadClass(name, resolve);
            synchronized (getClassLoadingLock(name)) {
                Class<?> c = findLoadedClass(name);
                if (c == null) {
                    if (!name.equals("StressPayload")) throw new ClassNotFoundException(name);
                    c = defineClass(name, payload, 0, payload.length);
                }
                return c;
            }
        }
    }

    static long classRound(int loaders) throws Exception {
        long sum = 0;
        for (int i = 0; i < loaders; i++) {
            Class<?> c = new OwnLoader().loadClass("StressPayload");
            LongUnaryOperator op = (LongUnaryOperator) c.getDeclaredConstructor().newInstance();
            sum += op.applyAsLong(i);
        }
        return sum;
    }

    static long threadRound(int threads) throws InterruptedException {
        long[] out = new long[threads];
        Thread[] ts = new Thread[threads];
        for (int t = 0; t < threads; t++) {
            final int slot = t;
            ts[t] = new Thread(() -> {
                long x = slot;
                for (int i = 0; i < 50_000; i++) x = x * 31 + i;
                out[slot] = x;
            }, "churn-" + t);
            ts[t].start();
        }
        long sum = 0;
        for (int t = 0; t < threads; t++) {
            ts[t].join();
            sum += out[t];
        }
        return sum;
    }

    static int length(String s) { return s.length(); }

    static long npeRound(int n) {
        long caught = 0;
        String[] values = {"a", null, "abc", null};
        for (int i = 0; i < n; i++) {
            try {
                caught -= length(values[i & 3]);
            } catch (NullPointerException e) {
                caught += 10;
            }
        }
        return caught;
    }

    static int deeper(int n) { return deeper(n + 1) + 1; }

    static int soeRound() {
        try {
            return deeper(0);
        } catch (StackOverflowError e) {
            return 1;
        }
    }

    public static void main(String[] args) throws Exception {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 100;
        try (InputStream in = Stress.class.getResourceAsStream("StressPayload.class")) {
            payload = in.readAllBytes();
        }
        long classes = 0, threads = 0, npes = 0, soes = 0;
        for (int r = 0; r < rounds; r++) {
            classes += classRound(20);
            threads += threadRound(4);
            npes += npeRound(20_000);
            soes += soeRound();
            if (r % 10 == 9) System.gc(); // lets the loaders of the last rounds unload
        }
        System.out.println("classes " + classes);
        System.out.println("threads " + threads);
        System.out.println("npe " + npes);
        System.out.println("soe " + soes);
    }
}
