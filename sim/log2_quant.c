/* log2 and uniform quantizers of probabilities; log2 weight rows. Formulas
 * in log2_quant.h. */
#include "sim/log2_quant.h"

#include <math.h>
#include <stddef.h>

#include "core/half.h"
#include "formats/xfq_pack.h"

const double xf_log2_base_default[XF_LOG2_BASE_DEFAULT_COUNT] = {0.25, 0.5,  0.75, 1.0,
                                                                 1.25, 1.5, 2.0,  3.0};

/* 2^e in fp32: exact (ldexp) when e is an integer, else exp2 in double. */
static float pow2f(double e)
{
    if (e == floor(e) && e > -1100.0)
        return (float)ldexp(1.0, (int)e);
    return (float)exp2(e);
}

float xf_log2_quant_value(float p, int bits, double log2_base)
{
    if (isnan(p))
        return p;
    if (!(p > 0.0f))
        return 0.0f;
    const double kmax = (double)((1 << bits) - 1);
    double k = rint(-log2((double)p) / log2_base);
    if (k < 0.0)
        k = 0.0;
    if (k > kmax)
        return 0.0f;
    return pow2f(-k * log2_base);
}

void xf_prob_quant_log2(float *p, int64_t n, int bits, double log2_base)
{
    for (int64_t i = 0; i < n; i++)
        p[i] = xf_log2_quant_value(p[i], bits, log2_base);
}

static float uniform_value(float p, float maxq)
{
    float q = rintf(p * maxq);
    q = q < 0.0f ? 0.0f : q > maxq ? maxq : q;
    return q / maxq;
}

void xf_prob_quant_uniform(float *p, int64_t n, int bits)
{
    const float maxq = (float)((1 << bits) - 1);
    for (int64_t i = 0; i < n; i++)
        if (!isnan(p[i]))
            p[i] = uniform_value(p[i], maxq);
}

double xf_log2_quant_sse(const float *p, int64_t n, int bits, double log2_base)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)p[i] - (double)xf_log2_quant_value(p[i], bits, log2_base);
        s += d * d;
    }
    return s;
}

double xf_uniform_quant_sse(const float *p, int64_t n, int bits)
{
    const float maxq = (float)((1 << bits) - 1);
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)p[i] - (double)uniform_value(p[i], maxq);
        s += d * d;
    }
    return s;
}

int xf_log2_base_search(const float *p, int64_t n, int bits, const double *cands, int n_cands,
                        double *best_log2_base, double *best_sse, xf_error *err)
{
    if (!cands) {
        cands = xf_log2_base_default;
        n_cands = XF_LOG2_BASE_DEFAULT_COUNT;
    }
    if (n < 1 || n_cands < 1)
        return xf_fail(err, "log2 base search: %lld samples, %d candidates (need >= 1 each)",
                       (long long)n, n_cands);
    if (bits < 1 || bits > 8)
        return xf_fail(err, "log2 base search: bits %d outside 1..8", bits);
    for (int c = 0; c < n_cands; c++)
        if (!(cands[c] > 0.0 && cands[c] <= 64.0))
            return xf_fail(err, "log2 base search: candidate log2(base) %g outside (0, 64]",
                           cands[c]);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(p[i]))
            return xf_fail(err, "log2 base search: sample value %lld is not finite",
                           (long long)i);
    int best = 0;
    double best_e = INFINITY;
    for (int c = 0; c < n_cands; c++) {
        double e = xf_log2_quant_sse(p, n, bits, cands[c]);
        if (e < best_e) {
            best_e = e;
            best = c;
        }
    }
    *best_log2_base = cands[best];
    if (best_sse)
        *best_sse = best_e;
    return 0;
}

/* The code of w on the storable log2 grid at `scale` (docs/xfq-format.md,
 * "Log2-grid weights"): k = rint(-log2(|w| / scale)) clamped below at 0;
 * k > kmax (positive) or k >= kmax (negative: that level's code is the
 * zero code) underflows to the zero code 2^bits - 1. */
static uint8_t log2_weight_code(float w, float scale, int bits)
{
    const int kmax = (1 << (bits - 1)) - 1, zero = (1 << bits) - 1;
    float a = fabsf(w);
    if (!(a > 0.0f))
        return (uint8_t)zero;
    double k = rint(-log2((double)a / (double)scale));
    if (k < 0.0)
        k = 0.0;
    if (w < 0.0f)
        return k >= kmax ? (uint8_t)zero : (uint8_t)((1 << (bits - 1)) | (int)k);
    return k > kmax ? (uint8_t)zero : (uint8_t)k;
}

#define XF_LOG2_SCALE_STEPS 32

/* s rounded toward zero to an fp16 value (so the searched candidate never
 * exceeds max|w| and is stored exactly), at least the smallest positive
 * fp16 subnormal (stored scales must be > 0). */
static float fp16_floor(float s)
{
    uint16_t h = xf_f32_to_f16(s);
    if (h != 0 && xf_f16_to_f32(h) > s)
        h--; /* positive fp16 bit patterns are ordered like their values */
    if (h == 0)
        h = 1;
    return xf_f16_to_f32(h);
}

float xf_log2_weight_row_codes(const float *w, int64_t n, int bits, uint8_t *codes, float *out)
{
    float m = 0.0f;
    for (int64_t i = 0; i < n; i++)
        m = fabsf(w[i]) > m ? fabsf(w[i]) : m;
    if (!(m > 0.0f) || !isfinite(m)) {
        for (int64_t i = 0; i < n; i++) {
            out[i] = w[i];
            if (codes)
                codes[i] = (uint8_t)((1 << bits) - 1);
        }
        return 0.0f;
    }
    float best_s = fp16_floor(m);
    double best_e = INFINITY;
    for (int t = 0; t < XF_LOG2_SCALE_STEPS; t++) {
        float s = fp16_floor((float)((double)m * exp2(-(double)t / XF_LOG2_SCALE_STEPS)));
        double e = 0.0;
        for (int64_t i = 0; i < n; i++) {
            double d = (double)w[i] -
                       (double)xfq_log2_code_value(log2_weight_code(w[i], s, bits), bits, s);
            e += d * d;
        }
        if (e < best_e) {
            best_e = e;
            best_s = s;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        uint8_t c = log2_weight_code(w[i], best_s, bits);
        if (codes)
            codes[i] = c;
        out[i] = xfq_log2_code_value(c, bits, best_s);
    }
    return best_s;
}

float xf_log2_weight_row(const float *w, int64_t n, int bits, float *out)
{
    return xf_log2_weight_row_codes(w, n, bits, NULL, out);
}
