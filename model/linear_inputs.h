/* The four distinct linear inputs of a decoder layer and the linears that
 * read them: the one table every layer uses (activation quantization,
 * statistics, smoothing, rotations, clip searches, true-sequential GPTQ).
 *
 * In the order the forward pass reaches them:
 *   XF_IN_QKV   the q/k/v input (GPT-2: the fused c_attn input)
 *   XF_IN_O     the attention output entering o_proj / out_proj
 *   XF_IN_MLP   the MLP input (llama family: gate and up; OPT fc1, GPT-2 c_fc)
 *   XF_IN_DOWN  the down_proj / fc2 / mlp.c_proj input
 * The forward hooks (model/forward.h on_linear_input) report each input
 * once, under the role of its first reader (xf_lin_input_hook_role). The
 * LM head's input is not one of them (it is never hooked). */
#ifndef XF_MODEL_LINEAR_INPUTS_H
#define XF_MODEL_LINEAR_INPUTS_H

#include <stdint.h>

#include "model/config.h"
#include "model/weights.h"

typedef enum xf_lin_input {
    XF_IN_QKV = 0,
    XF_IN_O,
    XF_IN_MLP,
    XF_IN_DOWN,
    XF_IN_COUNT
} xf_lin_input;

/* Every input, as a bit mask (bit 1u << xf_lin_input). */
#define XF_IN_ALL ((1u << XF_IN_COUNT) - 1u)

/* The most linears reading one input (q, k, v). */
#define XF_IN_MAX_READERS 3

/* "qkv", "o", "mlp", "down"; NULL out of range. */
const char *xf_lin_input_name(xf_lin_input in);
/* -1 for an unknown name. */
int xf_lin_input_from_name(const char *name, xf_lin_input *out);
/* The input a role reads (K and V read qkv, GATE and UP mlp); XF_IN_COUNT
 * for a value that is no linear role. */
xf_lin_input xf_lin_input_of_role(xf_linear_role role);

/* The linears of cfg's family that read `in`, in true-sequential order
 * (the order GPTQ quantizes them; r[0] is the role the hooks report the
 * input under); returns their count (1..XF_IN_MAX_READERS). */
int xf_lin_input_readers(const xf_model_config *cfg, xf_lin_input in,
                         xf_linear_role r[XF_IN_MAX_READERS]);
/* r[0] of xf_lin_input_readers. */
xf_linear_role xf_lin_input_hook_role(const xf_model_config *cfg, xf_lin_input in);
/* Channels of the input: hidden, n_heads * head_dim, hidden, intermediate. */
int64_t xf_lin_input_width(const xf_model_config *cfg, xf_lin_input in);

#endif
