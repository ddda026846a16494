/* The recording forward pass of model/backward.h: model/forward.c's llama
 * path step for step (same kernels, same hook calls in the same order),
 * with each value the backward pass needs copied into the tape. */
#include "model/backward.h"

#include <stdlib.h>
#include <string.h>

#include "model/ops.h"

int xf_backward_supported(const xf_model_config *c, const char *what, xf_error *err)
{
    if (c->family != XF_FAMILY_LLAMA || c->layer_norm || !c->norm_before || c->fused_qkv ||
        c->act != XF_ACT_SILU)
        return xf_fail(err, "%s: the backward pass covers the llama family only (RMSNorm, "
                            "SiLU-gated MLP, separate q/k/v)",
                       what);
    return 0;
}

static float *take(size_t n, bool *ok)
{
    float *p = malloc(n * sizeof *p);
    if (!p)
        *ok = false;
    return p;
}

int xf_tape_init(xf_tape *tp, const xf_model_config *c, int64_t max_T, bool probs_hooked,
                 xf_error *err)
{
    memset(tp, 0, sizeof *tp);
    if (xf_backward_supported(c, "backward pass", err) != 0)
        return -1;
    if (max_T < 1)
        return xf_fail(err, "backward pass: max sequence length %lld < 1", (long long)max_T);
    tp->cfg = *c;
    tp->max_T = max_T;
    tp->n_layers = (int)c->n_layers;
    tp->probs_hooked = probs_hooked;
    const size_t T = (size_t)max_T, H = (size_t)c->hidden, I = (size_t)c->intermediate;
    const size_t qd = (size_t)(c->n_heads * c->head_dim), kvd = (size_t)(c->n_kv_heads * c->head_dim);
    const size_t pp = (size_t)c->n_heads * T * T;
    bool ok = (tp->layers = calloc((size_t)tp->n_layers, sizeof *tp->layers)) != NULL;
    for (int l = 0; ok && l < tp->n_layers; l++) {
        xf_tape_layer *y = &tp->layers[l];
        y->h_in = take(T * H, &ok);
        y->xq = take(T * H, &ok);
        y->q = take(T * qd, &ok);
        y->k = take(T * kvd, &ok);
        y->v = take(T * kvd, &ok);
        y->p = take(pp, &ok);
        if (probs_hooked)
            y->pq = take(pp, &ok);
        y->ao = take(T * qd, &ok);
        y->h_mid = take(T * H, &ok);
        y->xm = take(T * H, &ok);
        y->g = take(T * I, &ok);
        y->u = take(T * I, &ok);
        y->ad = take(T * I, &ok);
        y->xq0 = take(T * H, &ok);
        y->ao0 = take(T * qd, &ok);
        y->xm0 = take(T * H, &ok);
        y->ad0 = take(T * I, &ok);
        y->k0 = take(T * kvd, &ok);
        y->v0 = take(T * kvd, &ok);
    }
    size_t wide = I > qd ? I : qd;
    wide = wide > H ? wide : H;
    tp->h_fin = take(T * H, &ok);
    tp->x_fin = take(T * H, &ok);
    tp->dh = take(T * H, &ok);
    tp->dx = take(T * wide, &ok);
    tp->dq = take(T * qd, &ok);
    tp->dk = take(T * kvd, &ok);
    tp->dv = take(T * kvd, &ok);
    tp->dao = take(T * qd, &ok);
    tp->dg = take(T * I, &ok);
    tp->du = take(T * I, &ok);
    tp->dP = take(T * T, &ok);
    tp->rope_cos = take(T * (size_t)(c->head_dim / 2), &ok);
    tp->rope_sin = take(T * (size_t)(c->head_dim / 2), &ok);
    if (!ok) {
        xf_tape_free(tp);
        return xf_fail(err, "backward pass: out of memory for a %lld-token tape",
                       (long long)max_T);
    }
    xf_op_rope_tables(c->rope_theta, c->head_dim, max_T, tp->rope_cos, tp->rope_sin);
    return 0;
}

