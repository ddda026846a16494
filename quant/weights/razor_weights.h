/* QRazor weights (sim/razor_quant.h on weight rows): each row is quantized
 * to 8-bit abs-max integers with one fp16 scale s_r = fp16(max|W_r| / 127)
 * (rounded first, then used, as every grid here), and every run of
 * razor_group columns keeps keep_bits magnitude bits from its leading one
 * (shift k). Stored exactly as an 8-bit symmetric xf_qweight with one group
 * per razor group: scale s_r * 2^k (fp16-exact: a power-of-two multiple of
 * an fp16 value) and codes 128 + sign * (|q| >> k) in 128 +- (2^keep_bits - 1),
 * so the .xfq reader's scale * (code - 128) is the razored value exactly.
 * The container is Q8 (the stored form QRazor describes, sign + keep_bits
 * + a per-group shift, has no dtype of its own here). */
#ifndef XF_QUANT_WEIGHTS_RAZOR_WEIGHTS_H
#define XF_QUANT_WEIGHTS_RAZOR_WEIGHTS_H

#include <stdint.h>

#include "core/error.h"
#include "quant/weights/qweight.h"

#define XF_RAZOR_WEIGHT_BASE_BITS 8

/* W [rows, cols] finite (checked by the caller); razor_group 0: one group
 * per row. keep_bits 2..7. Fails naming `name`. */
int xf_razor_weights_quantize(const float *W, int64_t rows, int64_t cols, int keep_bits,
                              int64_t razor_group, xf_qweight *out, const char *name,
                              xf_error *err);

#endif
