/* Kernels of the forward pass (internal to model/): norms, linears,
 * activations, RoPE and causal attention, all fp32 on row-major [T, n]
 * buffers. None of them fails: callers check shapes first. */
#ifndef XF_MODEL_OPS_H
#define XF_MODEL_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "model/config.h"
#include "model/weights.h"

/* "q", "k", ... (a local copy, so that model/forward needs no weights.c). */
const char *xf_op_role_name(int role);

/* out = x * rsqrt(mean(x^2) + eps) * w, row by row (HF LlamaRMSNorm). */
void xf_op_rmsnorm(const float *x, float *out, int64_t T, int64_t n, const float *w, double eps);
/* out = (x - mean) / sqrt(var + eps) * w + b, biased variance (torch LayerNorm). */
void xf_op_layernorm(const float *x, float *out, int64_t T, int64_t n, const float *w,
                     const float *b, double eps);

/* y [T, out] = x [T, in] W^T + b, W [out, in] row-major, b may be NULL.
 * One cblas_sgemm; never call from inside an OpenMP parallel region. */
void xf_op_linear(const float *x, int64_t T, int64_t in, const float *W, const float *b,
                  int64_t out, float *y);

/* a = act(a) elementwise, n values. */
void xf_op_act(xf_activation act, float *a, int64_t n);
/* a = act(a) * up elementwise (gated MLP). */
void xf_op_act_gated(xf_activation act, float *a, const float *up, int64_t n);

/* a += b, n values. */
void xf_op_add(float *a, const float *b, int64_t n);

/* HF rotate-half RoPE tables for positions 0..max_T-1: cos/sin
 * [max_T, head_dim/2]. */
void xf_op_rope_tables(double theta, int64_t head_dim, int64_t max_T, float *cos_t,
                       float *sin_t);
/* Rotates each head of x [T, n_heads * head_dim] at positions 0..T-1. */
void xf_op_rope_apply(float *x, int64_t T, int64_t n_heads, int64_t head_dim,
                      const float *cos_t, const float *sin_t);

/* Causal softmax(q k^T / sqrt(head_dim)) v per query head, GQA: query
 * head h reads kv head h / (n_heads / n_kv_heads).
 * q, out [T, n_heads * head_dim]; k, v [T, n_kv_heads * head_dim].
 * scores: score_heads * T * T floats; heads are processed score_heads at
 * a time. Calls BLAS: never from inside an OpenMP parallel region. */
void xf_op_attention(const float *q, const float *k, const float *v, float *out, int64_t T,
                     int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float *scores,
                     int64_t score_heads);
/* The post-softmax hook of xf_op_attention_hooked (same contract as
 * xf_forward_hooks.on_attn_probs): 0 to go on, XF_HOOK_STOP (1) or -1
 * (err filled) to end the attention early. */
typedef int (*xf_op_probs_fn)(void *user, int layer, int64_t head, float *p, int64_t T_q,
                              int64_t T_k, xf_error *err);
/* xf_op_attention, calling probs(user, layer, head, P_head, T, T, err) on
 * each head's causal [T, T] probabilities (zeros above the diagonal) after
 * the softmax; entries above the diagonal are zeroed again after the call.
 * probs NULL: exactly xf_op_attention, no extra pass. Returns 0, or the
 * hook's first non-zero return (out is then incomplete). */
int xf_op_attention_hooked(const float *q, const float *k, const float *v, float *out, int64_t T,
                           int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float *scores,
                           int64_t score_heads, xf_op_probs_fn probs, void *user, int layer,
                           xf_error *err);
/* Query-dependent full-precision K/V (xf_forward_hooks.kv_keep): query i
 * reads the tokens keep(user, layer, i, idx) lists at k_full / v_full
 * ([T, n_kv_heads * head_dim]) instead of k / v. idx: T int64 of scratch. */
typedef struct xf_op_kv_keep {
    const float *k_full, *v_full;
    int64_t (*keep)(void *user, int layer, int64_t i, int64_t *idx);
    void *user;
    int64_t *idx;
} xf_op_kv_keep;
/* xf_op_attention_hooked with kept tokens (keep NULL: exactly it). The
 * scores of kept (i, j) are recomputed from k_full (scale * dot product in
 * fp32, replacing the quantized key's score before the softmax), and
 * P[i, j] (v_full[j] - v[j]) is added to the output for each kept j after
 * P V: O(kept tokens x head_dim) per query and head on top of the plain
 * attention, so a selection of at most 3W tokens costs O(T W d), not
 * another T^2 d. */
int xf_op_attention_keep(const float *q, const float *k, const float *v, float *out, int64_t T,
                         int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float *scores,
                         int64_t score_heads, xf_op_probs_fn probs, void *user, int layer,
                         const xf_op_kv_keep *keep, xf_error *err);
/* How many heads' [max_T, max_T] score matrices fit budget_bytes (>= 1,
 * <= n_heads). */
int64_t xf_op_attention_score_heads(int64_t n_heads, int64_t max_T, size_t budget_bytes);

#endif
