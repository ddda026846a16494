/* The rotation parametrization of quant/transform/e2e_rotation.h: the
 * effective (rotated, fake-quantized) weights for given R1 / R2 and the
 * gradients of R1 / R2 from the effective weights' gradients. */
#include "core/gemm_tiled.h"
#include "quant/transform/e2e_rotation.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int dup_layer(xf_dense_layer *dst, const xf_dense_layer *src, bool *ok)
{
    memset(dst, 0, sizeof *dst);
    dst->layer = src->layer;
    for (int r = 0; r < XF_LIN_COUNT; r++) {
        dst->out[r] = src->out[r];
        dst->in[r] = src->in[r];
        if (src->w[r] && !(dst->w[r] = malloc((size_t)(src->out[r] * src->in[r]) * sizeof(float))))
            *ok = false;
    }
    const size_t H = (size_t)src->in[XF_LIN_Q] * sizeof(float);
    if ((dst->attn_norm_w = malloc(H)) && (dst->mlp_norm_w = malloc(H))) {
        memcpy(dst->attn_norm_w, src->attn_norm_w, H);
        memcpy(dst->mlp_norm_w, src->mlp_norm_w, H);
    } else {
        *ok = false;
    }
    return 0;
}

int xf_e2e_model_init(xf_e2e_model *m, const xf_model_weights *mw, const xf_hadamard *down_had,
                      const char *what, xf_error *err)
{
    memset(m, 0, sizeof *m);
    const xf_model_config *c = &mw->cfg;
    if (xf_backward_supported(c, what, err) != 0)
        return -1;
    m->cfg = *c;
    m->n_layers = (int)c->n_layers;
    m->hidden = c->hidden;
    m->head_dim = c->head_dim;
    m->vocab = c->vocab;
    const int64_t H = c->hidden, d = c->head_dim, L = c->n_layers;
    const int64_t qd = c->n_heads * d, kvd = c->n_kv_heads * d;
    bool ok = (m->base = calloc((size_t)L, sizeof *m->base)) &&
              (m->eff = calloc((size_t)L, sizeof *m->eff));
    if (!ok)
        goto oom;
    for (int l = 0; l < m->n_layers; l++) {
        if (xf_dense_layer_init(&m->base[l], mw, l, err) != 0) {
            xf_e2e_model_free(m);
            return -1;
        }
        for (int r = 0; r < XF_LIN_COUNT; r++)
            if (m->base[l].b[r]) {
                xf_e2e_model_free(m);
                return xf_fail(err, "%s: layer %d %s has a bias; the end-to-end rotation "
                                    "objective covers bias-free linears only",
                               what, l, xf_linear_role_name((xf_linear_role)r));
            }
        if (down_had &&
            xf_hadamard_rows_f32(down_had, m->base[l].w[XF_LIN_DOWN], H, false, err) != 0) {
            xf_e2e_model_free(m);
            return xf_fail_prefix(err, "%s", what);
        }
        dup_layer(&m->eff[l], &m->base[l], &ok);
    }
    if (xf_dense_head_init(&m->head, mw, err) != 0) {
        xf_e2e_model_free(m);
        return -1;
    }
    if (m->head.b) {
        xf_e2e_model_free(m);
        return xf_fail(err, "%s: the LM head has a bias; the end-to-end rotation objective "
                            "covers a bias-free head only",
                       what);
    }
    m->eff_head = m->head;
    m->eff_head.norm_w = malloc((size_t)H * sizeof(float));
    m->eff_head.w = malloc((size_t)(m->vocab * H) * sizeof(float));
    m->embed = malloc((size_t)(m->vocab * H) * sizeof(float));
    m->R1f = malloc((size_t)(H * H) * sizeof(float));
    m->R2f = malloc((size_t)(L * d * d) * sizeof(float));
    m->tmp_v = malloc((size_t)(L * kvd * H) * sizeof(float));
    m->tmp_o = malloc((size_t)(L * H * qd) * sizeof(float));
    m->scratch = malloc((size_t)(H * H) * sizeof(float));
    m->A = malloc((size_t)(d * H) * sizeof(float));
    m->dd = malloc((size_t)(d * d) * sizeof(float));
    ok = ok && m->eff_head.norm_w && m->eff_head.w && m->embed && m->R1f && m->R2f && m->tmp_v &&
         m->tmp_o && m->scratch && m->A && m->dd;
    if (!ok)
        goto oom;
    memcpy(m->eff_head.norm_w, m->head.norm_w, (size_t)H * sizeof(float));
    if (xf_tensor_to_f32(mw->tok_embed, m->embed, err) != 0) {
        xf_e2e_model_free(m);
        return xf_fail_prefix(err, "%s", what);
    }
    return 0;
oom:
    xf_e2e_model_free(m);
    return xf_fail(err, "%s: out of memory for the end-to-end rotation objective", what);
}

