/* Uniform quantization grids: the GPTQ reference `Quantizer` (per-row
 * min/max with 0 inside the range, asymmetric or symmetric, optional MSE
 * clip search), with one deliberate change: the scale is rounded to fp16
 * right after it is computed and the rounded value is the one used to
 * quantize, so the fp16 scale stored in .xfq is exactly the scale the codes
 * were chosen with (a dequantized .xfq reproduces the solver's Q bit for bit).
 *
 * Grid of one row: q = clamp(round(x / scale) + zero, 0, maxq) with
 * round = round-half-to-even (torch.round), maxq = 2^bits - 1; the value of
 * code q is scale * (q - zero), computed in fp32 exactly like the .xfq
 * reader's conversion (xfq_packed_rows_to_f32, formats/xfq_pack.h). */
#ifndef XF_QUANT_WEIGHTS_GRID_H
#define XF_QUANT_WEIGHTS_GRID_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/error.h"

#define XF_GRID_MIN_BITS 2
#define XF_GRID_MAX_BITS 8

/* MSE clip search of the reference (`find_params(mse=True)`, defaults):
 * shrink factors p = 1 - i/100 for i = 0 .. 79 (grid 100, max shrink 0.8,
 * so p runs 1, 0.99, ..., 0.21 exactly as range(int(0.8 * 100)) does),
 * error = sum |x - dq(x)|^2.4, the first p with the strictly lowest error
 * wins (ties keep the larger p). */
#define XF_GRID_MSE_GRID 100
#define XF_GRID_MSE_STEPS 80
#define XF_GRID_MSE_NORM 2.4f

/* The MSE search's fast filter (grid.c): xf_grid_pow24_approx(d) is within
 * XF_GRID_POW24_REL * powf(d, 2.4f) of it for XF_GRID_POW24_MIN <= d <
 * 2^20 (tests measure < 6e-7 against the exact power, powf itself is
 * within 1 ulp = 1.2e-7 of it; 4e-6 leaves a wide margin, at the price of
 * a few more exact fallbacks). Smaller d count as 0 (d^2.4 <= 2^-96, in an
 * absolute slack); groups with a |x| of XF_GRID_POW24_MAX or more take the
 * exact path. Exposed for the tests. */
#define XF_GRID_POW24_REL 4e-6
#define XF_GRID_POW24_MIN 0x1p-40f
#define XF_GRID_POW24_MAX 0x1p15f
float xf_grid_pow24_approx(float d);

typedef enum xf_clip { XF_CLIP_NONE = 0, XF_CLIP_MSE = 1 } xf_clip;

typedef struct xf_grid_config {
    int bits;    /* 2..8 */
    bool sym;    /* symmetric: zero = 2^(bits-1), range [-max|x|, max|x|] */
    xf_clip clip;
} xf_grid_config;

/* The grid of one row (of one group). */
typedef struct xf_grid {
    float scale;  /* > 0, finite, exactly representable in fp16 */
    uint8_t zero; /* code of the value 0, <= maxq */
    uint8_t maxq; /* 2^bits - 1 */
} xf_grid;

/* Fails (naming `what`) on bits outside 2..8 or an unknown clip mode. */
int xf_grid_config_check(const xf_grid_config *c, const char *what, xf_error *err);
/* "none" / "mse"; NULL for an unknown mode. Parsing: -1 if unknown. */
const char *xf_clip_name(xf_clip c);
int xf_clip_from_name(const char *name, xf_clip *out);

/* fp32 scale -> nearest fp16 value (ties to even), kept inside the fp16
 * range that a file can hold: 0 (underflow) becomes the smallest subnormal
 * 2^-24, overflow becomes 65504. Not in the reference (see above). */
float xf_grid_round_scale(float s);

/* Grid of the range [xmin, xmax] (xmin <= 0 <= xmax; the caller includes 0).
 * sym: max = max(|xmin|, xmax), min = -max. xmin == xmax == 0 -> [-1, 1].
 * scale = fp16((max - min) / maxq); asym zero = round(-min / scale) clamped
 * to [0, maxq] (the clamp only matters when fp16 rounding moved the scale
 * down by a hair at the range end); sym zero = (maxq + 1) / 2. */
xf_grid xf_grid_from_range(float xmin, float xmax, int bits, bool sym);

/* Fits the grid of the n values x[0..n) (one row of a group, or a whole
 * tensor): min/max forced to include 0, then the MSE search if configured.
 * Values must be finite (callers check inputs once, up front). n >= 1. */
xf_grid xf_grid_fit(const xf_grid_config *c, const float *x, int64_t n);

/* Fits `rows` rows of n values with leading dimension ld (OpenMP over rows). */
void xf_grid_fit_rows(const xf_grid_config *c, const float *x, int64_t rows, int64_t n,
                      int64_t ld, xf_grid *out);

/* sum |x_i - dq(q(x_i))|^norm in double (the MSE search objective). */
double xf_grid_error(const xf_grid *g, const float *x, int64_t n, float norm);

/* True when no value is Inf or NaN (exponent bits all set); integer
 * arithmetic so the loop vectorizes. */
static inline bool xf_all_finite(const float *x, int64_t n)
{
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        bad |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
    }
    return bad == 0;
}

/* Index of the first non-finite value, or -1 (fast scan, then locate):
 * the weight solvers name it in their error. */
static inline int64_t xf_first_nonfinite(const float *x, int64_t n)
{
    if (xf_all_finite(x, n))
        return -1;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return i;
    return -1;
}

static inline uint8_t xf_grid_quantize(const xf_grid *g, float x)
{
    /* division (not a reciprocal multiply) to round exactly like x / scale */
    const float v = x / g->scale, a = fabsf(v);
    /* rintf(v) without a libm call, so loops over it vectorize on any x86-64:
     * below 2^23, a + 2^23 rounds to an integer (round to nearest even, as
     * rintf in the default mode) and the subtraction is exact; from 2^23 on
     * (and Inf/NaN) a is its own rint */
    const float r = a < 8388608.0f ? (a + 8388608.0f) - 8388608.0f : a;
    float q = copysignf(r, v) + (float)g->zero;
    if (!(q >= 0.0f)) /* also catches NaN */
        q = 0.0f;
    if (q > (float)g->maxq)
        q = (float)g->maxq;
    return (uint8_t)q;
}

static inline float xf_grid_dequantize(const xf_grid *g, uint8_t q)
{
    return g->scale * (float)((int)q - (int)g->zero);
}

#endif
