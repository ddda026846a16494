/* Activation and KV-cache quantization SIMULATION (fake quantization: values
 * are rounded to a grid and stored back as fp32), as used by QuaRot-style
 * W4A4KV4 evaluation. See docs/methods.md ("QuaRot").
 *
 * The scheme (xf_act_scheme) says what is quantized; sim/act_hooks.h
 * applies it in the forward pass; sim/log2_quant.h holds the attention
 * probability quantizers; quant/search/clip_search.h the clip-ratio search.
 *
 * Integer fake quantization of one group g of values (a whole token row, or
 * `group` consecutive channels of it), b bits, clip ratio c in (0, 1]:
 *
 *   symmetric:  m = max|g|; scale = c * m / (2^(b-1) - 1);
 *               q = clamp(rint(x / scale), -2^(b-1), 2^(b-1) - 1);
 *               x' = q * scale
 *   asymmetric: lo = c * min(min g, 0); hi = c * max(max g, 0)
 *               (0 is kept inside the range so it stays exact: padding,
 *               ReLU zeros); scale = (hi - lo) / (2^b - 1);
 *               zero = rint(-lo / scale);
 *               q = clamp(rint(x / scale) + zero, 0, 2^b - 1);
 *               x' = (q - zero) * scale
 *
 * rint = round half to even (the default FP rounding mode), x / scale is a
 * true fp32 division; all arithmetic is fp32 in exactly this order, so a
 * scalar reference written from these lines reproduces it bit for bit. A
 * group that is all zeros is left unchanged (scale would be 0).
 *
 * "16 bits" is not a special case: it is the same integer grid with 2^16
 * levels (65535 steps over the clipped range). Its rounding error is at
 * most scale / 2, i.e. <= range / 131070 (asym) or max|x| / 65534 (sym),
 * finer than fp16's own rounding of the group's largest value (2^-11
 * relative), so a 16-bit KV cache or activation path changes nothing
 * measurable (tests check logits move by < 1e-4 relative). bits 0 means
 * OFF: the values are not touched at all (bit-exact identity).
 *
 * Bits accepted: 0 (off) or 2..16 for activations and KV. */
#ifndef XF_SIM_ACT_QUANT_H
#define XF_SIM_ACT_QUANT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "model/linear_inputs.h"
#include "model/weights.h"

#define XF_ACT_MIN_BITS 2
#define XF_ACT_MAX_BITS 16

/* The inputs a scheme quantizes are the linear-input kinds of
 * model/linear_inputs.h (xf_lin_input: qkv, o, mlp, down; names used in
 * JSON and on the CLI). The LM head's input is never hooked: the head
 * stays in full precision, as in QuaRot. */

typedef enum xf_prob_quant {
    XF_PROB_UNIFORM = 0, /* levels k / (2^b - 1), k = 0..2^b-1 */
    XF_PROB_LOG2 = 1,    /* levels base^-k (sim/log2_quant.h) */
} xf_prob_quant;

/* The quantizer of activations / KV (the act_quant / kv_quant keys):
 * the integer grids above, or QRazor's razoring (sim/razor_quant.h), which
 * keeps act_bits / kv_bits magnitude bits from each razor group's leading
 * one after an abs-max base quantization. */
typedef enum xf_act_kind {
    XF_ACT_KIND_INT = 0,
    XF_ACT_KIND_RAZOR = 1,
} xf_act_kind;

/* Which K/V tokens a query reads in full precision when the KV cache is
 * quantized (sim/kv_keep.h): none, LogQuant's log-distributed set, or the
 * same number of most recent tokens. */
typedef enum xf_kv_keep_kind {
    XF_KV_KEEP_NONE = 0,
    XF_KV_KEEP_LOG = 1,
    XF_KV_KEEP_RECENT = 2,
} xf_kv_keep_kind;

/* "int" / "razor"; "none" / "log" / "recent"; parse: -1 if unknown. */
const char *xf_act_kind_name(xf_act_kind k);
int xf_act_kind_from_name(const char *name, xf_act_kind *out);
const char *xf_kv_keep_name(xf_kv_keep_kind k);
int xf_kv_keep_from_name(const char *name, xf_kv_keep_kind *out);

/* "uniform" / "log2"; parse: -1 if unknown. */
const char *xf_prob_quant_name(xf_prob_quant q);
int xf_prob_quant_from_name(const char *name, xf_prob_quant *out);

