/* Engine selection: the mode picks an engine; per-thread CPU timers fall back to one process
 * CPU timer. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "op_engine.h"
#include "op_log.h"

int op_engine_cpu_probe(pid_t tid);

static const op_engine *const engines[] = {&op_engine_cpu, &op_engine_wall, &op_engine_process};

int op_engine_claim(const siginfo_t *si, int64_t *weight) {
    for (size_t i = 0; i < sizeof engines / sizeof engines[0]; i++)
        if (engines[i]->claim && engines[i]->claim(si, weight)) return 1;
    return 0;
}

const op_engine *op_engine_select(const otelprof_config *cfg) {
    if (cfg->mode == OP_MODE_WALL) return &op_engine_wall;
    if (op_engine_cpu_probe(otelprof_gettid()) == 0) return &op_engine_cpu;
    op_log_warn("per-thread CPU timers refused (%s); falling back to one process CPU timer, samples "
                "land on whichever thread runs", strerror(errno));
    return &op_engine_process;
}
