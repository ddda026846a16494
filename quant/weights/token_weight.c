/* Attention-concentration token weights (token_weight.h). */
#include "quant/weights/token_weight.h"

#include <math.h>

void xf_attn_concentration_add(double *acc, const float *p, int64_t T_q, int64_t T_k)
{
    for (int64_t q = 0; q < T_q; q++) {
        const float *row = p + q * T_k;
        for (int64_t k = 0; k < T_k; k++)
            acc[k] += (double)row[k];
    }
}

int xf_token_weights_from_concentration(const double *c, int64_t T, double r_min, double r_max,
                                        float *r, xf_error *err)
{
    if (T < 1)
        return xf_fail(err, "token weights: empty window");
    if (!(r_min >= 0.0 && r_max > 0.0 && r_min <= r_max))
        return xf_fail(err, "token weights: range [%g, %g] is not 0 <= min <= max, max > 0",
                       r_min, r_max);
    double lo = c[0], hi = c[0];
    for (int64_t t = 0; t < T; t++) {
        if (!isfinite(c[t]) || c[t] < 0.0)
            return xf_fail(err, "token weights: token %lld has concentration %g", (long long)t,
                           c[t]);
        lo = c[t] < lo ? c[t] : lo;
        hi = c[t] > hi ? c[t] : hi;
    }
    if (!(hi > lo)) { /* flat: nothing to prefer */
        for (int64_t t = 0; t < T; t++)
            r[t] = 1.0f;
        return 0;
    }
    double sum = 0.0;
    for (int64_t t = 0; t < T; t++)
        sum += r_min + (c[t] - lo) / (hi - lo) * (r_max - r_min);
    const double scale = (double)T / sum;
    for (int64_t t = 0; t < T; t++)
        r[t] = (float)((r_min + (c[t] - lo) / (hi - lo) * (r_max - r_min)) * scale);
    return 0;
}

int xf_token_weight_scale_rows(const float *x, const float *r, int64_t n, int64_t d, float *out,
                               xf_error *err)
{
    for (int64_t t = 0; t < n; t++) {
        if (!isfinite(r[t]) || r[t] < 0.0f)
            return xf_fail(err, "token weights: row %lld has weight %g", (long long)t,
                           (double)r[t]);
        const float s = (float)sqrt((double)r[t]);
        for (int64_t j = 0; j < d; j++)
            out[t * d + j] = s * x[t * d + j];
    }
    return 0;
}
