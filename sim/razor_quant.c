/* QRazor's significant data razoring (formulas in razor_quant.h). */
#include "sim/razor_quant.h"

#include <math.h>

int xf_razor_ints(int32_t *q, int64_t n, int keep_bits)
{
    int32_t M = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t a = q[i] < 0 ? -q[i] : q[i];
        M = a > M ? a : M;
    }
    if (M == 0)
        return 0;
    int p = 0;
    while ((M >> (p + 1)) != 0)
        p++;
    const int s = p - keep_bits + 1 > 0 ? p - keep_bits + 1 : 0;
    const int32_t top = (1 << keep_bits) - 1, half = s > 0 ? 1 << (s - 1) : 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t a = q[i] < 0 ? -q[i] : q[i];
        int32_t k = (a + half) >> s;
        k = k > top ? top : k;
        q[i] = q[i] < 0 ? -(k << s) : (k << s);
    }
    return s;
}

/* the base-bit integer of x (stage 1) */
static inline int32_t base_int(float x, float scale, float qmax)
{
    float q = rintf(x / scale);
    q = q < -qmax ? -qmax : q > qmax ? qmax : q;
    return (int32_t)q;
}

int xf_razor_group_quant(float *x, int64_t n, int base_bits, int keep_bits, int64_t razor_group,
                         float clip)
{
    float m = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (!isfinite(a))
            return -1;
        m = a > m ? a : m;
    }
    if (m == 0.0f)
        return 0;
    const float qmax = (float)((1 << (base_bits - 1)) - 1);
    const float scale = clip * m / qmax;
    if (!(scale > 0.0f))
        return 0;
    if (razor_group <= 0 || razor_group > n)
        razor_group = n;
    const int32_t top = (1 << keep_bits) - 1;
    for (int64_t g0 = 0; g0 < n; g0 += razor_group) {
        float *g = x + g0;
        const int64_t len = n - g0 < razor_group ? n - g0 : razor_group;
        /* pass 1: the group's leading one (the OR of the magnitudes has the
         * same leading one as their maximum) */
        int32_t M = 0;
        for (int64_t i = 0; i < len; i++) {
            int32_t q = base_int(g[i], scale, qmax), a = q < 0 ? -q : q;
            M = a > M ? a : M;
        }
        int p = 0;
        while (M != 0 && (M >> (p + 1)) != 0)
            p++;
        const int s = p - keep_bits + 1 > 0 ? p - keep_bits + 1 : 0;
        const int32_t half = s > 0 ? (int32_t)1 << (s - 1) : 0;
        /* pass 2: each magnitude rounded at bit s, saturated, signed */
        for (int64_t i = 0; i < len; i++) {
            int32_t q = base_int(g[i], scale, qmax), a = q < 0 ? -q : q;
            int32_t k = (a + half) >> s;
            k = k > top ? top : k;
            g[i] = (float)(q < 0 ? -(k << s) : (k << s)) * scale;
        }
    }
    return 0;
}

int xf_razor_row(float *x, int64_t n, int64_t group, int base_bits, int keep_bits,
                 int64_t razor_group, float clip)
{
    if (n <= 0)
        return 0;
    if (group <= 0 || group > n)
        group = n;
    int rc = 0;
    for (int64_t g0 = 0; g0 + group <= n; g0 += group)
        if (xf_razor_group_quant(x + g0, group, base_bits, keep_bits, razor_group, clip) != 0)
            rc = -1;
    return rc;
}
