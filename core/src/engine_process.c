/* itimer engine: the fallback when per-thread timers are refused. ITIMER_PROF fires on process
 * CPU time and lands on whichever thread is running, so per-thread attribution is approximate. */
#include <string.h>
#include <sys/time.h>

#include "op_engine.h"

static int itimer_start(const otelprof_config *cfg) {
    struct itimerval it;
    it.it_interval.tv_sec = cfg->interval_ns / 1000000000;
    it.it_interval.tv_usec = (cfg->interval_ns % 1000000000) / 1000;
    if (!it.it_interval.tv_sec && !it.it_interval.tv_usec) it.it_interval.tv_usec = 1;
    it.it_value = it.it_interval;
    return setitimer(ITIMER_PROF, &it, NULL);
}

static void itimer_stop(void) {
    struct itimerval it;
    memset(&it, 0, sizeof it);
    setitimer(ITIMER_PROF, &it, NULL);
}

const op_engine op_engine_itimer = {
    .name = "itimer",
    .start = itimer_start,
    .stop = itimer_stop,
    .thread_start = NULL,
    .thread_stop = NULL,
};
