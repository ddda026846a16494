/* A tensor as every layer of xfquant sees it: a borrowed view of bytes
 * (mmapped from a .safetensors or .xfq file, or owned by a writer), with a
 * dtype and a logical shape. Packed integer weights (.xfq) carry their grid
 * (scales, zero points, optional column permutation) in `packed`. */
#ifndef XF_FORMATS_TENSOR_H
#define XF_FORMATS_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define XF_MAX_DIMS 8

typedef enum xf_dtype {
    XF_DTYPE_INVALID = 0,
    /* plain element types (safetensors names in xf_dtype_name) */
    XF_DTYPE_F16,
    XF_DTYPE_BF16,
    XF_DTYPE_F32,
    XF_DTYPE_F64,
    XF_DTYPE_I8,
    XF_DTYPE_U8,
    XF_DTYPE_I16,
    XF_DTYPE_U16,
    XF_DTYPE_I32,
    XF_DTYPE_U32,
    XF_DTYPE_I64,
    XF_DTYPE_U64,
    XF_DTYPE_BOOL,
    /* packed integer weights, only in .xfq (see docs/xfq-format.md) */
    XF_DTYPE_Q2,
    XF_DTYPE_Q3,
    XF_DTYPE_Q4,
    XF_DTYPE_Q8,
    /* packed log2-grid weights (sign + exponent codes), only in .xfq */
    XF_DTYPE_L2,
    XF_DTYPE_L3,
    XF_DTYPE_L4,
    XF_DTYPE_L8,
    /* GGML blocks (formats/ggml_types.h) as llama.cpp stores them, only in
     * .xfq: xf_tensor.ggml_type says which block type (docs/xfq-format.md) */
    XF_DTYPE_GGML,
    XF_DTYPE_COUNT
} xf_dtype;

/* Bytes per element for plain types; 0 for packed/invalid. */
size_t xf_dtype_size(xf_dtype t);
/* "F16", "BF16", ..., "Q4"; "?" for invalid. */
const char *xf_dtype_name(xf_dtype t);
/* Parses a safetensors dtype string; XF_DTYPE_INVALID if unknown. */
xf_dtype xf_dtype_from_name(const char *name);
bool xf_dtype_is_packed(xf_dtype t);
/* L2..L8: packed codes on the log2 grid (docs/xfq-format.md). */
bool xf_dtype_is_log2(xf_dtype t);
bool xf_dtype_is_float(xf_dtype t);
/* XF_DTYPE_GGML: rows of GGML blocks (not "packed": no codes/scales view). */
bool xf_dtype_is_ggml(xf_dtype t);
/* Bits of one code for packed types (2, 3, 4, 8; Q and L); 0 otherwise. */
int xf_dtype_packed_bits(xf_dtype t);

/* The grid of a packed 2-D weight [rows, cols]. Codes are stored in
 * "storage column order": storage column j holds logical column perm[j]
 * (identity when perm == NULL). Groups are runs of group_size storage
 * columns (the last may be shorter). Dequantized value:
 *   W[r, perm[j]] = scale[r, g(j)] * (q[r, j] - zero[r, g(j)])
 * with zero = 2^(bits-1) when !asym. L-typed (log2) weights use the same
 * view (never asym, no perm) with codes read as sign + exponent. */
typedef struct xf_packed_view {
    int bits;
    int64_t group_size;      /* columns per group; == cols for per-channel */
    int64_t n_groups;        /* ceil(cols / group_size) */
    bool asym;               /* zero points stored (else implicit 2^(bits-1)) */
    const uint8_t *codes;    /* rows * row_bytes, blocks of 32 codes */
    size_t row_bytes;
    const uint16_t *scales;  /* fp16 [rows, n_groups] */
    const uint8_t *zeros;    /* u8 [rows, n_groups] or NULL */
    const int32_t *perm;     /* [cols] or NULL */
} xf_packed_view;

typedef struct xf_tensor {
    const char *name;
    xf_dtype dtype;
    int ndim;
    int64_t shape[XF_MAX_DIMS];
    const void *data; /* plain: elements row-major; packed: whole record */
    size_t nbytes;
    xf_packed_view packed; /* valid when xf_dtype_is_packed(dtype) */
    uint32_t ggml_type;    /* XF_DTYPE_GGML: the xf_ggml_type of its blocks (2-D, rows of
                              xf_ggml_row_bytes(cols) bytes); else unused */
} xf_tensor;

int64_t xf_tensor_numel(const xf_tensor *t);
/* The type as messages and `xfquant info` print it: xf_dtype_name, or for
 * GGML tensors "GGML " + ggml's name of the block type ("GGML q4_K"). */
const char *xf_tensor_type_name(const xf_tensor *t);

/* Converts (dequantizes) a whole tensor to fp32, row-major in its logical
 * shape. Floats, packed types and GGML blocks (xf_ggml_dequant, row by row:
 * ggml's values to the bit) only; others fail with a clear error. */
int xf_tensor_to_f32(const xf_tensor *t, float *dst, xf_error *err);
/* Row r of a 2-D tensor (embedding lookups), fp32, cols values. */
int xf_tensor_row_to_f32(const xf_tensor *t, int64_t r, float *dst, xf_error *err);

/* A name-sorted collection of tensor views (e.g. the union of the shards of
 * an HF model). Owns only its array, not the views' bytes. */
typedef struct xf_tensor_set {
    xf_tensor *items;
    size_t n;
} xf_tensor_set;

/* Copies the views in; sorts by name; fails on duplicate names. */
int xf_tensor_set_init(xf_tensor_set *s, const xf_tensor *items, size_t n, const char *what,
                       xf_error *err);
void xf_tensor_set_free(xf_tensor_set *s);
const xf_tensor *xf_tensor_set_find(const xf_tensor_set *s, const char *name);

#endif
