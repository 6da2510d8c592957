/* Resolves the libcurl functions the OTLP sender uses, on its first start (see op_curl.h). */
#include "op_curl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* The soname the headers belong to: libcurl's ABI has been .so.4 since 7.16 (2006). */
#define CURL_SONAME "libcurl.so.4"

op_curl_api op_curl;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int loaded;                /* 1 done, -1 failed (the failure is remembered and repeated) */
static char failure[256];

static int resolve(void *h, void **slot, const char *name) {
    *slot = dlsym(h, name);
    if (*slot) return 0;
    snprintf(failure, sizeof failure, "%s has no %s", CURL_SONAME, name);
    return -1;
}

static int load_locked(void) {
    /* RTLD_LOCAL: its symbols stay out of the global namespace, so the host's own lookups (and a
     * libcurl the host loads itself, possibly another build) are not affected. */
    void *h = dlopen(CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(failure, sizeof failure, "%s", e ? e : "cannot load " CURL_SONAME);
        return -1;
    }
    op_curl_api a;
    struct { void **slot; const char *name; } fns[] = {
        {(void **)&a.global_init, "curl_global_init"},
        {(void **)&a.easy_init, "curl_easy_init"},
        {(void **)&a.easy_setopt, "curl_easy_setopt"},
        {(void **)&a.easy_perform, "curl_easy_perform"},
        {(void **)&a.easy_getinfo, "curl_easy_getinfo"},
        {(void **)&a.easy_strerror, "curl_easy_strerror"},
        {(void **)&a.easy_cleanup, "curl_easy_cleanup"},
        {(void **)&a.slist_append, "curl_slist_append"},
        {(void **)&a.slist_free_all, "curl_slist_free_all"},
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        if (resolve(h, fns[i].slot, fns[i].name) < 0) return -1; /* h stays: harmless, and rare */
    if (a.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(failure, sizeof failure, "curl_global_init failed");
        return -1;
    }
    op_curl = a;
    return 0;
}

int op_curl_load(char *err, size_t len) {
    pthread_mutex_lock(&lock);
    if (!loaded) loaded = load_locked() == 0 ? 1 : -1;
    int rc = loaded > 0 ? 0 : -1;
    if (rc < 0 && err && len) snprintf(err, len, "%s", failure);
    pthread_mutex_unlock(&lock);
    return rc;
}