void xf_tape_free(xf_tape *tp)
{
    for (int l = 0; tp->layers && l < tp->n_layers; l++) {
        xf_tape_layer *y = &tp->layers[l];
        float *all[] = {y->h_in, y->xq, y->q, y->k, y->v, y->p, y->pq,
                        y->ao, y->h_mid, y->xm, y->g, y->u, y->ad,
                        y->xq0, y->ao0, y->xm0, y->ad0, y->k0, y->v0};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++)
            free(all[i]);
    }
    free(tp->layers);
    float *rest[] = {tp->h_fin, tp->x_fin, tp->dh, tp->dx, tp->dq, tp->dk,
                     tp->dv, tp->dao, tp->dg, tp->du, tp->dP, tp->rope_cos, tp->rope_sin};
    for (size_t i = 0; i < sizeof rest / sizeof *rest; i++)
        free(rest[i]);
    memset(tp, 0, sizeof *tp);
}

int xf_tape_embed(const float *embed, int64_t vocab, int64_t hidden, const int32_t *tokens,
                  int64_t T, float *h0, xf_error *err)
{
    for (int64_t t = 0; t < T; t++) {
        if (tokens[t] < 0 || tokens[t] >= vocab)
            return xf_fail(err, "embedding: token id %d at position %lld outside [0, %lld)",
                           tokens[t], (long long)t, (long long)vocab);
        memcpy(h0 + t * hidden, embed + (size_t)tokens[t] * (size_t)hidden,
               (size_t)hidden * sizeof *h0);
    }
    return 0;
}

/* keeps the input before the hook in x0, then runs the hook on x */
static int hook_input(const xf_forward_hooks *hooks, int layer, xf_linear_role role, float *x,
                      float *x0, int64_t rows, int64_t cols, xf_error *err)
{
    memcpy(x0, x, (size_t)(rows * cols) * sizeof *x);
    if (!hooks || !hooks->on_linear_input)
        return 0;
    return hooks->on_linear_input(hooks->user, layer, role, x, rows, cols, err) == 0 ? 0 : -1;
}

/* The probability hook of the recording attention: the softmax output is
 * kept, the caller's hook applied, its result kept too. */
typedef struct probs_rec {
    const xf_forward_hooks *hooks;
    xf_tape_layer *y;
    int64_t T;
} probs_rec;

static int record_probs(void *user, int layer, int64_t head, float *p, int64_t T_q, int64_t T_k,
                        xf_error *err)
{
    probs_rec *r = user;
    const size_t n = (size_t)(T_q * T_k);
    memcpy(r->y->p + (size_t)head * n, p, n * sizeof *p);
    if (!r->hooks || !r->hooks->on_attn_probs)
        return 0;
    if (r->hooks->on_attn_probs(r->hooks->user, layer, head, p, T_q, T_k, err) != 0)
        return -1;
    if (r->y->pq) {
        memcpy(r->y->pq + (size_t)head * n, p, n * sizeof *p);
        /* the forward re-zeroes above the diagonal after the hook */
        for (int64_t i = 0; i + 1 < T_q; i++)
            memset(r->y->pq + (size_t)head * n + (size_t)(i * T_k + i + 1), 0,
                   (size_t)(T_k - i - 1) * sizeof *p);
    }
    return 0;
}

