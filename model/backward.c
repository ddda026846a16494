/* The backward pass of model/backward.h: linears, RMSNorm, the SiLU-gated
 * MLP, the residual stream and the head, layer by layer from the last;
 * attention and RoPE are model/attention_backward.c. Also the gradient
 * buffers. */
#include "model/backward.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm_tiled.h"
#include "model/backward_ops.h"

/* ---- gradient buffers ---- */

static float *zeros(int64_t n, bool *ok)
{
    float *p = calloc((size_t)n, sizeof *p);
    if (!p)
        *ok = false;
    return p;
}

int xf_grads_init(xf_grads *g, const xf_dense_layer *layers, int n_layers,
                  const xf_dense_head *hd, xf_error *err)
{
    memset(g, 0, sizeof *g);
    g->n_layers = n_layers;
    g->hidden = hd->hidden;
    g->vocab = hd->vocab;
    bool ok = (g->layers = calloc((size_t)n_layers, sizeof *g->layers)) != NULL;
    for (int l = 0; ok && l < n_layers; l++) {
        const xf_dense_layer *dl = &layers[l];
        xf_layer_grads *lg = &g->layers[l];
        for (int r = 0; r < XF_LIN_COUNT; r++) {
            lg->out[r] = dl->w[r] ? dl->out[r] : 0;
            lg->in[r] = dl->w[r] ? dl->in[r] : 0;
            if (dl->w[r])
                lg->w[r] = zeros(dl->out[r] * dl->in[r], &ok);
            if (dl->b[r])
                lg->b[r] = zeros(dl->out[r], &ok);
        }
        lg->attn_norm_w = zeros(hd->hidden, &ok);
        lg->mlp_norm_w = zeros(hd->hidden, &ok);
    }
    if (ok) {
        g->head_w = zeros(hd->vocab * hd->hidden, &ok);
        if (hd->b)
            g->head_b = zeros(hd->vocab, &ok);
        g->norm_w = zeros(hd->hidden, &ok);
    }
    if (!ok) {
        xf_grads_free(g);
        return xf_fail(err, "backward pass: out of memory for the gradients");
    }
    return 0;
}

static void clear(float *p, int64_t n)
{
    if (p)
        memset(p, 0, (size_t)n * sizeof *p);
}

void xf_grads_zero(xf_grads *g)
{
    for (int l = 0; l < g->n_layers; l++) {
        xf_layer_grads *lg = &g->layers[l];
        for (int r = 0; r < XF_LIN_COUNT; r++) {
            clear(lg->w[r], lg->out[r] * lg->in[r]);
            clear(lg->b[r], lg->out[r]);
        }
        clear(lg->attn_norm_w, g->hidden);
        clear(lg->mlp_norm_w, g->hidden);
    }
    clear(g->head_w, g->vocab * g->hidden);
    clear(g->head_b, g->vocab);
    clear(g->norm_w, g->hidden);
}

void xf_grads_free(xf_grads *g)
{
    for (int l = 0; g->layers && l < g->n_layers; l++) {
        xf_layer_grads *lg = &g->layers[l];
        for (int r = 0; r < XF_LIN_COUNT; r++) {
            free(lg->w[r]);
            free(lg->b[r]);
        }
        free(lg->attn_norm_w);
        free(lg->mlp_norm_w);
    }
    free(g->layers);
    free(g->head_w);
    free(g->head_b);
    free(g->norm_w);
    memset(g, 0, sizeof *g);
}

/* ---- kernels ---- */

/* y = x W^T + b: dW += dy^T x, db += column sums of dy, dx = dy W (+= when
 * accumulate; dx may be NULL). */
static void linear_backward(const float *x, const float *dy, int64_t T, int64_t in, int64_t out,
                            const float *W, float *dW, float *db, float *dx, bool accumulate)
{
    /* tiled: the same bits for any thread count (core/gemm_tiled.h) */
    xf_sgemm_tiled(CblasTrans, CblasNoTrans, out, in, T, 1.0f, dy, out, x, in, 1.0f, dW, in);
    if (db)
        for (int64_t t = 0; t < T; t++)
            for (int64_t o = 0; o < out; o++)
                db[o] += dy[t * out + o];
    if (dx)
        xf_sgemm_tiled(CblasNoTrans, CblasNoTrans, T, in, out, 1.0f, dy, out, W, in,
                       accumulate ? 1.0f : 0.0f, dx, in);
}

