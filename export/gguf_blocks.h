/* Packed .xfq weights -> GGML blocks (formats/ggml_types.h), and float rows
 * -> F32/F16/BF16. The exact mappings (docs/export.md) rely on the xfq grid
 * W = s * (q - z) with s an fp16 scale per group:
 *   2/3/4-bit sym and 2/3-bit asym -> Q4_0, d = s, nibble = q - z + 8
 *   4-bit asym                     -> Q5_0, d = s, q5 = q - z + 16
 *   8-bit (sym, or asym with every q - z in [-128, 127]) -> Q8_0, qs = q - z
 * each block of 32 logical columns lying in one group (the group's fp16
 * scale bits copied as d, so ggml's (x - off) * d is the same single fp32
 * product as xfquant's dequantization). Q4_1 for 4-bit asym is the one
 * approximate mapping: d = s, m = fp16(-s * z), rounded. */
#ifndef XF_EXPORT_GGUF_BLOCKS_H
#define XF_EXPORT_GGUF_BLOCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "formats/tensor.h"

typedef enum xf_gguf_asym {
    XF_GGUF_ASYM_Q5_0 = 0, /* exact, 5.5 bits per weight */
    XF_GGUF_ASYM_Q4_1,     /* 5.0 bits per weight, fp16-rounded min */
} xf_gguf_asym;

/* The GGML type for packed 2-D tensor t (logical [rows, cols]) and the
 * logical -> storage column map it needs. Returns 0 with *type set, or -1
 * with a one-line reason (naming t) why no block type holds it: a log2
 * grid, a width not a multiple of 32, a group size that splits a 32-column
 * block, 8-bit asym codes outside int8. *act_order is set (and -1
 * returned) for a column permutation whose group changes inside a block:
 * GGUF has no g_idx, so no fallback applies to it. */
int xf_gguf_packed_type(const xf_tensor *t, xf_gguf_asym asym, uint32_t *type, bool *act_order,
                        xf_error *err);

/* Encodes logical row r of packed t as `type` blocks (type from
 * xf_gguf_packed_type) into dst (ggml row bytes). inv: the inverse of
 * t->packed.perm (storage column of each logical column), NULL without a
 * perm. codes: scratch of t->shape[1] + 32 bytes. For Q4_1, *max_abs_err
 * is raised to the largest |ggml value - xfquant value| of the row and
 * *max_abs_dm to the largest |fp16(m) - (-s z)|; untouched otherwise. */
void xf_gguf_encode_packed_row(const xf_tensor *t, int64_t r, uint32_t type, const int32_t *inv,
                               uint8_t *codes, uint8_t *dst, double *max_abs_err,
                               double *max_abs_dm);

/* Converts n floats to F32/F16/BF16 bytes at dst. */
void xf_gguf_encode_float_row(const float *src, int64_t n, uint32_t type, void *dst);

#endif
