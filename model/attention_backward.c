/* The pull-backs of RoPE and causal GQA attention (model/backward_ops.h).
 * Per query head h (kv head g = h / group), with O = P V and
 * P = softmax(scale Q K^T) over keys 0..i of row i:
 *   dV_g += P^T dO_h,  dP = dO_h V_g^T,
 *   dS_ij = scale P_ij (dP_ij - sum_k P_ik dP_ik)   (j <= i, else 0),
 *   dQ_h = dS K_g,     dK_g += dS^T Q_h.
 * The row sums are fp64. */
#include "model/backward_ops.h"

#include "core/threads.h"
#include <cblas.h>
#include <math.h>
#include <string.h>

void xf_op_rope_backward(float *dx, int64_t T, int64_t n_heads, int64_t head_dim,
                         const float *cos_t, const float *sin_t)
{
    const int64_t half = head_dim / 2, dim = n_heads * head_dim;
    for (int64_t t = 0; t < T; t++) {
        const float *c = cos_t + t * half, *s = sin_t + t * half;
        for (int64_t h = 0; h < n_heads; h++) {
            float *d = dx + t * dim + h * head_dim;
            for (int64_t i = 0; i < half; i++) {
                const float d0 = d[i], d1 = d[i + half];
                d[i] = d0 * c[i] + d1 * s[i];
                d[i + half] = d1 * c[i] - d0 * s[i];
            }
        }
    }
}

void xf_op_attention_backward(const float *q, const float *k, const float *v, const float *p,
                              const float *pv, const float *dout, int64_t T, int64_t n_heads,
                              int64_t n_kv_heads, int64_t head_dim, float *dq, float *dk,
                              float *dv, float *dP)
{
    const int64_t qd = n_heads * head_dim, kvd = n_kv_heads * head_dim;
    const int64_t group = n_heads / n_kv_heads;
    const int t = (int)T, d = (int)head_dim;
    const float scale = (float)(1.0 / sqrt((double)head_dim));
    memset(dk, 0, (size_t)(T * kvd) * sizeof *dk);
    memset(dv, 0, (size_t)(T * kvd) * sizeof *dv);
    /* one BLAS thread: OpenBLAS's threading would make the sums depend on
     * the thread count (core/gemm_tiled.h) */
    xf_threads_saved saved;
    xf_threads_push_blas(1, &saved);
    for (int64_t h = 0; h < n_heads; h++) {
        const int64_t g = h / group;
        const float *P = p + (size_t)h * (size_t)(T * T);
        const float *PV = pv + (size_t)h * (size_t)(T * T);
        const float *dO = dout + h * head_dim;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, t, d, t, 1.0f, PV, t, dO, (int)qd,
                    1.0f, dv + g * head_dim, (int)kvd);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t, t, d, 1.0f, dO, (int)qd,
                    v + g * head_dim, (int)kvd, 0.0f, dP, t);
        for (int64_t i = 0; i < T; i++) {
            const float *pr = P + i * T;
            float *dr = dP + i * T;
            double dot = 0.0;
            for (int64_t j = 0; j <= i; j++)
                dot += (double)pr[j] * dr[j];
            const float fdot = (float)dot;
            for (int64_t j = 0; j <= i; j++)
                dr[j] = scale * pr[j] * (dr[j] - fdot);
            for (int64_t j = i + 1; j < T; j++)
                dr[j] = 0.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, t, d, t, 1.0f, dP, t,
                    k + g * head_dim, (int)kvd, 0.0f, dq + h * head_dim, (int)qd);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, t, d, t, 1.0f, dP, t,
                    q + h * head_dim, (int)qd, 1.0f, dk + g * head_dim, (int)kvd);
    }
    xf_threads_pop(&saved);
}
