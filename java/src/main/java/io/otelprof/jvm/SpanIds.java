package io.otelprof.jvm;

/** Lower-case hex ids of a SpanContext as longs, without allocating. */
final class SpanIds {
    private SpanIds() {}

    /** The 16 hex digits of s starting at off as a long (big-endian); 0 if any is not hex, which
     *  a valid SpanContext never has. */
    static long hex16(CharSequence s, int off) {
        long v = 0;
        for (int i = off; i < off + 16; i++) {
            int d = digit(s.charAt(i));
            if (d < 0) return 0;
            v = (v << 4) | d;
        }
        return v;
    }

    private static int digit(char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }
}
