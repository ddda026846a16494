/* Kernels of the backward pass (internal to model/, model/backward.h):
 * the pull-backs of RoPE and of causal GQA attention. fp32, row-major,
 * the layouts of model/ops.h. */
#ifndef XF_MODEL_BACKWARD_OPS_H
#define XF_MODEL_BACKWARD_OPS_H

#include <stdint.h>

/* dx [T, n_heads * head_dim] in place: the transpose of xf_op_rope_apply
 * (each pair rotated back by its angle). */
void xf_op_rope_backward(float *dx, int64_t T, int64_t n_heads, int64_t head_dim,
                         const float *cos_t, const float *sin_t);

/* The backward pass of xf_op_attention for one window: q [T, q_dim] (after
 * RoPE), k, v [T, kv_dim], p [n_heads, T, T] the softmax output, pv
 * [n_heads, T, T] the probabilities P V read (p itself when no hook
 * changed them), dout [T, q_dim] = dL/d(output). Writes dq [T, q_dim] and
 * dk, dv [T, kv_dim] (overwritten); dP [T, T] is scratch. The quantizer
 * between softmax and P V (if any) passes its gradient straight through. */
void xf_op_attention_backward(const float *q, const float *k, const float *v, const float *p,
                              const float *pv, const float *dout, int64_t T, int64_t n_heads,
                              int64_t n_kv_heads, int64_t head_dim, float *dq, float *dk,
                              float *dv, float *dP);

#endif
