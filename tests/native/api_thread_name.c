/* Program for the thread-name test: a worker names itself through the API (longer than the 15
 * bytes an OS thread name holds) and burns CPU; its OS name must stay as it was. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "burn.h"
#include "otelprof/otelprof.h"

static void *worker(void *arg) {
    (void)arg;
    otelprof_thread_register(otelprof_gettid());
    otelprof_thread_set_name("a-much-longer-worker-name-0123456789");
    spin_cpu(300000000);
    char os_name[16] = "";
    pthread_getname_np(pthread_self(), os_name, sizeof os_name);
    printf("os_name %s\n", os_name);
    return NULL;
}

int main(void) {
    if (otelprof_start(NULL, NULL) != OTELPROF_OK) return 1;
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    return otelprof_stop() == OTELPROF_OK ? 0 : 1;
}
