#include "cli/scheme_args.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

enum {
    OPT_ACT_BITS = XF_SCHEME_OPT_BASE, OPT_ACT_SYM, OPT_ACT_ASYM, OPT_ACT_GROUP, OPT_ACT_CLIP,
    OPT_ACT_INPUTS, OPT_KV_BITS, OPT_KV_GROUP, OPT_KV_CLIP, OPT_PROB_BITS, OPT_PROB_QUANT,
    OPT_PROB_BASE, OPT_TENSOR_BITS, OPT_SMOOTH, OPT_SMOOTH_INPUTS, OPT_ROTATE, OPT_ROT_NO_ONLINE,
    OPT_ROT_NO_HEADWISE, OPT_KLT_HADAMARD, OPT_ROT_STEPS, OPT_ROT_LR, OPT_WEIGHT_GRID
};

const struct option xf_scheme_options[] = {
    {"act-bits", required_argument, NULL, OPT_ACT_BITS},
    {"act-sym", no_argument, NULL, OPT_ACT_SYM},
    {"act-asym", no_argument, NULL, OPT_ACT_ASYM},
    {"act-group", required_argument, NULL, OPT_ACT_GROUP},
    {"act-clip", required_argument, NULL, OPT_ACT_CLIP},
    {"act-inputs", required_argument, NULL, OPT_ACT_INPUTS},
    {"kv-bits", required_argument, NULL, OPT_KV_BITS},
    {"kv-group", required_argument, NULL, OPT_KV_GROUP},
    {"kv-clip", required_argument, NULL, OPT_KV_CLIP},
    {"attn-prob-bits", required_argument, NULL, OPT_PROB_BITS},
    {"attn-prob-quant", required_argument, NULL, OPT_PROB_QUANT},
    {"attn-prob-base", required_argument, NULL, OPT_PROB_BASE},
    {"tensor-bits", required_argument, NULL, OPT_TENSOR_BITS},
    {"weight-grid", required_argument, NULL, OPT_WEIGHT_GRID},
    {"smooth", required_argument, NULL, OPT_SMOOTH},
    {"smooth-inputs", required_argument, NULL, OPT_SMOOTH_INPUTS},
    {"rotate", required_argument, NULL, OPT_ROTATE},
    {"rotate-no-online", no_argument, NULL, OPT_ROT_NO_ONLINE},
    {"rotate-no-headwise", no_argument, NULL, OPT_ROT_NO_HEADWISE},
    {"klt-hadamard", no_argument, NULL, OPT_KLT_HADAMARD},
    {"rotate-steps", required_argument, NULL, OPT_ROT_STEPS},
    {"rotate-lr", required_argument, NULL, OPT_ROT_LR},
    {0, 0, 0, 0}};
_Static_assert(sizeof xf_scheme_options / sizeof xf_scheme_options[0] <= XF_SCHEME_MAX_OPTIONS + 1,
               "raise XF_SCHEME_MAX_OPTIONS: the rtn/gptq parsers size their tables with it");