/* y = w * x * r, r = (mean(x^2) + eps)^-1/2 per row: dx_i += r w_i dy_i -
 * x_i r^3 / n sum_j w_j dy_j x_j; dw += dy x r. fp64 row sums. */
static void rmsnorm_backward(const float *x, const float *dy, int64_t T, int64_t n,
                             const float *w, double eps, float *dw, float *dx)
{
    for (int64_t t = 0; t < T; t++) {
        const float *xr = x + t * n, *dr = dy + t * n;
        float *o = dx + t * n;
        double ss = 0.0, dot = 0.0;
        for (int64_t i = 0; i < n; i++) {
            ss += (double)xr[i] * xr[i];
            dot += (double)w[i] * dr[i] * xr[i];
        }
        const double r = 1.0 / sqrt(ss / (double)n + eps);
        const double c = dot * r * r * r / (double)n;
        for (int64_t i = 0; i < n; i++) {
            o[i] += (float)(r * w[i] * dr[i] - xr[i] * c);
            dw[i] += (float)(dr[i] * xr[i] * r);
        }
    }
}

static int hook_grad(const xf_backward_hooks *bh, int layer, xf_linear_role role,
                     const float *x_in, const float *x_out, float *dx, int64_t T, int64_t cols,
                     xf_error *err)
{
    if (!bh || !bh->on_linear_input_grad)
        return 0;
    return bh->on_linear_input_grad(bh->user, layer, role, x_in, x_out, dx, T, cols, err) == 0
               ? 0
               : -1;
}

/* dh: in dL/d(layer output), out dL/d(layer input). */
static int layer_backward(xf_tape *tp, const xf_dense_layer *dl, int l, xf_layer_grads *g,
                          const xf_backward_hooks *bh, xf_error *err)
{
    const xf_model_config *c = &tp->cfg;
    const xf_tape_layer *y = &tp->layers[l];
    const int64_t T = tp->T, H = c->hidden, NI = c->intermediate;
    const int64_t qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    float *dh = tp->dh, *dx = tp->dx;
    /* MLP: h_out = h_mid + down(act(gate(xm)) * up(xm)) */
    linear_backward(y->ad, dh, T, NI, H, dl->w[XF_LIN_DOWN], g->w[XF_LIN_DOWN], g->b[XF_LIN_DOWN],
                    dx, false);
    if (hook_grad(bh, dl->layer, XF_LIN_DOWN, y->ad0, y->ad, dx, T, NI, err) != 0)
        return -1;
    for (int64_t i = 0; i < T * NI; i++) {
        const float gv = y->g[i], s = 1.0f / (1.0f + expf(-gv));
        tp->dg[i] = dx[i] * y->u[i] * s * (1.0f + gv * (1.0f - s));
        tp->du[i] = dx[i] * gv * s;
    }
    linear_backward(y->xm, tp->dg, T, H, NI, dl->w[XF_LIN_GATE], g->w[XF_LIN_GATE],
                    g->b[XF_LIN_GATE], dx, false);
    linear_backward(y->xm, tp->du, T, H, NI, dl->w[XF_LIN_UP], g->w[XF_LIN_UP], g->b[XF_LIN_UP],
                    dx, true);
    if (hook_grad(bh, dl->layer, XF_LIN_GATE, y->xm0, y->xm, dx, T, H, err) != 0)
        return -1;
    rmsnorm_backward(y->h_mid, dx, T, H, dl->mlp_norm_w, c->norm_eps, g->mlp_norm_w, dh);
    /* attention: h_mid = h_in + o(attention(rope(q(xq)), rope(k(xq)), v(xq))) */
    linear_backward(y->ao, dh, T, qd, H, dl->w[XF_LIN_O], g->w[XF_LIN_O], g->b[XF_LIN_O],
                    tp->dao, false);
    if (hook_grad(bh, dl->layer, XF_LIN_O, y->ao0, y->ao, tp->dao, T, qd, err) != 0)
        return -1;
    xf_op_attention_backward(y->q, y->k, y->v, y->p, y->pq ? y->pq : y->p, tp->dao, T,
                             c->n_heads, c->n_kv_heads, c->head_dim, tp->dq, tp->dk, tp->dv,
                             tp->dP);
    if (bh && bh->on_qkv_grad &&
        bh->on_qkv_grad(bh->user, dl->layer, y->k0, y->v0, y->k, y->v, tp->dq, tp->dk, tp->dv, T,
                        c->n_heads, c->n_kv_heads, c->head_dim, err) != 0)
        return -1;
    xf_op_rope_backward(tp->dq, T, c->n_heads, c->head_dim, tp->rope_cos, tp->rope_sin);
    xf_op_rope_backward(tp->dk, T, c->n_kv_heads, c->head_dim, tp->rope_cos, tp->rope_sin);
    linear_backward(y->xq, tp->dq, T, H, qd, dl->w[XF_LIN_Q], g->w[XF_LIN_Q], g->b[XF_LIN_Q], dx,
                    false);
    linear_backward(y->xq, tp->dk, T, H, kvd, dl->w[XF_LIN_K], g->w[XF_LIN_K], g->b[XF_LIN_K],
                    dx, true);
    linear_backward(y->xq, tp->dv, T, H, kvd, dl->w[XF_LIN_V], g->w[XF_LIN_V], g->b[XF_LIN_V],
                    dx, true);
    if (hook_grad(bh, dl->layer, XF_LIN_Q, y->xq0, y->xq, dx, T, H, err) != 0)
        return -1;
    rmsnorm_backward(y->h_in, dx, T, H, dl->attn_norm_w, c->norm_eps, g->attn_norm_w, dh);
    return 0;
}

