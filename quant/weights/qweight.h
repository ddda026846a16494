/* A quantized 2-D weight [rows, cols] before packing: one byte per code,
 * fp32 scales that are exactly fp16 values, and zero points; the layout of
 * docs/xfq-format.md ("Packed weights") otherwise:
 *   storage column j holds logical column perm[j] (identity if perm == NULL),
 *   groups are runs of group_size storage columns (the last may be shorter),
 *   W[r, perm[j]] = scale[r, j / g] * (code[r, j] - zero[r, j / g]).
 * zeros are always filled (2^(bits-1) when symmetric) so users need no
 * special case; export drops them for symmetric grids. An optional outlier
 * side table (quant/weights/outliers.h) replaces some dequantized entries. */
#ifndef XF_QUANT_WEIGHTS_QWEIGHT_H
#define XF_QUANT_WEIGHTS_QWEIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "formats/tensor.h"
#include "quant/weights/ggml_grid.h"
#include "quant/weights/grid.h"
#include "quant/weights/outliers.h"

typedef struct xf_qweight {
    int64_t rows, cols;
    int bits;             /* 2..8 (only 2, 3, 4, 8 can be exported) */
    int64_t group_size;   /* columns per group; == cols for per-channel */
    int64_t n_groups;     /* ceil(cols / group_size) */
    bool asym;
    uint8_t *codes;       /* [rows, cols], storage column order */
    float *scales;        /* [rows, n_groups], fp16-exact, > 0 */
    uint8_t *zeros;       /* [rows, n_groups] */
    int32_t *perm;        /* [cols] or NULL */
    xf_outliers outliers; /* fp16 entries replacing dequantized ones; zeroed: none */
    bool log2;            /* codes on the log2 grid (xfq_log2_code_value; exported as
                             L2..L8, never asym/perm/outliers); false (init): uniform */
    /* GGML block grid (xf_qweight_init_ggml): the weight *is* rows of GGML
     * blocks; codes/scales/zeros/perm are NULL and bits/group_size unused */
    const xf_ggml_grid_traits *ggml;
    uint8_t *blocks;      /* [rows, row_bytes] */
    size_t row_bytes;
} xf_qweight;

/* group <= 0 or group >= cols means per-channel: returns cols; else group. */
int64_t xf_group_size_resolve(int64_t group, int64_t cols);

/* Allocates a zeroed container (zeros preset to 2^(bits-1) when !asym, no
 * outliers); group_size must be in [1, cols]. Fails naming `what`. */
int xf_qweight_init(xf_qweight *q, int64_t rows, int64_t cols, int bits, int64_t group_size,
                    bool asym, bool with_perm, const char *what, xf_error *err);
/* A zeroed GGML-block weight of `t`'s type; cols must be a multiple of
 * its block size. Fails naming `what`. */
int xf_qweight_init_ggml(xf_qweight *q, int64_t rows, int64_t cols, const xf_ggml_grid_traits *t,
                         const char *what, xf_error *err);
/* Row r's block gi. */
static inline uint8_t *xf_qweight_block(const xf_qweight *q, int64_t r, int64_t gi)
{
    return q->blocks + (size_t)r * q->row_bytes +
           (size_t)gi * xf_ggml_traits(q->ggml->type)->type_size;
}
void xf_qweight_free(xf_qweight *q);

/* The grid of row r, group gi. */
static inline xf_grid xf_qweight_grid(const xf_qweight *q, int64_t r, int64_t gi)
{
    xf_grid g;
    g.scale = q->scales[r * q->n_groups + gi];
    g.zero = q->zeros[r * q->n_groups + gi];
    g.maxq = (uint8_t)((1 << q->bits) - 1);
    return g;
}

static inline void xf_qweight_set_grid(xf_qweight *q, int64_t r, int64_t gi, const xf_grid *g)
{
    q->scales[r * q->n_groups + gi] = g->scale;
    q->zeros[r * q->n_groups + gi] = g->zero;
}

/* dst[rows * cols], logical column order, values as xf_tensor_to_f32
 * computes them for the exported view (fp32 scale * (code - zero), the
 * outlier entries replacing theirs). */
void xf_qweight_dequantize(const xf_qweight *q, float *dst);
/* One logical row. */
void xf_qweight_dequantize_row(const xf_qweight *q, int64_t r, float *dst);

/* Packed tensor dtype for a bit width: Q2/Q3/Q4/Q8, XF_DTYPE_INVALID else. */
xf_dtype xf_qweight_dtype(int bits);
/* The same for log2-grid codes: L2/L3/L4/L8. */
xf_dtype xf_qweight_log2_dtype(int bits);

/* An exported packed tensor: `tensor` is ready for xfq_write (dtype Qb,
 * ndim 2, packed view filled; data/nbytes = the whole record laid out as in
 * the file, see xfq_packed_layout_compute). With outliers, `side` holds the
 * three plain tensors NAME.outliers.{row_ptr,col,val} (n_side = 3, else 0).
 * Owns its bytes and names. */
typedef struct xf_qweight_packed {
    xf_tensor tensor;
    uint8_t *buf;
    char *name;
    xf_tensor side[3];
    int n_side;
    uint8_t *side_buf;  /* row_ptr, col, val back to back */
    char *side_names;   /* the three names, NUL-separated */
} xf_qweight_packed;

/* Bytes of the packed tensor plus its side table: what it costs on disk
 * (alignment padding between records aside). */
size_t xf_qweight_packed_bytes(const xf_qweight_packed *p);

/* Packs codes with xfq_pack_row, converts scales to fp16, copies zeros
 * (asym only) and perm, and the outlier table (values to fp16) if any.
 * GGML-block weights become an XF_DTYPE_GGML tensor (their bytes copied;
 * the .xfq writer refuses blocks that decode to a non-finite value).
 * Fails for bit widths without a storage type (5, 6, 7) and for scales
 * that are not positive finite fp16 values. */
int xf_qweight_export(const xf_qweight *q, const char *name, xf_qweight_packed *out,
                      xf_error *err);
void xf_qweight_packed_free(xf_qweight_packed *p);

#endif
