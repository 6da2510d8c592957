/* HotSpot's own description of its internals, exported from libjvm for the serviceability agent
 * (gHotSpotVMStructs: type, field, static address or offset; gHotSpotVMTypes: sizes). The agent
 * reads only what JVMTI does not offer: where a JavaThread keeps its OS tid and stack (to
 * register threads that were running before the agent loaded), the code cache bounds (to place
 * native frames), and a few flags. Every lookup may fail on another VM; callers then do without. */
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

#include "ojv.h"

static struct {
    long osthread;     /* JavaThread::_osthread (JDK 17) or Thread::_osthread (JDK 21+) */
    long os_thread_id; /* OSThread::_thread_id */
    long stack_base;   /* JavaThread::_stack_base: the highest address */
    long stack_size;   /* JavaThread::_stack_size */
    void *const *code_low, *const *code_high; /* &CodeCache::_low_bound, &CodeCache::_high_bound */
    void *const *flags;     /* &JVMFlag::flags: the flag table */
    const size_t *nflags;   /* &JVMFlag::numFlags */
    long flag_name, flag_addr;
    size_t flag_size;       /* sizeof(JVMFlag) */
} L = {-1, -1, -1, -1, NULL, NULL, NULL, NULL, -1, -1, 0};

static void *jvm_sym(void *h, const char *name) {
    void *p = h ? dlsym(h, name) : NULL;
    return p ? p : dlsym(RTLD_DEFAULT, name);
}

static uint64_t sym_u64(void *h, const char *name, int *ok) {
    const uint64_t *p = jvm_sym(h, name);
    if (!p) *ok = 0;
    return p ? *p : 0;
}

static void note_field(const char *type, const char *field, int is_static, long offset, void *addr) {
    int thread = strcmp(type, "JavaThread") == 0 || strcmp(type, "Thread") == 0;
    if (thread && strcmp(field, "_osthread") == 0) L.osthread = offset;
    else if (thread && strcmp(field, "_stack_base") == 0) L.stack_base = offset;
    else if (thread && strcmp(field, "_stack_size") == 0) L.stack_size = offset;
    else if (strcmp(type, "OSThread") == 0 && strcmp(field, "_thread_id") == 0) L.os_thread_id = offset;
    else if (strcmp(type, "CodeCache") == 0 && is_static && strcmp(field, "_low_bound") == 0) L.code_low = addr;
    else if (strcmp(type, "CodeCache") == 0 && is_static && strcmp(field, "_high_bound") == 0) L.code_high = addr;
    else if (strcmp(type, "JVMFlag") == 0) {
        if (is_static && strcmp(field, "flags") == 0) L.flags = addr;
        else if (is_static && strcmp(field, "numFlags") == 0) L.nflags = addr;
        else if (!is_static && strcmp(field, "_name") == 0) L.flag_name = offset;
        else if (!is_static && strcmp(field, "_addr") == 0) L.flag_addr = offset;
    }
}

int ojv_vmstructs_init(void) {
    /* The launcher loads libjvm RTLD_GLOBAL; an embedder may not, so ask for it by name too. */
    void *h = dlopen("libjvm.so", RTLD_LAZY | RTLD_NOLOAD);
    int ok = 1;
    char *const *structs = jvm_sym(h, "gHotSpotVMStructs");
    uint64_t tn = sym_u64(h, "gHotSpotVMStructEntryTypeNameOffset", &ok);
    uint64_t fn = sym_u64(h, "gHotSpotVMStructEntryFieldNameOffset", &ok);
    uint64_t st = sym_u64(h, "gHotSpotVMStructEntryIsStaticOffset", &ok);
    uint64_t of = sym_u64(h, "gHotSpotVMStructEntryOffsetOffset", &ok);
    uint64_t ad = sym_u64(h, "gHotSpotVMStructEntryAddressOffset", &ok);
    uint64_t stride = sym_u64(h, "gHotSpotVMStructEntryArrayStride", &ok);
    if (!ok || !structs || !*structs || !stride) return -1;
    for (const char *e = *structs;; e += stride) {
        const char *type = *(const char *const *)(e + tn), *field = *(const char *const *)(e + fn);
        if (!type) break;
        if (!field) continue;
        note_field(type, field, *(const int32_t *)(e + st), (long)*(const uint64_t *)(e + of),
                   *(void *const *)(e + ad));
    }
    char *const *types = jvm_sym(h, "gHotSpotVMTypes");
    uint64_t ttn = sym_u64(h, "gHotSpotVMTypeEntryTypeNameOffset", &ok);
    uint64_t tsz = sym_u64(h, "gHotSpotVMTypeEntrySizeOffset", &ok);
    uint64_t tstride = sym_u64(h, "gHotSpotVMTypeEntryArrayStride", &ok);
    if (ok && types && *types && tstride) {
        for (const char *e = *types;; e += tstride) {
            const char *type = *(const char *const *)(e + ttn);
            if (!type) break;
            if (strcmp(type, "JVMFlag") == 0) L.flag_size = (size_t)*(const uint64_t *)(e + tsz);
        }
    }
    return L.osthread >= 0 && L.os_thread_id >= 0 && L.stack_base >= 0 && L.stack_size >= 0 ? 0 : -1;
}

pid_t ojv_vm_thread_tid(const void *jt) {
    if (!jt || L.osthread < 0 || L.os_thread_id < 0) return -1;
    const char *os = *(const char *const *)((const char *)jt + L.osthread);
    if (!os) return -1;
    pid_t tid = *(const pid_t *)(os + L.os_thread_id);
    return tid > 0 ? tid : -1;
}

int ojv_vm_thread_stack(const void *jt, uintptr_t *lo, uintptr_t *hi) {
    if (!jt || L.stack_base < 0 || L.stack_size < 0) return -1;
    uintptr_t base = *(const uintptr_t *)((const char *)jt + L.stack_base);
    size_t size = *(const size_t *)((const char *)jt + L.stack_size);
    if (!base || !size || size > base) return -1;
    *hi = base;
    *lo = base - size;
    return 0;
}

int ojv_vm_flag(const char *name) {
    if (!L.flags || !L.nflags || L.flag_name < 0 || L.flag_addr < 0 || !L.flag_size) return -1;
    const char *table = *(const char *const *)L.flags;
    if (!table) return -1;
    for (size_t i = 0; i < *L.nflags; i++) {
        const char *f = table + i * L.flag_size;
        const char *n = *(const char *const *)(f + L.flag_name);
        const void *addr = *(const void *const *)(f + L.flag_addr);
        if (n && addr && strcmp(n, name) == 0) return *(const _Bool *)addr ? 1 : 0;
    }
    return -1;
}

int ojv_in_code_cache(uintptr_t pc) {
    if (!L.code_low || !L.code_high) return -1;
    uintptr_t lo = (uintptr_t)*L.code_low, hi = (uintptr_t)*L.code_high;
    if (!lo || hi <= lo) return -1;
    return pc >= lo && pc < hi;
}
