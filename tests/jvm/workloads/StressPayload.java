// Defined again and again by Stress, each time in a class loader of its own, so that classes
// load, run, and unload while the profiler samples them.
public class StressPayload implements java.util.function.LongUnaryOperator {
    static long seed = 17;

    static long mix(long x) {
        for (int i = 0; i < 2_000; i++) x = x * 6364136223846793005L + seed;
        return x;
    }

    @Override
    public long applyAsLong(long v) {
        java.util.function.LongUnaryOperator f = x -> mix(x) ^ (x >>> 3);
        return f.applyAsLong(v);
    }
}
