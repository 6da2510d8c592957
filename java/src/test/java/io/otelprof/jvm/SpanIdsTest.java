package io.otelprof.jvm;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class SpanIdsTest {
    @Test
    void parsesBigEndianHex() {
        String trace = "0af7651916cd43dd8448eb211c80319c";
        assertEquals(0x0af7651916cd43ddL, SpanIds.hex16(trace, 0));
        assertEquals(0x8448eb211c80319cL, SpanIds.hex16(trace, 16));
        assertEquals(-1L, SpanIds.hex16("ffffffffffffffff", 0));
        assertEquals(0xABCDEF0123456789L, SpanIds.hex16("ABCDEF0123456789", 0));
    }

    @Test
    void notHexIsZero() {
        assertEquals(0L, SpanIds.hex16("0af7651916cd43dg", 0));
        assertEquals(0L, SpanIds.hex16("0af7651916cd43d ", 0));
    }
}
