/* Forward-pass hooks that apply an xf_act_scheme (sim/act_quant.h):
 *   on_linear_input  fake-quantizes x per token (per channel group) for the
 *                    selected inputs (qkv, o, mlp, down; the LM head is
 *                    never hooked and stays fp32);
 *   on_kv            quantizes K (after RoPE) and V per token, per head,
 *                    per kv group, asymmetric;
 *   on_attn_probs    quantizes each head's post-softmax probabilities
 *                    (uniform or log2, sim/log2_quant.h).
 * Each then calls the same hook of an optional INNER xf_forward_hooks with
 * the quantized values (e.g. the GPTQ pipeline's input capture, which must
 * see what the quantized linears will read), and returns its result
 * (0, -1, or XF_HOOK_STOP) unchanged. Inputs that are not selected are
 * passed to the inner hook untouched.
 *
 * Only the members that have work to do are set in `hooks` (a scheme that
 * is all off and no inner hook gives an all-NULL hooks struct: the forward
 * pass runs exactly as unhooked). Errors name the layer and the input, e.g.
 * "layer 3 down input: act_group 64 does not divide 172 channels".
 *
 * Usage:
 *   xf_act_hooks ah;
 *   if (xf_act_hooks_init(&ah, &scheme, NULL, err) != 0) ...
 *   xf_runner_forward_hooked(&runner, tokens, T, &ah.hooks, logits, err);
 *   xf_act_hooks_free(&ah);
 * `hooks.user` points at the xf_act_hooks itself: do not move or copy it
 * after init. The object is read-only during the forward pass, so one may
 * serve several runners in parallel threads (if the inner hook allows). */
#ifndef XF_SIM_ACT_HOOKS_H
#define XF_SIM_ACT_HOOKS_H

#include <stdbool.h>

#include "core/error.h"
#include "model/forward.h"
#include "sim/act_quant.h"
#include "sim/online.h"

typedef struct xf_act_hooks {
    xf_forward_hooks hooks;  /* give &hooks to the forward pass */
    xf_act_scheme scheme;    /* copy, checked */
    const xf_online_transforms *online; /* borrowed, or NULL: applied to a
                                linear's input BEFORE its quantizer */
    xf_forward_hooks inner;  /* copy of the chained hooks; all NULL if none */
    bool ste_scale;          /* backward hooks (sim/act_hooks_grad.h): scale STE */
} xf_act_hooks;

/* Checks the scheme (errors name "activation scheme"); inner may be NULL. */
int xf_act_hooks_init(xf_act_hooks *h, const xf_act_scheme *s, const xf_forward_hooks *inner,
                      xf_error *err);
/* Same, with the online transforms of a rotated model (may be NULL; must
 * outlive h): the hooks are then installed even for an all-off scheme. */
int xf_act_hooks_init_online(xf_act_hooks *h, const xf_act_scheme *s,
                             const xf_online_transforms *online, const xf_forward_hooks *inner,
                             xf_error *err);
/* True when the hooks do anything (scheme on, online transforms, inner). */
bool xf_act_hooks_active(const xf_act_hooks *h);
void xf_act_hooks_free(xf_act_hooks *h);

#endif