void xf_e2e_model_free(xf_e2e_model *m)
{
    for (int l = 0; l < m->n_layers; l++) {
        if (m->base)
            xf_dense_layer_free(&m->base[l]);
        if (m->eff)
            xf_dense_layer_free(&m->eff[l]);
    }
    free(m->base);
    free(m->eff);
    if (m->head.w)
        xf_dense_head_free(&m->head);
    free(m->eff_head.norm_w);
    free(m->eff_head.w);
    free(m->embed);
    free(m->R1f);
    free(m->R2f);
    free(m->tmp_v);
    free(m->tmp_o);
    free(m->scratch);
    free(m->A);
    free(m->dd);
    memset(m, 0, sizeof *m);
}

void xf_e2e_fake_quant(float *W, int64_t out, int64_t in, const xf_grid_config *c, int64_t group)
{
    const int64_t g = group <= 0 || group > in ? in : group;
    for (int64_t r = 0; r < out; r++) {
        float *w = W + r * in;
        for (int64_t j0 = 0; j0 < in; j0 += g) {
            const int64_t len = j0 + g < in ? g : in - j0;
            const xf_grid grid = xf_grid_fit(c, w + j0, len);
            for (int64_t j = j0; j < j0 + len; j++)
                w[j] = xf_grid_dequantize(&grid, xf_grid_quantize(&grid, w[j]));
        }
    }
}

/* C [m, n] = op(A) op(B), fp32 */
static void mm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float *A, int64_t lda,
               const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    xf_sgemm_tiled(ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, A,
                   lda, B, ldb, beta, C, ldc);
}

int xf_e2e_build(xf_e2e_model *m, const double *R1, const double *R2, const xf_grid_config *c,
                 int64_t group, xf_error *err)
{
    const xf_model_config *cf = &m->cfg;
    const int64_t H = m->hidden, d = m->head_dim, NI = cf->intermediate;
    const int64_t nh = cf->n_heads, nkv = cf->n_kv_heads, qd = nh * d, kvd = nkv * d;
    for (int64_t i = 0; i < H * H; i++)
        m->R1f[i] = (float)R1[i];
    for (int64_t i = 0; i < m->n_layers * d * d; i++)
        m->R2f[i] = R2 ? (float)R2[i] : (i % (d * d)) / d == (i % (d * d)) % d ? 1.0f : 0.0f;
    const float *R1f = m->R1f;
    for (int l = 0; l < m->n_layers; l++) {
        const xf_dense_layer *b = &m->base[l];
        xf_dense_layer *e = &m->eff[l];
        const float *R2f = m->R2f + l * d * d;
        float *tv = m->tmp_v + (size_t)(l * kvd * H), *to = m->tmp_o + (size_t)(l * H * qd);
        const xf_linear_role readers[] = {XF_LIN_Q, XF_LIN_K, XF_LIN_GATE, XF_LIN_UP};
        for (int k = 0; k < 4; k++) {
            const xf_linear_role r = readers[k];
            mm(false, false, b->out[r], H, H, b->w[r], H, R1f, H, 0.0f, e->w[r], H);
        }
        mm(false, false, kvd, H, H, b->w[XF_LIN_V], H, R1f, H, 0.0f, tv, H);
        for (int64_t h = 0; h < nkv; h++)
            mm(true, false, d, H, d, R2f, d, tv + h * d * H, H, 0.0f, e->w[XF_LIN_V] + h * d * H, H);
        mm(true, false, H, qd, H, R1f, H, b->w[XF_LIN_O], qd, 0.0f, to, qd);
        for (int64_t h = 0; h < nh; h++)
            mm(false, false, H, d, d, to + h * d, qd, R2f, d, 0.0f, e->w[XF_LIN_O] + h * d, qd);
        mm(true, false, H, NI, H, R1f, H, b->w[XF_LIN_DOWN], NI, 0.0f, e->w[XF_LIN_DOWN], NI);
        if (c && c->bits > 0)
            for (int r = 0; r < XF_LIN_COUNT; r++)
                xf_e2e_fake_quant(e->w[r], e->out[r], e->in[r], c, group);
        for (int r = 0; r < XF_LIN_COUNT; r++)
            for (int64_t i = 0; i < e->out[r] * e->in[r]; i++)
                if (!isfinite(e->w[r][i]))
                    return xf_fail(err, "end-to-end rotation: layer %d %s: non-finite weight "
                                        "after rotation",
                                   l, xf_linear_role_name((xf_linear_role)r));
    }
    mm(false, false, m->vocab, H, H, m->head.w, H, R1f, H, 0.0f, m->eff_head.w, H);
    return 0;
}

