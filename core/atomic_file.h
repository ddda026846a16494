/* Atomic file output: data goes to a temp file in the destination
 * directory; commit() fsyncs it, renames it over the final name and fsyncs
 * the directory. abort() (or any failed write) removes the temp file, so a
 * failure never leaves a partial output behind. */
#ifndef XF_CORE_ATOMIC_FILE_H
#define XF_CORE_ATOMIC_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct xf_atomic_file {
    char *final_path;
    char *tmp_path;
    int fd;
    uint64_t pos; /* bytes written so far */
    bool open;
} xf_atomic_file;

int xf_atomic_open(xf_atomic_file *f, const char *path, xf_error *err);
int xf_atomic_write(xf_atomic_file *f, const void *buf, size_t n, xf_error *err);
/* Writes zero bytes until pos is a multiple of alignment. */
int xf_atomic_pad(xf_atomic_file *f, uint64_t alignment, xf_error *err);
int xf_atomic_commit(xf_atomic_file *f, xf_error *err);
/* Safe to call at any time, also after commit (then it only frees). */
void xf_atomic_abort(xf_atomic_file *f);

#endif
