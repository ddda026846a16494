/* Weight grids that *are* llama.cpp's GGML block types (formats/ggml_types.h):
 * Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL (blocks of 32) and Q2_K, Q3_K, Q4_K,
 * Q5_K, Q6_K, IQ4_XS (super-blocks of 256 with 16- or 32-element
 * sub-blocks). A grid includes everything the block stores: the fp16 d (and
 * dmin / m), the integer sub-block scales and mins quantized against the
 * super-block's d/dmin, the signed layouts of Q3_K/Q6_K/IQ4_XS and the
 * non-uniform IQ4 levels.
 *
 * The quantized result *is* the GGML row bytes: a fit writes a block's
 * header (scales) with all code bits zero, codes are then or-ed into place
 * one element at a time (xf_ggml_grid_put_code), in any order, so GPTQ can
 * fill a block column by column. The value of a code is computed here with
 * the fp32 operations ggml's dequantization uses, in its order
 * (formats/ggml_dequant.c, bit-exact with ggml's to_float):
 *   sub-block scale  dl = fp16(d) * (float)sc   (Q4_0..IQ4_NL: dl = fp16(d))
 *   sub-block min    ml = fp16(dmin) * (float)m (K) / fp16(m) (Q4_1, Q5_1)
 *   value            dl * (float)level [- ml | + ml]
 * so a weight quantized here dequantizes in llama.cpp to exactly the value
 * the solver used (asserted by tests/test_ggml_grid.c and, against ggml
 * itself, by the interop suite). */
#ifndef XF_QUANT_WEIGHTS_GGML_GRID_H
#define XF_QUANT_WEIGHTS_GGML_GRID_H

#include <stdbool.h>
#include <stdint.h>

#include "formats/ggml_types.h"

#define XF_GGML_GRID_MAX_SUB 16 /* sub-blocks per block (Q2_K, Q3_K, Q6_K) */

/* How a level turns into a value. */
typedef enum xf_ggml_form {
    XF_GGML_FORM_SCALE = 0, /* dl * level */
    XF_GGML_FORM_PLUS_MIN,  /* dl * level + ml (Q4_1, Q5_1: ml = the fp16 m) */
    XF_GGML_FORM_MINUS_MIN, /* dl * level - ml (Q2_K, Q4_K, Q5_K) */
} xf_ggml_form;

typedef struct xf_ggml_grid_traits {
    xf_ggml_type type;
    int block;            /* elements per block (32 or 256) */
    int sub;              /* elements per sub-block (== block for the 32-blocks) */
    int n_codes;          /* codes 0 .. n_codes - 1 */
    int level_offset;     /* uniform: level = code - level_offset */
    const int8_t *levels; /* non-uniform (IQ4): level = levels[code]; else NULL */
    xf_ggml_form form;
    int scale_bits;       /* bits of the integer sub-block scale; 0: the fp16 d itself */
    bool signed_scale;    /* sub-block scales may be negative (Q3_K, Q6_K, IQ4_XS) */
} xf_ggml_grid_traits;

/* The traits of a quantized GGML type GPTQ can solve on; NULL otherwise
 * (F32/F16/BF16, unknown ids). */
const xf_ggml_grid_traits *xf_ggml_grid_traits_of(uint32_t type);

/* One sub-block's decoded grid. */
typedef struct xf_ggml_sub {
    float dl, ml;
} xf_ggml_sub;

static inline float xf_ggml_grid_level(const xf_ggml_grid_traits *t, int code)
{
    return t->levels ? (float)t->levels[code] : (float)(code - t->level_offset);
}

/* The value of `code` in sub-block s: exactly ggml's fp32 result. */
static inline float xf_ggml_grid_value(const xf_ggml_grid_traits *t, const xf_ggml_sub *s,
                                       int code)
{
    const float v = s->dl * xf_ggml_grid_level(t, code);
    switch (t->form) {
    case XF_GGML_FORM_PLUS_MIN: return v + s->ml;
    case XF_GGML_FORM_MINUS_MIN: return v - s->ml;
    default: return v;
    }
}

/* The code whose value is nearest x (ties and fp rounding aside: callers
 * use the returned *value, which is exact). */
int xf_ggml_grid_code(const xf_ggml_grid_traits *t, const xf_ggml_sub *s, float x, float *value);

/* Fits the grid of one block: x[0..block) the weights, imp[0..block) their
 * importance (>= 0; the error weight of each element, e.g. diag(H) or the
 * GPTQ 1/U_ii^2; NULL: all 1). Writes the block header into blk (type_size
 * bytes, every code bit zero) and the decoded sub-blocks into subs[0 ..
 * block/sub). Values must be finite. Deterministic. */
void xf_ggml_grid_fit(const xf_ggml_grid_traits *t, const float *x, const float *imp, void *blk,
                      xf_ggml_sub *subs);

/* The decoded sub-blocks of a block header (what xf_ggml_grid_fit wrote). */
void xf_ggml_grid_decode(const xf_ggml_grid_traits *t, const void *blk, xf_ggml_sub *subs);

/* Sets element j's code in blk (its code bits must still be zero). */
void xf_ggml_grid_put_code(const xf_ggml_grid_traits *t, void *blk, int j, int code);

/* Round to nearest on the grid: one row of n values (n a multiple of the
 * block) into row bytes dst, fitted with importance imp (NULL: all 1);
 * dq (optional) receives the dequantized values. What llama-quantize does
 * with an imatrix, with xfquant's fits. */
void xf_ggml_grid_quantize_row(const xf_ggml_grid_traits *t, const float *x, const float *imp,
                               int64_t n, void *dst, float *dq);

#endif
