/* QRazor weights: 8-bit abs-max rows razored per group (razor_weights.h). */
#include "quant/weights/razor_weights.h"

#include <math.h>
#include <stdlib.h>

#include "core/half.h"
#include "sim/razor_quant.h"

int xf_razor_weights_quantize(const float *W, int64_t rows, int64_t cols, int keep_bits,
                              int64_t razor_group, xf_qweight *out, const char *name,
                              xf_error *err)
{
    if (keep_bits < 2 || keep_bits >= XF_RAZOR_WEIGHT_BASE_BITS)
        return xf_fail(err, "%s: razor keeps %d bits of %d: need 2..%d", name, keep_bits,
                       XF_RAZOR_WEIGHT_BASE_BITS, XF_RAZOR_WEIGHT_BASE_BITS - 1);
    const int64_t g = razor_group <= 0 || razor_group > cols ? cols : razor_group;
    if (xf_qweight_init(out, rows, cols, XF_RAZOR_WEIGHT_BASE_BITS, g, false, false, name, err) !=
        0)
        return -1;
    const float qmax = (float)((1 << (XF_RAZOR_WEIGHT_BASE_BITS - 1)) - 1);
    const int zero = 1 << (XF_RAZOR_WEIGHT_BASE_BITS - 1);
    int oom = 0;
#pragma omp parallel reduction(| : oom)
    {
        int32_t *q = malloc((size_t)g * sizeof *q);
        oom |= !q;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (!q)
                continue;
            const float *w = W + r * cols;
            float m = 0.0f;
            for (int64_t j = 0; j < cols; j++)
                m = fabsf(w[j]) > m ? fabsf(w[j]) : m;
            float s = xf_f16_to_f32(xf_f32_to_f16(m / qmax));
            if (!(s > 0.0f))
                s = 1.0f; /* an all-zero row (or one below fp16): codes are the zero */
            for (int64_t j0 = 0, gi = 0; j0 < cols; j0 += g, gi++) {
                const int64_t n = cols - j0 < g ? cols - j0 : g;
                for (int64_t j = 0; j < n; j++) {
                    float v = rintf(w[j0 + j] / s);
                    q[j] = (int32_t)(v < -qmax ? -qmax : v > qmax ? qmax : v);
                }
                const int k = xf_razor_ints(q, n, keep_bits);
                for (int64_t j = 0; j < n; j++)
                    out->codes[r * cols + j0 + j] = (uint8_t)(zero + q[j] / (1 << k)); /* exact */
                /* s * 2^k <= max|w| / 127 * 16 stays far inside fp16 for
                 * weights (an fp16 input's max|w| <= 65504 gives s <= 516) */
                out->scales[r * out->n_groups + gi] = ldexpf(s, k);
                out->zeros[r * out->n_groups + gi] = (uint8_t)zero;
            }
        }
        free(q);
    }
    if (oom) {
        xf_qweight_free(out);
        return xf_fail(err, "%s: out of memory", name);
    }
    return 0;
}
