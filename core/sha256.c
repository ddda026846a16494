#include "core/sha256.h"

#include <nettle/sha2.h>
#include <stdint.h>
#include <stdio.h>

#include "core/mapped_file.h"

static void to_hex(const uint8_t *d, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[64] = '\0';
}

void xf_sha256_hex(const void *data, size_t len, char hex[65])
{
    struct sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_init(&ctx);
    sha256_update(&ctx, len, data);
    sha256_digest(&ctx, SHA256_DIGEST_SIZE, digest);
    to_hex(digest, hex);
}

int xf_sha256_file_hex(const char *path, char hex[65], xf_error *err)
{
    xf_mapped_file m;
    if (xf_mapped_open(&m, path, err) != 0)
        return -1;
    xf_sha256_hex(m.data ? (const void *)m.data : (const void *)"", m.size, hex);
    xf_mapped_close(&m);
    return 0;
}