typedef struct xf_act_scheme {
    /* linear inputs, per token (row) */
    int act_bits;           /* 0 = off, else 2..16 */
    bool act_sym;           /* symmetric (QuaRot) or asymmetric */
    int64_t act_group;      /* 0 = whole token row; else channels per group
                               (must divide every quantized input's width) */
    double act_clip;        /* (0, 1]; 1 = no clipping (QuaRot: 0.9) */
    double act_clip_input[XF_IN_COUNT]; /* per-input override (e.g. from
                               the clip search); 0 = use act_clip */
    unsigned act_inputs;    /* bit (1u << xf_lin_input) set = quantized;
                               default XF_IN_ALL */
    /* KV cache (K after RoPE, V), always asymmetric, per token, per head group */
    int kv_bits;            /* 0 = off, else 2..16 */
    int64_t kv_group;       /* channels per group inside a head: 0 = head_dim;
                               a divisor of head_dim; or a multiple of head_dim,
                               which means one group per head (groups never
                               span heads; QuaRot's 128 = head_dim) */
    double kv_clip;         /* (0, 1] (QuaRot: 0.95) */
    /* post-softmax attention probabilities */
    int attn_prob_bits;     /* 0 = off; uniform 2..8; log2 2..8 */
    xf_prob_quant attn_prob_quant;
    double attn_prob_log2_base; /* log2 quantizer base as log2(base) in
                               [1/16, 4]; 1 = base 2 (RepQ-ViT), 0.5 = sqrt 2 */
    /* QRazor (sim/razor_quant.h). JSON keys written only when a kind is
     * razor, so files of other schemes keep their bytes. */
    xf_act_kind act_kind;   /* int (default) or razor */
    xf_act_kind kv_kind;    /* int (default) or razor */
    int64_t razor_group;    /* values per razor group inside a base group
                               (0, or >= the base group: the whole base
                               group; the last one of a base group may be
                               shorter); default 16 */
    int razor_base_bits;    /* activations' base integer bits (4..16; 16) */
    int kv_razor_base_bits; /* K/V base integer bits (4..16; 8) */
    /* LogQuant (sim/kv_keep.h): per query, which K/V tokens stay in full
     * precision while the others are quantized (kv_bits > 0 needed). */
    xf_kv_keep_kind kv_keep;
    int64_t kv_keep_window; /* LogQuant's W (>= 1): at most 3W tokens kept */
    /* Online transforms of a rotated model (sim/online.h), applied to a
     * linear's input before its quantizer by every hook built from this
     * scheme. Borrowed; NOT part of the JSON form (the recipe keeps them in
     * "online_transforms"); NULL: none. */
    const struct xf_online_transforms *online;
    /* RepQuant's static qkv/mlp quantizers (sim/static_act.h), used instead
     * of the per-token grid on those inputs when act_bits > 0 and the input
     * is selected. Borrowed; NOT part of the JSON form (the recipe keeps
     * them in "static_act"); NULL: none. */
    const struct xf_static_act *static_act;
} xf_act_scheme;

/* Everything off: bits 0, act_sym true, groups 0, clips 1, all inputs,
 * uniform probabilities, log2 base 2; integer kinds (razor group 16, base
 * bits 16 / 8 when razor is chosen), no kept KV tokens (window 16). */
void xf_act_scheme_default(xf_act_scheme *s);
/* QuaRot's settings: activations act_bits per token symmetric clip 0.9 on
 * all four inputs (head in fp); KV kv_bits asymmetric, one group per head
 * (kv_group 128 as in the paper), clip 0.95. Probabilities off. */
void xf_act_scheme_quarot(xf_act_scheme *s, int act_bits, int kv_bits);
/* True when the scheme quantizes nothing (ignores s->online). */
bool xf_act_scheme_is_off(const xf_act_scheme *s);
/* True when forward hooks have work: quantization or online transforms. */
bool xf_act_scheme_needs_hooks(const xf_act_scheme *s);
/* Range checks; errors name `what`. */
int xf_act_scheme_check(const xf_act_scheme *s, const char *what, xf_error *err);
/* The clip ratio used for one input. */
double xf_act_scheme_clip(const xf_act_scheme *s, xf_lin_input in);
/* The KV group actually used for a head of head_dim channels (0 or a
 * multiple of head_dim -> head_dim); fails when kv_group neither divides
 * head_dim nor is a multiple of it. */
int xf_act_scheme_kv_group(const xf_act_scheme *s, int64_t head_dim, int64_t *group,
                           xf_error *err);

/* A one-line human description ("A4 sym clip 0.9, KV4 clip 0.95, P4 log2
 * base 2^1"); empty when the scheme is off. Truncated to cap. */
void xf_act_scheme_describe(const xf_act_scheme *s, char *buf, size_t cap);

/* JSON object (the .xfq recipe's "activations" entry). Every field is
 * written, so the object reproduces the scheme exactly (doubles are
 * written with 17 significant digits by jansson). New reference. */
json_t *xf_act_scheme_to_json(const xf_act_scheme *s);
/* Strict: an unknown key, a wrong type or an out-of-range value fails with
 * one line naming `what` and the key. Missing keys keep the defaults of
 * xf_act_scheme_default. */
int xf_act_scheme_from_json(xf_act_scheme *s, const json_t *j, const char *what, xf_error *err);

/* ---- row quantizers (see the formulas above) ----------------------------- */

/* Fake-quantizes x[0..n) in place as groups of `group` values (0: one group
 * of n; n % group must be 0, checked by the caller). Returns 0, or -1 when a
 * group holds a non-finite value (that group is left unchanged, the others
 * are quantized). bits 0: nothing is touched, returns 0. */
int xf_act_quant_row(float *x, int64_t n, int64_t group, int bits, bool sym, float clip);

/* One group, symmetric / asymmetric (bits 2..16, clip in (0, 1]); -1 on a
 * non-finite value (x unchanged). */
int xf_act_quant_group_sym(float *x, int64_t n, int bits, float clip);
int xf_act_quant_group_asym(float *x, int64_t n, int bits, float clip);

#endif
