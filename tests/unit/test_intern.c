/* Unit test: interning returns dense, stable, duplicate-free indices and honours its cap. */
#include "op_intern.h"

#include <stdio.h>
#include <string.h>

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s)\n", __FILE__, __LINE__, #c); failures++; } } while (0)

int main(void) {
    op_intern t;
    op_intern_init(&t, 0);
    char key[32];
    int ins;
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(key, sizeof key, "k%d", i);
        CHECK(op_intern_put(&t, key, (size_t)n, &ins) == i);
        CHECK(ins == 1);
    }
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(key, sizeof key, "k%d", i);
        CHECK(op_intern_put(&t, key, (size_t)n, &ins) == i);
        CHECK(ins == 0);
        size_t len;
        const void *k = op_intern_key(&t, (uint32_t)i, &len);
        CHECK(len == (size_t)n && memcmp(k, key, len) == 0);
    }
    CHECK(op_intern_count(&t) == 10000);
    CHECK(op_intern_find(&t, "absent", 6) == -1);
    /* empty key is a key like any other */
    CHECK(op_intern_put(&t, "", 0, &ins) == 10000 && ins == 1);
    CHECK(op_intern_find(&t, "", 0) == 10000);
    op_intern_clear(&t);
    CHECK(op_intern_count(&t) == 0);
    CHECK(op_intern_find(&t, "k1", 2) == -1);
    CHECK(op_intern_put(&t, "k1", 2, NULL) == 0);
    op_intern_free(&t);

    /* capped: inserts fail cleanly once the cap is reached, existing keys still found */
    op_intern_init(&t, 16 * 1024);
    int last = -1;
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(key, sizeof key, "key-%d", i);
        int32_t r = op_intern_put(&t, key, (size_t)n, NULL);
        if (r < 0) break;
        last = r;
    }
    CHECK(last > 10 && last < 100000 - 1);
    CHECK(t.bytes <= 16 * 1024);
    CHECK(op_intern_find(&t, "key-0", 5) == 0);
    op_intern_free(&t);

    if (failures) { printf("test_intern: %d failures\n", failures); return 1; }
    printf("test_intern: ok\n");
    return 0;
}
