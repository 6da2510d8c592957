/* Unit test: the export queue keeps the newest profiles within its byte cap and says how many of
 * the oldest it dropped. */
#include "op_export_queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s)\n", __FILE__, __LINE__, #c); failures++; } } while (0)

/* A body whose first byte names it, so the test can tell which items survived. */
static uint8_t *body(uint8_t tag, size_t len) {
    uint8_t *b = malloc(len);
    memset(b, 0, len);
    b[0] = tag;
    return b;
}

static void test_fifo(void) {
    op_export_queue q;
    op_export_queue_init(&q, 1000);
    CHECK(op_export_queue_pop(&q) == NULL);
    CHECK(op_export_queue_push(&q, body(1, 100), 100) == 0);
    CHECK(op_export_queue_push(&q, body(2, 200), 200) == 0);
    CHECK(q.count == 2 && q.bytes == 300);
    op_export_item *a = op_export_queue_pop(&q);
    CHECK(a && a->data[0] == 1 && a->len == 100);
    op_export_item_free(a);
    CHECK(q.count == 1 && q.bytes == 200);
    CHECK(op_export_queue_clear(&q) == 1);
    CHECK(q.count == 0 && q.bytes == 0 && !q.head && !q.tail);
}

static void test_drop_oldest(void) {
    op_export_queue q;
    op_export_queue_init(&q, 1000);
    for (uint8_t i = 1; i <= 4; i++) CHECK(op_export_queue_push(&q, body(i, 250), 250) == 0);
    CHECK(q.bytes == 1000);
    /* One more 250-byte item pushes out exactly the oldest. */
    CHECK(op_export_queue_push(&q, body(5, 250), 250) == 1);
    CHECK(q.count == 4 && q.bytes == 1000);
    CHECK(q.head->data[0] == 2 && q.tail->data[0] == 5);
    /* A 600-byte item needs three of them gone. */
    CHECK(op_export_queue_push(&q, body(6, 600), 600) == 3);
    CHECK(q.count == 2 && q.bytes == 850 && q.head->data[0] == 5);
    /* Larger than the whole cap: refused and counted, the queue untouched. */
    CHECK(op_export_queue_push(&q, body(7, 1001), 1001) == 1);
    CHECK(q.count == 2 && q.bytes == 850);
    op_export_queue_clear(&q);
}

/* 1,000 pushes into a queue nobody drains: memory stays at the cap, every drop is counted. */
static void test_bounded_under_outage(void) {
    op_export_queue q;
    op_export_queue_init(&q, 64 * 1024);
    size_t dropped = 0;
    for (int i = 0; i < 1000; i++) {
        int d = op_export_queue_push(&q, body((uint8_t)i, 3000), 3000);
        CHECK(d >= 0);
        dropped += (size_t)d;
        CHECK(q.bytes <= q.cap);
    }
    CHECK(q.count == 64 * 1024 / 3000);
    CHECK(dropped + q.count == 1000);
    CHECK(q.tail->data[0] == (uint8_t)999);
    op_export_queue_clear(&q);
}

int main(void) {
    test_fifo();
    test_drop_oldest();
    test_bounded_under_outage();
    if (failures) fprintf(stderr, "%d failure(s)\n", failures);
    else printf("test_export_queue: ok\n");
    return failures != 0;
}
