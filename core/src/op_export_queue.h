/* The bounded queue of encoded profiles between profile close and the network sender. Not
 * thread-safe by itself: the sender (export_http.c) guards it with its lock. */
#ifndef OP_EXPORT_QUEUE_H
#define OP_EXPORT_QUEUE_H

#include <stddef.h>
#include <stdint.h>

typedef struct op_export_item {
    struct op_export_item *next;
    uint8_t *data; /* an ExportProfilesServiceRequest, uncompressed; owned by the item */
    size_t len;
} op_export_item;

typedef struct op_export_queue {
    op_export_item *head, *tail;
    size_t count;
    size_t bytes; /* sum of len over the queued items */
    size_t cap;   /* bytes; a push never leaves more than this queued */
} op_export_queue;

void op_export_queue_init(op_export_queue *q, size_t cap);
/* Takes ownership of data (malloc'd) in every case. Drops the oldest items until the new one fits
 * and returns how many were dropped; an item larger than the whole cap is itself dropped (counted
 * in the return value). -1 only when out of memory (data freed, nothing else changed). */
int op_export_queue_push(op_export_queue *q, uint8_t *data, size_t len);
/* The oldest item, removed from the queue, or NULL when empty. Free with op_export_item_free. */
op_export_item *op_export_queue_pop(op_export_queue *q);
void op_export_item_free(op_export_item *it);
/* Frees every queued item and returns how many there were. */
size_t op_export_queue_clear(op_export_queue *q);

#endif
