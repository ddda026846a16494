/* GGUF v3 (llama.cpp, ollama) container reader: header, metadata key/values
 * (every value type, arrays), tensor infos and the aligned data section,
 * over a read-only mmap. Layout and rules: docs/export.md ("GGUF").
 *
 * Hostile input: every count and length is checked against the bytes left
 * in the file before anything is allocated or read, so a 40-byte file can
 * never make the reader allocate more than the file could describe. The
 * checks are ggml's (src/gguf.cpp in ggml) and fail with one line naming
 * the file and the field: wrong magic/version, truncation, nested arrays,
 * empty or duplicate keys, general.alignment not a power-of-2 u32, tensor
 * names empty/too long/duplicate, n_dims > 4, negative or overflowing ne,
 * type ids ggml does not define ("unknown") or xfquant does not read
 * (named), ne[0] not a multiple of the block size, offsets misaligned,
 * past the end of the file, or not the ones ggml's writer gives
 * (offset_i = sum_{j<i} PAD(nbytes_j, alignment)). */
#ifndef XF_FORMATS_GGUF_H
#define XF_FORMATS_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/ggml_types.h"


/* A string inside the mapping (not NUL-terminated). */
typedef struct xf_gguf_str {
    const char *ptr;
    size_t len;
} xf_gguf_str;

typedef struct xf_gguf_kv {
    char *key;             /* owned, NUL-terminated */
    xf_gguf_vtype type;    /* the value's type; XF_GGUF_ARRAY for arrays */
    xf_gguf_vtype elem;    /* arrays: the element type; scalars: == type */
    uint64_t n;            /* arrays: element count; scalars: 1 */
    const uint8_t *data;   /* non-string values: n little-endian elements in the map */
    xf_gguf_str *strs;     /* string values (n of them), owned array; NULL otherwise */
} xf_gguf_kv;

typedef struct xf_gguf_tensor {
    char *name;            /* owned, NUL-terminated */
    uint32_t n_dims;
    int64_t ne[XF_GGUF_MAX_DIMS]; /* ne[0] contiguous; unused dims are 1 */
    const xf_ggml_type_traits *traits;
    uint64_t offset;       /* from the start of the data section */
    size_t nbytes;
    const uint8_t *data;   /* in the map */
} xf_gguf_tensor;

typedef struct xf_gguf_file {
    xf_mapped_file map;
    char *path;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;  /* of the data section, from the file start */
    xf_gguf_kv *kvs;
    size_t n_kv;
    xf_gguf_tensor *tensors;
    size_t n_tensors;
} xf_gguf_file;

/* True when the file at path starts with the GGUF magic. */
bool xf_path_is_gguf(const char *path);

int xf_gguf_open(xf_gguf_file *f, const char *path, xf_error *err);
/* Safe on a zeroed struct and after a failed open. */
void xf_gguf_close(xf_gguf_file *f);

const xf_gguf_kv *xf_gguf_find(const xf_gguf_file *f, const char *key);
const xf_gguf_tensor *xf_gguf_find_tensor(const xf_gguf_file *f, const char *name);
/* "u32", "string", "array[f32]", ... */
const char *xf_gguf_vtype_name(xf_gguf_vtype t);

/* Typed getters over a scalar key. Integers accept any integer type whose
 * value fits (llama.cpp writes u32, other writers u64/i32); floats accept
 * f32 and f64. Absent and !required: *out = dflt, return 0. Wrong type or
 * range: one line naming the file and the key. */
int xf_gguf_get_uint(const xf_gguf_file *f, const char *key, bool required, uint64_t dflt,
                     uint64_t *out, xf_error *err);
int xf_gguf_get_float(const xf_gguf_file *f, const char *key, bool required, double dflt,
                      double *out, xf_error *err);
int xf_gguf_get_bool(const xf_gguf_file *f, const char *key, bool required, bool dflt, bool *out,
                     xf_error *err);
/* A string value; absent and !required: out->ptr = NULL, len 0. */
int xf_gguf_get_str(const xf_gguf_file *f, const char *key, bool required, xf_gguf_str *out,
                    xf_error *err);
/* An array key with elements of type elem; absent and !required: NULL
 * with *kv_out = NULL. */
int xf_gguf_get_array(const xf_gguf_file *f, const char *key, bool required, xf_gguf_vtype elem,
                      const xf_gguf_kv **kv_out, xf_error *err);

/* Element i of a numeric array (no bounds check beyond i < kv->n). */
int32_t xf_gguf_arr_i32(const xf_gguf_kv *kv, uint64_t i);
float xf_gguf_arr_f32(const xf_gguf_kv *kv, uint64_t i);

#endif
