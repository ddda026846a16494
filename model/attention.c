/* RoPE and causal multi-head attention (GQA). The two products per head
 * (Q K^T and P V) are single-threaded cblas_sgemm calls, one per head and
 * block of XF_ATTN_BQ query rows, spread over OpenMP threads (run in turn
 * inside an enclosing parallel region): each call is the same whatever
 * the thread count, so the results are too (OpenBLAS's own threading
 * changes the sums, core/gemm_tiled.h); the masked softmax between them is
 * an OpenMP loop over the rows of all heads of a chunk when it is large
 * enough. RoPE is a cheap elementwise pass and runs on the
 * calling thread (see ops.c on why). */
#include "model/ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <string.h>

#include "core/threads.h"

void xf_op_rope_tables(double theta, int64_t head_dim, int64_t max_T, float *cos_t,
                       float *sin_t)
{
    int64_t half = head_dim / 2;
    for (int64_t i = 0; i < half; i++) {
        /* HF computes inv_freq = 1 / theta^(2i/d) and the angle p * inv_freq
         * in fp32; reproduce those two roundings so that the angles (up to
         * ~4e-4 rad apart from exact ones at p ~ 4096) are HF's, then take
         * cos/sin of that angle in double. */
        float expo = (float)(2 * i) / (float)head_dim;
        float pw = (float)pow(theta, (double)expo);
        float inv_freq = 1.0f / pw;
        for (int64_t p = 0; p < max_T; p++) {
            float angle = (float)p * inv_freq;
            cos_t[p * half + i] = (float)cos((double)angle);
            sin_t[p * half + i] = (float)sin((double)angle);
        }
    }
}

void xf_op_rope_apply(float *x, int64_t T, int64_t n_heads, int64_t head_dim,
                      const float *cos_t, const float *sin_t)
{
    int64_t half = head_dim / 2, dim = n_heads * head_dim;
    for (int64_t t = 0; t < T; t++) {
        const float *c = cos_t + t * half, *s = sin_t + t * half;
        for (int64_t h = 0; h < n_heads; h++) {
            float *xh = x + t * dim + h * head_dim;
            /* x * cos + rotate_half(x) * sin, rotate_half([a, b]) = [-b, a] */
            for (int64_t i = 0; i < half; i++) {
                float a = xh[i], b = xh[i + half];
                xh[i] = a * c[i] - b * s[i];
                xh[i + half] = b * c[i] + a * s[i];
            }
        }
    }
}

/* Query rows per score block: the products are done block by block so that
 * each block computes only keys 0..(end of block) - the causal triangle
 * plus half a block on the diagonal. */
#define XF_ATTN_BQ 64
/* Below this many softmax entries (a few ms on one core) the softmax runs
 * on the calling thread: waking the OpenMP pool next to OpenBLAS's
 * busy-waiting workers costs milliseconds (see ops.c), more than it saves. */
#define XF_ATTN_PAR_MIN_ENTRIES ((int64_t)1 << 21)

int64_t xf_op_attention_score_heads(int64_t n_heads, int64_t max_T, size_t budget_bytes)
{
    size_t per_head = (size_t)max_T * (size_t)max_T * sizeof(float);
    int64_t n = per_head ? (int64_t)(budget_bytes / per_head) : n_heads;
    if (n > n_heads)
        n = n_heads;
    return n < 1 ? 1 : n;
}

/* Rows i of block scores S (ld = T): softmax over keys 0..i, zeros on the
 * keys after i up to the block end (the P.V product reads them). */