const char xf_scheme_help[] =
    "\nactivation, KV-cache and attention-probability simulation (recorded in the\n"
    "recipe; `xfquant ppl OUT.xfq` applies it with no extra flags):\n"
    "  --act-bits N         quantize the input of every decoder linear per token\n"
    "                       to N bits (2..16; default off). The LM head stays fp.\n"
    "  --act-sym, --act-asym  symmetric (default, as QuaRot) or asymmetric\n"
    "  --act-group G        channels per group along a token (default 0: whole row)\n"
    "  --act-clip X|search  clip ratio in (0, 1] (default 1; QuaRot uses 0.9), or\n"
    "                       search one ratio per input kind on calibration text\n"
    "                       minimising the linears' output error (needs --calib)\n"
    "  --act-inputs LIST    which inputs: comma list of qkv,o,mlp,down (default all)\n"
    "  --kv-bits N          quantize K (after RoPE) and V per token, asymmetric\n"
    "  --kv-group G         channels per group inside a head (default: head_dim)\n"
    "  --kv-clip X          KV clip ratio in (0, 1] (default 1; QuaRot 0.95)\n"
    "  --attn-prob-bits N   quantize post-softmax attention probabilities (2..8)\n"
    "  --attn-prob-quant Q  uniform (default) or log2 (power-of-two levels)\n"
    "  --attn-prob-base L|search  log2 quantizer base as log2(base) (default 1:\n"
    "                       base 2), or search it on calibration text (logit KL)\n"
    "per-tensor precision:\n"
    "  --tensor-bits REGEX=BITS  bits (2, 3, 4, 8) for tensors whose name matches\n"
    "                       REGEX (PCRE, searched anywhere in the name); repeatable,\n"
    "                       first match wins, e.g. --tensor-bits 'down_proj=8'\n"
    "  --weight-grid G      uniform (default) or log2 (rtn only): per row/group\n"
    "                       levels +-scale*2^-k and 0, scale searched (L2..L8 storage)\n"
    "smoothing and rotations (exact rewrites of the fp model before quantizing):\n"
    "  --smooth A           SmoothQuant migration strength alpha in (0, 1] of the\n"
    "                       per-channel activation maxima into the weights (needs --calib)\n"
    "  --smooth-inputs LIST which inputs (qkv,o,mlp,down; default: all that are exact)\n"
    "  --rotate KIND        none (default), hadamard (QuaRot: randomized Hadamard R1\n"
    "                       from --seed), klt (eigenbasis of the calibration\n"
    "                       covariance, needs --calib) or learned (Cayley SGD from the\n"
    "                       randomized Hadamard, needs --calib); norms are folded first\n"
    "  --rotate-no-online   no online Hadamard before down_proj\n"
    "  --rotate-no-headwise no head-wise Hadamard on v/o\n"
    "  --klt-hadamard       klt: follow the eigenbasis by the randomized Hadamard\n"
    "  --rotate-steps N     learned: optimizer steps (default 100)\n"
    "  --rotate-lr X        learned: learning rate (default 1.5)\n";

static int bits_arg(const char *cmd, const char *flag, const char *arg, int lo, int hi, int *out,
                    int *rc)
{
    int64_t v;
    if (!xf_parse_int(arg, lo, hi, &v)) {
        *rc = xf_usage_error(cmd, "%s must be an integer in %d..%d, not '%s'", flag, lo, hi, arg);
        return 1;
    }
    *out = (int)v;
    *rc = 0;
    return 1;
}

static int clip_arg(const char *cmd, const char *flag, const char *arg, double *out, int *rc)
{
    double d;
    if (!xf_parse_double(arg, &d) || !(d > 0.0 && d <= 1.0)) {
        *rc = xf_usage_error(cmd, "%s must be a number in (0, 1], not '%s'", flag, arg);
        return 1;
    }
    *out = d;
    *rc = 0;
    return 1;
}

static int group_arg(const char *cmd, const char *flag, const char *arg, int64_t *out, int *rc)
{
    if (!xf_parse_int(arg, 0, INT32_MAX, out))
        *rc = xf_usage_error(cmd, "%s must be a non-negative integer, not '%s'", flag, arg);
    else
        *rc = 0;
    return 1;
}

static int inputs_arg(const char *cmd, const char *flag, const char *arg, unsigned *mask, int *rc)
{
    char buf[128];
    if (strlen(arg) >= sizeof buf) {
        *rc = xf_usage_error(cmd, "%s: list too long", flag);
        return 1;
    }
    strcpy(buf, arg);
    unsigned m = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        xf_lin_input in;
        if (xf_lin_input_from_name(tok, &in) != 0) {
            *rc = xf_usage_error(cmd, "%s: '%s' is not one of qkv, o, mlp, down", flag, tok);
            return 1;
        }
        m |= 1u << in;
    }
    if (m == 0) {
        *rc = xf_usage_error(cmd, "%s: empty list", flag);
        return 1;
    }
    *mask = m;
    *rc = 0;
    return 1;
}