int xf_e2e_embed(const xf_e2e_model *m, const int32_t *tokens, int64_t T, float *h0,
                 xf_error *err)
{
    const int64_t H = m->hidden;
    float *rows = malloc((size_t)(T * H) * sizeof *rows);
    if (!rows)
        return xf_fail(err, "end-to-end rotation: out of memory");
    if (xf_tape_embed(m->embed, m->vocab, H, tokens, T, rows, err) != 0) {
        free(rows);
        return -1;
    }
    mm(false, false, T, H, H, rows, H, m->R1f, H, 0.0f, h0, H);
    free(rows);
    return 0;
}

static void add_to(double *G, const float *S, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        G[i] += S[i];
}

void xf_e2e_grad_embed(xf_e2e_model *m, const int32_t *tokens, int64_t T, const float *dh0,
                       double *G1)
{
    const int64_t H = m->hidden;
    /* sum_t E[tok_t]^T dh0[t]: rank-1 updates, rows gathered implicitly */
    memset(m->scratch, 0, (size_t)(H * H) * sizeof *m->scratch);
    for (int64_t t = 0; t < T; t++)
        cblas_sger(CblasRowMajor, (int)H, (int)H, 1.0f, m->embed + (size_t)tokens[t] * (size_t)H,
                   1, dh0 + t * H, 1, m->scratch, (int)H);
    add_to(G1, m->scratch, H * H);
}

void xf_e2e_grad_weights(xf_e2e_model *m, const xf_grads *g, double *G1, double *G2)
{
    const xf_model_config *cf = &m->cfg;
    const int64_t H = m->hidden, d = m->head_dim, NI = cf->intermediate;
    const int64_t nh = cf->n_heads, nkv = cf->n_kv_heads, qd = nh * d, kvd = nkv * d;
    float *S = m->scratch;
    float *dd = m->dd, *A = m->A;
    for (int l = 0; l < m->n_layers; l++) {
        const xf_dense_layer *b = &m->base[l];
        const xf_layer_grads *lg = &g->layers[l];
        const float *R2f = m->R2f + l * d * d;
        const float *tv = m->tmp_v + (size_t)(l * kvd * H), *to = m->tmp_o + (size_t)(l * H * qd);
        /* readers: G1 += W^T G */
        const xf_linear_role readers[] = {XF_LIN_Q, XF_LIN_K, XF_LIN_GATE, XF_LIN_UP};
        for (int k = 0; k < 4; k++) {
            const xf_linear_role r = readers[k];
            mm(true, false, H, H, b->out[r], b->w[r], H, lg->w[r], H, k == 0 ? 0.0f : 1.0f, S, H);
        }
        /* v: W' = B^T W_v R1: G1 += (B^T W_v)^T G_v = sum_h W_v[h]^T R2 G_v[h] */
        for (int64_t h = 0; h < nkv; h++) {
            /* A = R2^T W_v[h] */
            mm(true, false, d, H, d, R2f, d, b->w[XF_LIN_V] + h * d * H, H, 0.0f, A, H);
            mm(true, false, H, H, d, A, H, lg->w[XF_LIN_V] + h * d * H, H, 1.0f, S, H);
            if (G2) { /* G2 += (W_v[h] R1) G_v[h]^T */
                mm(false, true, d, d, H, tv + h * d * H, H, lg->w[XF_LIN_V] + h * d * H, H, 0.0f,
                   dd, d);
                add_to(G2 + l * d * d, dd, d * d);
            }
        }
        /* o: W' = R1^T W_o B: G1 += (W_o B) G_o^T */
        for (int64_t h = 0; h < nh; h++) {
            /* A = W_o[:, h] R2 */
            mm(false, false, H, d, d, b->w[XF_LIN_O] + h * d, qd, R2f, d, 0.0f, A, d);
            mm(false, true, H, H, d, A, d, lg->w[XF_LIN_O] + h * d, qd, 1.0f, S, H);
            if (G2) { /* G2 += (R1^T W_o[:, h])^T G_o[:, h] */
                mm(true, false, d, d, H, to + h * d, qd, lg->w[XF_LIN_O] + h * d, qd, 0.0f, dd, d);
                add_to(G2 + l * d * d, dd, d * d);
            }
        }
        /* down: W' = R1^T (W_down H): G1 += (W_down H) G_down^T */
        mm(false, true, H, H, NI, b->w[XF_LIN_DOWN], NI, lg->w[XF_LIN_DOWN], NI, 1.0f, S, H);
        add_to(G1, S, H * H);
    }
    /* head: G1 += W_head^T G_head */
    mm(true, false, H, H, m->vocab, m->head.w, H, g->head_w, H, 0.0f, S, H);
    add_to(G1, S, H * H);
}
