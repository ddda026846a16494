#include "model/ops.h"

#include "core/gemm_tiled.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* The elementwise kernels here are memory-bound and tiny next to the
 * GEMMs, so they run on the calling thread: every OpenMP region between
 * two BLAS calls costs far more than it saves, because OpenBLAS's (pthread)
 * workers and libgomp's workers each busy-wait for a while after their
 * work, and on a machine with few cores the two pools then fight over
 * them (measured: 2 threads 7x slower than 1 on a loaded 2-core box). */

const char *xf_op_role_name(int role)
{
    static const char *const names[XF_LIN_COUNT] = {"q", "k", "v", "o", "gate", "up", "down"};
    return (role >= 0 && role < XF_LIN_COUNT) ? names[role] : "?";
}

void xf_op_rmsnorm(const float *x, float *out, int64_t T, int64_t n, const float *w, double eps)
{
    for (int64_t t = 0; t < T; t++) {
        const float *xr = x + t * n;
        float *o = out + t * n;
        double ss = 0.0;
        for (int64_t i = 0; i < n; i++)
            ss += (double)xr[i] * xr[i];
        /* HF: hs * rsqrt(variance + eps), then weight * hs, in fp32 */
        float inv = (float)(1.0 / sqrt(ss / (double)n + eps));
        for (int64_t i = 0; i < n; i++)
            o[i] = w[i] * (xr[i] * inv);
    }
}

void xf_op_layernorm(const float *x, float *out, int64_t T, int64_t n, const float *w,
                     const float *b, double eps)
{
    for (int64_t t = 0; t < T; t++) {
        const float *xr = x + t * n;
        float *o = out + t * n;
        double s = 0.0;
        for (int64_t i = 0; i < n; i++)
            s += xr[i];
        double mean = s / (double)n;
        double v = 0.0;
        for (int64_t i = 0; i < n; i++) {
            double d = xr[i] - mean;
            v += d * d;
        }
        float rstd = (float)(1.0 / sqrt(v / (double)n + eps));
        float m = (float)mean;
        for (int64_t i = 0; i < n; i++) {
            float y = (xr[i] - m) * rstd * w[i];
            o[i] = b ? y + b[i] : y;
        }
    }
}

void xf_op_linear(const float *x, int64_t T, int64_t in, const float *W, const float *b,
                  int64_t out, float *y)
{
    /* tiles fixed by the shape: the same bits for any thread count */
    xf_sgemm_tiled(CblasNoTrans, CblasTrans, T, out, in, 1.0f, x, in, W, in, 0.0f, y, out);
    if (!b)
        return;
    for (int64_t t = 0; t < T; t++) {
        float *yr = y + t * out;
        for (int64_t o = 0; o < out; o++)
            yr[o] += b[o];
    }
}

static inline float act_one(xf_activation act, float x)
{
    switch (act) {
    case XF_ACT_SILU: return x / (1.0f + expf(-x));
    case XF_ACT_RELU: return x > 0.0f ? x : 0.0f;
    case XF_ACT_GELU_TANH: {
        /* GPT-2 gelu_new: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
        const float c = 0.7978845608028654f;
        return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
    }
    case XF_ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
    }
    return x;
}

/* SiLU gets its own loop (no switch inside): it vectorizes. */
void xf_op_act(xf_activation act, float *a, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        a[i] = act_one(act, a[i]);
}

void xf_op_act_gated(xf_activation act, float *a, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        a[i] = act_one(act, a[i]) * up[i];
}

void xf_op_add(float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        a[i] += b[i];
}