int xf_tape_backward(xf_tape *tp, const xf_dense_layer *layers, const xf_dense_head *hd,
                     const float *dlogits, const xf_backward_hooks *bh, xf_grads *g,
                     float *dh0, xf_error *err)
{
    const int64_t T = tp->T, H = tp->cfg.hidden;
    if (T < 1)
        return xf_fail(err, "backward pass: no forward pass recorded");
    if (g->n_layers != tp->n_layers || g->hidden != H || g->vocab != hd->vocab)
        return xf_fail(err, "backward pass: gradients do not match the model");
    /* head: logits = x_fin W^T + b, x_fin = norm(h_fin) */
    linear_backward(tp->x_fin, dlogits, T, H, hd->vocab, hd->w, g->head_w, g->head_b, tp->dx,
                    false);
    memset(tp->dh, 0, (size_t)(T * H) * sizeof *tp->dh);
    rmsnorm_backward(tp->h_fin, tp->dx, T, H, hd->norm_w, tp->cfg.norm_eps, g->norm_w, tp->dh);
    for (int l = tp->n_layers - 1; l >= 0; l--)
        if (layer_backward(tp, &layers[l], l, &g->layers[l], bh, err) != 0)
            return xf_fail_prefix(err, "backward pass: layer %d", l);
    if (dh0)
        memcpy(dh0, tp->dh, (size_t)(T * H) * sizeof *dh0);
    return 0;
}

/* ---- losses ---- */

/* log-sum-exp of a row in fp64, and the row's softmax into p (fp64 exp). */
static double row_lse(const float *z, int64_t V)
{
    float mx = z[0];
    for (int64_t v = 1; v < V; v++)
        mx = z[v] > mx ? z[v] : mx;
    double s = 0.0;
    for (int64_t v = 0; v < V; v++)
        s += exp((double)z[v] - mx);
    return mx + log(s);
}

void xf_loss_next_token_ce(const float *logits, const int32_t *tokens, int64_t T, int64_t vocab,
                           double scale, double *loss, float *dlogits)
{
    double sum = 0.0;
    for (int64_t t = 0; t < T; t++) {
        float *d = dlogits + t * vocab;
        if (t + 1 >= T) {
            memset(d, 0, (size_t)vocab * sizeof *d);
            continue;
        }
        const float *z = logits + t * vocab;
        const double lse = row_lse(z, vocab);
        const int32_t y = tokens[t + 1];
        sum += lse - z[y];
        for (int64_t v = 0; v < vocab; v++)
            d[v] = (float)(scale * exp((double)z[v] - lse));
        d[y] -= (float)scale;
    }
    *loss += scale * sum;
}

void xf_loss_kl(const float *logits, const float *ref_logits, int64_t T, int64_t vocab,
                double scale, double *loss, float *dlogits)
{
    double sum = 0.0;
    for (int64_t t = 0; t < T; t++) {
        const float *z = logits + t * vocab, *r = ref_logits + t * vocab;
        float *d = dlogits + t * vocab;
        const double lz = row_lse(z, vocab), lr = row_lse(r, vocab);
        for (int64_t v = 0; v < vocab; v++) {
            const double lpr = (double)r[v] - lr, lp = (double)z[v] - lz, pr = exp(lpr);
            sum += pr * (lpr - lp);
            d[v] = (float)(scale * (exp(lp) - pr));
        }
    }
    *loss += scale * sum;
}
