/* The frame ids the core holds, kept alive for the GC. A captured frame is an iseq or method-entry
 * VALUE that the program may drop (a method redefined, code built with eval) before the frame is
 * named, seconds later; and GC.compact would move it. So every id a handler captures is noted
 * here, and a mark function pins it (rb_gc_mark: marked and never moved) for as long as the core
 * may hold a frame with it — the kit's frame epochs: each slot keeps the largest epoch its id was
 * captured in, and once the core's released epoch has passed it (after a profile close), the
 * slot is released and no longer marked.
 *
 * Lock-free open addressing over one mapping: handlers note ids (any thread, signal context),
 * the GC marks (a Ruby thread with the GVL), the exporter releases after closes, the resolver
 * checks ids before naming them. A slot's id and its word (epoch << 2 | state) are separate;
 * the word changes only by compare-and-swap:
 *   EMPTY -> CLAIMING -> HELD      a handler takes a free slot (id written while CLAIMING)
 *   HELD -> HELD (larger epoch)     captured again
 *   HELD -> RELEASED                the exporter, when the epoch is below the released one
 *   RELEASED -> HELD                captured again (same address: whatever object lives there
 *                                   now is on a stack, hence alive)
 *   RELEASED -> CLAIMING -> HELD    a handler reuses the slot for another id (probe window full)
 * A slot never goes back to EMPTY during a run, so a probe never stops early at a hole. The mark
 * function marks HELD ids only; an id it reads just as its slot is released and reused is still
 * alive at that point (it was held until this GC), so marking it once more is harmless. */
#include <string.h>
#include <sys/mman.h>

#include "orb.h"

/* Exported by libruby, declared in no public header: a live (not freed, not moved) heap object. */
int rb_objspace_markable_object_p(VALUE obj);

#define SLOTS (1u << 16)
#define PROBE 64

enum { EMPTY = 0, CLAIMING = 1, HELD = 2, RELEASED = 3 };

typedef struct slot {
    VALUE id;
    uint64_t word; /* epoch << 2 | state */
} slot;

static slot *table; /* SLOTS slots, mapped at the first start, kept for the process */

#define STATE(w) ((w) & 3u)
#define EPOCH(w) ((w) >> 2)
#define WORD(e, s) (((e) << 2) | (s))

int orb_frames_init(void) {
    if (table) return 0;
    void *p = mmap(NULL, orb_frames_bytes(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return -1;
    table = p;
    return 0;
}

size_t orb_frames_bytes(void) {
    return (size_t)SLOTS * sizeof(slot);
}

static uint32_t hash(VALUE id) {
    uint64_t x = (uint64_t)id >> 3; /* heap objects are 8-aligned (40-byte slots) */
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 32;
    return (uint32_t)x;
}

/* Takes a slot in state `from` (word w) for id; 1 when done. */
static int claim(slot *s, uint64_t w, VALUE id, uint64_t epoch) {
    if (!__atomic_compare_exchange_n(&s->word, &w, WORD(0, CLAIMING), 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        return 0;
    __atomic_store_n(&s->id, id, __ATOMIC_SEQ_CST);
    __atomic_store_n(&s->word, WORD(epoch, HELD), __ATOMIC_SEQ_CST);
    ORB_COUNT(ORB_STAT_FRAMES_NOTED);
    return 1;
}

/* Raises the epoch of a slot already holding id (HELD or RELEASED); 0 when the slot changed
 * under us to hold another id or to be claimed. */
static int refresh(slot *s, uint64_t w, VALUE id, uint64_t epoch) {
    for (;;) {
        if (STATE(w) != HELD && STATE(w) != RELEASED) return 0;
        if (__atomic_load_n(&s->id, __ATOMIC_SEQ_CST) != id) return 0;
        uint64_t e = EPOCH(w) > epoch ? EPOCH(w) : epoch;
        if (STATE(w) == HELD && EPOCH(w) >= epoch) return 1;
        if (__atomic_compare_exchange_n(&s->word, &w, WORD(e, HELD), 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            return 1;
    }
}

int orb_frames_note(VALUE id, uint64_t epoch) {
    if (!table) return -1;
    uint32_t h = hash(id);
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t k = 0; k < PROBE; k++) {
            slot *s = &table[(h + k) & (SLOTS - 1)];
            uint64_t w = __atomic_load_n(&s->word, __ATOMIC_SEQ_CST);
            switch (STATE(w)) {
            case EMPTY:
                if (claim(s, w, id, epoch)) return 0;
                w = __atomic_load_n(&s->word, __ATOMIC_SEQ_CST);
                if (refresh(s, w, id, epoch)) return 0;
                break;
            case HELD:
                if (refresh(s, w, id, epoch)) return 0;
                break;
            case RELEASED:
                if (refresh(s, w, id, epoch)) return 0;
                /* Second pass: the id is nowhere in the window; reuse a released slot. */
                if (pass == 1 && claim(s, w, id, epoch)) return 0;
                break;
            default: /* CLAIMING: another handler's; look on */
                break;
            }
        }
    }
    return -1;
}

int orb_frames_held(VALUE id) {
    if (!table) return 0;
    uint32_t h = hash(id);
    for (uint32_t k = 0; k < PROBE; k++) {
        slot *s = &table[(h + k) & (SLOTS - 1)];
        uint64_t w = __atomic_load_n(&s->word, __ATOMIC_SEQ_CST);
        if (STATE(w) == HELD && __atomic_load_n(&s->id, __ATOMIC_SEQ_CST) == id) return 1;
    }
    return 0;
}

void orb_frames_release_old(uint64_t released) {
    if (!table) return;
    for (uint32_t i = 0; i < SLOTS; i++) {
        slot *s = &table[i];
        uint64_t w = __atomic_load_n(&s->word, __ATOMIC_SEQ_CST);
        /* A handler that raises the epoch meanwhile makes the exchange fail: the id stays held. */
        if (STATE(w) == HELD && EPOCH(w) < released &&
            __atomic_compare_exchange_n(&s->word, &w, WORD(EPOCH(w), RELEASED), 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            ORB_COUNT(ORB_STAT_FRAMES_RELEASED);
    }
}

void orb_frames_clear(void) {
    if (table) memset(table, 0, orb_frames_bytes());
}

/* The GC's mark function of the marker object: on the thread running the GC. */
static void mark_held(void *unused) {
    (void)unused;
    if (!table) return;
    for (uint32_t i = 0; i < SLOTS; i++) {
        slot *s = &table[i];
        if (STATE(__atomic_load_n(&s->word, __ATOMIC_SEQ_CST)) != HELD) continue;
        VALUE id = __atomic_load_n(&s->id, __ATOMIC_SEQ_CST);
        /* Only live heap objects: a dead or moved one would stop the VM (rb_bug). */
        if (id && rb_objspace_markable_object_p(id)) rb_gc_mark(id);
    }
}

/* Not write-barrier protected: the GC then rescans it at every minor GC and at the end of
 * incremental marking, so ids noted after it was marked are marked too. */
static const rb_data_type_t marker_type = {
    .wrap_struct_name = "otelprof_frame_table",
    .function = {.dmark = mark_held, .dfree = NULL, .dsize = NULL},
    .flags = 0,
};

void orb_frames_register_marker(void) {
    static VALUE marker = Qnil;
    static int nonnull; /* the GC calls dmark only for a non-NULL data pointer */
    if (!NIL_P(marker)) return;
    marker = TypedData_Wrap_Struct(rb_cObject, &marker_type, &nonnull);
    rb_gc_register_mark_object(marker);
}
