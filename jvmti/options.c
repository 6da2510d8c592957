/* The agent's options string: -agentpath:libotelprof_jvmti.so=mode=cpu,interval=10ms,... uses the
 * option names of the C configuration (docs/CONFIGURATION.md). Items are separated by commas;
 * since some values are lists themselves (formats=otlp,pprof, resource_attributes=a=b,c=d), such
 * a value continues past its commas (see ojv_options_apply). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ojv.h"

/* Whether the core knows the option: asked without a value, it says "has no value" for a known
 * one and "unknown option" otherwise, and changes nothing either way. */
static int known_option(otelprof_config *scratch, const char *key) {
    char err[512] = "";
    otelprof_config_set(scratch, key, NULL, err, sizeof err);
    return strncmp(err, "unknown option", 14) != 0;
}

/* Options whose value is a comma-separated list of key=value pairs. */
static int pairs_valued(const char *key) {
    return strcasecmp(key, "resource_attributes") == 0 || strcasecmp(key, "otlp_headers") == 0 ||
           strcasecmp(key, "otlp_profiles_headers") == 0;
}

/* The key of item s (up to '='), copied into key; 0 when s has no '='. */
static int item_key(const char *s, size_t len, char *key, size_t keylen) {
    const char *eq = memchr(s, '=', len);
    if (!eq || (size_t)(eq - s) >= keylen) return 0;
    memcpy(key, s, (size_t)(eq - s));
    key[eq - s] = 0;
    return 1;
}

static int apply_one(otelprof_config *cfg, char *item, char *err, size_t errlen) {
    if (!*item) return 0;
    char *eq = strchr(item, '=');
    if (!eq) {
        snprintf(err, errlen, "agent option \"%s\" has no value: expected key=value, e.g. "
                 "mode=cpu,interval=10ms,output_dir=/tmp/prof", item);
        return -1;
    }
    *eq = 0;
    return otelprof_config_set(cfg, item, eq + 1, err, errlen) == OTELPROF_OK ? 0 : -1;
}

int ojv_options_apply(otelprof_config *cfg, const char *options, char *err, size_t errlen) {
    if (!options || !*options) return 0;
    otelprof_config *scratch = otelprof_config_new();
    size_t n = strlen(options);
    char *item = calloc(1, n + 1);
    if (!scratch || !item) {
        snprintf(err, errlen, "agent options: out of memory");
        otelprof_config_free(scratch);
        free(item);
        return -1;
    }
    size_t used = 0;
    int rc = 0;
    for (const char *p = options; rc == 0;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char key[64], cur[64];
        /* Only a list value continues past a comma: an item without '=' after formats=
         * (formats=otlp,pprof), and a key=value that names no option inside a value made of such
         * pairs (resource_attributes=a=b,c=d). Anything else starts an item, so a misspelt or
         * valueless option is reported under its own name. */
        int has_key = item_key(p, len, key, sizeof key);
        int cur_key = item_key(item, used, cur, sizeof cur);
        int pairs = cur_key && pairs_valued(cur);
        int list = pairs || (cur_key && strcasecmp(cur, "formats") == 0);
        int starts = used == 0 || !list || (has_key && (!pairs || known_option(scratch, key))) ||
                     (!has_key && memchr(p, '=', len));
        if (starts) {
            rc = apply_one(cfg, item, err, errlen);
            used = 0;
        } else {
            item[used++] = ',';
        }
        memcpy(item + used, p, len);
        used += len;
        item[used] = 0;
        if (!comma) break;
        p = comma + 1;
    }
    if (rc == 0) rc = apply_one(cfg, item, err, errlen);
    otelprof_config_free(scratch);
    free(item);
    return rc;
}
