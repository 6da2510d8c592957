/* One-shot gzip (RFC 1952) compression of an encoded profile for files and OTLP/HTTP bodies. */
#include "op_encode.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int op_gzip(const uint8_t *in, size_t len, uint8_t **out, size_t *outlen) {
    *out = NULL;
    *outlen = 0;
    /* zlib counts in uInt; profiles never come near 4 GiB, so refuse rather than loop. */
    if (len > UINT_MAX) {
        errno = EINVAL;
        return -1;
    }
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    /* windowBits 15 + 16 selects the gzip wrapper instead of zlib's own header. */
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        errno = ENOMEM;
        return -1;
    }
    /* deflateBound covers the zlib wrapper; the gzip header and trailer add 18 more bytes. */
    uLong cap = deflateBound(&zs, (uLong)len) + 18;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        deflateEnd(&zs);
        errno = ENOMEM;
        return -1;
    }
    static const uint8_t empty[1];
    zs.next_in = (Bytef *)(len ? in : empty);
    zs.avail_in = (uInt)len;
    zs.next_out = buf;
    zs.avail_out = (uInt)cap;
    int rc = deflate(&zs, Z_FINISH);
    size_t produced = (size_t)zs.total_out;
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        free(buf);
        errno = ENOMEM;
        return -1;
    }
    *out = buf;
    *outlen = produced;
    return 0;
}
