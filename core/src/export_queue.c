/* Bounded FIFO of encoded profiles: newest kept, oldest dropped, because a profile of what the
 * process does now is worth more than one of what it did minutes ago. */
#include "op_export_queue.h"

#include <stdlib.h>

void op_export_queue_init(op_export_queue *q, size_t cap) {
    q->head = q->tail = NULL;
    q->count = 0;
    q->bytes = 0;
    q->cap = cap;
}

void op_export_item_free(op_export_item *it) {
    if (!it) return;
    free(it->data);
    free(it);
}

op_export_item *op_export_queue_pop(op_export_queue *q) {
    op_export_item *it = q->head;
    if (!it) return NULL;
    q->head = it->next;
    if (!q->head) q->tail = NULL;
    q->count--;
    q->bytes -= it->len;
    it->next = NULL;
    return it;
}

int op_export_queue_push(op_export_queue *q, uint8_t *data, size_t len) {
    if (len > q->cap) {
        free(data);
        return 1;
    }
    op_export_item *it = malloc(sizeof *it);
    if (!it) {
        free(data);
        return -1;
    }
    it->next = NULL;
    it->data = data;
    it->len = len;
    int dropped = 0;
    while (q->head && q->bytes + len > q->cap) {
        op_export_item_free(op_export_queue_pop(q));
        dropped++;
    }
    if (q->tail) q->tail->next = it;
    else q->head = it;
    q->tail = it;
    q->count++;
    q->bytes += len;
    return dropped;
}

size_t op_export_queue_clear(op_export_queue *q) {
    size_t n = 0;
    op_export_item *it;
    while ((it = op_export_queue_pop(q))) {
        op_export_item_free(it);
        n++;
    }
    return n;
}
