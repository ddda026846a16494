/* The linear-input kinds and their readers (linear_inputs.h). */
#include "model/linear_inputs.h"

#include <string.h>

#include "model/forward.h"

static const char *const input_names[XF_IN_COUNT] = {"qkv", "o", "mlp", "down"};

const char *xf_lin_input_name(xf_lin_input in)
{
    return (int)in >= 0 && in < XF_IN_COUNT ? input_names[in] : NULL;
}

int xf_lin_input_from_name(const char *name, xf_lin_input *out)
{
    for (int i = 0; i < XF_IN_COUNT; i++)
        if (name && strcmp(name, input_names[i]) == 0) {
            *out = (xf_lin_input)i;
            return 0;
        }
    return -1;
}

/* Which input each role reads, the same in every family. */
static const int input_of_role[XF_LIN_COUNT] = {
    [XF_LIN_Q] = XF_IN_QKV,  [XF_LIN_K] = XF_IN_QKV, [XF_LIN_V] = XF_IN_QKV,
    [XF_LIN_O] = XF_IN_O,    [XF_LIN_GATE] = XF_IN_MLP, [XF_LIN_UP] = XF_IN_MLP,
    [XF_LIN_DOWN] = XF_IN_DOWN,
};

xf_lin_input xf_lin_input_of_role(xf_linear_role role)
{
    return (int)role >= 0 && role < XF_LIN_COUNT ? (xf_lin_input)input_of_role[role]
                                                  : XF_IN_COUNT;
}

int xf_lin_input_readers(const xf_model_config *cfg, xf_lin_input in,
                         xf_linear_role r[XF_IN_MAX_READERS])
{
    /* the roles this family has, in role order, which is the
     * true-sequential order (q, k, v; gate, up) */
    int n = 0;
    for (int role = 0; role < XF_LIN_COUNT; role++) {
        int64_t out, width;
        if (input_of_role[role] == (int)in &&
            xf_forward_role_shape(cfg, (xf_linear_role)role, &out, &width))
            r[n++] = (xf_linear_role)role;
    }
    return n;
}

xf_linear_role xf_lin_input_hook_role(const xf_model_config *cfg, xf_lin_input in)
{
    xf_linear_role r[XF_IN_MAX_READERS];
    xf_lin_input_readers(cfg, in, r);
    return r[0];
}

int64_t xf_lin_input_width(const xf_model_config *cfg, xf_lin_input in)
{
    int64_t out, width;
    return xf_forward_role_shape(cfg, xf_lin_input_hook_role(cfg, in), &out, &width) ? width : 0;
}
