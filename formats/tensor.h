/* A tensor as every layer of xfquant sees it: a borrowed view of bytes
 * (mmapped from a .safetensors or .xfq file, or owned by a writer), with a
 * dtype (formats/dtype.h) and a logical shape. Packed integer weights
 * (.xfq) carry their grid (scales, zero points, optional column
 * permutation) and their outlier table in `packed` (formats/xfq_pack.h). */
#ifndef XF_FORMATS_TENSOR_H
#define XF_FORMATS_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "formats/dtype.h"
#include "formats/xfq_pack.h"

#define XF_MAX_DIMS 8

typedef struct xf_tensor {
    const char *name;
    xf_dtype dtype;
    int ndim;
    int64_t shape[XF_MAX_DIMS];
    const void *data; /* plain: elements row-major; packed: whole record */
    size_t nbytes;
    xf_packed_view packed; /* valid when xf_dtype_is_packed(dtype), outliers included */
    uint32_t ggml_type;    /* XF_DTYPE_GGML: the xf_ggml_type of its blocks (2-D, rows of
                              xf_ggml_row_bytes(cols) bytes); else unused */
} xf_tensor;

int64_t xf_tensor_numel(const xf_tensor *t);
/* The type as messages and `xfquant info` print it: xf_dtype_name, or for
 * GGML tensors "GGML " + ggml's name of the block type ("GGML q4_K"). */
const char *xf_tensor_type_name(const xf_tensor *t);

/* Converts (dequantizes) a whole tensor to fp32, row-major in its logical
 * shape, through the dtype's row converter (formats/dtype.h): floats,
 * packed types (the outliers the view carries included) and GGML blocks
 * (xf_ggml_dequant, row by row: ggml's values to the bit) only; others fail
 * with a clear error. */
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
