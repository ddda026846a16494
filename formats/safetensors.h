/* safetensors reader (mmap) and writer.
 * Format: u64 LE header length N, N bytes of JSON header
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}},
 * then the data section; offsets are relative to the data section. */
#ifndef XF_FORMATS_SAFETENSORS_H
#define XF_FORMATS_SAFETENSORS_H

#include <jansson.h>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/tensor.h"

#define XF_SAFETENSORS_MAX_HEADER (100u * 1024u * 1024u)

typedef struct xf_safetensors {
    xf_mapped_file file;
    xf_tensor *tensors; /* sorted by name; views into file */
    size_t n_tensors;
    char *names;        /* storage for the tensor names */
    json_t *metadata;   /* "__metadata__" object, or NULL */
} xf_safetensors;

/* Validates everything before returning: header size and JSON, dtypes,
 * shapes (no overflow), offsets inside the data section, size ==
 * numel*dtype size, no overlaps, names valid UTF-8. */
int xf_safetensors_open(xf_safetensors *st, const char *path, xf_error *err);
void xf_safetensors_close(xf_safetensors *st);
const xf_tensor *xf_safetensors_find(const xf_safetensors *st, const char *name);

/* Writes tensors (plain dtypes only) sorted by name, data aligned to 8
 * bytes (header padded with spaces), `metadata` (object of strings, may be
 * NULL) as "__metadata__". Atomic: temp file + fsync + rename. */
int xf_safetensors_write(const char *path, const xf_tensor *tensors, size_t n,
                         const json_t *metadata, xf_error *err);

/* Like xf_safetensors_write, but the bytes of every tensor whose `data` is
 * NULL (nbytes > 0) are produced by fill(ctx, index into `tensors`, buf)
 * into a zeroed buffer of its nbytes just before they are written, one
 * tensor at a time in file order: a writer that computes its tensors holds
 * one of them in memory, not the whole file. A failing fill aborts the
 * write (nothing is left behind). */
typedef int (*xf_safetensors_fill_fn)(void *ctx, size_t index, void *buf, xf_error *err);
int xf_safetensors_write_filled(const char *path, const xf_tensor *tensors, size_t n,
                                const json_t *metadata, xf_safetensors_fill_fn fill, void *ctx,
                                xf_error *err);

#endif
