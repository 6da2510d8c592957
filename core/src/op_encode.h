/* Encoders from op_profile to bytes. Run on the exporter thread; not AS-safe; thread-compatible. */
#ifndef OP_ENCODE_H
#define OP_ENCODE_H

#include <stdint.h>
#include <stddef.h>
#include "op_profile.h"

/* OTLP ProfilesData (field-identical to ExportProfilesServiceRequest): one ResourceProfiles, one
 * ScopeProfiles, one Profile, and a dictionary with index-0 zero entries, no duplicates and no
 * unreferenced entries. cpu: sample_type (samples,count), period_type (cpu,nanoseconds);
 * wall: sample_type (wall,nanoseconds), period_type (wall,nanoseconds). Locations carry the
 * attribute profile.frame.type; samples carry thread.name when set; mappings carry
 * process.executable.build_id.gnu when known. *out is malloc'd. Returns 0 or -1 (ENOMEM). */
int op_encode_otlp(const op_profile *p, uint8_t **out, size_t *len);

/* pprof Profile (uncompressed): sample types as above (cpu: samples/count + cpu/nanoseconds). */
int op_encode_pprof(const op_profile *p, uint8_t **out, size_t *len);

/* gzip (RFC 1952) of in; *out malloc'd. Returns 0 or -1. */
int op_gzip(const uint8_t *in, size_t len, uint8_t **out, size_t *outlen);

#endif
