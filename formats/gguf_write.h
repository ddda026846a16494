/* A GGUF v3 container writer (the file format of llama.cpp and ollama;
 * layout in docs/export.md, type ids in formats/ggml_types.h).
 *
 * Usage: init, add metadata (KVs) and tensors in the order they are to
 * appear, then write. Nothing touches the disk before xf_gguf_write, which
 * writes atomically (core/atomic_file.h): header, KVs in insertion order,
 * tensor infos in insertion order, zero padding to the alignment, then the
 * tensor bytes in info order, each zero-padded to the alignment (the
 * offsets llama.cpp's reader demands: offset_i = sum of the padded sizes
 * before i). Same calls => same bytes.
 *
 * Tensor bytes are given at add time (owned) or produced at write time by a
 * fill callback, one tensor in memory at a time.
 *
 * Every add checks what the GGUF readers check (empty or duplicate keys,
 * tensor names of 64 bytes or more, duplicate tensor names, ndim 1..4,
 * ne[0] a multiple of the type's block size, the byte size matching the
 * type and shape) and f32 values / float tensor elements for NaN/Inf, so a
 * file is refused before anything is written. */
#ifndef XF_FORMATS_GGUF_WRITE_H
#define XF_FORMATS_GGUF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "formats/ggml_types.h"


/* Produces a tensor's bytes at write time (nbytes into buf); 0 or -1 with
 * err filled. Lets a caller stream a model through one tensor's memory. */
typedef int (*xf_gguf_fill_fn)(void *ctx, void *buf, size_t nbytes, xf_error *err);

typedef struct xf_gguf_tensor_info {
    char *name;
    int ndim;
    int64_t ne[XF_GGUF_MAX_DIMS]; /* ne[0] is the contiguous dimension */
    uint32_t type;                /* xf_ggml_type */
    void *data;                   /* owned; NULL when filled at write time */
    xf_gguf_fill_fn fill;
    void *fill_ctx;
    size_t nbytes;
} xf_gguf_tensor_info;

typedef struct xf_gguf_writer {
    uint32_t alignment;
    uint8_t *kv;          /* serialized KV section */
    size_t kv_len, kv_cap;
    uint64_t n_kv;
    char **keys;          /* for the duplicate check */
    xf_gguf_tensor_info *tensors;
    size_t n_tensors, cap_tensors;
    char *what;           /* the output path, for messages */
    bool failed;          /* an add failed (allocation): write refuses */
} xf_gguf_writer;

/* alignment: a power of two (0: the GGUF default 32), written as the
 * first KV, general.alignment (u32). `what` names
 * the output in messages. */
int xf_gguf_writer_init(xf_gguf_writer *w, uint32_t alignment, const char *what, xf_error *err);
void xf_gguf_writer_free(xf_gguf_writer *w);

int xf_gguf_add_u32(xf_gguf_writer *w, const char *key, uint32_t v, xf_error *err);
int xf_gguf_add_i32(xf_gguf_writer *w, const char *key, int32_t v, xf_error *err);
int xf_gguf_add_f32(xf_gguf_writer *w, const char *key, float v, xf_error *err);
int xf_gguf_add_bool(xf_gguf_writer *w, const char *key, bool v, xf_error *err);
int xf_gguf_add_string(xf_gguf_writer *w, const char *key, const char *s, xf_error *err);
/* Arrays. Strings: n strings of lens[i] bytes (lens NULL: NUL-terminated). */
int xf_gguf_add_str_array(xf_gguf_writer *w, const char *key, const char *const *s,
                          const size_t *lens, size_t n, xf_error *err);
int xf_gguf_add_f32_array(xf_gguf_writer *w, const char *key, const float *v, size_t n,
                          xf_error *err);
int xf_gguf_add_i32_array(xf_gguf_writer *w, const char *key, const int32_t *v, size_t n,
                          xf_error *err);

/* Adds a tensor; takes ownership of `data` (malloc'd, nbytes) also on
 * failure. ne[0..ndim) in GGUF order (ne[0] contiguous). */
int xf_gguf_add_tensor(xf_gguf_writer *w, const char *name, int ndim, const int64_t *ne,
                       uint32_t type, void *data, size_t nbytes, xf_error *err);

/* Adds a tensor whose bytes `fill(ctx, ...)` produces during xf_gguf_write
 * (ctx must stay valid until then). The same checks as above run now, the
 * NaN/Inf check on the filled bytes; a failing fill aborts the write and
 * leaves nothing behind. */
int xf_gguf_add_tensor_fill(xf_gguf_writer *w, const char *name, int ndim, const int64_t *ne,
                            uint32_t type, size_t nbytes, xf_gguf_fill_fn fill, void *ctx,
                            xf_error *err);

/* Bytes of a tensor's data (0 when ne[0] is not a multiple of the block
 * or the type is unknown). */
size_t xf_gguf_tensor_nbytes(uint32_t type, int ndim, const int64_t *ne);

/* Writes the file atomically; nothing is left behind on failure. */
int xf_gguf_write(const xf_gguf_writer *w, const char *path, xf_error *err);
/* Size the file will have (for summaries), without writing. */
uint64_t xf_gguf_file_size(const xf_gguf_writer *w);

#endif
