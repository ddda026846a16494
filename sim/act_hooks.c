/* The forward hooks of an activation / KV / probability scheme, chained to
 * an optional inner hooks struct (see act_hooks.h). */
#include "sim/act_hooks.h"

#include <string.h>

#include "sim/kv_keep.h"
#include "sim/log2_quant.h"
#include "sim/razor_quant.h"
#include "sim/static_act.h"

/* The scheme's quantizer on the rows of one selected input: RepQuant's
 * static quantizer for the inputs it covers, else the per-token razor or
 * integer grid. */
static int quant_rows(const xf_act_scheme *s, int layer, xf_lin_input in, float *x, int64_t rows,
                      int64_t cols, int64_t g, xf_error *err)
{
    const int slot = s->static_act ? xf_static_act_slot(in) : -1;
    const bool fixed =
        slot >= 0 && cols == s->static_act->width && layer < s->static_act->n_layers;
    const bool razor = s->act_kind == XF_ACT_KIND_RAZOR;
    const float clip = (float)xf_act_scheme_clip(s, in);
    for (int64_t t = 0; t < rows; t++) {
        float *row = x + t * cols;
        int r = fixed   ? xf_static_act_row(s->static_act, layer, slot, row)
                : razor ? xf_razor_row(row, cols, g, s->razor_base_bits, s->act_bits,
                                       s->razor_group, clip)
                        : xf_act_quant_row(row, cols, g, s->act_bits, s->act_sym, clip);
        if (r != 0)
            return xf_fail(err, "layer %d %s input: non-finite activation in token %lld", layer,
                           xf_lin_input_name(in), (long long)t);
    }
    return 0;
}

static int quant_linear_input(void *user, int layer, xf_linear_role role, float *x,
                              int64_t rows, int64_t cols, xf_error *err)
{
    const xf_act_hooks *h = user;
    const xf_act_scheme *s = &h->scheme;
    const xf_lin_input in = xf_lin_input_of_role(role);
    if (h->online && xf_online_apply(h->online, layer, (int)role, x, rows, cols, err) != 0)
        return -1;
    if (s->act_bits > 0 && (s->act_inputs & (1u << in))) {
        const int64_t g = s->act_group > 0 ? s->act_group : cols;
        if (cols % g != 0)
            return xf_fail(err, "layer %d %s input: act_group %lld does not divide %lld channels",
                           layer, xf_lin_input_name(in), (long long)g, (long long)cols);
        if (quant_rows(s, layer, in, x, rows, cols, g, err) != 0)
            return -1;
    }
    if (h->inner.on_linear_input)
        return h->inner.on_linear_input(h->inner.user, layer, role, x, rows, cols, err);
    return 0;
}

static int quant_kv(void *user, int layer, float *k, float *v, int64_t T, int64_t n_kv_heads,
                    int64_t head_dim, xf_error *err)
{
    const xf_act_hooks *h = user;
    const xf_act_scheme *s = &h->scheme;
    /* R3 before the quantizer: the cache holds rotated heads */
    if (h->online &&
        xf_online_apply_heads(h->online, layer, k, T, n_kv_heads, head_dim, false, err) != 0)
        return -1;
    if (s->kv_bits > 0) {
        int64_t g;
        if (xf_act_scheme_kv_group(s, head_dim, &g, err) != 0)
            return xf_fail_prefix(err, "layer %d", layer);
        const int64_t dim = n_kv_heads * head_dim;
        const float clip = (float)s->kv_clip;
        const bool razor = s->kv_kind == XF_ACT_KIND_RAZOR;
        /* groups of g channels never span heads: g divides head_dim */
        for (int64_t t = 0; t < T; t++) {
            float *kt = k + t * dim, *vt = v + t * dim;
            if ((razor ? xf_razor_row(kt, dim, g, s->kv_razor_base_bits, s->kv_bits,
                                      s->razor_group, clip)
                       : xf_act_quant_row(kt, dim, g, s->kv_bits, false, clip)) != 0)
                return xf_fail(err, "layer %d: non-finite key in token %lld", layer,
                               (long long)t);
            if ((razor ? xf_razor_row(vt, dim, g, s->kv_razor_base_bits, s->kv_bits,
                                      s->razor_group, clip)
                       : xf_act_quant_row(vt, dim, g, s->kv_bits, false, clip)) != 0)
                return xf_fail(err, "layer %d: non-finite value in token %lld", layer,
                               (long long)t);
        }
    }
    if (h->inner.on_kv)
        return h->inner.on_kv(h->inner.user, layer, k, v, T, n_kv_heads, head_dim, err);
    return 0;
}

