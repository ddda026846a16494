/* SHA-256 via nettle (Debian nettle-dev): provenance hashes of calibration
 * and evaluation texts. */
#ifndef XF_CORE_SHA256_H
#define XF_CORE_SHA256_H

#include <stddef.h>

#include "core/error.h"

/* hex must hold 65 bytes. */
void xf_sha256_hex(const void *data, size_t len, char hex[65]);
int xf_sha256_file_hex(const char *path, char hex[65], xf_error *err);

#endif
