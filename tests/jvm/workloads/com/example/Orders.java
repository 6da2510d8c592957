// Frame naming: a packaged class, a lambda body, a static nested class, a JNI-heavy native
// method (System.arraycopy is intrinsic, so Deflater), on a thread named "orders-worker" that
// runs for the given CPU time.
package com.example;

import java.util.function.LongUnaryOperator;
import java.util.zip.Deflater;

public class Orders {
    static volatile long sink;

    static long price(long n) {
        long x = n;
        for (int i = 0; i < 3_000_000; i++) {
            x = x * 2862933555777941757L + 3037000493L; // PRICE_LINE
        }
        return x;
    }

    static final class Tax {
        static long apply(long v) {
            long x = v;
            for (int i = 0; i < 3_000_000; i++) {
                x ^= (x << 13) ^ (x >>> 7); // TAX_LINE
            }
            return x;
        }
    }

    static byte[] data = new byte[1 << 16];
    static byte[] out = new byte[1 << 17];

    static long compress() {
        Deflater d = new Deflater(6);
        d.setInput(data);
        d.finish();
        int n = d.deflate(out);
        d.end();
        return n;
    }

    public static void main(String[] args) throws Exception {
        double cpuSeconds = args.length > 0 ? Double.parseDouble(args[0]) : 2.0;
        java.lang.management.ThreadMXBean mx = java.lang.management.ManagementFactory.getThreadMXBean();
        for (int i = 0; i < data.length; i++) data[i] = (byte) (i * 31 ^ (i >> 5));
        LongUnaryOperator viaLambda = v -> Tax.apply(v) + 1;
        Thread t = new Thread(() -> {
            long v = 1;
            while (mx.getCurrentThreadCpuTime() < (long) (cpuSeconds * 1e9)) {
                v += price(v);
                v += viaLambda.applyAsLong(v);
                for (int k = 0; k < 8; k++) v += compress();
            }
            sink = v;
        }, "orders-worker");
        t.start();
        t.join();
        System.out.println("done");
    }
}
