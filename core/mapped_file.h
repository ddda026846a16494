/* A read-only memory mapping of a whole file (empty files map to size 0). */
#ifndef XF_CORE_MAPPED_FILE_H
#define XF_CORE_MAPPED_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct xf_mapped_file {
    const uint8_t *data;
    size_t size;
    char *path;
} xf_mapped_file;

int xf_mapped_open(xf_mapped_file *m, const char *path, xf_error *err);
void xf_mapped_close(xf_mapped_file *m);

#endif
