/* QRazor's significant data razoring (SDR), simulated exactly. See
 * docs/methods.md ("QRazor").
 *
 * Two stages on a BASE GROUP of n values (an activation token row or one of
 * its act_group groups, a K/V head group, a weight row):
 *
 *  1. abs-max integer quantization to B base bits (B = 8 or 16), symmetric,
 *     sign-magnitude (the magnitude range is 0..2^(B-1)-1 on both sides):
 *        m = max|x|; scale = clip * m / (2^(B-1) - 1)            (fp32)
 *        q = clamp(rint(x / scale), -(2^(B-1)-1), 2^(B-1)-1)    (true fp32 division,
 *                                                                rint half-even)
 *  2. razoring of every RAZOR GROUP of R consecutive values (the last one
 *     shorter when R does not divide n, as weight groups):
 *        a = |q| (integers); M = max a over the razor group; if M = 0 all stay 0;
 *        p = the bit index of M's leading one (floor(log2 M));
 *        s = max(p - K + 1, 0)    (K = kept bits: bits p .. p-K+1 survive)
 *        a' = min((a + h) >> s, 2^K - 1) << s,  h = 2^(s-1) if s > 0 else 0
 *        (round half up on the magnitude at the first discarded bit; a carry
 *        past the group's leading bit saturates to all K bits set, because
 *        the group's stored shift s cannot change per value)
 *        x' = sign(q) * a' * scale   (one fp32 product of exact operands)
 *
 * So the stored form of a value is a sign, K magnitude bits and a per-group
 * shift s (QRazor's flag); K is the scheme's act/kv bits or the weight
 * bits (4 in the paper: W4A4KV4). A base group that is all zeros is left
 * unchanged; a non-finite value fails (group unchanged). */
#ifndef XF_SIM_RAZOR_QUANT_H
#define XF_SIM_RAZOR_QUANT_H

#include <stdint.h>

#define XF_RAZOR_MIN_BASE_BITS 4
#define XF_RAZOR_MAX_BASE_BITS 16

/* Stage 2 on integers: razors |q[i]| (i < n) in place keeping K bits from
 * the group's leading one, signs kept; returns the shift s (0 when the
 * group is all zero). */
int xf_razor_ints(int32_t *q, int64_t n, int keep_bits);

/* Both stages on one base group x[0..n) in place; razor groups of
 * razor_group values, the last possibly shorter (0: one razor group of n). Returns 0, or -1 on a non-finite value (x
 * unchanged). */
int xf_razor_group_quant(float *x, int64_t n, int base_bits, int keep_bits, int64_t razor_group,
                         float clip);

/* x[0..n) as base groups of `group` values (0: one of n; n % group == 0,
 * checked by the caller). Returns 0, or -1 when a group held a non-finite
 * value (that group unchanged, the others quantized). */
int xf_razor_row(float *x, int64_t n, int64_t group, int base_bits, int keep_bits,
                 int64_t razor_group, float clip);

#endif