static void softmax_row(float *row, int64_t i, int64_t n_cols)
{
    /* libm's expf and one running sum: a 1-ulp vectorized exp was tried and
     * moved the W4A4KV4 accuracy baselines of stories260K
     * (tests/regress/rotate.json) past their bands */
    float mx = row[0];
    for (int64_t j = 1; j <= i; j++)
        mx = row[j] > mx ? row[j] : mx;
    float sum = 0.0f;
    for (int64_t j = 0; j <= i; j++) {
        float e = expf(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    const float inv = 1.0f / sum;
    for (int64_t j = 0; j <= i; j++)
        row[j] *= inv;
    for (int64_t j = i + 1; j < n_cols; j++)
        row[j] = 0.0f;
}

/* Hands each head of the chunk to the probability hook as a clean causal
 * [T, T] matrix, then re-zeroes what P V reads above the diagonal (the
 * causal mask must hold whatever the hook wrote). Sequential, on the
 * calling thread: hooks may call BLAS or OpenMP themselves. */
static int probs_hook(float *scores, int64_t hc, int64_t h0, int64_t T, xf_op_probs_fn probs,
                      void *user, int layer, xf_error *err)
{
    for (int64_t c = 0; c < hc; c++) {
        float *P = scores + c * T * T;
        for (int64_t i = 0; i + 1 < T; i++)
            memset(P + i * T + i + 1, 0, (size_t)(T - i - 1) * sizeof *P);
        int rc = probs(user, layer, h0 + c, P, T, T, err);
        if (rc != 0)
            return rc;
        for (int64_t i = 0; i + 1 < T; i++) {
            int64_t blk_end = (i / XF_ATTN_BQ + 1) * XF_ATTN_BQ;
            if (blk_end > T)
                blk_end = T;
            if (blk_end > i + 1)
                memset(P + i * T + i + 1, 0, (size_t)(blk_end - i - 1) * sizeof *P);
        }
    }
    return 0;
}

void xf_op_attention(const float *q, const float *k, const float *v, float *out, int64_t T,
                     int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float *scores,
                     int64_t score_heads)
{
    (void)xf_op_attention_hooked(q, k, v, out, T, n_heads, n_kv_heads, head_dim, scores,
                                 score_heads, NULL, NULL, 0, NULL);
}

int xf_op_attention_hooked(const float *q, const float *k, const float *v, float *out, int64_t T,
                           int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float *scores,
                           int64_t score_heads, xf_op_probs_fn probs, void *user, int layer,
                           xf_error *err)
{
    return xf_op_attention_keep(q, k, v, out, T, n_heads, n_kv_heads, head_dim, scores,
                                score_heads, probs, user, layer, NULL, err);
}

/* Kept tokens (ops.h xf_op_kv_keep): the scores of query rows of chunk
 * head c against their kept keys, recomputed from the full-precision keys */
static void keep_scores(const xf_op_kv_keep *kk, float *S, const float *q, int64_t T, int64_t h,
                        int64_t kvh, int64_t q_dim, int64_t kv_dim, int64_t head_dim, float scale,
                        int layer)
{
    for (int64_t i = 0; i < T; i++) {
        const int64_t n = kk->keep(kk->user, layer, i, kk->idx);
        const float *qi = q + i * q_dim + h * head_dim;
        for (int64_t t = 0; t < n; t++) {
            const float *kj = kk->k_full + kk->idx[t] * kv_dim + kvh * head_dim;
            float d = 0.0f;
            for (int64_t e = 0; e < head_dim; e++)
                d += qi[e] * kj[e];
            S[i * T + kk->idx[t]] = scale * d;
        }
    }
}

/* out_i += sum over kept j of P[i, j] (v_full[j] - v[j]) */
static void keep_values(const xf_op_kv_keep *kk, const float *P, const float *v, float *out,
                        int64_t T, int64_t h, int64_t kvh, int64_t q_dim, int64_t kv_dim,
                        int64_t head_dim, int layer)
{
    for (int64_t i = 0; i < T; i++) {
        const int64_t n = kk->keep(kk->user, layer, i, kk->idx);
        float *oi = out + i * q_dim + h * head_dim;
        for (int64_t t = 0; t < n; t++) {
            const int64_t j = kk->idx[t];
            const float p = P[i * T + j];
            const float *vf = kk->v_full + j * kv_dim + kvh * head_dim;
            const float *vq = v + j * kv_dim + kvh * head_dim;
            for (int64_t e = 0; e < head_dim; e++)
                oi[e] += p * (vf[e] - vq[e]);
        }
    }
}

int xf_op_attention_keep(const float *q, const float *k, const float *v, float *out, int64_t T,
                         int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float *scores,
                         int64_t score_heads, xf_op_probs_fn probs, void *user, int layer,
                         const xf_op_kv_keep *keep, xf_error *err)
{
    const int64_t q_dim = n_heads * head_dim, kv_dim = n_kv_heads * head_dim;
    const int64_t group = n_heads / n_kv_heads;
    /* HF: (q k^T) * head_dim^-0.5, the scale a Python float applied in fp32 */
    const float scale = (float)(1.0 / sqrt((double)head_dim));

    const int64_t nb = (T + XF_ATTN_BQ - 1) / XF_ATTN_BQ; /* query blocks per head */
    const int nested = omp_in_parallel();
    for (int64_t h0 = 0; h0 < n_heads; h0 += score_heads) {
        const int64_t hc = n_heads - h0 < score_heads ? n_heads - h0 : score_heads;
        const int64_t jobs = hc * nb;
        xf_threads_saved saved;
        if (!nested)
            xf_threads_push_blas(1, &saved);
        /* 1. S_h = scale * Q_h K_kvh^T, block rows [i0, i1) against keys [0, i1) */
#pragma omp parallel for schedule(dynamic, 1) if (!nested && jobs > 1)
        for (int64_t j = 0; j < jobs; j++) {
            const int64_t c = j / nb, h = h0 + c, kvh = h / group;
            const int64_t i0 = j % nb * XF_ATTN_BQ;
            const int64_t i1 = i0 + XF_ATTN_BQ < T ? i0 + XF_ATTN_BQ : T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(i1 - i0), (int)i1,
                        (int)head_dim, scale, q + i0 * q_dim + h * head_dim, (int)q_dim,
                        k + kvh * head_dim, (int)kv_dim, 0.0f, scores + c * T * T + i0 * T,
                        (int)T);
        }
        if (!nested)
            xf_threads_pop(&saved);
        if (keep) /* kept tokens' scores, head by head (keep's index buffer is shared) */
            for (int64_t c = 0; c < hc; c++)
                keep_scores(keep, scores + c * T * T, q, T, h0 + c, (h0 + c) / group, q_dim,
                            kv_dim, head_dim, scale, layer);
        /* 2. causal stable softmax, rows of all heads of the chunk */
        const int64_t rows = hc * T;
        const bool par = hc * T * (T + 1) / 2 >= XF_ATTN_PAR_MIN_ENTRIES;
#pragma omp parallel for schedule(dynamic, 16) if (par)
        for (int64_t r = 0; r < rows; r++) {
            const int64_t c = r / T, i = r % T;
            int64_t blk_end = (i / XF_ATTN_BQ + 1) * XF_ATTN_BQ;
            softmax_row(scores + c * T * T + i * T, i, blk_end < T ? blk_end : T);
        }
        if (probs) {
            int rc = probs_hook(scores, hc, h0, T, probs, user, layer, err);
            if (rc != 0)
                return rc;
        }
        if (!nested)
            xf_threads_push_blas(1, &saved);
        /* 3. O_h = P_h V_kvh, same blocks */
#pragma omp parallel for schedule(dynamic, 1) if (!nested && jobs > 1)
        for (int64_t j = 0; j < jobs; j++) {
            const int64_t c = j / nb, h = h0 + c, kvh = h / group;
            const int64_t i0 = j % nb * XF_ATTN_BQ;
            const int64_t i1 = i0 + XF_ATTN_BQ < T ? i0 + XF_ATTN_BQ : T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(i1 - i0),
                        (int)head_dim, (int)i1, 1.0f, scores + c * T * T + i0 * T, (int)T,
                        v + kvh * head_dim, (int)kv_dim, 0.0f, out + i0 * q_dim + h * head_dim,
                        (int)q_dim);
        }
        if (!nested)
            xf_threads_pop(&saved);
        if (keep)
            for (int64_t c = 0; c < hc; c++)
                keep_values(keep, scores + c * T * T, v, out, T, h0 + c, (h0 + c) / group, q_dim,
                            kv_dim, head_dim, layer);
    }
    return 0;
}
