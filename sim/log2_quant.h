/* Quantizers for post-softmax attention probabilities (p in [0, 1]), the
 * RepQ-ViT / AdaLog family (docs/methods.md, "RepQuant"), plus
 * the uniform quantizer they are compared against, and a log2 grid for
 * weight rows.
 *
 * log2 (b bits, base B = 2^L, L = log2_base; L = 1 is base 2):
 *   k = rint(-log2(p) / L)          rounding in the LOG domain (RepQ-ViT):
 *                                   the threshold between levels B^-k and
 *                                   B^-(k+1) is B^-(k+1/2) (2^-(k+0.5) for
 *                                   base 2), not their arithmetic midpoint;
 *                                   rint = half to even; log2 in double
 *   k < 0           -> k = 0        (p > 1 clamps to the top level 1)
 *   k > 2^b - 1     -> value 0      (underflow: exact zero, as RepQ-ViT's
 *                                   mask; the grid is {0} U {B^-k})
 *   p <= 0          -> 0; NaN stays NaN
 *   value = (float)exp2(-k * L)     an exact power of two when k * L is an
 *                                   integer (always for base 2)
 * uniform (b bits): q = clamp(rint(p * (2^b - 1)), 0, 2^b - 1) (fp32
 *   product), value = q / (2^b - 1) (fp32 division); levels k / (2^b - 1).
 *
 * Base search (AdaLog): over candidate L values, the one minimising the
 * squared error sum (p - Q(p))^2 on a sample of calibration probabilities;
 * ties keep the earlier candidate. */
#ifndef XF_SIM_LOG2_QUANT_H
#define XF_SIM_LOG2_QUANT_H

#include <stdint.h>

#include "core/error.h"

/* One value (bits 1..8, log2_base > 0). */
float xf_log2_quant_value(float p, int bits, double log2_base);
/* In place on n values. */
void xf_prob_quant_log2(float *p, int64_t n, int bits, double log2_base);
void xf_prob_quant_uniform(float *p, int64_t n, int bits);

/* sum (p_i - Q(p_i))^2 in double, without modifying p. */
double xf_log2_quant_sse(const float *p, int64_t n, int bits, double log2_base);
double xf_uniform_quant_sse(const float *p, int64_t n, int bits);

/* Default candidates of the base search: L = 0.25, 0.5, 0.75, 1, 1.25, 1.5,
 * 2, 3 (base 2^(1/4) .. 8). */
#define XF_LOG2_BASE_DEFAULT_COUNT 8
extern const double xf_log2_base_default[XF_LOG2_BASE_DEFAULT_COUNT];

/* Picks the L of `cands` (NULL: the defaults; n_cands >= 1) with the least
 * squared error on the n >= 1 sample values p; *best_sse may be NULL.
 * Fails (naming "log2 base search") on bad arguments or a non-finite
 * sample value. */
int xf_log2_base_search(const float *p, int64_t n, int bits, const double *cands, int n_cands,
                        double *best_log2_base, double *best_sse, xf_error *err);

/* Weight rows on a signed log2 grid (--weight-grid log2), the storable one
 * of docs/xfq-format.md ("Log2-grid weights", L2..L8): b-bit codes = 1 sign
 * bit + b-1 exponent bits, levels +scale * 2^-k (k = 0..K, K = 2^(b-1)-1),
 * -scale * 2^-k (k = 0..K-1) and exact 0 (the code 2^b - 1, which the
 * smallest negative level gives up: b bits cannot hold 2^b levels plus 0).
 * k = rint(-log2(|w| / scale)) (log-domain rounding, as above), clamped
 * below at 0; beyond the last level of its sign a weight becomes 0. The
 * scale is searched over one octave below max|w| (scale = max|w| * 2^(-t/32),
 * t = 0..31: scaling by 2 only shifts k), each candidate rounded toward zero
 * to an fp16 value (at least 2^-24) so that it is stored exactly,
 * minimising sum (w - q)^2; ties keep the larger scale. Values are
 * xfq_log2_code_value(code, bits, scale), bit for bit what a reader of the
 * .xfq dequantizes. out may equal w; codes (n bytes, may be NULL) receive
 * the codes. Returns the scale; 0 for an all-zero row or one holding a
 * non-finite value (out = w copied unchanged, codes = the zero code: the
 * caller checks weights are finite up front). bits 2..8. */
float xf_log2_weight_row_codes(const float *w, int64_t n, int bits, uint8_t *codes, float *out);
float xf_log2_weight_row(const float *w, int64_t n, int bits, float *out);

#endif
