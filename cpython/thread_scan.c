/* The thread scan: Python threads that never announce themselves (_thread.start_new_thread, C
 * threads entering through PyGILState_Ensure) are found in the interpreter's thread list every
 * 100 ms and registered with the core, their thread state as adapter data; the ones it found are
 * unregistered once their state leaves the list. Threads that announce themselves (the threading
 * hook, register_thread) carry tag 0 and are never touched here. */
#include "opy.h"

#define SCAN_MAX 1024

void opy_threads_scan(void) {
    static pid_t tids[SCAN_MAX], known[SCAN_MAX];
    static void *states[SCAN_MAX];
    static otelprof_thread_data data[SCAN_MAX];
    int n = opy_list_threads(tids, states, SCAN_MAX);
    if (n < 0 || !otelprof_is_running()) return;
    pid_t self = opy_pinner_tid();
    /* Found threads whose state left the list: gone, or out of Python. Not decidable from a
     * truncated list. Conditional: a new thread that got the tid and registered itself (tag 0,
     * its own state) keeps its registration. */
    int nknown = otelprof_thread_list(known, data, SCAN_MAX);
    for (int i = 0; n < SCAN_MAX && i < nknown; i++) {
        if (data[i].tag != OPY_TAG_SCANNED) continue;
        int listed = 0;
        for (int k = 0; k < n && !listed; k++) listed = tids[k] == known[i] && states[k] == data[i].ptr;
        if (!listed) otelprof_thread_unregister_if(known[i], &data[i]);
    }
    /* New ones. No stack bound: their C frames are read through safe reads. */
    for (int k = 0; k < n; k++) {
        if (tids[k] == self) continue;
        otelprof_thread_data d = {states[k], 0, OPY_TAG_SCANNED};
        otelprof_error rc = otelprof_thread_register_data(tids[k], &d, OTELPROF_THREAD_IF_NEW);
        if (rc == OTELPROF_OK) OPY_STAT_INC(threads_scanned);
        else if (rc == OTELPROF_EFULL) OPY_STAT_INC(threads_full);
    }
}