int xf_scheme_option(int c, const char *arg, xf_quant_options *o, const char *cmd, int *rc)
{
    xf_act_scheme *s = &o->act;
    *rc = 0;
    switch (c) {
    case OPT_ACT_BITS: return bits_arg(cmd, "--act-bits", arg, 2, 16, &s->act_bits, rc);
    case OPT_ACT_SYM: s->act_sym = true; return 1;
    case OPT_ACT_ASYM: s->act_sym = false; return 1;
    case OPT_ACT_GROUP: return group_arg(cmd, "--act-group", arg, &s->act_group, rc);
    case OPT_ACT_CLIP:
        if (!strcmp(arg, "search")) {
            o->act_clip_search = true;
            return 1;
        }
        o->act_clip_search = false;
        return clip_arg(cmd, "--act-clip", arg, &s->act_clip, rc);
    case OPT_ACT_INPUTS: return inputs_arg(cmd, "--act-inputs", arg, &s->act_inputs, rc);
    case OPT_KV_BITS: return bits_arg(cmd, "--kv-bits", arg, 2, 16, &s->kv_bits, rc);
    case OPT_KV_GROUP: return group_arg(cmd, "--kv-group", arg, &s->kv_group, rc);
    case OPT_KV_CLIP: return clip_arg(cmd, "--kv-clip", arg, &s->kv_clip, rc);
    case OPT_PROB_BITS: return bits_arg(cmd, "--attn-prob-bits", arg, 2, 8, &s->attn_prob_bits, rc);
    case OPT_PROB_QUANT:
        if (xf_prob_quant_from_name(arg, &s->attn_prob_quant) != 0)
            *rc = xf_usage_error(cmd, "--attn-prob-quant must be uniform or log2, not '%s'", arg);
        return 1;
    case OPT_PROB_BASE: {
        double d;
        if (!strcmp(arg, "search")) {
            o->attn_prob_base_search = true;
            return 1;
        }
        o->attn_prob_base_search = false;
        if (!xf_parse_double(arg, &d) || !(d >= 1.0 / 16.0 && d <= 4.0)) {
            *rc = xf_usage_error(cmd, "--attn-prob-base must be search or a number in "
                                      "[0.0625, 4], not '%s'", arg);
            return 1;
        }
        s->attn_prob_log2_base = d;
        return 1;
    }
    case OPT_SMOOTH: {
        double d;
        if (!xf_parse_double(arg, &d) || !(d > 0.0 && d <= 1.0))
            *rc = xf_usage_error(cmd, "--smooth must be a number in (0, 1], not '%s'", arg);
        else
            o->smooth = d;
        return 1;
    }
    case OPT_SMOOTH_INPUTS: return inputs_arg(cmd, "--smooth-inputs", arg, &o->smooth_inputs, rc);
    case OPT_ROTATE:
        if (xf_rotate_kind_from_name(arg, &o->rotate) != 0)
            *rc = xf_usage_error(cmd, "--rotate must be none, hadamard, klt or learned, not '%s'",
                                 arg);
        return 1;
    case OPT_ROT_NO_ONLINE: o->rotate_no_online = true; return 1;
    case OPT_ROT_NO_HEADWISE: o->rotate_no_headwise = true; return 1;
    case OPT_KLT_HADAMARD: o->klt_hadamard = true; return 1;
    case OPT_ROT_STEPS: {
        int64_t v;
        if (!xf_parse_int(arg, 0, 1000000, &v))
            *rc = xf_usage_error(cmd, "--rotate-steps must be an integer in 0..1000000, not '%s'",
                                 arg);
        else
            o->rotate_steps = v;
        return 1;
    }
    case OPT_ROT_LR: {
        double d;
        if (!xf_parse_double(arg, &d) || !(d > 0.0 && d < 1e6))
            *rc = xf_usage_error(cmd, "--rotate-lr must be a positive number, not '%s'", arg);
        else
            o->rotate_lr = d;
        return 1;
    }
    case OPT_WEIGHT_GRID:
        if (!strcmp(arg, "uniform"))
            o->weight_grid_log2 = false;
        else if (!strcmp(arg, "log2") && o->method == XF_METHOD_RTN)
            o->weight_grid_log2 = true;
        else if (!strcmp(arg, "log2"))
            *rc = xf_usage_error(cmd, "--weight-grid log2 applies to rtn only");
        else
            *rc = xf_usage_error(cmd, "--weight-grid must be uniform or log2, not '%s'", arg);
        return 1;
    case OPT_TENSOR_BITS: {
        char pat[1024];
        int bits;
        xf_error e = {0};
        if (o->n_tensor_bits >= XF_TENSOR_BITS_MAX_RULES)
            *rc = xf_usage_error(cmd, "at most %d --tensor-bits rules", XF_TENSOR_BITS_MAX_RULES);
        else if (xf_tensor_bits_rule_split(arg, pat, sizeof pat, &bits, &e) != 0)
            *rc = xf_usage_error(cmd, "%s", e.msg);
        else
            o->tensor_bits[o->n_tensor_bits++] = arg;
        return 1;
    }
    default: return 0;
    }
}