static int layer_forward(xf_tape *tp, xf_workspace *ws, const xf_dense_layer *dl, int l,
                         float *h, int64_t T, const xf_forward_hooks *hooks, xf_error *err)
{
    const xf_model_config *c = &ws->cfg;
    xf_tape_layer *y = &tp->layers[l];
    const int64_t H = c->hidden, I = c->intermediate, qd = ws->q_dim, kvd = ws->kv_dim;
    const size_t nH = (size_t)(T * H) * sizeof(float);
    memcpy(y->h_in, h, nH);
    xf_op_rmsnorm(h, y->xq, T, H, dl->attn_norm_w, c->norm_eps);
    if (hook_input(hooks, dl->layer, XF_LIN_Q, y->xq, y->xq0, T, H, err) != 0)
        return -1;
    xf_op_linear(y->xq, T, H, dl->w[XF_LIN_Q], dl->b[XF_LIN_Q], qd, y->q);
    xf_op_linear(y->xq, T, H, dl->w[XF_LIN_K], dl->b[XF_LIN_K], kvd, y->k);
    xf_op_linear(y->xq, T, H, dl->w[XF_LIN_V], dl->b[XF_LIN_V], kvd, y->v);
    xf_op_rope_apply(y->q, T, c->n_heads, c->head_dim, ws->rope_cos, ws->rope_sin);
    xf_op_rope_apply(y->k, T, c->n_kv_heads, c->head_dim, ws->rope_cos, ws->rope_sin);
    if (hooks && hooks->on_q &&
        hooks->on_q(hooks->user, dl->layer, y->q, T, c->n_heads, c->head_dim, err) != 0)
        return -1;
    memcpy(y->k0, y->k, (size_t)(T * kvd) * sizeof(float));
    memcpy(y->v0, y->v, (size_t)(T * kvd) * sizeof(float));
    if (hooks && hooks->on_kv &&
        hooks->on_kv(hooks->user, dl->layer, y->k, y->v, T, c->n_kv_heads, c->head_dim, err) != 0)
        return -1;
    probs_rec pr = {.hooks = hooks, .y = y, .T = T};
    if (xf_op_attention_hooked(y->q, y->k, y->v, y->ao, T, c->n_heads, c->n_kv_heads,
                               c->head_dim, ws->scores, ws->score_heads, record_probs, &pr,
                               dl->layer, err) != 0)
        return -1;
    if (hook_input(hooks, dl->layer, XF_LIN_O, y->ao, y->ao0, T, qd, err) != 0)
        return -1;
    xf_op_linear(y->ao, T, qd, dl->w[XF_LIN_O], dl->b[XF_LIN_O], H, ws->y);
    xf_op_add(h, ws->y, T * H);
    memcpy(y->h_mid, h, nH);
    xf_op_rmsnorm(h, y->xm, T, H, dl->mlp_norm_w, c->norm_eps);
    if (hook_input(hooks, dl->layer, XF_LIN_GATE, y->xm, y->xm0, T, H, err) != 0)
        return -1;
    xf_op_linear(y->xm, T, H, dl->w[XF_LIN_GATE], dl->b[XF_LIN_GATE], I, y->g);
    xf_op_linear(y->xm, T, H, dl->w[XF_LIN_UP], dl->b[XF_LIN_UP], I, y->u);
    memcpy(y->ad, y->g, (size_t)(T * I) * sizeof(float));
    xf_op_act_gated(c->act, y->ad, y->u, T * I);
    if (hook_input(hooks, dl->layer, XF_LIN_DOWN, y->ad, y->ad0, T, I, err) != 0)
        return -1;
    xf_op_linear(y->ad, T, I, dl->w[XF_LIN_DOWN], dl->b[XF_LIN_DOWN], H, ws->y);
    xf_op_add(h, ws->y, T * H);
    return 0;
}

int xf_tape_forward(xf_tape *tp, xf_workspace *ws, const xf_dense_layer *layers,
                    const xf_dense_head *hd, const float *h0, int64_t T,
                    const xf_forward_hooks *hooks, float *logits, xf_error *err)
{
    const xf_model_config *c = &tp->cfg;
    if (T < 1 || T > tp->max_T || T > ws->max_T)
        return xf_fail(err, "backward pass: %lld tokens, the tape holds 1..%lld", (long long)T,
                       (long long)(tp->max_T < ws->max_T ? tp->max_T : ws->max_T));
    if (ws->cfg.hidden != c->hidden || hd->hidden != c->hidden)
        return xf_fail(err, "backward pass: workspace or head does not match the tape's model");
    if (hooks && hooks->on_attn_probs && !tp->probs_hooked)
        return xf_fail(err, "backward pass: a probability hook needs a tape made with "
                            "probs_hooked");
    tp->T = T;
    const int64_t H = c->hidden;
    float *h = tp->h_fin; /* the stream runs in h_fin, which ends as the final norm input */
    memcpy(h, h0, (size_t)(T * H) * sizeof *h);
    for (int l = 0; l < tp->n_layers; l++) {
        const xf_dense_layer *dl = &layers[l];
        for (int r = 0; r < XF_LIN_COUNT; r++) {
            int64_t out, in;
            bool present = xf_forward_role_shape(c, (xf_linear_role)r, &out, &in);
            if (present != (dl->w[r] != NULL) || (present && (dl->out[r] != out || dl->in[r] != in)))
                return xf_fail(err, "backward pass: layer %d linear %s does not match the model",
                               l, xf_op_role_name(r));
        }
        if (layer_forward(tp, ws, dl, l, h, T, hooks, err) != 0)
            return xf_fail_prefix(err, "layer %d", dl->layer);
    }
    xf_op_rmsnorm(h, tp->x_fin, T, H, hd->norm_w, c->norm_eps);
    xf_op_linear(tp->x_fin, T, H, hd->w, hd->b, hd->vocab, logits);
    return 0;
}
