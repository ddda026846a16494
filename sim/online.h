/* Online transforms: the parts of a rotation that cannot be fused into the
 * weights and must run in the forward pass, recorded in the .xfq recipe's
 * "online_transforms" array and applied by every consumer of the file
 * (evaluator, GPTQ calibration) through the forward hooks
 * (sim/act_hooks.h applies them before any activation quantization,
 * because the quantizer must see the rotated values).
 *
 * Supported entries (anything else is refused, naming the kind: evaluating
 * a file without a transform it needs would give wrong numbers):
 *   {"kind": "hadamard", "input": "down", "n": I}
 *       x <- x * H_I on the input of down_proj / fc2 (plain normalized
 *       Hadamard of sim/hadamard.h, no random signs), whose weight holds
 *       W * H_I, so the product is unchanged: x H (W H)^T = x W^T.
 *   {"kind": "hadamard", "input": "qk", "n": head_dim}
 *       SpinQuant's R3: every head of Q and of K multiplied by H_d after
 *       RoPE (before the KV quantizer, sim/act_hooks.h), nothing fused:
 *       (q H)(k H)^T = q k^T, so the scores are unchanged while the
 *       quantized K cache holds rotated heads. */
#ifndef XF_SIM_ONLINE_H
#define XF_SIM_ONLINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "model/config.h"
#include "sim/hadamard.h"

typedef struct xf_online_transforms {
    bool down;             /* Hadamard on the down_proj input */
    xf_hadamard down_had;  /* valid when down */
    bool qk;               /* head_dim Hadamard on Q and K after RoPE (R3) */
    xf_hadamard qk_had;    /* valid when qk */
} xf_online_transforms;

/* All off. */
void xf_online_init(xf_online_transforms *o);
/* Turns on the down_proj Hadamard of size cfg->intermediate. */
int xf_online_enable_down(xf_online_transforms *o, const xf_model_config *cfg, xf_error *err);
/* Turns on the Q/K Hadamard of size cfg->head_dim (R3). */
int xf_online_enable_qk(xf_online_transforms *o, const xf_model_config *cfg, xf_error *err);
void xf_online_free(xf_online_transforms *o);
bool xf_online_any(const xf_online_transforms *o);

/* Reads a recipe's "online_transforms" (NULL or [] = none). Strict: an
 * unknown kind or input, or a size that does not match cfg, fails with
 * one line naming `what`. */
int xf_online_from_json(xf_online_transforms *o, const json_t *arr, const xf_model_config *cfg,
                        const char *what, xf_error *err);
/* The recipe array. New reference. */
json_t *xf_online_to_json(const xf_online_transforms *o);

/* Applies the transforms that act on the input of `role` to x [rows, cols]
 * in place (no-op for other roles). */
int xf_online_apply(const xf_online_transforms *o, int layer, int role, float *x, int64_t rows,
                    int64_t cols, xf_error *err);

/* x [rows, n_heads * head_dim] -> each head times H_d (inverse: H_d^T),
 * when qk is on (no-op otherwise). */
int xf_online_apply_heads(const xf_online_transforms *o, int layer, float *x, int64_t rows,
                          int64_t n_heads, int64_t head_dim, bool inverse, xf_error *err);

#endif
