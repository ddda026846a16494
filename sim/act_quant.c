/* Integer fake quantization of activation rows (formulas in act_quant.h). */
#include "sim/act_quant.h"

#include <math.h>
#include <string.h>

const char *xf_prob_quant_name(xf_prob_quant q)
{
    return q == XF_PROB_UNIFORM ? "uniform" : q == XF_PROB_LOG2 ? "log2" : NULL;
}

int xf_prob_quant_from_name(const char *name, xf_prob_quant *out)
{
    if (name && strcmp(name, "uniform") == 0)
        *out = XF_PROB_UNIFORM;
    else if (name && strcmp(name, "log2") == 0)
        *out = XF_PROB_LOG2;
    else
        return -1;
    return 0;
}

int xf_act_quant_group_sym(float *x, int64_t n, int bits, float clip)
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
    const float qmax = (float)((1 << (bits - 1)) - 1), qmin = -qmax - 1.0f;
    const float scale = clip * m / qmax;
    if (!(scale > 0.0f)) /* clip * m underflowed: nothing representable */
        return 0;
    for (int64_t i = 0; i < n; i++) {
        float q = rintf(x[i] / scale);
        q = q < qmin ? qmin : q > qmax ? qmax : q;
        x[i] = q * scale;
    }
    return 0;
}

int xf_act_quant_group_asym(float *x, int64_t n, int bits, float clip)
{
    float lo = 0.0f, hi = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i]))
            return -1;
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    if (lo == 0.0f && hi == 0.0f)
        return 0;
    lo *= clip;
    hi *= clip;
    const float qmax = (float)((1 << bits) - 1);
    const float scale = (hi - lo) / qmax;
    if (!(scale > 0.0f))
        return 0;
    const float zero = rintf(-lo / scale);
    for (int64_t i = 0; i < n; i++) {
        float q = rintf(x[i] / scale) + zero;
        q = q < 0.0f ? 0.0f : q > qmax ? qmax : q;
        x[i] = (q - zero) * scale;
    }
    return 0;
}

int xf_act_quant_row(float *x, int64_t n, int64_t group, int bits, bool sym, float clip)
{
    if (bits == 0 || n <= 0)
        return 0;
    if (group <= 0 || group > n)
        group = n;
    int rc = 0;
    for (int64_t g0 = 0; g0 + group <= n; g0 += group) {
        int r = sym ? xf_act_quant_group_sym(x + g0, group, bits, clip)
                    : xf_act_quant_group_asym(x + g0, group, bits, clip);
        if (r != 0)
            rc = -1;
    }
    return rc;
}
