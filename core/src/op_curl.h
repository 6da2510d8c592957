/* libcurl, loaded when the first OTLP exporter starts. A process that only writes files never
 * maps libcurl and its dependency chain (TLS, Kerberos, LDAP, IDN: ~35 shared objects, ~5.6 MB
 * here), which costs start-up time and memory, and can clash with a host that brings its own
 * TLS library. The headers still come from the build's libcurl (types, constants, the version
 * checks); the functions are resolved from its soname at run time. */
#ifndef OP_CURL_H
#define OP_CURL_H

#include <curl/curl.h>
#include <stddef.h>

typedef struct op_curl_api {
    CURLcode (*global_init)(long flags);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *c, CURLoption opt, ...);
    CURLcode (*easy_perform)(CURL *c);
    CURLcode (*easy_getinfo)(CURL *c, CURLINFO info, ...);
    const char *(*easy_strerror)(CURLcode code);
    void (*easy_cleanup)(CURL *c);
    struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
    void (*slist_free_all)(struct curl_slist *l);
} op_curl_api;

/* Valid after op_curl_load() returned 0. */
extern op_curl_api op_curl;

/* Loads libcurl (once per process: it is never unloaded) and runs curl_global_init. 0, or -1 with
 * the reason in err (the loader's message, or the missing symbol). Thread-safe, not AS-safe; it
 * takes the loader lock, so it runs on the starting thread, never in a handler. */
int op_curl_load(char *err, size_t len);

#endif