static int rotate_q(void *user, int layer, float *q, int64_t T, int64_t n_heads,
                    int64_t head_dim, xf_error *err)
{
    const xf_act_hooks *h = user;
    if (h->online &&
        xf_online_apply_heads(h->online, layer, q, T, n_heads, head_dim, false, err) != 0)
        return -1;
    if (h->inner.on_q)
        return h->inner.on_q(h->inner.user, layer, q, T, n_heads, head_dim, err);
    return 0;
}

static int quant_probs(void *user, int layer, int64_t head, float *p, int64_t T_q, int64_t T_k,
                       xf_error *err)
{
    const xf_act_hooks *h = user;
    const xf_act_scheme *s = &h->scheme;
    if (s->attn_prob_bits > 0) {
        for (int64_t i = 0; i < T_q; i++) {
            /* causal square case: entries above the diagonal are 0 and
             * both quantizers map 0 to 0, so only keys 0..i are visited */
            const int64_t n = T_q == T_k ? i + 1 : T_k;
            float *row = p + i * T_k;
            if (s->attn_prob_quant == XF_PROB_LOG2)
                xf_prob_quant_log2(row, n, s->attn_prob_bits, s->attn_prob_log2_base);
            else
                xf_prob_quant_uniform(row, n, s->attn_prob_bits);
        }
    }
    if (h->inner.on_attn_probs)
        return h->inner.on_attn_probs(h->inner.user, layer, head, p, T_q, T_k, err);
    return 0;
}

/* LogQuant / recent-window kept tokens of query i (sim/kv_keep.h) */
static int64_t keep_kv(void *user, int layer, int64_t i, int64_t *idx)
{
    (void)layer;
    const xf_act_hooks *h = user;
    return xf_kv_keep_tokens(h->scheme.kv_keep, h->scheme.kv_keep_window, i, idx);
}

int xf_act_hooks_init(xf_act_hooks *h, const xf_act_scheme *s, const xf_forward_hooks *inner,
                      xf_error *err)
{
    return xf_act_hooks_init_online(h, s, NULL, inner, err);
}

bool xf_act_hooks_active(const xf_act_hooks *h)
{
    return h->hooks.on_linear_input || h->hooks.on_kv || h->hooks.on_attn_probs ||
           h->hooks.kv_keep || h->hooks.on_q;
}

int xf_act_hooks_init_online(xf_act_hooks *h, const xf_act_scheme *s,
                             const xf_online_transforms *online, const xf_forward_hooks *inner,
                             xf_error *err)
{
    memset(h, 0, sizeof *h);
    if (!online)
        online = s->online;
    if (online && xf_online_any(online))
        h->online = online;
    if (xf_act_scheme_check(s, "activation scheme", err) != 0)
        return -1;
    h->scheme = *s;
    if (inner)
        h->inner = *inner;
    h->hooks.user = h;
    if ((s->act_bits > 0 && (s->act_inputs & XF_IN_ALL)) || h->inner.on_linear_input ||
        h->online)
        h->hooks.on_linear_input = quant_linear_input;
    const bool qk = h->online && h->online->qk;
    if (s->kv_bits > 0 || h->inner.on_kv || qk)
        h->hooks.on_kv = quant_kv;
    if (qk || h->inner.on_q)
        h->hooks.on_q = rotate_q;
    if (s->attn_prob_bits > 0 || h->inner.on_attn_probs)
        h->hooks.on_attn_probs = quant_probs;
    if (s->kv_bits > 0 && s->kv_keep != XF_KV_KEEP_NONE)
        h->hooks.kv_keep = keep_kv;
    return 0;
}

void xf_act_hooks_free(xf_act_hooks *h)
{
    memset(h, 0, sizeof *h);
}
